"""Scoring: predictions in, tables out. Pure functions over plain dicts; no model imports.

The prediction lines follow design.md section 7 (one line per item and pass). Two outputs:

* :func:`official_row` -- one wide row in percent with ``constants.RESULT_COLUMNS``, from pass 0
  only, computed as the official scorer does: the per-item score is the share of display slots
  whose predicted rank equals the true rank (0 on a failure); ``PairWise Avg.``, ``Rank Avg`` and
  ``AVG.`` are micro averages over items. Task columns and length columns count PairWise items
  (the paper's Table 1 groups them under pairwise comparison); ``RankK`` count BestOfN items with
  K candidates. A column with no items is NaN (an empty cell in ``results.csv``), never 0.
* :func:`extended_metrics` -- the metrics the official scorer does not report: two-order accuracy,
  consistent accuracy, first-slot and position-bias rates, parse failures (official and strict),
  truncations, errors, ties, top-1 BestOfN accuracy, per task / bucket / format, with bootstrap
  95% intervals that resample items (not lines).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..constants import BUCKETS, RESULT_COLUMNS, SAME_SUBTYPE, TASKS

N_BOOT = 1000
BOOT_SEED = 0


# --- per item -------------------------------------------------------------------------------------

def item_score(ranking: Sequence[int] | None, order: Sequence[int]) -> float:
    """Share of display slots with ``ranking[j] == order[j]``; 0 for a missing or malformed ranking."""
    if ranking is None or len(ranking) != len(order) or not order:
        return 0.0
    return sum(int(r == o) for r, o in zip(ranking, order)) / len(order)


def top1_correct(ranking: Sequence[int] | None, order: Sequence[int]) -> bool:
    """The slot ranked first holds the true best answer (``order[j] == 0``)."""
    if ranking is None or len(ranking) != len(order):
        return False
    return any(r == 0 and o == 0 for r, o in zip(ranking, order))


def is_pairwise(p: dict) -> bool:
    return p.get("tasktype") == "PairWise"


def item_key(p: dict) -> tuple[str, str]:
    return (str(p["task"]), str(p["id"]))


def group_items(preds: Iterable[dict]) -> "OrderedDict[tuple[str, str], dict[int, dict]]":
    """(task, id) -> {pass: line}, in first-seen order. A duplicate (task, id, pass) is an error."""
    items: OrderedDict[tuple[str, str], dict[int, dict]] = OrderedDict()
    for i, p in enumerate(preds):
        for f in ("task", "id", "tasktype", "pass", "order", "score"):
            if f not in p:
                raise ValueError(f"prediction line {i + 1}: missing field {f!r}")
        d = items.setdefault(item_key(p), {})
        if int(p["pass"]) in d:
            raise ValueError(f"prediction line {i + 1}: duplicate (task, id, pass) = {item_key(p) + (p['pass'],)}")
        d[int(p["pass"])] = p
    return items


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RESULT_COLUMNS)
        w.writerow(["" if (v is None or (isinstance(v, float) and math.isnan(v))) else f"{v:.2f}"
                    for v in (row[c] for c in RESULT_COLUMNS)])
    return path


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


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                 alpha: float = 0.05) -> list[float] | None:
    """Percentile interval of the mean, resampling the given per-item values with replacement."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 6), round(float(hi), 6)]


