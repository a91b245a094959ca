"""The failure report: every measure for each judge, written as ``failure_report.json``, ``.md`` and figures.

:func:`analyze` is what notebook 03 and ``python -m longrm_utils analyze`` call. It reads nothing
but the prediction lines (and, where given, the benchmark records they were judged on); the
context-ablation results are judged beforehand by :func:`longrm_utils.steps.ablation.ablate_saved_judge`
and passed in.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Sequence

from ..cli import ArgumentParser, add_flag
from ..bench.schema import read_jsonl
from ..contracts import group_items
from ..io import InputError, write_json, write_text
from ..stats import BOOT_SEED, N_BOOT
from .contradiction import LABELLED_DIR, LABELLED_SPLITS, contradiction_eval, prediction_contradiction
from .formats import FORMAT_KINDS, format_table, style
from .gallery import gallery, gallery_markdown
from .inputs import bench_index, bench_of, bucket_key, judge_name, read_nonempty_predictions, task_key
from .length import length_bias, length_curve
from .outcomes import OUTCOMES, outcome_table
from .plots import plot_accuracy_vs_length, plot_failure_stacks, plot_position_matrix
from .position import position_bias, position_matrix


def _contradiction_summary(preds: Sequence[dict], bench: dict | None) -> dict[str, Any]:
    contra = [c for p in preds if (c := prediction_contradiction(p, bench)) is not None]
    with_verdict = [c for c in contra if c["verdict"] is not None]
    count = sum(bool(c["contradiction"]) for c in with_verdict)
    return {"n_generative_lines": len(contra), "n_with_verdict": len(with_verdict),
            "rate": count / len(with_verdict) if with_verdict else None, "count": count,
            "uses_responses": bench is not None}


def analyze_judge(preds: Sequence[dict], bench: dict | None = None, n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED) -> dict[str, Any]:
    """Every measure for one judge's predictions (no model, no new judging)."""
    preds = list(preds)

    def bucket(p: dict) -> str:
        return str(p.get("ctx_length_for_length"))

    by_task = {t: format_table([p for p in preds if p["task"] == t])
               for t in sorted({p["task"] for p in preds}, key=task_key)}
    by_bucket = {b: format_table([p for p in preds if bucket(p) == b])
                 for b in sorted({bucket(p) for p in preds}, key=bucket_key)}
    styles = Counter(style(p) for p in preds if not p.get("error"))
    return {
        "n_lines": len(preds), "n_items": len(group_items(preds)),
        "style": styles.most_common(1)[0][0] if styles else None,
        "run_errors": sum(1 for p in preds if p.get("error")),
        "truncated_lines": sum(1 for p in preds if p.get("truncated")),
        "format": format_table(preds), "format_by_task": by_task, "format_by_bucket": by_bucket,
        "position": position_bias(preds, n_boot, seed),
        "position_by_bucket": {b: position_bias([p for p in preds if bucket(p) == b], 0) for b in by_bucket},
        "position_matrix": {str(n): position_matrix(preds, n) for n in sorted({len(p["order"]) for p in preds})},
        "contradiction": _contradiction_summary(preds, bench),
        "length": length_curve(preds, n_boot, seed),
        "length_bias": length_bias(preds, bench) if bench else None,
        "outcomes_by_bucket": outcome_table(preds, bench, "ctx_length_for_length"),
        "outcomes_by_task": outcome_table(preds, bench, "task"),
        "gallery": gallery(preds, bench),
    }


