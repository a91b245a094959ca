"""Unit tests of longrm_utils.analysis (and the ablation step) on hand-made predictions with a known answer
per failure type."""
from __future__ import annotations

import csv
import json
import math

import pytest

from longrm_utils.analysis.ablation import ablate_records, compare_verdicts
from longrm_utils.analysis.contradiction import (LABELLED_DIR, LABELLED_SPLITS, contradiction, contradiction_eval,
                                                 load_labelled)
from longrm_utils.analysis.formats import format_kind, format_table
from longrm_utils.analysis.gallery import shorten_around
from longrm_utils.analysis.inputs import bench_index
from longrm_utils.analysis.length import length_bias, length_curve
from longrm_utils.analysis.outcomes import OUTCOMES, outcome_table, outcomes
from longrm_utils.analysis.position import position_bias, position_matrix
from longrm_utils.contracts import item_score, read_predictions
from longrm_utils.judge import parse
from longrm_utils.steps.ablation import run_ablation


def pred(id_, pass_, order, raw, *, task="LongQA", bucket="4k", tasktype=None, error=None, ranking="parse"):
    """A prediction line as run_judge writes it; ``ranking`` is parsed from ``raw`` by the real parser."""
    n = len(order)
    tasktype = tasktype or ("PairWise" if n == 2 else "BestOfN")
    if ranking == "parse":
        if isinstance(raw, str):
            r = parse.parse_verdict(raw, n, pairwise=tasktype == "PairWise")
            ranking, perr = r.ranking, r.error
        elif isinstance(raw, list) and raw and isinstance(raw[0], (int, float)):
            ranking, perr = parse.rank_by_scores(raw), None
        else:
            ranking, perr = None, "no_verdict"
    else:
        perr = None if ranking is not None else "no_verdict"
    if error:
        ranking, perr = None, None
    return {"task": task, "id": id_, "tasktype": tasktype, "subtype": "same" if n == 2 else str(n),
            "ctx_length_for_length": bucket, "source": "test", "pass": pass_, "order": order, "raw": raw,
            "ranking": ranking, "parse_error": perr, "score": item_score(ranking, order), "truncated": False,
            "prompt_tokens": 10, "error": error}


def record(id_, chosen, rejected, context, task="LongQA", bucket="4k"):
    """A schema-valid PairWise record with an exact context span."""
    before, after = "Read the document.\n<context>", "</context>\nQuestion: what does the document say?"
    user = before + context + after
    return {"id": id_, "prompt_template": [{"role": "user", "content": user}], "question": "what does the document say?",
            "source": "test", "task": task, "subtask": "t", "tasktype": "PairWise", "subtype": "same",
            "ctx_length_for_length": bucket, "ctx_length_for_words": bucket, "length": len(user.split()),
            "words_count": len(user.split()), "chosen": chosen, "rejected": rejected, "chosen_model": "m1",
            "rejected_model": "m2", "meta": {"context_span": [len(before), len(before) + len(context)]}}


# --- format non-compliance -------------------------------------------------------------------------

@pytest.mark.parametrize("raw,kind", [
    ("Both answers look fine to me.", "no_verdict"),
    ("The answer is [A].", "wrong_pattern"),
    ("A: the first one is right", "wrong_pattern"),
    ("My verdict: [[C]]", "wrong_pattern"),
    ("[[A]] or maybe [[B]]", "several_verdicts"),
    ("[[A]] and again [[A]]", None),
    ("B is grounded in the document. [[B]]", None),
])
def test_format_kind_pairwise(raw, kind):
    assert format_kind(pred("x", 0, [0, 1], raw)) == kind


