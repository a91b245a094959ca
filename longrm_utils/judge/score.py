"""Scoring: predictions in, ``results.csv`` and ``metrics.json`` out. Pure functions; no model imports.

The prediction lines follow the contract in ``docs/contracts.md`` (one line per item and pass,
:mod:`longrm_utils.contracts`). Two outputs:

* :func:`official_row` -- one wide row in percent with ``constants.RESULT_COLUMNS``, from pass 0
  only, computed as the official scorer does: the per-item score is the share of display slots
  whose predicted rank equals the true rank (0 on a failure, :func:`contracts.item_score`);
  ``PairWise Avg.``, ``Rank Avg`` and ``AVG.`` are micro averages over items. Task columns and
  length columns count PairWise items (the paper's Table 1 groups them under pairwise comparison);
  ``RankK`` count BestOfN items with K candidates. A column with no items is NaN (an empty cell in
  ``results.csv``), never 0.
* :func:`extended_metrics` -- the metrics the official scorer does not report: two-order accuracy,
  consistent accuracy, first-slot and position-bias rates, parse failures (official and strict),
  truncations, errors, ties, top-1 BestOfN accuracy, and the ranking-quality metrics RL users need
  (AUC and ECE of the preference probability; reward AUC for scalar RMs), per task / bucket /
  format, with bootstrap 95% intervals that resample items (not lines).

Tables and figures across judges live in :mod:`longrm_utils.evaluate`.
"""
from __future__ import annotations

import csv
import math
from collections import OrderedDict
from io import StringIO
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..cli import ArgumentParser
from ..constants import BUCKET_ORDER, BUCKETS, RESULT_COLUMNS, SAME_SUBTYPE, TASKS
from ..contracts import (METRICS, PREDICTIONS, RESULTS, TIMINGS, group_items, is_pairwise,
                         read_predictions, run_config, top1_correct)
from ..io import read_jsonl, write_json, write_text
from ..stats import BOOT_SEED, N_BOOT, auc, bootstrap_ci, ece


# --- the official row ---------------------------------------------------------------------------

def _pct(xs: list[float]) -> float:
    return 100.0 * sum(xs) / len(xs) if xs else math.nan


def official_row(preds: Iterable[dict]) -> "OrderedDict[str, float]":
    p0 = [p for p in preds if int(p["pass"]) == 0]
    pw = [p for p in p0 if is_pairwise(p)]
    bon = [p for p in p0 if not is_pairwise(p)]
    row: OrderedDict[str, float] = OrderedDict()
    for t in TASKS:
        row[t] = _pct([p["score"] for p in pw if p["task"] == t])
    row["Same."] = _pct([p["score"] for p in pw if str(p.get("subtype")) == SAME_SUBTYPE])
    row["Diff."] = _pct([p["score"] for p in pw if str(p.get("subtype")) != SAME_SUBTYPE])
    row["PairWise Avg."] = _pct([p["score"] for p in pw])
    for k in ("2", "3", "4"):
        row[f"Rank{k}"] = _pct([p["score"] for p in bon if str(p.get("subtype")) == k])
    row["Rank Avg"] = _pct([p["score"] for p in bon])
    for b in BUCKETS:
        row[b] = _pct([p["score"] for p in pw if p.get("ctx_length_for_length") == b])
    row["AVG."] = _pct([p["score"] for p in p0])
    assert tuple(row) == RESULT_COLUMNS
    return row


def write_results_csv(row: dict, path: str | Path) -> Path:
    """``results.csv``: the header ``constants.RESULT_COLUMNS`` and one row, 2 decimals, NaN as empty."""
    buf = StringIO()
    w = csv.writer(buf)
    w.writerow(RESULT_COLUMNS)
    w.writerow(["" if (v is None or (isinstance(v, float) and math.isnan(v))) else f"{v:.2f}"
                for v in (row[c] for c in RESULT_COLUMNS)])
    return write_text(path, buf.getvalue())


def read_results_csv(path: str | Path) -> dict[str, float]:
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    return {c: (float(v) if v != "" else math.nan) for c, v in zip(r[0], r[1])}


# --- extended metrics -----------------------------------------------------------------------------

