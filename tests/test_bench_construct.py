"""bench.build, candidates, cues, card, policy: labels, margins, tiers, balance, the cue guard and the
one tie rule, dedupe, splits, layouts, the data card, the CLI."""
import json
import re

import pytest
import yaml

from longrm_utils import models, runtime
from longrm_utils.bench import build as B
from longrm_utils.bench import candidates as K
from longrm_utils.bench import card, cues
from longrm_utils.bench import generators as G
from longrm_utils.bench import metrics as M
from longrm_utils.bench import policy as P
from longrm_utils.bench import schema
from longrm_utils.bench import text as T
from longrm_utils.constants import (DATA_DIR, PAPER_BON_ITEMS_PER_SIZE, PAPER_PAIRWISE_ITEMS, PAPER_TASK_COUNTS,
                                    PAPER_TOTAL_ITEMS, TASKS)


@pytest.fixture(scope="module")
def count():
    return T.counter_for("tiny")


@pytest.fixture(scope="module")
def small(count):
    cells = B.cell_layout(TASKS, ["4k"], 1, rotate_bon=False)
    return B.build(cells, count, seed=1, namespace="t"), cells


def test_every_cell_is_built_and_balanced(small):
    rep, cells = small
    assert len(rep.records) == rep.requested == 7 * 5
    assert B.check_balance(rep.records, cells) == []
    assert {K.fmt_of(r) for r in rep.records} == set(K.FORMATS)


def test_labels_margins_and_tiers(small):
    rep, _ = small
    for r in rep.records:
        m = r["meta"]
        # stored scores are recomputed from the texts with the task metric
        for text, model, ratio, raw in zip(schema.answers(r), schema.answer_models(r), m["scores"], m["raw_scores"]):
            assert M.score(r["task"], text, m["reference"]) == pytest.approx(raw, abs=1e-4)
            assert 0 <= ratio <= 1
        if r["tasktype"] == "PairWise":
            assert M.pair_margin(*m["scores"]) >= 0.4
            same = r["chosen_model"] == r["rejected_model"]
            assert same == (r["subtype"] == "same")
        else:
            tiers = [M.tier(x) for x in r["candidates_score"]]
            assert None not in tiers and len(set(tiers)) == len(tiers) and tiers == sorted(tiers)
            assert tiers[0] == 0


def test_deterministic_and_seed_sensitive(count):
    cells = [("Math", "4k", "same", 1), ("ICL", "4k", "bon3", 1)]
    a = B.build(cells, count, seed=5).records
    b = B.build(cells, count, seed=5).records
    c = B.build(cells, count, seed=6).records
    assert a == b and a != c


def test_bucket_lengths_counted_with_the_named_tokenizer(small, count):
    rep, _ = small
    for r in rep.records:
        assert r["meta"]["tokenizer"] == "tiny"
        assert r["meta"]["context_tokens"] == B.target_tokens("4k") == count(schema.context_parts(r)[1].strip("\n"))
        assert r["length"] == count(schema.user_prompt(r))