@pytest.mark.parametrize("raw,n,kind", [
    ("[[B>A>C]]", 3, None),
    ("[[A>B]]", 3, "missing_letter"),
    ("[[A>A>B]]", 3, "repeated_letter"),
    ("[[A>B>D]]", 3, "missing_letter"),       # D is no slot of a 3-way item, so C is missing
    ("A>B>C>D " * 4, 4, "too_many_arrows"),
    ("I rank A > C > B.", 3, "wrong_pattern"),
    ("No idea.", 3, "no_verdict"),
    ("[[C>B>A]] then [[A>B>C]]", 3, "several_verdicts"),
    ("[[Assistant B > Assistant A]]", 2, None),
])
def test_format_kind_ranking(raw, n, kind):
    assert format_kind(pred("x", 0, list(range(n)), raw, tasktype="BestOfN")) == kind


def test_format_kind_pointwise_and_scalar():
    p = pred("x", 0, [0, 1], ["[Analysis] ok [Score: 7]", "[Analysis] hm"], ranking=None)
    assert format_kind(p) == "no_score"
    p = pred("x", 0, [0, 1], ["[Score: 7]", "[Score: 3] ... [Score: 9]"], ranking=[0, 1])
    assert format_kind(p) == "several_scores"
    assert format_kind(pred("x", 0, [0, 1], [0.3, -1.2])) is None
    assert format_kind(pred("x", 0, [0, 1], None, error="OutOfMemoryError")) is None


def test_format_table_counts_and_parser_agreement():
    ps = [pred("a", 0, [0, 1], "[[A]]"), pred("a", 1, [1, 0], "nothing"),
          pred("b", 0, [0, 1], "[[A]] [[B]]"), pred("b", 1, [1, 0], "[B]"),
          pred("c", 0, [0, 1], [1.0, 2.0]), pred("c", 1, [1, 0], None, error="boom")]
    t = format_table(ps)
    assert t["n_lines"] == 4  # scores and run errors are not format lines
    assert t["counts"]["no_verdict"] == 1 and t["counts"]["wrong_pattern"] == 1
    assert t["counts"]["several_verdicts"] == 1 and t["several_but_accepted"] == 1
    assert t["official_failures"] == 2
    assert t["disagree_with_parser"] == 0
    assert t["noncompliance_rate"] == pytest.approx(3 / 4)


# --- position bias ---------------------------------------------------------------------------------

def position_fixture():
    return [
        pred("1", 0, [0, 1], "[[A]]"), pred("1", 1, [1, 0], "[[A]]"),    # same slot both times: biased
        pred("2", 0, [0, 1], "[[A]]"), pred("2", 1, [1, 0], "[[B]]"),    # follows the answer: consistent
        pred("3", 0, [1, 0], "[[B]]"), pred("3", 1, [0, 1], "[[B]]"),    # biased towards B
        pred("4", 0, [0, 1], "[[A]]"), pred("4", 1, [1, 0], "no idea"),  # parsed once: no bias pair
    ]


def test_position_bias_known_answer():
    pb = position_bias(position_fixture(), n_boot=200)
    # parsed lines: 7, of which slot A: item1 x2, item2 pass0, item4 pass0 = 4
    assert pb["n_parsed_lines"] == 7
    assert pb["first_slot_rate"] == pytest.approx(4 / 7)
    assert pb["n_pairs_parsed_both"] == 3
    assert pb["bias_rate"] == pytest.approx(2 / 3)
    lo, hi = pb["bias_ci95"]
    assert 0 <= lo <= 2 / 3 <= hi <= 1


def test_position_matrix():
    m = position_matrix(position_fixture(), 2)
    # rows: slot holding the best answer; columns: slot picked.
    # best in A (order[0]==0): item1 p0 -> A, item2 p0 -> A, item3 p1 -> B, item4 p0 -> A
    # best in B: item1 p1 -> A, item2 p1 -> B, item3 p0 -> B
    assert m == [[3, 1], [1, 2]]


# --- contradictions --------------------------------------------------------------------------------

SLOTS = ["It opened in 1921.", "It opened in 1958."]