def analyze(predictions: dict[str, Sequence[dict]], out_dir: str | Path, *,
            bench: Sequence[dict] | dict[str, Sequence[dict]] | None = None, ablation: dict[str, Any] | None = None,
            n_boot: int = N_BOOT, seed: int = BOOT_SEED, labelled: bool = True,
            figures: bool = True) -> dict[str, Any]:
    """Analyse several judges; write ``failure_report.json``, ``failure_report.md`` and figures to ``out_dir``.

    ``predictions`` maps judge id -> prediction lines. ``bench`` (records, or judge id -> records)
    enables length bias and the content part of the contradiction detector. ``ablation`` is
    ``{judge_id: steps.ablation.run_ablation(...)}``.
    """
    empty = [j for j, p in predictions.items() if not p]
    if empty:
        raise InputError(f"no prediction lines for judge(s) {empty}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(bench, dict):
        idx = {j: bench_index(bench[j]) if bench.get(j) else None for j in predictions}
    else:
        one = bench_index(bench) if bench else None
        idx = {j: one for j in predictions}
    report: dict[str, Any] = {"judges": {j: analyze_judge(p, idx[j], n_boot, seed) for j, p in predictions.items()},
                              "ablation": ablation or {}, "n_boot": n_boot,
                              "bench_joined": {j: idx[j] is not None for j in predictions}}
    if labelled:
        report["contradiction_detector"] = {
            split: {k: v for k, v in contradiction_eval(split=split).items() if k != "rows"}
            for split in LABELLED_SPLITS}
        report["contradiction_detector"]["sample"] = str(LABELLED_DIR.relative_to(LABELLED_DIR.parent.parent))
    if figures:
        fig_dir = out / "figures"
        report["figures"] = {
            "accuracy_vs_length": str(plot_accuracy_vs_length(report, fig_dir / "accuracy_vs_length.png")),
            "failures_by_bucket": str(plot_failure_stacks(report, fig_dir / "failures_by_bucket.png")),
            "position_matrix": str(plot_position_matrix(report, fig_dir / "position_matrix.png")),
        }
    write_json(out / "failure_report.json", report)
    write_text(out / "failure_report.md", report_markdown(report) + "\n")
    return report


# --- the summary table and the markdown report ------------------------------------------------------

def _pct(x: float | None, nd: int = 0) -> str:
    return "–" if x is None else f"{100 * x:.{nd}f}%"


def _percent(x: float | None) -> float | None:
    """A fraction as a percentage rounded to 1 decimal; None stays None."""
    return None if x is None else round(100 * x, 1)


def _ci_text(c: Sequence[float] | None) -> str:
    """A 95% interval (fractions) as `` [lo, hi]`` in percent; empty without one."""
    return "" if not c else f" [{100 * c[0]:.0f}, {100 * c[1]:.0f}]"


def summary_rows(report: dict) -> list[dict]:
    """One row per judge with the headline rates (fractions), for tables and headline metrics."""
    rows = []
    for j, r in report["judges"].items():
        lb = r.get("length_bias") or {}
        rows.append({
            "judge": j, "style": r["style"], "lines": r["n_lines"],
            "format_failure": r["format"]["noncompliance_rate"] if r["format"]["n_lines"] else None,
            "first_slot": r["position"]["first_slot_rate"], "bias": r["position"]["bias_rate"],
            "contradiction": r["contradiction"]["rate"],
            "slope_pts_per_doubling": r["length"]["slope_per_doubling"],
            "longer_when_worse": lb.get("picked_when_worse"),
            "neglect_unchanged": ((report.get("ablation") or {}).get(j) or {}).get("remove", {}).get("unchanged_rate"),
        })
    return rows


def headline(report: dict) -> dict[str, float | None]:
    """The headline numbers of a report for ``summary.md``, in percent (1 decimal): the detector's
    held-out precision and recall; per judge, the format-failure rate of generative judges, the bias
    rate of non-heuristic judges, and the verdicts unchanged without context where it was ablated."""
    det = report["contradiction_detector"]["heldout"]
    out = {"detector precision heldout": _percent(det["precision"]), "detector recall heldout": _percent(det["recall"])}
    for row in summary_rows(report):
        if row["style"] == "generative":
            out[f"{row['judge']} format fail %"] = _percent(row["format_failure"])
        if row["bias"] is not None and not row["judge"].startswith("heuristic"):
            out[f"{row['judge']} bias %"] = _percent(row["bias"])
        if row["neglect_unchanged"] is not None:
            out[f"{row['judge']} unchanged w/o context %"] = _percent(row["neglect_unchanged"])
    return out


def _summary_md(report: dict) -> list[str]:
    L = ["# Failure report", "",
         "How each judge fails, measured from its saved predictions (notebook 03, `longrm_utils.analysis`). "
         "Rates are fractions of judged lines unless stated; brackets are 95% intervals.", "",
         "## Summary", "",
         "| judge | style | lines | format failures | first-slot rate | bias rate | contradictions | "
         "slope (pts/doubling) | longer picked when worse | verdict unchanged without context |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary_rows(report):
        s = row["slope_pts_per_doubling"]
        L.append(f"| {row['judge']} | {row['style']} | {row['lines']} | {_pct(row['format_failure'])} | "
                 f"{_pct(row['first_slot'])} | {_pct(row['bias'])} | {_pct(row['contradiction'])} | "
                 f"{'–' if s is None else f'{s:+.1f}'} | {_pct(row['longer_when_worse'])} | "
                 f"{_pct(row['neglect_unchanged'])} |")
    return L


def _length_md(length: dict) -> list[str]:
    L = ["### Accuracy by length bucket (two-order)", "", "| bucket | items | accuracy |", "|---|---|---|"]
    for b, v in length["by_bucket"].items():
        L.append(f"| {b} | {v['n_items']} | {_pct(v['acc'], 1)}{_ci_text(v['ci95'])} |")
    s = length["slope_per_doubling"]
    ci = length["slope_ci95"]
    return L + ["", f"Slope: {'–' if s is None else f'{s:+.2f}'} accuracy points per doubling of the context"
                f"{'' if not ci else ' [' + ', '.join(f'{x:+.1f}' for x in ci) + ']'}"
                f" ({length['n_fit_items']} items).", ""]


def _format_md(f: dict) -> list[str]:
    if not f["n_lines"]:
        return ["### Format non-compliance", "", "Not applicable: this judge outputs scores, not text.", ""]
    L = ["### Format non-compliance", "", "| kind | lines | rate |", "|---|---|---|"]
    L += [f"| {k} | {f['counts'][k]} | {_pct(f['rates'][k], 1)} |" for k in FORMAT_KINDS if f["counts"][k]]
    return L + [f"| compliant | {f['compliant']} | {_pct(f['compliant'] / f['n_lines'], 1)} |", "",
                f"The official parser refused {f['official_failures']} of {f['n_lines']} lines; it accepted "
                f"{f['several_but_accepted']} with several verdicts; our classifier and the parser disagree on "
                f"{f['disagree_with_parser']}.", ""]


def _position_md(pb: dict) -> list[str]:
    return ["### Position bias", "",
            f"First-slot rate {_pct(pb['first_slot_rate'])}{_ci_text(pb['first_slot_ci95'])} over "
            f"{pb['n_parsed_lines']} parsed pairwise lines; bias rate {_pct(pb['bias_rate'])}"
            f"{_ci_text(pb['bias_ci95'])} over {pb['n_pairs_parsed_both']} pairs parsed in both orders.", ""]


def _contradiction_md(c: dict) -> list[str]:
    if not c["n_generative_lines"]:
        return []
    return ["### Contradictions", "",
            f"{c['count']} of {c['n_with_verdict']} lines with a verdict ({_pct(c['rate'], 1)}) name one answer "
            f"while the explanation favours another" +
            ("" if c["uses_responses"] else " (letter cues only: no benchmark records were joined)") + ".", ""]


def _length_bias_md(lb: dict | None) -> list[str]:
    if not lb:
        return []
    return ["### Length bias", "",
            f"The longest response was not the best in {lb['n_worse']} parsed lines; the judge put it first in "
            f"{_pct(lb['picked_when_worse'])}{_ci_text(lb['picked_when_worse_ci95'])} of them (chance "
            f"{_pct(lb['chance'])}). When the longest was the best ({lb['n_better']} lines) it was picked in "
            f"{_pct(lb['picked_when_better'])}. Skipped: {lb['length_ties']} length ties, {lb['unparsed']} "
            f"unparsed, {lb['missing_records']} without a benchmark record.", ""]


def _outcomes_md(r: dict) -> list[str]:
    L = ["### Outcomes by bucket", "", "| bucket | n | " + " | ".join(OUTCOMES) + " |",
         "|---|---|" + "---|" * len(OUTCOMES)]
    for b, v in r["outcomes_by_bucket"].items():
        L.append(f"| {b} | {v['n']} | " + " | ".join(_pct(v[o]) for o in OUTCOMES) + " |")
    if r["gallery"]:
        L += ["", "### Examples", "", gallery_markdown(r["gallery"])]
    return L


def _ablation_md(abl: dict) -> list[str]:
    if not abl:
        return []
    L = ["", "## Context neglect (ablation)", "",
         "| judge | mode | lines | parsed both | verdict unchanged | ranking unchanged | acc with context | acc ablated |",
         "|---|---|---|---|---|---|---|---|"]
    for j, a in abl.items():
        for mode in ("remove", "distractor"):
            if mode in a:
                m = a[mode]
                L.append(f"| {j} | {mode} | {m['n_lines']} | {m['n_parsed_both']} | {_pct(m['unchanged_rate'])}"
                         f"{_ci_text(m['unchanged_ci95'])} | {_pct(m['ranking_unchanged_rate'])} | "
                         f"{_pct(m['acc_with_context'])} | {_pct(m['acc_ablated'])} |")
    return L


def _detector_md(det: dict | None) -> list[str]:
    if not det:
        return []
    L = ["", "## The contradiction detector on the labelled sample", "",
         f"Hand-labelled outputs of SmolLM2-135M-Instruct ({det['sample']}). The `dev` labels were frozen before "
         "the rule was written, but the rule was written while reading them, so its `dev` figures are in-sample; "
         "the `heldout` batch was generated and labelled after the rule was frozen.", "",
         "| split | outputs | contradictions | precision | recall | tp / fp / fn |", "|---|---|---|---|---|---|"]
    for split in LABELLED_SPLITS:
        d = det[split]
        L.append(f"| {split} | {d['n']} | {d['positives']} | {_pct(d['precision'])}{_ci_text(d['precision_ci95'])} | "
                 f"{_pct(d['recall'])}{_ci_text(d['recall_ci95'])} | {d['tp']} / {d['fp']} / {d['fn']} |")
    return L


def report_markdown(report: dict) -> str:
    L = _summary_md(report)
    for j, r in report["judges"].items():
        L += ["", f"## {j}", ""]
        L += _length_md(r["length"]) + _format_md(r["format"]) + _position_md(r["position"])
        L += _contradiction_md(r["contradiction"]) + _length_bias_md(r.get("length_bias")) + _outcomes_md(r)
    L += _ablation_md(report.get("ablation") or {})
    L += _detector_md(report.get("contradiction_detector"))
    return "\n".join(L)


# --- CLI -------------------------------------------------------------------------------------------

def cli(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="longrm_utils analyze",
                                description="Failure analysis of one or more predictions.jsonl files (no model needed).")
    p.add_argument("--predictions", action="append", required=True,
                   help="a predictions.jsonl (repeatable); the judge id is its folder name, or give ID=PATH")
    p.add_argument("--out", required=True, help="output folder for failure_report.{json,md} and figures/")
    p.add_argument("--bench", action="append", default=[],
                   help="benchmark JSONL the predictions were judged on (repeatable); enables length bias and "
                        "content-based contradiction detection. Default: the bench in each run_config.json")
    p.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples (0: no intervals)")
    add_flag(p, "figures", default=True, help="draw the PNG figures")
    a = p.parse_args(argv)
    preds: dict[str, list[dict]] = OrderedDict()
    for spec in a.predictions:
        jid, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        jid = jid or judge_name(path)
        if jid in preds:
            raise SystemExit(f"analyze: two prediction files map to judge id {jid!r}; name them with ID=PATH")
        preds[jid] = read_nonempty_predictions(path)
    if a.bench:
        bench: Any = [r for b in a.bench for r in read_jsonl(b)]
    else:  # the benchmark each judge recorded in its run_config.json, where that is a file
        bench = {jid: bench_of(Path(spec.rpartition("=")[2]).parent) for jid, spec in zip(preds, a.predictions)}
        missing = [j for j, b in bench.items() if b is None]
        if missing:
            print(f"no benchmark records for {missing} (pass --bench): length bias and content-based "
                  "contradiction detection are skipped for them")
    rep = analyze(preds, a.out, bench=bench, n_boot=a.n_boot, figures=a.figures)
    print(f"wrote {Path(a.out) / 'failure_report.json'} and failure_report.md")
    for row in summary_rows(rep):
        print(", ".join(f"{k}={_pct(v) if isinstance(v, float) and k != 'slope_pts_per_doubling' else v}"
                        for k, v in row.items()))
    return 0