def test_cue_guard_keeps_heuristics_near_chance(small, count):
    rep, _ = small
    base = cues.cue_baselines(rep.records)
    assert cues.cue_violations({k: {"PairWise": v["PairWise"]} for k, v in base.items()}) == [], base
    # per task, on a set large enough to judge (CUE_MIN_PAIRS pairs per task), built with the guard
    cells = [(t, "4k", f, cues.CUE_MIN_PAIRS // 2) for t in ("LongQA", "Summ", "Cite") for f in ("same", "cross")]
    pairs = B.build(cells, count, seed=1, namespace="guard").records
    tb = cues.cue_baselines(pairs)
    assert cues.cue_violations(tb, n=cues.cue_counts(pairs), mirror=True) == [], tb
    assert all(35 <= v <= 65 for row in tb.values() for v in row.values()), tb
    # the check itself fires on a leaky set: make every chosen answer the longer one
    leaky = [dict(r, chosen=r["chosen"] + " Indeed, this is thoroughly checked.") for r in rep.records
             if r["tasktype"] == "PairWise"]
    assert cues.cue_baselines(leaky)["longer"]["PairWise"] == 100.0
    assert cues.cue_violations(cues.cue_baselines(leaky))


@pytest.mark.parametrize("name", ["mini", "short", "short_train"])
def test_shipped_sets_pass_the_cue_check(name):
    recs = schema.read_jsonl(DATA_DIR / "mini" / f"{name}.jsonl")
    assert cues.cue_violations(cues.cue_baselines(recs), n=cues.cue_counts(recs)) == []


def test_expected_item_score_chance_and_ties():
    assert cues.expected_item_score([3, 2, 1]) == 1.0
    assert cues.expected_item_score([1, 2, 3]) == pytest.approx(1 / 3)
    assert cues.expected_item_score([1, 1, 1, 1]) == pytest.approx(0.25)
    assert cues.expected_item_score([1, 1]) == 0.5


@pytest.mark.parametrize("scores", [[1, 1], [1, 1, 1, 1], [3, 1, 1], [1, 1, 3], [2, 2, 1, 1], [1, 2, 2, 3], [0.5, 0.9]])
def test_expected_item_score_is_the_mean_over_the_tie_coin(scores):
    n = 4000
    mean = sum(cues.ranks_score(cues.rank_with_ties(scores, f"coin-{i}")) for i in range(n)) / n
    assert mean == pytest.approx(cues.expected_item_score(scores), abs=0.03)


def _tied_pair(i):
    """A pair whose answers have the same length and the same overlap with the context: both heuristics tie."""
    return {"id": f"tie-{i:03d}", "task": "LongQA", "tasktype": "PairWise", "chosen": "river north",
            "rejected": "river south", "prompt_template": [{"role": "user", "content": "river north south"}],
            "question": "q"}


def test_a_tie_does_not_always_go_to_the_first_answer():
    recs = [_tied_pair(i) for i in range(60)]
    for kind in cues.CUE_KINDS:
        assert len(set(cues.heuristic_scores(recs[0], kind))) == 1  # a tie indeed
        won = [cues.heuristic_ranking(r, kind).index(0) for r in recs]  # which answer the heuristic puts first
        assert set(won) == {0, 1}, kind
        assert 0.3 <= sum(w == 0 for w in won) / len(won) <= 0.7, won
        # the coin is seeded by the item: the same item always breaks its tie the same way
        assert won == [cues.heuristic_ranking(r, kind).index(0) for r in recs]
    # BestOfN: a four-way tie puts each answer first on some item, and scores chance on average
    bon = [{"id": f"bon-{i}", "task": "Math", "tasktype": "BestOfN", "candidates": ["a1", "b2", "c3", "d4"]}
           for i in range(80)]
    assert {cues.heuristic_ranking(r, "longer").index(0) for r in bon} == {0, 1, 2, 3}
    assert sum(cues.heuristic_item_score(r, "longer") for r in bon) / len(bon) == pytest.approx(0.25, abs=0.1)


def test_card_guard_and_judged_heuristic_agree(small, tmp_path):
    rep, _ = small
    recs = rep.records
    judged = {k: [cues.heuristic_item_score(r, k) for r in recs] for k in cues.CUE_KINDS}
    # the build-time guard scored each answer set as the judged heuristic scores the finished record
    for i, r in enumerate(recs):
        guard = cues.cue_item_scores(schema.answers(r), schema.context_parts(r)[1], r["task"], r["id"])
        for k in cues.CUE_KINDS:
            assert guard[k][0] == judged[k][i], (r["id"], k)
            assert guard[k][1] == cues.expected_item_score(cues.heuristic_scores(r, k))
    # the data card's table is the mean of the judged per-item scores, per column
    data = card.write_card(tmp_path / "README.md", {"t": recs}, {"t": rep.summary()}, {}, {})
    table = data["sets"]["t"]["cue_baselines"]
    assert json.loads((tmp_path / "card.json").read_text())["sets"]["t"]["cue_baselines"] == table
    for k in cues.CUE_KINDS:
        for col in ["ALL", "PairWise", "BestOfN", *TASKS]:
            rows = [s for r, s in zip(recs, judged[k]) if col in ("ALL", r["tasktype"])
                    or (col == r["task"] and r["tasktype"] == "PairWise")]
            assert table[k][col] == round(100 * sum(rows) / len(rows), 1), (k, col)


def test_dedupe_and_exclusion(count):
    cells = [("Code", "4k", "cross", 1)]
    first = B.build(cells, count, seed=2)
    again = B.build(cells, count, seed=2, exclude_keys={B.content_key(r) for r in first.records})
    # the same item is regenerated, recognised as a duplicate, and replaced by a retry with another index
    assert again.duplicates >= 1 and again.records and again.records[0]["id"] != first.records[0]["id"]


def test_skips_are_counted_not_silent(count):
    rep = B.build([("Summ", "4k", "same", 1)], count, seed=0, margin=1.01, retries=2)
    assert rep.records == [] and len(rep.skips) == 3
    assert rep.summary()["skipped"] == 3


def test_shipped_short_sets_are_disjoint_and_sized():
    short = schema.read_jsonl(DATA_DIR / "mini" / "short.jsonl")
    train = schema.read_jsonl(DATA_DIR / "mini" / "short_train.jsonl")
    mini = schema.read_jsonl(DATA_DIR / "mini" / "mini.jsonl")
    assert sum(r["tasktype"] == "PairWise" for r in short) >= 60  # the lessons' minimum (evaluate/lessons.py)
    for split in (short, train):  # every format and subtype, in every task: Best-of-N trains the ranking format
        assert {(r["task"], r["subtype"]) for r in split} == {(t, s) for t in TASKS for s in ("same", "cross")} | {
            (r["task"], r["subtype"]) for r in split if r["tasktype"] == "BestOfN"}
        assert {r["subtype"] for r in split if r["tasktype"] == "BestOfN"} == {"2", "3", "4"}
    assert all(r["ctx_length_for_length"] == "short" and 256 <= r["meta"]["context_tokens"] <= 512 for r in short)
    assert len(train) >= 150 and sum(r["tasktype"] == "BestOfN" for r in train) >= 2 * len(TASKS)
    assert B.disjoint_report(short, train) == 0
    assert {r["task"] for r in mini} == set(TASKS)
    assert {K.fmt_of(r) for r in mini} == set(K.FORMATS)
    assert {r["ctx_length_for_length"] for r in mini} >= {"4k", "8k"}


def test_paper_layout_reproduces_the_paper_counts():
    cells = B.paper_layout_cells()
    assert sum(n for *_, n in cells) == PAPER_TOTAL_ITEMS
    for t, n in PAPER_TASK_COUNTS.items():
        assert sum(k for tt, _, _, k in cells if tt == t) == n
    assert sum(k for _, _, f, k in cells if f in ("same", "cross")) == PAPER_PAIRWISE_ITEMS
    for f in ("bon2", "bon3", "bon4"):
        assert sum(k for _, _, ff, k in cells if ff == f) == PAPER_BON_ITEMS_PER_SIZE
    per_bucket = {}
    for _, b, _, k in cells:
        per_bucket[b] = per_bucket.get(b, 0) + k
    assert max(per_bucket.values()) - min(per_bucket.values()) <= 1  # spread evenly over the six buckets


def test_cli_builds_a_mini_set_and_card(tmp_path):
    rc = B.cli(["--out", str(tmp_path), "--buckets", "4k", "--no-short"])
    assert rc == 0
    recs = schema.read_jsonl(tmp_path / "mini.jsonl")
    assert len(recs) == 7 * 3
    card_json = json.loads((tmp_path / "card.json").read_text())
    assert card_json["sets"]["mini"]["items"] == 21
    assert (tmp_path / "figures" / "token_lengths.png").stat().st_size > 1000
    assert "Surface-cue baselines" in (tmp_path / "README.md").read_text()
    # the card is a Hub dataset card: YAML first, one config per set file, loadable with load_dataset
    head = yaml.safe_load((tmp_path / "README.md").read_text().split("---\n")[1])
    assert head["license"] == "apache-2.0" and "reward-modeling" in head["tags"]
    assert head["configs"] == [{"config_name": "mini", "data_files": [{"split": "test", "path": "mini.jsonl"}]}]
    from datasets import load_dataset

    ds = load_dataset(str(tmp_path), "mini", split="test")
    assert len(ds) == 21 and ds[0]["id"] == recs[0]["id"] and ds[0]["chosen"] == recs[0]["chosen"]
    assert card.read_card(tmp_path).startswith("# Data card")


def test_push_to_hub_uploads_the_folder_up_to_the_upload_call(tmp_path, monkeypatch):
    """No network here: the Hub client is replaced at its two calls, and what it was asked is checked."""
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw["repo_id"], kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    rc = B.cli(["--out", str(tmp_path), "--buckets", "4k", "--no-short", "--push-to-hub", "me/bench"])
    assert rc == 0
    assert calls[0] == ("create", "me/bench", {"repo_type": "dataset", "private": True, "exist_ok": True})
    up = calls[1][2]
    assert up["folder_path"] == str(tmp_path) and up["repo_type"] == "dataset" and "checkpoints/*" in up["ignore_patterns"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        runtime.push_to_hub(tmp_path, "me/bench", repo_type="dataset")


class _FakeSpec:
    name = "fake-policy"
    chat_template_kwargs = {}


class _FakeLoaded:
    """A stand-in policy: answers correctly when the evidence is in the prompt, else with a wrong value."""

    def __init__(self, trip, tokenizer):
        self.trip, self.tokenizer, self.spec, self.meta = trip, tokenizer, _FakeSpec(), {}


def test_policy_item_pairs_answers_by_metric(count, monkeypatch):
    trip = G.generate("LongQA", 3000, count, seed=0, index=3, subtask="single-doc")
    s, e = trip.evidence_spans[0]
    evidence = trip.context[s:e]

    def fake_generate(loaded, ids, max_new_tokens, cache=None):
        prompt = loaded.tokenizer.decode(ids)
        vals = trip.slots if evidence in prompt else [a[0] for a in trip.alts]
        return trip.render(vals, "concise"), []

    monkeypatch.setattr(models, "generate", fake_generate)
    pol = _FakeLoaded(trip, count.tokenizer)
    cands = P.policy_candidates(pol, trip, seed=0)
    assert {c.perturbation for c in cands} >= {"full", "drop-clue-docs"}
    full = next(c for c in cands if c.perturbation == "full")
    dropped = next(c for c in cands if c.perturbation == "drop-clue-docs")
    assert full.ratio == 1.0 and dropped.ratio == 0.0
    rec = P.policy_item(pol, trip, "same", count, rec_id="p-0", bucket="4k")
    assert rec["chosen_model"] == rec["rejected_model"] == "fake-policy" and rec["subtype"] == "same"
    assert rec["meta"]["scores"][0] - rec["meta"]["scores"][1] >= 0.4


def test_policy_refuses_the_random_init_model(count):
    tiny = models.load("tiny", device="cpu")
    trip = G.generate("Math", 2000, count, seed=0)
    with pytest.raises(ValueError, match="random-init"):
        P.policy_candidates(tiny, trip)


def test_hub_set_counts_contexts_too_short_for_a_bucket(count):
    pol = _FakeLoaded(None, count.tokenizer)
    rep = P.build_hub_set({"longbench": str(DATA_DIR / "samples" / "longbench.jsonl")}, pol, count,
                          buckets=["4k", "8k"], limit=10)
    assert rep.records == []
    assert rep.requested == 4
    assert sum("fewer than the bucket" in s for s in rep.skips) == 3 * 2  # 3 records × 2 buckets
    assert sum("field 'context' missing" in s for s in rep.skips) == 1


def test_founders_probe_wrong_names_are_spliced_from_the_context():
    """The grounding probe's wrong answers use only words of the context, so no word-overlap or
    length cue separates them; only the pairing of first name and surname is wrong."""
    rep = B.build_grounding(T.counter_for("smollm2-135m-instruct"), pairs=16, bon=4, namespace="probe")
    recs = rep.records
    assert len(recs) == rep.requested == 20 and not rep.skips
    assert {r["subtask"] for r in recs} == {G.FOUNDERS_SUBTASK}
    assert {K.fmt_of(r) for r in recs} == {"same", "cross", "bon2", "bon3"}
    for r in recs:
        ctx = schema.context_parts(r)[1]
        gold = r["meta"]["golden_slots"]
        assert f"founded by {gold[0]} {gold[1]}." in ctx
        founders = re.findall(r"founded by (\w+ \w+)\.", ctx)
        assert len(founders) == 5 and " ".join(gold) in founders
        for text, wrong in zip(schema.answers(r)[1:], r["meta"]["wrong_slots"][1:]):
            assert wrong and cues.words(text) <= cues.words(ctx + " " + r["question"] + " according to documents")
            assert not any(name in text for name in founders)  # spliced: never a founder's full name
    assert cues.cue_violations(cues.cue_baselines(recs), n=cues.cue_counts(recs)) == []


def test_grounding_probe_benchmark_builds_what_its_rows_claim():
    """benchmarks/grounding_probe.py: the held-out pairs are disjoint from the training records, a
    splice item's two rejects each change one word of the chosen answer, and every committed row
    names the command that produced it."""
    import importlib.util
    import shlex

    from longrm_utils.constants import REPO_ROOT

    spec = importlib.util.spec_from_file_location("grounding_probe", REPO_ROOT / "benchmarks" / "grounding_probe.py")
    gp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gp)
    train, held = gp.probe_sets(24, (224, 288))
    assert len(held) == 64 and {r["tasktype"] for r in held} == {"PairWise"}
    assert {r["tasktype"] for r in train} == {"PairWise", "BestOfN"}
    assert B.disjoint_report(train, held) == 0
    items, counts = gp.stage2_data.splice_preferences(4, T.counter_for("smollm2-135m-instruct"), token_range=(224, 288))
    assert counts == {"splices": 4}
    for it in items:
        assert len(it.rejects) == 2
        for rej in it.rejects:
            diff = [(a, b) for a, b in zip(it.chosen.split(), rej.split()) if a != b]
            assert len(it.chosen.split()) == len(rej.split()) and len(diff) == 1
    rows = json.loads((REPO_ROOT / "benchmarks" / "results" / "grounding_probe.json").read_text())["rows"]
    assert rows and {"records", "splices"} == {r["rejects"] for r in rows}
    for r in rows:
        assert r["command"].startswith("HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding_probe.py")
        args = shlex.split(r["command"])[3:]
        assert ("--rejects" in args and args[args.index("--rejects") + 1] == r["rejects"]) or r["rejects"] == "records"
        assert 0 <= r["before"] <= 1 and 0 <= r["after"] <= 1 and r["held_out_pairs"] == 64


def test_lengthened_probe_keeps_the_item_and_adds_only_distractor_founders():
    """Lesson length_decline's ladder: the same id, question, answers and five founder documents at
    the 4k bucket; every added fact names another institution and people who share no name with the
    five, so the answer is still decided by the same sentence."""
    count = T.counter_for("smollm2-135m-instruct")
    rec = B.build_grounding(count, pairs=2, bon=0, namespace="ladder").records[0]
    long = B.lengthen(rec, "4k", count)
    schema.validate_record(long)
    assert long["id"] == rec["id"] and long["question"] == rec["question"]
    assert schema.answers(long) == schema.answers(rec)
    assert long["ctx_length_for_length"] == "4k" and long["meta"]["lengthened_from"] == rec["meta"]["context_tokens"]
    ctx, old = schema.context_parts(long)[1], schema.context_parts(rec)[1]
    assert count(ctx) == long["meta"]["context_tokens"] == B.target_tokens("4k")
    spans = lambda r, c: [c[a:b] for a, b in sorted(r["meta"]["evidence_spans"] + r["meta"]["confuser_spans"])]  # noqa: E731
    assert spans(long, ctx) == spans(rec, old)  # the five founder documents, in their order
    five = re.findall(r"The (\w+) \w+(?: \w+)? was founded by (\w+) (\w+)\.", " ".join(spans(rec, old)))
    names = {w for f in five for w in f}
    added = re.findall(r"The (\w+) \w+(?: \w+)? was founded by (\w+) (\w+)\.", ctx)
    assert len(five) == 5 and len(added) > 40
    assert all(not set(f) & names for f in added if f not in five)
    gold = long["meta"]["golden_slots"]
    ev = [ctx[a:b] for a, b in long["meta"]["evidence_spans"]]
    assert len(ev) == 1 and f"founded by {gold[0]} {gold[1]}." in ev[0]
    with pytest.raises(ValueError, match="not a grounding-probe"):
        B.lengthen({**rec, "subtask": "single-doc"}, "4k", count)


def test_long_splice_items_are_the_short_ones_with_a_longer_context():
    from longrm_utils.train import stage2_data

    count = T.counter_for("smollm2-135m-instruct")
    short, _ = stage2_data.splice_preferences(2, count, first=5)
    long, counts = stage2_data.splice_preferences(2, count, first=5, bucket="4k")
    assert counts == {"splices": 2} and [i.id for i in long] == [i.id + "-4k" for i in short]
    for s, l in zip(short, long):
        assert (l.chosen, l.rejects) == (s.chosen, s.rejects)
        assert count(l.prompt[-1]["content"]) > B.target_tokens("4k") > 4 * count(s.prompt[-1]["content"])