@pytest.mark.parametrize("text,verdict,favours,contra", [
    ("The document says the museum opened in 1921. [[B]]", "B", "A", True),
    ("The document says the museum opened in 1921. [[A]]", "A", "A", False),
    ("Response A is not correct; the museum opened later. [[A]]", "A", "B", True),
    ("The answer is [B]. It opened in 1958.", "B", "B", False),
    ("The answer is [B]: It opened in 1958.", "B", None, False),                    # an echo is no evidence
    ("[A] It opened in 1921.\nThe document says 1958, so the answer is [A].", "A", "B", True),
    ("It opened in 1921 or 1958.", None, None, None),                               # no verdict at all
])
def test_contradiction_rule(text, verdict, favours, contra):
    c = contradiction(text, SLOTS)
    assert (c["verdict"], c["favours"], c["contradiction"]) == (verdict, favours, contra)


def test_contradiction_letter_cues_without_responses():
    assert contradiction("Answer B is better because it cites the text. [[A]]")["contradiction"] is True
    assert contradiction("Answer A is better. [[A]]")["contradiction"] is False


@pytest.mark.parametrize("split", list(LABELLED_SPLITS))
def test_labelled_sample_and_detector_eval(split):
    sample = load_labelled(split=split)
    with open(LABELLED_DIR / LABELLED_SPLITS[split][1], newline="") as f:
        labels = list(csv.DictReader(f))
    assert len(sample) == len(labels) >= 20
    ev = contradiction_eval(sample)
    assert ev["positives"] == sum(r["contradiction"] == "yes" for r in labels)
    assert ev["tp"] + ev["fn"] == ev["positives"] and ev["tp"] + ev["fp"] + ev["fn"] + ev["tn"] == ev["n"]
    if ev["precision"] is not None:
        assert ev["precision"] == pytest.approx(ev["tp"] / (ev["tp"] + ev["fp"]))


def test_labelled_loader_names_bad_label(tmp_path):
    (tmp_path / "raw_outputs.jsonl").write_text(json.dumps({"sid": "s1", "raw": "x", "answer_a": "a", "answer_b": "b"}) + "\n")
    (tmp_path / "labels.csv").write_text("sid,verdict,favours,contradiction,note\ns1,A,A,maybe,\n")
    with pytest.raises(ValueError, match=r"labels.csv: line 2, sid 's1': field 'contradiction'"):
        load_labelled(tmp_path)


# --- decline with length ---------------------------------------------------------------------------

def test_length_curve_slope_known():
    ps = []
    for i in range(4):  # 4k: all right; 8k: half right; 16k: all wrong
        ps += [pred(f"a{i}", 0, [0, 1], "[[A]]", bucket="4k"), pred(f"a{i}", 1, [1, 0], "[[B]]", bucket="4k")]
        ps += [pred(f"b{i}", 0, [0, 1], "[[A]]", bucket="8k"), pred(f"b{i}", 1, [1, 0], "[[A]]", bucket="8k")]
        ps += [pred(f"c{i}", 0, [0, 1], "[[B]]", bucket="16k"), pred(f"c{i}", 1, [1, 0], "[[A]]", bucket="16k")]
    lc = length_curve(ps, n_boot=200)
    assert [b for b in lc["by_bucket"]] == ["4k", "8k", "16k"]
    assert [v["acc"] for v in lc["by_bucket"].values()] == [1.0, 0.5, 0.0]
    assert lc["slope_per_doubling"] == pytest.approx(-50.0)
    assert lc["slope_ci95"][0] <= -50.0 <= lc["slope_ci95"][1]


def test_length_curve_one_bucket_has_no_slope():
    ps = [pred("a", 0, [0, 1], "[[A]]"), pred("a", 1, [1, 0], "[[B]]")]
    assert length_curve(ps, n_boot=0)["slope_per_doubling"] is None


# --- length bias -----------------------------------------------------------------------------------

