"""Tables across judges: official results, buckets, the leaderboard, lineages beside the paper's
Table 1, the short-context check, and Markdown rendering. pandas is imported inside each function.

All values are percent. Intervals are the bootstrap 95% intervals of ``metrics.json``
(:mod:`longrm_utils.stats`), or recomputed the same way where items are re-scored.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..constants import REFERENCE_TABLES, RESULT_COLUMNS
from ..contracts import group_items
from ..judge.score import group_metrics, preference_lines, score_predictions
from ..stats import reliability
from ..stats import BOOT_SEED, N_BOOT
from .judges import BENCH_LABELS, PAPER_MODEL_OF, STAGE_TITLES, item_keys, restrict

EXTENDED_COLUMNS = ("two-order", "consistent", "bias", "parse-fail", "truncated", "errors")
"""Columns :func:`results_table` adds after the official ones."""


def _pct100(v: float | None) -> float:
    return math.nan if v is None else 100.0 * v


# --- one judge per row, from metrics.json ---------------------------------------------------------

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

    if name not in REFERENCE_TABLES:
        raise KeyError(f"unknown reference table {name!r}; have {sorted(REFERENCE_TABLES)}")
    return pd.read_csv(REFERENCE_TABLES[name], comment="#")


# --- across the judges of a run -------------------------------------------------------------------

def common_metrics(preds: Sequence[dict], keys: set[tuple[str, str]], *, n_boot: int = N_BOOT,
                   seed: int = BOOT_SEED) -> dict | None:
    """Metrics of a judge re-scored on the shared items ``keys`` only (None when it misses some)."""
    sub = restrict(preds, keys)
    if not keys or item_keys(sub) != set(keys):
        return None
    return score_predictions(sub, n_boot=n_boot, seed=seed)[1]


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


# --- ranking quality and calibration ----------------------------------------------------------------

CALIBRATION_COLUMNS = ("benchmark", "judge", "group", "n lines", "AUC", "AUC lo", "AUC hi", "ECE", "ECE lo",
                       "ECE hi", "reward AUC")


def calibration_frame(judges: dict[str, dict]):
    """AUC and ECE of each judge's preference probability (percent, with 95% intervals from
    ``metrics.json``), overall (group ``all``) and per length bucket, and the reward AUC of scalar RMs.
    Judges without a probability (heuristics, served text-only judges) have no row."""
    import pandas as pd

    rows = []
    for jid, j in judges.items():
        m = j["metrics"]
        groups = [("all", m["overall"])] + list((m.get("by_bucket") or {}).items())  # both include BoN rewards
        for g, v in groups:
            if not v.get("n_pref_lines"):
                continue
            auc_ci, ece_ci = v.get("auc_ci95") or [None, None], v.get("ece_ci95") or [None, None]
            rows.append({"benchmark": BENCH_LABELS.get(j["bench"], j["bench"]), "judge": jid, "group": g,
                         "n lines": v["n_pref_lines"], "AUC": _pct100(v.get("auc")), "AUC lo": _pct100(auc_ci[0]),
                         "AUC hi": _pct100(auc_ci[1]), "ECE": _pct100(v.get("ece")), "ECE lo": _pct100(ece_ci[0]),
                         "ECE hi": _pct100(ece_ci[1]), "reward AUC": _pct100(v.get("reward_auc"))})
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


def reliability_rows(judge: dict) -> list[dict]:
    """The reliability diagram's bins (:func:`longrm_utils.stats.reliability`) of one loaded judge."""
    probs, labels, _ = preference_lines(list(group_items(judge["preds"]).values()))
    return reliability(probs, labels)


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


# --- lineages and the paper -----------------------------------------------------------------------

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
        common = set.intersection(*(item_keys(judges[j]["preds"]) for j in present.values()))
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


def short_change_table(lineages: Sequence[dict], lineage_long, benches: Sequence[str] = ("short", "rewardbench")):
    """For each lineage on a short benchmark with at least two judged stages: the change of ``AVG.``
    from its first to its last judged stage, both on the lineage's common items.

    ``lineage_long`` is :func:`lineage_table`'s output for ``lineages``. One row per lineage:
    ``lineage``, ``from``, ``to`` (stage titles), ``n common``, ``AVG. from``, ``AVG. to``, ``change``
    (points) and ``to 95% CI`` (the last stage's interval as text). Empty when no lineage qualifies.
    """
    import pandas as pd

    rows = []
    for lin in lineages:
        if lin["bench"] not in benches:
            continue
        g = lineage_long[lineage_long["lineage"] == lin["name"]].dropna(subset=["AVG."]).set_index("stage")
        if len(g) >= 2:
            first, last = g.iloc[0], g.iloc[-1]
            rows.append({"lineage": lin["name"], "from": g.index[0], "to": g.index[-1],
                         "n common": int(first["n common"]), "AVG. from": first["AVG."], "AVG. to": last["AVG."],
                         "change": last["AVG."] - first["AVG."], "to 95% CI": f"{last['lo']:.0f}–{last['hi']:.0f}"})
    return pd.DataFrame(rows)


# --- Markdown -------------------------------------------------------------------------------------

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