def _per_item(passes: dict[int, dict]) -> dict[str, Any]:
    """Per-item values the group metrics average (None where undefined)."""
    p0 = passes.get(0)
    both = [passes[k] for k in sorted(passes)]
    first = p0 or both[0]
    pw = is_pairwise(first)
    two = 0 in passes and 1 in passes
    out: dict[str, Any] = {
        "pairwise": pw,
        "official": float(p0["score"]) if p0 else None,
        "both": sum(float(p["score"]) for p in both) / len(both),
        "top1": (float(top1_correct(p0.get("ranking"), p0["order"])) if (p0 and not pw) else None),
        "consistent": None, "bias": None,
    }
    if two:
        a, b = passes[0], passes[1]
        if pw:
            out["consistent"] = float(a["score"] == 1 and b["score"] == 1)
            if a.get("ranking") is not None and b.get("ranking") is not None:
                out["bias"] = float(a["ranking"][0] == b["ranking"][0])
        else:
            out["consistent"] = float(top1_correct(a.get("ranking"), a["order"])
                                      and top1_correct(b.get("ranking"), b["order"]))
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def preference_lines(items: list[dict[int, dict]]) -> tuple[list[float], list[int], list[int]]:
    """(preference probability of slot A, label "slot A holds the chosen answer", item index) of every
    pairwise line, of every pass, that carries a ``pref_prob``."""
    probs, labels, idx = [], [], []
    for i, ps in enumerate(items):
        for p in ps.values():
            if is_pairwise(p) and p.get("pref_prob") is not None:
                probs.append(float(p["pref_prob"])), labels.append(int(p["order"][0] == 0)), idx.append(i)
    return probs, labels, idx


def reward_lines(items: list[dict[int, dict]]) -> tuple[list[float], list[int], list[int]]:
    """(reward, label "the best response", item index) of every response of a scalar RM, from the first
    pass of each item (a reward does not depend on the display slot)."""
    rewards, labels, idx = [], [], []
    for i, ps in enumerate(items):
        p = ps.get(0) or ps[min(ps)]
        if isinstance(p.get("raw"), list) and not p.get("error"):
            for r, o in zip(p["raw"], p["order"]):
                rewards.append(float(r)), labels.append(int(o == 0)), idx.append(i)
    return rewards, labels, idx


def ranking_metrics(items: list[dict[int, dict]], *, rewards: bool, n_boot: int = N_BOOT,
                    seed: int = BOOT_SEED) -> dict[str, Any]:
    """AUC and ECE of the preference probability and, for scalar RMs (``rewards``), the reward AUC
    across items, each with a 95% interval that resamples items (docs/contracts.md)."""
    probs, labels, idx = preference_lines(items)
    out: dict[str, Any] = {"n_pref_lines": len(probs)}
    out["auc"], out["auc_ci95"] = auc(probs, labels, items=idx, n_boot=n_boot, seed=seed)
    out["ece"], out["ece_ci95"] = ece(probs, labels, items=idx, n_boot=n_boot, seed=seed)
    if rewards:
        r, y, ri = reward_lines(items)
        out["reward_auc"], out["reward_auc_ci95"] = auc(r, y, items=ri, n_boot=n_boot, seed=seed)
    return out


def group_metrics(items: list[dict[int, dict]], *, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                  rewards: bool = False) -> dict[str, Any]:
    """Metrics of one group of items (fractions in 0..1; counts are integers). ``rewards``: the lines
    come from a scalar RM, whose rewards are ranked across items as well (``reward_auc``)."""
    per = [_per_item(ps) for ps in items]
    lines = [p for ps in items for p in ps.values()]
    pw_lines = [p for p in lines if is_pairwise(p) and p.get("ranking") is not None]

    def col(key: str) -> list[float]:
        return [x[key] for x in per if x[key] is not None]

    out: dict[str, Any] = {"n_items": len(items), "n_lines": len(lines)}
    for key, name in (("official", "acc_official"), ("both", "acc_two_order"),
                      ("consistent", "acc_consistent"), ("top1", "top1_bon")):
        vals = col(key)
        out[name] = _mean(vals)
        out[name + "_ci95"] = bootstrap_ci(vals, n_boot, seed) if n_boot else None
    out["first_slot_rate"] = _mean([float(p["ranking"][0] == 0) for p in pw_lines])
    out["bias_rate"] = _mean(col("bias"))
    out["n_bias_pairs"] = len(col("bias"))
    out["parse_failure_rate"] = _mean([float(p.get("parse_error") is not None and not p.get("error"))
                                       for p in lines])
    out["strict_failure_rate"] = _mean([float(p.get("strict_error") is not None and not p.get("error"))
                                        for p in lines])
    out["parse_failures"] = sum(1 for p in lines if p.get("parse_error") is not None and not p.get("error"))
    out["truncated_lines"] = sum(1 for p in lines if p.get("truncated"))
    out["truncated_items"] = sum(1 for ps in items if any(p.get("truncated") for p in ps.values()))
    out["errors"] = sum(1 for p in lines if p.get("error"))
    out["error_items"] = sum(1 for ps in items if any(p.get("error") for p in ps.values()))
    out["ties"] = sum(1 for p in lines if p.get("tie"))
    out.update(ranking_metrics(items, rewards=rewards, n_boot=n_boot, seed=seed))
    return out