def test_length_bias_prefers_longer():
    recs = [record(str(i), "Short right.", "A much longer and wordier answer that is wrong " * 3, "ctx " * 20)
            for i in range(3)]
    recs.append(record("3", "A much longer and wordier answer that is right " * 3, "Short wrong.", "ctx " * 20))
    bench = bench_index(recs)
    ps = []
    for i in range(4):  # the judge always picks the slot holding the longer answer
        for k, order in enumerate(([0, 1], [1, 0])):
            longer_true = 1 if i < 3 else 0
            slot = order.index(longer_true)
            ps.append(pred(str(i), k, order, f"[[{'AB'[slot]}]]"))
    lb = length_bias(ps, bench)
    assert lb["n_worse"] == 6 and lb["picked_when_worse"] == 1.0 and lb["chance"] == 0.5
    assert lb["n_better"] == 2 and lb["picked_when_better"] == 1.0
    ps.append(pred("missing", 0, [0, 1], "[[A]]"))
    assert length_bias(ps, bench)["missing_records"] == 1


# --- outcomes --------------------------------------------------------------------------------------

def test_outcomes_each_category():
    bench = bench_index([record("c", SLOTS[0], SLOTS[1], "The museum opened in 1921.")])
    ps = [
        pred("ok", 0, [0, 1], "[[A]]"), pred("ok", 1, [1, 0], "[[B]]"),          # correct, correct
        pred("pb", 0, [0, 1], "[[A]]"), pred("pb", 1, [1, 0], "[[A]]"),          # position-bound x2
        pred("fmt", 0, [0, 1], "dunno"), pred("fmt", 1, [1, 0], "[[A]]"),        # format, wrong
        pred("err", 0, [0, 1], None, error="OOM"),                                # run error
        pred("c", 0, [0, 1], "The museum opened in 1921. [[B]]"),                # contradiction
        pred("r", 0, [2, 0, 1], "[[B>A>C]]", tasktype="BestOfN"),                # partial (1 of 3 slots)
    ]
    assert outcomes(ps, bench) == ["correct", "correct", "position_bound", "position_bound", "format",
                                     "wrong", "run_error", "contradiction", "partial"]
    tab = outcome_table(ps, bench)
    assert tab["all"]["n"] == len(ps)
    assert math.isclose(sum(tab["all"][o] for o in OUTCOMES), 1.0)


# --- context ablation ------------------------------------------------------------------------------

def test_ablate_records_remove_and_distractor():
    recs = [record(str(i), f"yes {i}", f"no {i}", f"Document {i} says the value is {i * 111}. " * 5) for i in range(3)]
    gone = ablate_records(recs, "remove")
    from longrm_utils.bench.schema import context_parts
    assert all(context_parts(r)[1] == "" for r in gone)
    assert all(context_parts(g)[0] == context_parts(r)[0] and context_parts(g)[2] == context_parts(r)[2]
               for g, r in zip(gone, recs))
    dis = ablate_records(recs, "distractor", seed=0)
    for d, r in zip(dis, recs):
        new, old = context_parts(d)[1], context_parts(r)[1]
        assert len(new) == len(old) and new != old
        assert f"value is {int(r['id']) * 111}" not in new
        assert d["chosen"] == r["chosen"] and d["rejected"] == r["rejected"]
    with pytest.raises(ValueError, match="at least 2 records"):
        ablate_records(recs[:1], "distractor")


def test_compare_verdicts_is_order_invariant():
    orig = [pred("1", 0, [0, 1], "[[A]]"), pred("2", 0, [0, 1], "[[A]]"), pred("3", 0, [0, 1], "x")]
    abl = [pred("1", 0, [1, 0], "[[B]]"),   # same answer picked, other display order
           pred("2", 0, [0, 1], "[[B]]"),   # changed its mind
           pred("3", 0, [0, 1], "[[A]]")]   # was unparsed
    c = compare_verdicts(orig, abl)
    assert c["n_parsed_both"] == 2 and c["unchanged_rate"] == 0.5 and c["parse_status_changed"] == 1


