"""Stage I synthesis: exact lengths, chunk placement, balanced orders, no leakage (by content), official import."""
from __future__ import annotations

import copy
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from longrm_utils import models  # noqa: E402
from longrm_utils.bench import schema  # noqa: E402
from longrm_utils.constants import DATA_DIR  # noqa: E402
from longrm_utils.io import InputError  # noqa: E402
from longrm_utils.judge import parse  # noqa: E402
from longrm_utils.train import evidence, official, stage1_data, teachers  # noqa: E402

MINI = DATA_DIR / "mini"
pytestmark = pytest.mark.skipif(not (MINI / "short_train.jsonl").exists(), reason="data/mini not built yet")


@pytest.fixture(scope="module")
def tok():
    return models.load_tokenizer(models.base_folder(models.REGISTRY["tiny"]), models.REGISTRY["tiny"])


@pytest.fixture(scope="module")
def train():
    return schema.read_jsonl(MINI / "short_train.jsonl")


@pytest.fixture(scope="module")
def synthesised(tok, train):
    recs = train[:4]
    return recs, stage1_data.synthesize_stage1(recs, tok, target_tokens=[1024, 2048],
                                               teacher=teachers.RuleTeacher(tok, 64), pool_records=train, seed=0)


def test_contexts_are_exact_to_the_token(tok, synthesised):
    recs, (examples, rep, done) = synthesised
    assert rep.skipped == {} and len(done) == 4
    for n, s in enumerate(done):
        _, ctx, _ = schema.context_parts(s.long_record)
        assert ctx == s.long_context
        assert evidence.n_tokens(tok, ctx) == [1024, 2048][n % 2]
        schema.validate_record(s.long_record)  # still a valid benchmark record


def test_critical_chunks_intact_in_order_and_where_recorded(synthesised):
    recs, (examples, rep, done) = synthesised
    for s in done:
        crit = [s.chunks[i] for i in s.critical]
        assert s.critical_by == "meta" and crit
        spans = s.layout.required_spans
        assert [s.long_context[a:b] for a, b in spans] == crit
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)
        # the short focused context is exactly the critical chunks; the golden answer's values are in it
        assert s.short_context == evidence.CHUNK_SEP.join(crit)
        for slot in s.record["meta"]["golden_slots"]:
            if s.record["task"] == "LongQA":
                assert slot in s.short_context


def test_both_orders_balanced_and_verdicts_right(synthesised):
    recs, (examples, rep, done) = synthesised
    assert len(examples) == 2 * len(recs)
    assert rep.best_slot["A"] == rep.best_slot["B"] == len(recs)
    for ex in examples:
        out = ex["completion"][0]["content"]
        p = parse.parse_verdict(out, len(ex["order"]), pairwise=ex["format"] == "pairwise", mode="strict")
        assert p.ranking is not None and p.ranking.index(0) == ex["order"].index(0)
        assert out.index("[[") > 20  # the analysis comes before the verdict


def test_judgements_fit_the_cpu_generation_cap(tok, synthesised):
    _, (examples, _, _) = synthesised
    assert max(evidence.n_tokens(tok, e["completion"][0]["content"]) for e in examples) < 64


def test_pointwise_and_ranking_formats(tok, train):
    f = teachers.Focus("x", "LongQA", "q?", "Paris is the capital.", ["The capital is Paris. It is big."],
                       ["Paris.", "Lyon.", "Nice."], [1, 0, 2], [0.5, 1.0, 0.1])
    r = teachers.rule_judgement(f, "ranking")
    assert parse.parse_ranking(r, 3).ranking == [1, 0, 2]
    pw = teachers.rule_judgement(f, "pointwise", slot=1)
    assert pw.startswith("[Analysis]") and parse.parse_score(pw) == (10.0, None)
    assert parse.parse_score(teachers.rule_judgement(f, "pointwise", slot=2))[0] == 1.0


def test_skips_are_counted_not_silent(tok, train):
    bad = copy.deepcopy(train[0])
    del bad["meta"]["golden"]
    too_long = train[1]
    ex, rep, done = stage1_data.synthesize_stage1([bad, too_long], tok, target_tokens=40, pool_records=train)
    assert ex == [] and sum(rep.skipped.values()) == 2
    assert rep.skipped == {"no_golden_answer": 1, "critical_longer_than_target": 1}


