"""Official and extended scoring on hand-computed cases."""
import json
import math

import pytest

from longrm_utils.constants import RESULT_COLUMNS
from longrm_utils.contracts import item_score, top1_correct
from longrm_utils.judge import score
from longrm_utils.stats import bootstrap_ci


def line(task, id_, tasktype, subtype, bucket, pass_, order, ranking, **kw):
    p = {"task": task, "id": id_, "tasktype": tasktype, "subtype": subtype, "ctx_length_for_length": bucket,
         "source": "s", "pass": pass_, "order": order, "raw": "", "ranking": ranking,
         "parse_error": None if ranking is not None else "no_verdict", "strict_error": None,
         "score": item_score(ranking, order), "truncated": False, "prompt_tokens": 10, "error": None}
    p.update(kw)
    return p


def test_item_score():
    assert item_score([0, 1], [0, 1]) == 1.0
    assert item_score([0, 1], [1, 0]) == 0.0
    # BoN-3: slots show true ranks [2, 0, 1]; predicted [2, 1, 0] matches slot 0 only -> 1/3
    assert item_score([2, 1, 0], [2, 0, 1]) == pytest.approx(1 / 3)
    # BoN-4: two of four slots right
    assert item_score([0, 1, 3, 2], [0, 1, 2, 3]) == 0.5
    assert item_score(None, [0, 1]) == 0.0
    assert item_score([0], [0, 1]) == 0.0
    assert top1_correct([1, 0, 2], [2, 0, 1]) and not top1_correct([0, 1, 2], [2, 0, 1])


@pytest.fixture
def preds():
    P, B = "PairWise", "BestOfN"
    return [
        # pair 1 (LongQA, same, 4k): right in both passes
        line("LongQA", "1", P, "same", "4k", 0, [1, 0], [1, 0]),
        line("LongQA", "1", P, "same", "4k", 1, [0, 1], [0, 1]),
        # pair 2 (LongQA, cross, 8k): says A both times -> right once, position-biased
        line("LongQA", "2", P, "cross", "8k", 0, [0, 1], [0, 1]),
        line("LongQA", "2", P, "cross", "8k", 1, [1, 0], [0, 1]),
        # pair 3 (Summ, cross, 4k): parse failure in pass 0, wrong in pass 1
        line("Summ", "3", P, "cross", "4k", 0, [0, 1], None),
        line("Summ", "3", P, "cross", "4k", 1, [1, 0], [0, 1]),
        # BoN-3 (Cite, 8k): pass 0 gets 1/3 with the right top-1; pass 1 fully right
        line("Cite", "4", B, "3", "8k", 0, [2, 0, 1], [1, 0, 2]),
        line("Cite", "4", B, "3", "8k", 1, [1, 0, 2], [1, 0, 2]),
        # BoN-2 (Code, 4k): wrong in both
        line("Code", "5", B, "2", "4k", 0, [1, 0], [0, 1]),
        line("Code", "5", B, "2", "4k", 1, [0, 1], [1, 0]),
    ]


def test_official_row_by_hand(preds):
    row = score.official_row(preds)
    assert tuple(row) == RESULT_COLUMNS
    # pass 0 scores: pair1 1, pair2 1, pair3 0, bon3 1/3, bon2 0
    assert row["LongQA"] == pytest.approx(100.0)
    assert row["Summ"] == pytest.approx(0.0)
    assert math.isnan(row["Cite"]) and math.isnan(row["Safety"])  # Cite has only BoN items
    assert row["Same."] == pytest.approx(100.0)
    assert row["Diff."] == pytest.approx(50.0)
    assert row["PairWise Avg."] == pytest.approx(200 / 3)
    assert row["Rank2"] == pytest.approx(0.0)
    assert row["Rank3"] == pytest.approx(100 / 3)
    assert math.isnan(row["Rank4"])
    assert row["Rank Avg"] == pytest.approx(100 / 6)
    assert row["4k"] == pytest.approx(50.0) and row["8k"] == pytest.approx(100.0) and math.isnan(row["16k"])
    assert row["AVG."] == pytest.approx(100 * (1 + 1 + 0 + 1 / 3 + 0) / 5)