def _context_bench():
    out = []
    for i in range(4):
        fact = f"The code word of vault {i} is {['amber', 'cobalt', 'saffron', 'violet'][i]}."
        ctx = ("Filler sentence about the weather and the harbour. " * 6) + fact
        out.append(record(str(i), f"{['Amber', 'Cobalt', 'Saffron', 'Violet'][i]}.", "Unknown, sorry.", ctx,
                          bucket="short"))
    return out


@pytest.mark.parametrize("judge,kind", [("overlap", "heuristic"), ("longer", "heuristic"),
                                        ("tiny-rm", "scalar"), ("tiny", "generative")])
def test_run_ablation_all_kinds(tmp_path, judge, kind):
    from longrm_utils.judge.run import run_judge

    recs = _context_bench()
    kw = {"max_new_tokens": 8} if kind == "generative" else {}
    run_judge(judge, kind=kind, bench=recs, out_dir=tmp_path / "orig", progress=False, n_boot=0, device="cpu", **kw)
    orig = read_predictions(tmp_path / "orig" / "predictions.jsonl")
    res = run_ablation(judge, kind=kind, records=recs, original=orig, out_dir=tmp_path / "abl", k=3,
                         device="cpu", **kw)
    assert len(res["items"]) == 3
    for mode in ("remove", "distractor"):
        assert res[mode]["n_lines"] == 6 and res[mode]["missing_in_original"] == 0
    if judge == "longer":      # ignores the context by construction
        assert res["remove"]["unchanged_rate"] == 1.0 and res["distractor"]["unchanged_rate"] == 1.0
    if judge == "overlap":     # reads the context: without it both answers tie and the item's coin decides
        assert res["remove"]["unchanged_rate"] < 1.0 and res["distractor"]["unchanged_rate"] < 1.0
        assert res["remove"]["acc_with_context"] == 1.0 and res["remove"]["acc_ablated"] < 1.0


# --- gallery, report, CLI --------------------------------------------------------------------------

def test_shorten_around_keeps_evidence_and_counts_cuts():
    text = "x" * 500 + "[[B]]" + "y" * 500
    s = shorten_around(text, ["[[B]]"], width=20)
    assert "x" * 20 + "[[B]]" + "y" * 20 in s
    assert "…[480 chars]…" in s and len(s) < 100


def test_cli_writes_report(tmp_path):
    d = tmp_path / "judges" / "toy"
    d.mkdir(parents=True)
    ps = position_fixture() + [pred("5", 0, [0, 1], "[[A]] [[B]]", bucket="8k"),
                               pred("5", 1, [1, 0], "no verdict here", bucket="8k")]
    (d / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in ps))
    from longrm_utils.__main__ import main

    assert main(["analyze", "--predictions", str(d / "predictions.jsonl"), "--out", str(tmp_path / "an"),
                 "--n-boot", "50"]) == 0
    rep = json.loads((tmp_path / "an" / "failure_report.json").read_text())
    j = rep["judges"]["toy"]
    assert j["n_lines"] == len(ps)
    assert j["format"]["counts"]["no_verdict"] == 2 and j["format"]["counts"]["several_verdicts"] == 1
    assert j["position"]["bias_rate"] == pytest.approx(2 / 3)  # item 5 is parsed once only
    assert set(j["length"]["by_bucket"]) == {"4k", "8k"}
    assert (tmp_path / "an" / "failure_report.md").read_text().startswith("# Failure report")
    for f in rep["figures"].values():
        assert (tmp_path / "an" / "figures").exists() and f.endswith(".png")


def test_read_predictions_names_missing_field(tmp_path):
    p = pred("1", 0, [0, 1], "[[A]]")
    del p["order"]
    f = tmp_path / "predictions.jsonl"
    f.write_text(json.dumps(p) + "\n")
    with pytest.raises(ValueError, match=r"line 1, record '1', field 'order': missing field"):
        read_predictions(f)