def extended_metrics(preds: Sequence[dict], *, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                     kind: str | None = None) -> dict[str, Any]:
    """Every metric per task, bucket and format; ``kind`` (from ``run_config.json``) = ``"scalar"`` adds
    the reward AUC."""
    items = group_items(preds)
    rewards = kind == "scalar"
    vals = list(items.values())

    def first(ps: dict[int, dict]) -> dict:
        return ps.get(0) or ps[min(ps)]

    def by(keyf, subset=None) -> dict[str, Any]:
        groups: dict[str, list] = {}
        for ps in (subset if subset is not None else vals):
            groups.setdefault(str(keyf(first(ps))), []).append(ps)
        return {k: group_metrics(v, n_boot=n_boot, seed=seed, rewards=rewards) for k, v in groups.items()}

    bucket_order = {b: i for i, b in enumerate(BUCKET_ORDER)}
    task_order = {t: i for i, t in enumerate(TASKS)}
    bon = [ps for ps in vals if not is_pairwise(first(ps))]
    pw = [ps for ps in vals if is_pairwise(first(ps))]

    def ordered(d: dict, order: dict) -> dict:
        return dict(sorted(d.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    return {
        "n_items": len(vals),
        "n_lines": sum(len(ps) for ps in vals),
        "passes": sorted({k for ps in vals for k in ps}),
        "overall": group_metrics(vals, n_boot=n_boot, seed=seed, rewards=rewards),
        "by_tasktype": {"PairWise": group_metrics(pw, n_boot=n_boot, seed=seed, rewards=rewards),
                        "BestOfN": group_metrics(bon, n_boot=n_boot, seed=seed, rewards=rewards)},
        "by_task": ordered(by(lambda p: p["task"]), task_order),
        "by_bucket": ordered(by(lambda p: p.get("ctx_length_for_length")), bucket_order),
        "pairwise_by_bucket": ordered(by(lambda p: p.get("ctx_length_for_length"), pw), bucket_order),
        "bon_by_bucket": ordered(by(lambda p: p.get("ctx_length_for_length"), bon), bucket_order),
        "bon_by_size": by(lambda p: f"Rank{p.get('subtype')}", bon),
        "error_list": [{"task": p["task"], "id": p["id"], "pass": p["pass"], "error": p["error"]}
                       for ps in vals for p in ps.values() if p.get("error")],
    }


def score_predictions(preds: Sequence[dict], **kw: Any) -> tuple[dict, dict]:
    """(official row, extended metrics); the metrics carry the official row under ``results``."""
    preds = list(preds)
    group_items(preds)  # validates fields and duplicates
    row = official_row(preds)
    metrics = extended_metrics(preds, **kw)
    metrics["results"] = {k: (None if math.isnan(v) else round(v, 4)) for k, v in row.items()}
    return row, metrics


# --- files ----------------------------------------------------------------------------------------

def timing_summary(path: str | Path) -> dict[str, Any] | None:
    """Line count and wall time of a ``timings.jsonl``; None when it is absent or empty."""
    p = Path(path)
    if not p.exists():
        return None
    rows = read_jsonl(p)
    if not rows:
        return None
    tot = [r.get("total_s", 0.0) for r in rows]
    return {"lines": len(rows), "total_s": round(sum(tot), 3), "mean_s_per_line": round(sum(tot) / len(tot), 4)}


def score_file(predictions_path: str | Path, out_dir: str | Path | None = None, *,
               extra: dict | None = None, **kw: Any) -> dict:
    """Recompute ``results.csv`` and ``metrics.json`` in ``out_dir`` from a predictions file alone.

    ``run_config.json`` and ``timings.jsonl`` beside the predictions, when present, are summarised
    into the metrics under ``run`` and ``timing``; they never change the scores.
    """
    predictions_path = Path(predictions_path)
    folder = predictions_path.parent
    out_dir = Path(out_dir) if out_dir is not None else folder
    cfg = run_config(folder)
    kw.setdefault("kind", cfg.get("args", {}).get("kind"))
    row, metrics = score_predictions(read_predictions(predictions_path), **kw)
    if cfg:
        metrics["run"] = cfg
    t = timing_summary(folder / TIMINGS)
    if t:
        metrics["timing"] = t
    if extra:
        metrics.update(extra)
    write_results_csv(row, out_dir / RESULTS)
    write_json(out_dir / METRICS, metrics)
    return metrics


def cli(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="longrm_utils score",
                                description=f"Recompute {RESULTS} and {METRICS} from {PREDICTIONS} alone.")
    p.add_argument("--predictions", required=True, help=f"path to a {PREDICTIONS} written by `judge`")
    p.add_argument("--out", default=None, help="output folder (default: the predictions' folder)")
    p.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples for the 95%% intervals (0: none)")
    a = p.parse_args(argv)
    m = score_file(a.predictions, a.out, n_boot=a.n_boot)
    out = Path(a.out or Path(a.predictions).parent)
    print(f"wrote {out / RESULTS} and {out / METRICS}")
    print(format_row(m["results"]))
    return 0


def format_row(results: dict) -> str:
    """A compact one-table rendering of an official row (for logs)."""
    head = " ".join(f"{c:>8s}" for c in results)
    vals = " ".join(f"{'-' if v is None else f'{v:.1f}':>8s}" for v in results.values())
    return head + "\n" + vals