def test_extended_by_hand(preds):
    m = score.extended_metrics(preds, n_boot=200)
    o = m["overall"]
    assert o["n_items"] == 5 and o["n_lines"] == 10
    assert o["acc_official"] == pytest.approx((1 + 1 + 0 + 1 / 3 + 0) / 5)
    # both-order: pair1 1, pair2 .5, pair3 0, bon3 (1/3+1)/2, bon2 0
    assert o["acc_two_order"] == pytest.approx((1 + .5 + 0 + 2 / 3 + 0) / 5)
    # consistent: pair1 yes; pair2 no; pair3 no; bon3 top-1 right both passes; bon2 no
    assert o["acc_consistent"] == pytest.approx(2 / 5)
    pw = m["by_tasktype"]["PairWise"]
    # parsed pairwise lines: 5 (pass-0 of pair3 failed); slot-A picks: p1/pass1, p2 x2, p3/pass1 -> 4/5
    assert pw["first_slot_rate"] == pytest.approx(4 / 5)
    # bias: items parsed in both passes: pair1 (B then A: no), pair2 (A, A: yes) -> 1/2
    assert pw["bias_rate"] == pytest.approx(0.5) and pw["n_bias_pairs"] == 2
    assert o["parse_failures"] == 1 and o["parse_failure_rate"] == pytest.approx(0.1)
    assert m["by_tasktype"]["BestOfN"]["top1_bon"] == pytest.approx(0.5)
    assert list(m["by_bucket"]) == ["4k", "8k"]
    assert m["bon_by_bucket"]["8k"]["acc_official"] == pytest.approx(1 / 3)
    lo, hi = o["acc_official_ci95"]
    assert 0 <= lo <= o["acc_official"] <= hi <= 1


def test_bootstrap_resamples_items_and_is_seeded():
    v = [1.0] * 30 + [0.0] * 30
    a, b = bootstrap_ci(v), bootstrap_ci(v)
    assert a == b and a[0] < 0.5 < a[1] and a[1] - a[0] > 0.1
    assert bootstrap_ci([1.0] * 10) == [1.0, 1.0]
    assert bootstrap_ci([]) is None


def test_errors_counted_separately(preds):
    preds = preds + [line("Math", "9", "PairWise", "same", "16k", k, [0, 1], None, parse_error=None,
                          error="OutOfMemoryError: boom") for k in (0, 1)]
    m = score.extended_metrics(preds, n_boot=0)
    assert m["overall"]["error_items"] == 1 and m["overall"]["errors"] == 2
    assert [(e["id"], e["pass"]) for e in m["error_list"]] == [("9", 0), ("9", 1)]
    assert m["overall"]["parse_failures"] == 1  # errors are not parse failures
    assert score.official_row(preds)["Math"] == 0.0


def test_duplicates_and_missing_fields_are_errors(preds):
    with pytest.raises(ValueError, match="duplicate"):
        score.score_predictions(preds + [preds[0]])
    bad = dict(preds[0])
    del bad["order"]
    with pytest.raises(ValueError, match="field 'order': missing field"):
        score.score_predictions([bad])


def test_score_file_and_cli_roundtrip(preds, tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in preds))
    m = score.score_file(p, tmp_path / "out", n_boot=50)
    row = score.read_results_csv(tmp_path / "out" / "results.csv")
    assert list(row) == list(RESULT_COLUMNS)
    assert math.isnan(row["Rank4"]) and row["Same."] == 100.0
    header, values = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert values.split(",")[RESULT_COLUMNS.index("Rank4")] == ""
    assert m["results"]["Rank4"] is None and m["results"]["Same."] == 100.0
    assert score.cli(["--predictions", str(p), "--out", str(tmp_path / "cli"), "--n-boot", "0"]) == 0
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["results"] == m["results"]


# --- ranking quality and calibration -------------------------------------------------------------

from longrm_utils import stats  # noqa: E402


def brute_auc(s, y, items=None):
    """By hand: every (positive, negative) pair of lines, of different items when ``items`` is given."""
    g = items or list(range(len(s)))
    pairs = [((a > b) + 0.5 * (a == b)) for a, la, ga in zip(s, y, g) if la
             for b, lb, gb in zip(s, y, g) if not lb and ga != gb]
    return sum(pairs) / len(pairs)