def test_retrieval_finds_the_labelled_evidence(train):
    hits = total = 0
    for rec in [r for r in train if r["task"] == "LongQA"][:10]:
        _, ctx, _ = schema.context_parts(rec)
        chunks = evidence.split_chunks(ctx)
        labelled, how = evidence.item_critical(rec, chunks, rec["question"], evidence.item_golden(rec))
        got = evidence.retrieve_critical(chunks, rec["question"], evidence.item_golden(rec), k=len(labelled))
        hits += len(set(got) & set(labelled))
        total += len(labelled)
    assert hits / total >= 0.8


def test_no_leakage_into_any_evaluation_set_and_the_check_can_fail(synthesised):
    recs, (examples, _, _) = synthesised
    evals = {"mini": schema.read_jsonl(MINI / "mini.jsonl"), "short": schema.read_jsonl(MINI / "short.jsonl")}
    texts = [stage1_data.example_content(e) for e in examples]
    rep = stage1_data.leakage_report(texts, evals)
    assert all(s["leaked"] == 0 for s in rep["sets"].values()), rep
    # positive control: an evaluation item that slipped into the training data (its prompt and the
    # answers, as a judge prompt would hold them) is caught, and only that one
    victim = evals["short"][5]
    leaked = schema.user_prompt(victim) + "\n" + "\n".join(schema.answers(victim))
    bad = stage1_data.leakage_report(texts + [leaked], evals)
    assert bad["sets"]["short"]["leaked_ids"] == [f"{victim['task']}:{victim['id']}"]
    assert bad["sets"]["mini"]["leaked"] == 0


def test_official_sft_layout_import(tmp_path, tok):
    """The release's layout (LCM-Lab/LongRM datas/SFT_Data_Sampled20): prompt in chat_template
    (system + user), judgement in golden, splits train/eval/test; more in test_official_import.py."""
    from datasets import Dataset, DatasetDict

    prompt = [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": "Judge this."}]
    good = {"chat_template": prompt, "golden": "[Analysis] ok [Score: 7]", "ctx_length": "8k", "language": "en",
            "hop": 1, "org_pos": "0", "perspective": "helpfulness"}
    long = dict(good, chat_template=[prompt[0], {"role": "user", "content": "word " * 3000}])
    missing = dict(good, golden=None)
    DatasetDict(train=Dataset.from_list([good, long, missing, good]),
                eval=Dataset.from_list([good])).save_to_disk(str(tmp_path / "sft"))
    ex, rep = official.load_official_sft(tmp_path / "sft", tokenizer=tok, max_length=512)
    assert rep["imported"] == 3 and rep["rows"] == 5
    assert rep["skipped"] == {"chat_template: longer than max_length 512 tokens": 1,
                              "golden: missing or not a non-empty string": 1}
    assert [e["id"] for e in ex] == ["train:0", "train:3", "eval:0"]
    assert ex[0]["completion"][0]["content"] == "[Analysis] ok [Score: 7]" and ex[0]["prompt"][-1]["role"] == "user"
    Dataset.from_list([{"text": "x"}]).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(InputError, match="chat_template"):
        official.load_official_sft(tmp_path / "other")


def test_model_teacher_keeps_only_verdicts_that_match_the_labels(tok, train):
    loaded = models.load("tiny", device="cpu")
    rule = teachers.RuleTeacher(tok, 64)
    teacher = teachers.ModelTeacher(loaded, max_new_tokens=8, fallback=rule)
    rec = train[0]
    _, ctx, _ = schema.context_parts(rec)
    chunks = evidence.split_chunks(ctx)
    crit, _ = evidence.item_critical(rec, chunks, rec["question"], evidence.item_golden(rec))
    f = teachers.Focus(rec["id"], rec["task"], rec["question"], evidence.item_golden(rec), [chunks[i] for i in crit],
                       schema.answers(rec), [0, 1], evidence.item_scores(rec))
    msgs = teacher.messages(f, "pairwise")
    assert "Reference answer" in msgs[-1]["content"] and chunks[crit[0]] in msgs[-1]["content"]
    assert len(msgs[-1]["content"]) < len(ctx) + 2000  # the teacher sees the short, focused context
    out = teacher.judge(f, "pairwise")  # a random-init model writes no valid verdict in 8 tokens
    assert teacher.rejected == 1 and out == rule.judge(f, "pairwise")
    assert teachers.ModelTeacher(loaded, max_new_tokens=8).judge(f, "pairwise") is None