def group_metrics(items: list[dict[int, dict]], *, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """Metrics of one group of items (fractions in 0..1; counts are integers)."""
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
    return out


def extended_metrics(preds: Sequence[dict], *, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    items = group_items(preds)
    vals = list(items.values())

    def first(ps: dict[int, dict]) -> dict:
        return ps.get(0) or ps[min(ps)]

    def by(keyf, subset=None) -> dict[str, Any]:
        groups: dict[str, list] = {}
        for ps in (subset if subset is not None else vals):
            groups.setdefault(str(keyf(first(ps))), []).append(ps)
        return {k: group_metrics(v, n_boot=n_boot, seed=seed) for k, v in groups.items()}

    bucket_order = {b: i for i, b in enumerate(("short",) + BUCKETS)}
    task_order = {t: i for i, t in enumerate(TASKS)}
    bon = [ps for ps in vals if not is_pairwise(first(ps))]
    pw = [ps for ps in vals if is_pairwise(first(ps))]

    def ordered(d: dict, order: dict) -> dict:
        return dict(sorted(d.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    return {
        "n_items": len(vals),
        "n_lines": sum(len(ps) for ps in vals),
        "passes": sorted({k for ps in vals for k in ps}),
        "overall": group_metrics(vals, n_boot=n_boot, seed=seed),
        "by_tasktype": {"PairWise": group_metrics(pw, n_boot=n_boot, seed=seed),
                        "BestOfN": group_metrics(bon, n_boot=n_boot, seed=seed)},
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

def read_predictions(path: str | Path) -> list[dict]:
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {i} is not valid JSON ({e})") from None
    return out


def timing_summary(path: str | Path) -> dict[str, Any] | None:
    p = Path(path)
    if not p.exists():
        return None
    rows = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
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
    out_dir = Path(out_dir) if out_dir is not None else predictions_path.parent
    preds = read_predictions(predictions_path)
    row, metrics = score_predictions(preds, **kw)
    cfg = predictions_path.parent / "run_config.json"
    if cfg.exists():
        metrics["run"] = json.loads(cfg.read_text())
    t = timing_summary(predictions_path.parent / "timings.jsonl")
    if t:
        metrics["timing"] = t
    if extra:
        metrics.update(extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results_csv(row, out_dir / "results.csv")
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(out_dir / "metrics.json")
    return metrics


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="longrm_utils score",
                                description="Recompute results.csv and metrics.json from predictions.jsonl alone.")
    p.add_argument("--predictions", required=True, help="path to a predictions.jsonl written by `judge`")
    p.add_argument("--out", default=None, help="output folder (default: the predictions' folder)")
    p.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples for the 95%% intervals (0: none)")
    a = p.parse_args(argv)
    m = score_file(a.predictions, a.out, n_boot=a.n_boot)
    out = Path(a.out or Path(a.predictions).parent)
    print(f"wrote {out / 'results.csv'} and {out / 'metrics.json'}")
    print(format_row(m["results"]))
    return 0


def format_row(results: dict) -> str:
    """A compact one-table rendering of an official row (for logs)."""
    head = " ".join(f"{c:>8s}" for c in results)
    vals = " ".join(f"{'-' if v is None else f'{v:.1f}':>8s}" for v in results.values())
    return head + "\n" + vals


# --- tables for notebooks and reports ---------------------------------------------------------------

EXTENDED_COLUMNS = ("two-order", "consistent", "bias", "parse-fail", "truncated", "errors")


def results_table(metrics_by_judge: dict[str, dict]):
    """A Table 1-style DataFrame: one row per judge, the official columns (percent) and the
    extended ones (two-order and consistent accuracy in percent, bias and parse-failure rates in
    percent, truncated and error item counts)."""
    import pandas as pd

    rows = {}
    for jid, m in metrics_by_judge.items():
        o = m["overall"]
        pct = lambda v: None if v is None else 100.0 * v  # noqa: E731
        rows[jid] = {**{c: m["results"][c] for c in RESULT_COLUMNS},
                     "two-order": pct(o["acc_two_order"]), "consistent": pct(o["acc_consistent"]),
                     "bias": pct(o["bias_rate"]), "parse-fail": pct(o["parse_failure_rate"]),
                     "truncated": o["truncated_items"], "errors": o["error_items"]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(RESULT_COLUMNS) + list(EXTENDED_COLUMNS)) \
        .astype(float)


def bucket_table(metrics_by_judge: dict[str, dict], key: str = "by_bucket", metric: str = "acc_official"):
    """Judges x length buckets (percent) of ``metric`` from ``metrics[key]`` (by_bucket,
    pairwise_by_bucket or bon_by_bucket), with the bootstrap interval half-widths beside it."""
    import pandas as pd

    acc, err = {}, {}
    for jid, m in metrics_by_judge.items():
        acc[jid] = {b: (None if g[metric] is None else 100 * g[metric]) for b, g in m[key].items()}
        err[jid] = {b: (None if not g.get(metric + "_ci95") else 50 * (g[metric + "_ci95"][1] - g[metric + "_ci95"][0]))
                    for b, g in m[key].items()}
    return pd.DataFrame.from_dict(acc, orient="index").astype(float), pd.DataFrame.from_dict(err, orient="index").astype(float)


def reference_table(name: str = "headline"):
    """The paper's numbers kept in ``data/reference`` (``constants.REFERENCE_TABLES``), as a DataFrame."""
    import pandas as pd

    from ..constants import REFERENCE_TABLES

    if name not in REFERENCE_TABLES:
        raise KeyError(f"unknown reference table {name!r}; have {sorted(REFERENCE_TABLES)}")
    return pd.read_csv(REFERENCE_TABLES[name], comment="#")


# --- evaluation across judges ---------------------------------------------------------------------
# Notebook 07 compares every judge a run saved: a leaderboard per benchmark, per-task and per-bucket
# tables with bootstrap intervals, base -> Stage I SFT -> aligned lineages beside the paper's Table 1,
# and the short-context check. Everything below reads saved files (metrics.json, predictions.jsonl,
# longrm.json); nothing judges anew.

BENCH_LABELS = {"long": "long benchmark (generated)", "official": "Long-RewardBench (official)",
                "short": "short set (generated)", "rewardbench": "RewardBench (short)",
                "long+official": "long benchmark (generated + official items)", "mixed": "mixed short + long items"}
"""What :func:`judge_bench` returns -> how tables name it."""

STAGE_TITLES = {"base": "Base", "sft": "After SFT", "aligned": "After alignment"}
STAGE_NOTEBOOK = {"heuristic": "02_baseline_judging", "base": "02_baseline_judging",
                  "sft": "04_stage1_long_sft", ("aligned", "generative"): "05_stage2_align_generative_rm",
                  ("aligned", "scalar"): "06_stage2_align_scalar_rm", "trained": "04-06"}
PAPER_MODEL_OF = {
    "qwen3-8b": ("Qwen3-8B", "base"), "longreward-qwen3-8b": ("Qwen3-8B", "aligned"),
    "con-j-qwen2-7b": ("Con-J-Qwen2-7B", "base"), "longreward-con-j-qwen2-7b": ("Con-J-Qwen2-7B", "aligned"),
    "llama-3.1-8b-instruct": ("Llama-3.1-8B-Instruct", "base"),
    "skywork-reward-v2-llama-3.1-8b": ("Skywork-Reward-V2-Llama-3.1-8B", "base"),
    "longreward-skywork-reward-v2-llama-3.1-8b": ("Skywork-Reward-V2-Llama-3.1-8B", "aligned"),
}
"""Registry preset -> (row of data/reference/paper_headline_avg.csv, stage). The LongReward_* presets are
the released checkpoints after the paper's alignment."""
EVAL_SUFFIXES = ("-eval", "-rewardbench")
"""Judge-id suffixes of the judges notebook 07 runs itself (``evaluate_models``, the short check)."""


def judge_bench(preds: Sequence[dict], config: dict | None = None) -> str:
    """Which benchmark a judge ran on (a key of :data:`BENCH_LABELS`), from its prediction lines.

    RewardBench items carry ``source = reward-bench/...``; the generated sets ``longrm-gen/...``;
    a line whose bucket is ``short`` is a short item. Other sources (or a run_config ``bench``
    naming LongRewardBench) are the official release.
    """
    from ..bench.schema import REWARDBENCH_SOURCE
    from ..constants import SHORT_BUCKET

    if not preds:
        raise ValueError("judge_bench: no prediction lines")
    sources = {str(p.get("source") or "") for p in preds}
    if all(s.startswith(REWARDBENCH_SOURCE + "/") for s in sources):
        return "rewardbench"
    buckets = {p.get("ctx_length_for_length") for p in preds}
    if buckets == {SHORT_BUCKET}:
        return "short"
    if SHORT_BUCKET in buckets:
        return "mixed"
    generated = [s.startswith("longrm-gen") for s in sources]
    if all(generated) and "longrewardbench" not in str((config or {}).get("bench") or "").lower():
        return "long"
    return "official" if not any(generated) or all(generated) else "long+official"


def load_judge(folder: str | Path, judge_id: str | None = None) -> dict[str, Any]:
    """One saved judge: ``{id, folder, metrics, preds, config, bench}`` (config = run_config args)."""
    folder = Path(folder)
    for f in ("metrics.json", "predictions.jsonl"):
        if not (folder / f).is_file():
            raise FileNotFoundError(f"judge folder {folder}: no {f} (run_judge writes it; rerun the judge or "
                                    f"`python -m longrm_utils score --predictions {folder / 'predictions.jsonl'}`)")
    metrics = json.loads((folder / "metrics.json").read_text())
    preds = read_predictions(folder / "predictions.jsonl")
    if not preds:
        raise ValueError(f"{folder / 'predictions.jsonl'}: no prediction lines")
    config = (metrics.get("run") or {}).get("args") or {}
    return {"id": judge_id or folder.name, "folder": folder, "metrics": metrics, "preds": preds,
            "config": config, "bench": judge_bench(preds, config)}


def unlisted_judges(index: dict[str, Path], judges_dir: str | Path | None = None) -> tuple[dict, dict]:
    """What an artifact index holds under ``judges/`` besides judge folders, and what it misses.

    Returns ``(skipped, unregistered)``: ``skipped`` maps each ``judges/...`` entry that is not a
    folder with ``predictions.jsonl`` (a CSV table, a missing path) to the reason; ``unregistered``
    maps folder names under ``judges_dir`` holding predictions but absent from the index to the folder.
    """
    skipped, listed = {}, set()
    for name, path in index.items():
        if not name.startswith("judges/"):
            continue
        p = Path(path)
        if not p.exists():
            skipped[name] = f"path {p} does not exist"
        elif not p.is_dir():
            skipped[name] = f"not a judge folder ({p.suffix or 'file'})"
        elif not (p / "predictions.jsonl").is_file():
            skipped[name] = "folder without predictions.jsonl"
        else:
            listed.add(p.resolve())
    unregistered = {}
    if judges_dir is not None and Path(judges_dir).is_dir():
        for d in sorted(Path(judges_dir).iterdir()):
            if not d.is_dir() or not (d / "predictions.jsonl").is_file() or d.resolve() in listed:
                continue
            if (d / "metrics.json").is_file():
                unregistered[d.name] = d
            else:
                skipped[f"{Path(judges_dir).name}/{d.name} (not registered)"] = \
                    "predictions.jsonl without metrics.json: an unfinished judging run"
    return skipped, unregistered


def model_stage(meta: dict) -> str:
    """``sft``, ``aligned`` or ``trained`` from a model folder's ``longrm.json`` (``stage``/``method``)."""
    st, method = str(meta.get("stage") or "").lower(), str(meta.get("method") or "").lower()
    if st.startswith("stage2") or method.startswith("stage2") or st == "aligned":
        return "aligned"
    if st.startswith("stage1") or "sft" in st or st == "sft":
        return "sft"
    return "trained"


def _same_path(a: Any, b: Path) -> bool:
    try:
        return bool(a) and Path(str(a)).exists() and Path(str(a)).resolve() == Path(b).resolve()
    except OSError:
        return False


def judge_roles(judges: dict[str, dict], model_meta: dict[str, tuple[Path, dict]]) -> dict[str, dict]:
    """For each judge: ``{kind, stage, model, base, notebook}``.

    ``model_meta`` maps model id -> (folder, longrm.json dict). A judge belongs to a saved model when
    its id or its run_config ``judge`` is the model id, or ``judge`` is that folder. Other judges are
    heuristics or presets: stage ``base``, except the released LongReward checkpoints
    (:data:`PAPER_MODEL_OF`), stage ``aligned``.
    """
    roles = {}
    for jid, j in judges.items():
        cfg = j["config"]
        kind, judge = cfg.get("kind") or "?", str(cfg.get("judge") or "")
        model = next((mid for mid, (folder, _) in model_meta.items()
                      if jid == mid or judge == mid or _same_path(judge, folder)), None)
        if model is not None:
            meta = model_meta[model][1]
            stage, base = model_stage(meta), meta.get("base")
            kind = meta.get("kind") or kind
        elif kind == "heuristic":
            stage, base = "heuristic", None
        else:
            stage, base = PAPER_MODEL_OF.get(judge, (None, "base"))[1], judge
        released = model is None and stage == "aligned"
        nb = "07_evaluate_longrms" if released else \
            (STAGE_NOTEBOOK.get((stage, kind)) or STAGE_NOTEBOOK.get(stage, "?"))
        owner = next((mid for mid in model_meta if model is None and jid.startswith(mid + "-")), None)
        if owner is not None:  # e.g. notebook 04's '<model>-base': the base judged on that model's items
            st, kd = model_stage(model_meta[owner][1]), model_meta[owner][1].get("kind") or kind
            nb = STAGE_NOTEBOOK.get((st, kd)) or STAGE_NOTEBOOK.get(st, nb)
        if jid.endswith(EVAL_SUFFIXES):
            nb = "07_evaluate_longrms"
        roles[jid] = {"kind": kind, "stage": stage, "model": model or judge, "base": base, "notebook": nb,
                      "released": released}
    return roles


def item_keys(preds: Iterable[dict]) -> set[tuple[str, str]]:
    return {item_key(p) for p in preds}


def restrict(preds: Iterable[dict], keys: set[tuple[str, str]]) -> list[dict]:
    """The prediction lines of the items in ``keys`` (by task and id)."""
    return [p for p in preds if item_key(p) in keys]


def common_metrics(preds: Sequence[dict], keys: set[tuple[str, str]], *, n_boot: int = N_BOOT,
                   seed: int = BOOT_SEED) -> dict | None:
    """Metrics of a judge re-scored on the shared items ``keys`` only (None when it misses some)."""
    sub = restrict(preds, keys)
    if not keys or item_keys(sub) != set(keys):
        return None
    return score_predictions(sub, n_boot=n_boot, seed=seed)[1]


def _pct100(v: float | None) -> float:
    return math.nan if v is None else 100.0 * v


def leaderboard(judges: dict[str, dict], roles: dict[str, dict], *, n_boot: int = N_BOOT,
                seed: int = BOOT_SEED):
    """One row per judge, grouped by benchmark, best ``AVG.`` first within a benchmark.

    ``AVG.`` is the official micro average on the judge's own items (pass 0) with its bootstrap 95%
    interval. Judges of one benchmark may have judged different subsets (the generative judges a
    spread of the items, say), so ``AVG. (common)`` re-scores every judge of the benchmark on the
    items all of them judged (``n common``; NaN when they share none). One judge of few items makes
    that set small, so the ranking stays on ``AVG.``; paired comparisons belong in :func:`lineage_table`.
    """
    import pandas as pd

    rows = []
    by_bench: dict[str, list[str]] = {}
    for jid, j in judges.items():
        by_bench.setdefault(j["bench"], []).append(jid)
    for bench, ids in by_bench.items():
        common = set.intersection(*(item_keys(judges[j]["preds"]) for j in ids))
        for jid in ids:
            m, r = judges[jid]["metrics"], roles[jid]
            o = m["overall"]
            ci = o.get("acc_official_ci95") or [None, None]
            cm = common_metrics(judges[jid]["preds"], common, n_boot=0) if common else None
            rows.append({
                "benchmark": BENCH_LABELS.get(bench, bench), "judge": jid, "kind": r["kind"], "stage": r["stage"],
                "model": r["model"], "notebook": r["notebook"], "n items": o["n_items"],
                "AVG.": (m.get("results") or {}).get("AVG."), "AVG. lo": _pct100(ci[0]), "AVG. hi": _pct100(ci[1]),
                "n common": len(common), "AVG. (common)": None if cm is None else cm["results"]["AVG."],
                "PairWise Avg.": (m.get("results") or {}).get("PairWise Avg."),
                "Rank Avg": (m.get("results") or {}).get("Rank Avg"),
                "two-order": _pct100(o.get("acc_two_order")), "consistent": _pct100(o.get("acc_consistent")),
                "bias": _pct100(o.get("bias_rate")), "parse-fail": _pct100(o.get("parse_failure_rate")),
                "truncated": o.get("truncated_items"), "errors": o.get("error_items"),
            })
    cols = ["benchmark", "judge", "kind", "stage", "model", "notebook", "n items", "AVG.", "AVG. lo", "AVG. hi",
            "n common", "AVG. (common)", "PairWise Avg.", "Rank Avg", "two-order", "consistent", "bias",
            "parse-fail", "truncated", "errors"]
    df = pd.DataFrame(rows, columns=cols)
    counts = ["n items", "n common", "truncated", "errors"]
    num = [c for c in cols if c not in ("benchmark", "judge", "kind", "stage", "model", "notebook") + tuple(counts)]
    df[num] = df[num].astype(float)
    df[counts] = df[counts].astype("Int64")
    return df.sort_values(["benchmark", "AVG.", "judge"], ascending=[True, False, True],
                          na_position="last").reset_index(drop=True)


def markdown_table(df, *, index: bool = False, digits: int = 1) -> str:
    """A GitHub Markdown table (no ``tabulate`` needed): floats rounded, NaN/None as an empty cell."""
    import numpy as np
    import pandas as pd

    def cell(v: Any) -> str:
        if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=True, name=None):  # keeps each column's type (ints stay ints)
        vals = ([cell(row[0])] if index else []) + [cell(v) for v in row[1:]]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


LEADERBOARD_MD_COLUMNS = ("judge", "kind", "stage", "n items", "AVG.", "AVG. lo", "AVG. hi", "n common",
                          "AVG. (common)", "two-order", "consistent", "bias", "parse-fail")


def leaderboard_markdown(board, title: str = "Leaderboard") -> str:
    """The leaderboard as Markdown, one section per benchmark, with a legend of the columns."""
    out = [f"# {title}", "",
           "Percent. `AVG.`: official micro average over the judge's own items (pass 0), with its bootstrap "
           "95% interval (`lo`-`hi`). `AVG. (common)`: re-scored on the `n common` items every judge of the "
           "benchmark judged (the fair comparison). `two-order`/`consistent`: both display orders. `bias`: "
           "same slot letter won in both orders. `parse-fail`: outputs with no parseable verdict. Empty: "
           "not defined (no items of that kind).", ""]
    for bench, g in board.groupby("benchmark", sort=False):
        n_common = int(g["n common"].iloc[0])
        note = (f"All {len(g)} judges share {n_common} items." if n_common else
                f"These {len(g)} judges share no item: compare `AVG.` with its interval.")
        out += [f"## {bench}", "", note, "", markdown_table(g[list(LEADERBOARD_MD_COLUMNS)]), ""]
    return "\n".join(out)


def group_frame(judges: dict[str, dict], key: str = "by_task", metric: str = "acc_official"):
    """Long table of ``metrics[key][group][metric]`` per judge (percent) with its 95% interval and n.

    ``key``: ``by_task``, ``by_bucket``, ``pairwise_by_bucket``, ``bon_by_bucket``, ``bon_by_size``.
    """
    import pandas as pd

    rows = []
    for jid, j in judges.items():
        for g, v in (j["metrics"].get(key) or {}).items():
            ci = v.get(metric + "_ci95") or [None, None]
            rows.append({"benchmark": BENCH_LABELS.get(j["bench"], j["bench"]), "judge": jid, "group": g,
                         "n items": v["n_items"], "value": _pct100(v.get(metric)), "lo": _pct100(ci[0]),
                         "hi": _pct100(ci[1])})
    return pd.DataFrame(rows, columns=["benchmark", "judge", "group", "n items", "value", "lo", "hi"])


def plot_group_bars(frame, path: str | Path, *, title: str = "", ylabel: str = "official score (%)",
                    group_order: Sequence[str] | None = None, chance: float | None = None) -> Path:
    """Grouped bars (groups on x, one bar per judge) with asymmetric bootstrap 95% error bars; saved as PNG."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(group_order or dict.fromkeys(frame["group"]))
    groups = [g for g in groups if g in set(frame["group"])]
    judges = list(dict.fromkeys(frame["judge"]))
    w = 0.8 / max(1, len(judges))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 2), 4.2))
    for k, jid in enumerate(judges):
        sub = frame[frame["judge"] == jid].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + (k - (len(judges) - 1) / 2) * w
        err = np.vstack([(sub["value"] - sub["lo"]).clip(lower=0).fillna(0),
                         (sub["hi"] - sub["value"]).clip(lower=0).fillna(0)])
        ax.bar(x, sub["value"], w, yerr=err, capsize=2, label=jid)
    if chance is not None:
        ax.axhline(chance, ls=":", c="gray", lw=1)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    # legend below the axes, so long judge ids never squeeze the plot or clip the title
    ax.legend(fontsize=7, ncol=min(3, max(1, len(judges))), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


# lineages: base -> Stage I SFT -> aligned

def _model_of_path(value: Any, model_meta: dict[str, tuple[Path, dict]]) -> str | None:
    if not value:
        return None
    if str(value) in model_meta:
        return str(value)
    return next((mid for mid, (folder, _) in model_meta.items() if _same_path(value, folder)
                 or Path(str(value)).name == Path(folder).name == mid), None)


def discover_lineages(judges: dict[str, dict], roles: dict[str, dict],
                      model_meta: dict[str, tuple[Path, dict]]) -> list[dict]:
    """Chains base -> Stage I SFT -> aligned found in a run, one per trained end model and benchmark.

    A trained model's parent is its ``longrm.json`` ``init`` (the folder it started from). An aligned
    generative model without ``init`` is attached to the one SFT model of the same base preset, if
    exactly one exists (noted as inferred). Each stage's judge is the one on the end model's benchmark;
    the base judge is the judge of the base preset (same kind, same benchmark) sharing the most items
    with the end model's judge. Returns ``[{name, kind, bench, stages: {stage: judge id or None}, notes}]``.
    """
    stage_of = {mid: model_stage(meta) for mid, (_, meta) in model_meta.items()}
    parent, notes = {}, {}
    for mid, (_, meta) in model_meta.items():
        p = _model_of_path(meta.get("init"), model_meta)
        if p is None and stage_of[mid] == "aligned" and meta.get("kind") == "generative":
            sfts = [m for m, (_, mm) in model_meta.items()
                    if stage_of[m] == "sft" and mm.get("base") == meta.get("base")]
            if len(sfts) == 1:
                p = sfts[0]
                notes[mid] = (f"{mid} has no 'init' in longrm.json; attached to {p} "
                              f"(the only SFT model of {meta.get('base')})")
        if p is not None and p != mid:
            parent[mid] = p
    ends = [m for m in model_meta if m not in parent.values()]
    judges_of: dict[str, list[str]] = {}
    for jid, r in roles.items():
        if r["model"] in model_meta:
            judges_of.setdefault(r["model"], []).append(jid)
    out = []
    for end in sorted(ends):
        chain = [end]
        while chain[-1] in parent and parent[chain[-1]] not in chain:
            chain.append(parent[chain[-1]])
        meta_end = model_meta[end][1]
        kind = meta_end.get("kind") or "generative"
        base = model_meta[chain[-1]][1].get("base")
        if not judges_of.get(end):
            out.append({"name": f"{base} ({kind}, not judged)", "kind": kind, "bench": None, "base_model": base,
                        "models": chain[::-1], "stages": {"base": None, "sft": None, "aligned": None},
                        "notes": [f"model {end} has no saved judge: its notebook registers judges/{end} after "
                                  "judging it"]})
        for jend in sorted(judges_of.get(end, [])):
            bench = judges[jend]["bench"]
            stages: dict[str, str | None] = {"base": None, "sft": None, "aligned": None}
            lnotes = [notes[m] for m in chain if m in notes]
            for mid in chain:
                st = stage_of[mid]
                if st not in stages:
                    lnotes.append(f"{mid}: longrm.json names no stage I/II training (stage/method); left out")
                    continue
                cands = [j for j in judges_of.get(mid, []) if judges[j]["bench"] == bench]
                if cands:
                    stages[st] = max(cands, key=lambda j: (len(item_keys(judges[j]["preds"])
                                                               & item_keys(judges[jend]["preds"])), j))
            want = item_keys(judges[jend]["preds"])
            bases = [j for j, r in roles.items() if r["stage"] == "base" and r["model"] == base
                     and r["kind"] == kind and judges[j]["bench"] == bench]
            if bases:
                stages["base"] = max(bases, key=lambda j: (len(item_keys(judges[j]["preds"]) & want),
                                                           len(judges[j]["preds"]), j))
            else:
                lnotes.append(f"no judge of the base {base} ({kind}) on the {BENCH_LABELS.get(bench, bench)}: "
                              "notebook 02 produces it")
            out.append({"name": f"{base} ({kind}, {bench})", "kind": kind, "bench": bench,
                        "base_model": base, "models": chain[::-1], "stages": stages, "notes": lnotes})
    return out


def explicit_lineages(specs: Sequence[dict], judges: dict[str, dict], roles: dict[str, dict]) -> list[dict]:
    """Lineages given by hand (``[{"name"?, "stages": {"base"?, "sft"?, "aligned"?: judge id}}]``), checked
    and completed like :func:`discover_lineages`' output (kind, benchmark, base model, trained models)."""
    out = []
    for k, spec in enumerate(specs, 1):
        stages = dict(spec.get("stages") or {})
        bad = sorted(set(stages) - set(STAGE_TITLES))
        if bad or not any(stages.values()):
            raise ValueError(f"lineage {k}: 'stages' maps {sorted(STAGE_TITLES)} to judge ids, got {spec.get('stages')!r}")
        missing = [j for j in stages.values() if j and j not in judges]
        if missing:
            raise KeyError(f"lineage {k}: judge(s) {missing} are not saved in this run; saved: {sorted(judges)}")
        ids = [stages[s] for s in STAGE_TITLES if stages.get(s)]
        benches = {judges[j]["bench"] for j in ids}
        last = ids[-1]
        base = roles[stages["base"]]["model"] if stages.get("base") else roles[last]["base"]
        out.append({"name": spec.get("name") or f"{base} ({roles[last]['kind']}, {judges[last]['bench']})",
                    "kind": roles[last]["kind"], "bench": judges[last]["bench"], "base_model": base,
                    "models": [roles[j]["model"] for j in ids if roles[j]["stage"] in ("sft", "aligned")],
                    "stages": {s: stages.get(s) for s in STAGE_TITLES},
                    "notes": [] if len(benches) == 1 else [f"its judges ran on different benchmarks: {sorted(benches)}"]})
    return out


def lineage_table(lineages: Sequence[dict], judges: dict[str, dict], *, n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED):
    """Long table, one row per lineage and stage: the judge, its own AVG., and the metrics re-scored on
    the items every stage of the lineage judged (``n common``), with bootstrap 95% intervals."""
    import pandas as pd

    rows = []
    for lin in lineages:
        present = {st: j for st, j in lin["stages"].items() if j}
        if not present:  # a trained model nobody judged: discover_lineages says so in its notes
            continue
        unknown = [j for j in present.values() if j not in judges]
        if unknown:
            raise KeyError(f"lineage {lin['name']!r}: judge(s) {unknown} are not saved in this run; "
                           f"saved: {sorted(judges)}")
        common = set.intersection(*(item_keys(judges[j]["preds"]) for j in present.values())) if present else set()
        for st in ("base", "sft", "aligned"):
            jid = lin["stages"].get(st)
            row = {"lineage": lin["name"], "stage": STAGE_TITLES[st], "judge": jid, "n items": math.nan,
                   "AVG. (own items)": math.nan, "n common": len(common), "AVG.": math.nan, "lo": math.nan,
                   "hi": math.nan, "two-order": math.nan, "consistent": math.nan, "bias": math.nan,
                   "parse-fail": math.nan}
            if jid:
                j = judges[jid]
                row["n items"] = j["metrics"]["overall"]["n_items"]
                row["AVG. (own items)"] = (j["metrics"].get("results") or {}).get("AVG.")
                cm = common_metrics(j["preds"], common, n_boot=n_boot, seed=seed) if common else None
                if cm is not None:
                    o = cm["overall"]
                    ci = o.get("acc_official_ci95") or [None, None]
                    row.update({"AVG.": cm["results"]["AVG."], "lo": _pct100(ci[0]), "hi": _pct100(ci[1]),
                                "two-order": _pct100(o["acc_two_order"]), "consistent": _pct100(o["acc_consistent"]),
                                "bias": _pct100(o["bias_rate"]), "parse-fail": _pct100(o["parse_failure_rate"])})
            rows.append(row)
    cols = ["lineage", "stage", "judge", "n items", "AVG. (own items)", "n common", "AVG.", "lo", "hi",
            "two-order", "consistent", "bias", "parse-fail"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("AVG.", "AVG. (own items)", "lo", "hi", "two-order", "consistent", "bias", "parse-fail"):
        df[c] = df[c].astype(float)
    df["n items"] = df["n items"].astype("Int64")
    return df


def table1_view(lineage_long, reference=None):
    """The paper's Table 1 layout: rows = lineages (this run) and the paper's models, columns Base /
    After SFT / After alignment (AVG., percent), plus where each number comes from.

    This run's numbers are on its own benchmark and items (``n common``), the paper's on the 1,900-item
    Long-RewardBench with 7-8B models: the two blocks are NOT comparable in level, only in shape."""
    import pandas as pd

    cols = list(STAGE_TITLES.values())
    rows = []
    if lineage_long is not None and not lineage_long.empty:
        for name, g in lineage_long.groupby("lineage", sort=False):
            vals = dict(zip(g["stage"], g["AVG."]))
            rows.append({"source": "this run", "model": name, **{c: vals.get(c, math.nan) for c in cols},
                         "benchmark / items": f"{int(g['n common'].iloc[0])} common items"})
    ref = reference if reference is not None else reference_table("headline")
    for model, g in ref.groupby("model", sort=False):
        vals = {STAGE_TITLES[s]: v for s, v in zip(g["stage"], g["AVG."]) if s in STAGE_TITLES}
        rows.append({"source": "paper Table 1", "model": model, **{c: vals.get(c, math.nan) for c in cols},
                     "benchmark / items": "Long-RewardBench, 1,900 items"})
    df = pd.DataFrame(rows, columns=["source", "model"] + cols + ["benchmark / items"])
    df[cols] = df[cols].astype(float)
    return df


def paper_comparison(judges: dict[str, dict], roles: dict[str, dict], reference=None):
    """Judges of registry presets that the paper reports (:data:`PAPER_MODEL_OF`): our AVG. beside the paper's."""
    import pandas as pd

    ref = reference if reference is not None else reference_table("headline")
    rows = []
    for jid, j in judges.items():
        preset = str(j["config"].get("judge") or "")
        if preset not in PAPER_MODEL_OF:
            continue
        model, stage = PAPER_MODEL_OF[preset]
        hit = ref[(ref["model"] == model) & (ref["stage"] == stage)]
        rows.append({"judge": jid, "preset": preset, "paper model": model, "stage": stage,
                     "benchmark": BENCH_LABELS.get(j["bench"], j["bench"]),
                     "n items": j["metrics"]["overall"]["n_items"],
                     "AVG. (this run)": (j["metrics"].get("results") or {}).get("AVG."),
                     "AVG. (paper, 1,900 items)": float(hit["AVG."].iloc[0]) if len(hit) else math.nan})
    return pd.DataFrame(rows, columns=["judge", "preset", "paper model", "stage", "benchmark", "n items",
                                       "AVG. (this run)", "AVG. (paper, 1,900 items)"])


def short_check_frame(judges: dict[str, dict], *, benches: Sequence[str] = ("short", "rewardbench"),
                      n_boot: int = N_BOOT, seed: int = BOOT_SEED):
    """Accuracy on the short benchmarks per judge and group (RewardBench section, else task), pass 0,
    with bootstrap 95% intervals; plus an ``all`` row per judge."""
    import pandas as pd

    rows = []
    for jid, j in judges.items():
        if j["bench"] not in benches:
            continue
        items = group_items(j["preds"])

        def grp(ps):
            p = ps.get(0) or ps[min(ps)]
            src = str(p.get("source") or "")
            return src.split("/")[1] if j["bench"] == "rewardbench" and src.count("/") >= 2 else p["task"]

        groups: dict[str, list] = {}
        for ps in items.values():
            groups.setdefault(grp(ps), []).append(ps)
        groups["all"] = list(items.values())
        for g, its in groups.items():
            m = group_metrics(its, n_boot=n_boot, seed=seed)
            ci = m.get("acc_official_ci95") or [None, None]
            rows.append({"benchmark": BENCH_LABELS[j["bench"]], "judge": jid, "group": g, "n items": m["n_items"],
                         "value": _pct100(m["acc_official"]), "lo": _pct100(ci[0]), "hi": _pct100(ci[1]),
                         "two-order": _pct100(m["acc_two_order"])})
    return pd.DataFrame(rows, columns=["benchmark", "judge", "group", "n items", "value", "lo", "hi", "two-order"])


def coverage(roles: dict[str, dict], judges: dict[str, dict]) -> list[dict]:
    """Which producing notebook's judges the run holds: one row per expected kind of judge, with the
    judge ids found or what to run to get them."""
    want = [("02_baseline_judging", "heuristic baselines", lambda r: r["stage"] == "heuristic"),
            ("02_baseline_judging", "base generative judges",
             lambda r: r["stage"] == "base" and r["kind"] == "generative"),
            ("02_baseline_judging", "base scalar RMs", lambda r: r["stage"] == "base" and r["kind"] == "scalar"),
            ("04_stage1_long_sft", "Stage I SFT judges", lambda r: r["stage"] == "sft"),
            ("05_stage2_align_generative_rm", "aligned generative judges",
             lambda r: r["stage"] == "aligned" and r["kind"] != "scalar" and not r["released"]),
            ("06_stage2_align_scalar_rm", "aligned scalar RMs",
             lambda r: r["stage"] == "aligned" and r["kind"] == "scalar" and not r["released"])]
    out = []
    for nb, what, pred in want:
        ids = sorted(j for j, r in roles.items() if pred(r))
        out.append({"notebook": nb, "judges": what, "found": ids,
                    "status": "ok" if ids else f"missing: run notebook {nb} with this run_dir"})
    return out
