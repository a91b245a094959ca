"""The tables notebook 03 shows, one DataFrame per measure, read from a failure report
(:func:`longrm_utils.analysis.report.analyze`) or from the judges it was computed on.

Rates are fractions unless a column says ``%``; intervals are 95% intervals. pandas is imported
inside each function.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..contracts import judge_args
from .ablation import ABLATION_MODES
from .contradiction import LABELLED_SPLITS
from .formats import FORMAT_KINDS
from .inputs import bucket_key

DETECTOR_COLUMNS = ("n", "positives", "tp", "fp", "fn", "precision", "precision_ci95", "recall", "recall_ci95")
"""The contradiction detector's figures on a labelled split, as :func:`detector` shows them."""

LENGTH_BIAS_COLUMNS = ("n_worse", "picked_when_worse", "picked_when_worse_ci95", "chance", "n_better",
                       "picked_when_better", "length_ties")
"""The length-bias figures :func:`length_bias` shows (``failure_report.json`` has more)."""


def _pct1(x: float) -> float:
    return round(100 * x, 1)


def judges_overview(folders: dict[str, Path], preds: dict[str, Sequence[dict]], bench: dict[str, Any]):
    """One row per saved judge: its kind (from ``run_config.json``), prediction lines, items, length
    buckets, and whether its benchmark records were found (``bench[judge]`` is not None)."""
    import pandas as pd

    return pd.DataFrame([{"judge": j, "kind": judge_args(f).get("kind"), "lines": len(preds[j]),
                          "items": len({(p["task"], p["id"]) for p in preds[j]}),
                          "buckets": " ".join(sorted({str(p["ctx_length_for_length"]) for p in preds[j]}, key=bucket_key)),
                          "bench joined": bench[j] is not None} for j, f in folders.items()]).set_index("judge")


def format_failures(report: dict):
    """Generative judges x format-failure kinds (line counts), the non-compliant share in percent, the
    official parser's failures and the lines where our classifier and the parser disagree. Columns
    that are 0 for every judge are dropped; empty when no judge is generative."""
    import pandas as pd

    rows = []
    for j, r in report["judges"].items():
        f = r["format"]
        if f["n_lines"]:
            rows.append({"judge": j, "lines": f["n_lines"], **{k: f["counts"][k] for k in FORMAT_KINDS},
                         "non-compliant %": _pct1(f["noncompliance_rate"]),
                         "official failures": f["official_failures"], "disagree w/ parser": f["disagree_with_parser"]})
    if not rows:
        return pd.DataFrame()
    fmt = pd.DataFrame(rows).set_index("judge")
    return fmt.loc[:, (fmt != 0).any(axis=0)]


def format_by_bucket(report: dict):
    """Generative judges x length buckets: the non-compliant share of lines in percent."""
    import pandas as pd

    return pd.DataFrame({j: {b: _pct1(v["noncompliance_rate"]) for b, v in r["format_by_bucket"].items() if v["n_lines"]}
                         for j, r in report["judges"].items() if r["format"]["n_lines"]}).T


def position(report: dict):
    """Per judge: first-slot rate, bias rate with its interval, and the pairs parsed in both orders."""
    import pandas as pd

    return pd.DataFrame({j: {"first-slot rate": r["position"]["first_slot_rate"], "bias rate": r["position"]["bias_rate"],
                             "bias 95% CI": r["position"]["bias_ci95"],
                             "pairs parsed both": r["position"]["n_pairs_parsed_both"]}
                         for j, r in report["judges"].items()}).T


def detector(report: dict):
    """The contradiction detector on each labelled split: counts, precision and recall with intervals."""
    import pandas as pd

    det = report["contradiction_detector"]
    return pd.DataFrame({s: {k: det[s][k] for k in DETECTOR_COLUMNS} for s in LABELLED_SPLITS}).T


def contradictions(report: dict):
    """Generative judges: lines with a verdict, contradictions among them, and their rate."""
    import pandas as pd

    return pd.DataFrame({j: {"lines with a verdict": r["contradiction"]["n_with_verdict"],
                             "contradictions": r["contradiction"]["count"], "rate": r["contradiction"]["rate"]}
                         for j, r in report["judges"].items() if r["contradiction"]["n_generative_lines"]}).T


def length_decline(report: dict):
    """Per judge: the slope in accuracy points per doubling with its interval, and the two-order
    accuracy (percent) of each length bucket."""
    import pandas as pd

    return pd.DataFrame({j: {"slope (pts/doubling)": r["length"]["slope_per_doubling"],
                             "slope 95% CI": r["length"]["slope_ci95"],
                             **{f"acc {b}": _pct1(v["acc"]) for b, v in r["length"]["by_bucket"].items()}}
                         for j, r in report["judges"].items()}).T


def length_bias(report: dict):
    """Judges with benchmark records: how often the longest response was put first when it was the
    worse one (with interval and chance level) and when it was the best."""
    import pandas as pd

    return pd.DataFrame({j: r["length_bias"] for j, r in report["judges"].items() if r["length_bias"]}).T[
        list(LENGTH_BIAS_COLUMNS)]


def ablation(results: dict[str, dict], modes: Sequence[str] = ABLATION_MODES):
    """(judge, mode) rows of :func:`longrm_utils.steps.ablation.run_ablation` results: the verdict
    comparison with and without the context, rounded to 3 decimals."""
    import pandas as pd

    return pd.DataFrame([{"judge": j, "mode": m, **{k: v for k, v in a[m].items() if k != "missing_in_original"}}
                         for j, a in results.items() for m in modes]).set_index(["judge", "mode"]).round(3)