def test_auc_and_ece_by_hand():
    assert stats.auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])[0] == 1.0
    assert stats.auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == 0.0
    assert stats.auc([0.5] * 4, [1, 0, 1, 0])[0] == 0.5
    s, y = [0.3, 0.7, 0.7, 0.1, 0.9, 0.4, 0.6], [1, 0, 1, 0, 1, 0, 1]
    assert stats.auc(s, y)[0] == pytest.approx(brute_auc(s, y))
    assert stats.auc([0.2, 0.4], [1, 1]) == (None, None)
    # one bin [0.7, 0.8) holding 10 lines, 7 of them positive: calibrated
    assert stats.ece([0.75] * 10, [1] * 7 + [0] * 3)[0] == pytest.approx(0.05)
    # two bins: 0.95 but right half the time (weight 0.5, gap 0.45); 0.05 and never right (gap 0.05)
    assert stats.ece([0.95] * 4 + [0.05] * 4, [1, 0, 1, 0, 0, 0, 0, 0])[0] == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    rows = stats.reliability([0.95] * 4 + [0.05] * 4, [1, 0, 1, 0, 0, 0, 0, 0])
    assert [(r["n"], r["frequency"]) for r in rows] == [(4, 0.0), (4, 0.5)]


def test_auc_interval_resamples_items_not_lines():
    # Every item contributes two identical lines: treating lines as independent would narrow the interval.
    s = [0.9, 0.35, 0.3, 0.6, 0.2, 0.7, 0.4, 0.65, 0.55, 0.45, 0.5, 0.1]
    y = [1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0]
    val, by_item = stats.auc(s + s, y + y, items=list(range(12)) * 2, n_boot=500)
    _, by_line = stats.auc(s + s, y + y, n_boot=500)
    assert val == pytest.approx(brute_auc(s, y))
    assert by_item[0] <= val <= by_item[1]
    assert (by_item[1] - by_item[0]) > (by_line[1] - by_line[0])
    # an item's two lines are never compared with each other: a judge that always backs slot A
    # gets exactly chance from the pairs across items, and an interval that holds it
    probs, labels, ids = [0.9, 0.9] * 30, [1, 0] * 30, [i for i in range(30) for _ in (0, 1)]
    v, ci = stats.auc(probs, labels, items=ids, n_boot=300)
    assert v == 0.5 and ci[0] <= 0.5 <= ci[1]


def test_metrics_carry_auc_ece_per_bucket_and_reward_auc_for_scalar_rms():
    P = "PairWise"
    preds = []
    # A scalar RM on 8 pairs over two buckets: rewards chosen 1.0 vs rejected 0.0, except items 6 and 7.
    for i in range(8):
        bucket = "4k" if i < 4 else "8k"
        good, bad = (1.0, 0.0) if i < 6 else (0.0, 0.5)
        for k, order in enumerate(([0, 1], [1, 0])):
            raw = [good if o == 0 else bad for o in order]
            pref = 1 / (1 + math.exp(raw[1] - raw[0]))
            preds.append(line("LongQA", str(i), P, "same", bucket, k, order, [0, 1] if raw[0] > raw[1] else [1, 0],
                              raw=raw, slot_scores=raw, pref_prob=pref))
    m = score.extended_metrics(preds, n_boot=200, kind="scalar")
    assert m["overall"]["auc"] == pytest.approx(brute_auc([p["pref_prob"] for p in preds],
                                                           [p["order"][0] == 0 for p in preds],
                                                           [p["id"] for p in preds]))
    assert m["pairwise_by_bucket"]["4k"]["auc"] == 1.0 and m["pairwise_by_bucket"]["8k"]["auc"] < 1.0
    assert m["overall"]["n_pref_lines"] == 16 and m["by_bucket"]["8k"]["ece_ci95"] is not None
    rewards = [(r, o == 0, p["id"]) for p in preds if p["pass"] == 0 for r, o in zip(p["raw"], p["order"])]
    assert m["overall"]["reward_auc"] == pytest.approx(brute_auc(*map(list, zip(*rewards))))
    assert "reward_auc" not in score.extended_metrics(preds, n_boot=0)["overall"]
    text_only = [dict(p, pref_prob=None) for p in preds]
    o = score.extended_metrics(text_only, n_boot=0)["overall"]
    assert o["auc"] is None and o["ece"] is None and o["n_pref_lines"] == 0
