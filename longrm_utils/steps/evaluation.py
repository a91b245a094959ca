"""Evaluation of a run as steps (notebook 07): load every saved judge, export the comparisons under
``RUN/eval/``, run the short-context check, and record the headline.

The tables and figures themselves are built by :mod:`longrm_utils.evaluate.tables` and
:mod:`longrm_utils.evaluate.plots`; this module decides which of them a run gets, where each file
goes, and keeps the state that later steps read (:class:`EvalRun`). Judging happens only when a
step is asked to judge models (``evaluate_models``, the short check); everything else reads saved files.

Files written under ``RUN/eval/``: ``leaderboard.csv``, ``leaderboard.md``, ``by_task.csv``,
``by_bucket.csv``, ``calibration.csv``, ``lineage.csv``, ``short_check.csv``, ``summary.json`` and
``figures/*.png``
(``table1.csv`` and ``paper_comparison.csv`` are written by the notebook from the table functions).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.inputs import saved_judges
from ..bench.schema import load_rewardbench
from ..constants import BUCKETS, REPO_ROOT, TASKS
from ..evaluate.judges import (BENCH_LABELS, EVAL_SUFFIXES, STAGE_TITLES, ModelMeta, discover_lineages,
                               explicit_lineages, judge_roles, load_judge, unlisted_judges)
from ..evaluate.plots import plot_group_bars, plot_reliability
from ..evaluate.tables import (calibration_frame, coverage, group_frame, leaderboard, leaderboard_markdown,
                               lineage_table, reliability_rows, short_check_frame)
from ..io import write_json, write_text
from ..judge.run import default_judge_id, load_bench, spread
from ..models import read_meta
from ..rundir import artifacts, record_headline, register_artifact, resolve_input
from ..stats import N_BOOT
from .judging import judge_all

NOTEBOOK = "07_evaluate_longrms"
EVAL_DIR = "eval"
"""The folder of the run directory that holds this step's outputs (registered as artifact ``eval``)."""
FIGURES = "figures"
"""Subfolder of :data:`EVAL_DIR` for the PNG figures."""


def eval_dir(rd: str | os.PathLike) -> Path:
    """``rd/eval``, created together with its ``figures`` subfolder."""
    out = Path(rd) / EVAL_DIR
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class EvalRun:
    """What the evaluation knows about one run directory; the export steps fill the later fields.

    ``judges`` maps judge id -> :func:`~longrm_utils.evaluate.judges.load_judge` dict; ``models`` maps
    model id -> (folder, ``longrm.json``); ``roles`` is :func:`~longrm_utils.evaluate.judges.judge_roles`
    of the two. ``skipped`` and ``unregistered`` are :func:`~longrm_utils.evaluate.judges.unlisted_judges`'
    answer. ``board``/``markdown`` are the last leaderboard written, ``lineage_long`` the last lineage
    table, ``figures`` maps a figure name to its PNG.
    """
    rd: Path
    judges: dict[str, dict]
    models: ModelMeta
    roles: dict[str, dict]
    skipped: dict[str, str] = field(default_factory=dict)
    unregistered: dict[str, Path] = field(default_factory=dict)
    lineages: list[dict] = field(default_factory=list)
    lineage_long: Any = None
    board: Any = None
    markdown: str = ""
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        """The run's ``eval`` folder (:func:`load_run` creates it)."""
        return self.rd / EVAL_DIR


# --- judging anew ---------------------------------------------------------------------------------

def judge_models(rd: str | os.PathLike, specs: Iterable[dict], records: Sequence[dict], *, suffix: str = "",
                 **run_kwargs: Any) -> list[str]:
    """Judge ``records`` with each ``{"model", "kind"}`` of ``specs`` into ``rd/judges/<id><suffix>``.

    Specs that give the same judge id are judged once (the first one counts). ``run_kwargs`` go to
    :func:`~longrm_utils.steps.judging.judge_all` and on to ``run_judge`` (device, max_new_tokens,
    limit, ...); ``verbose`` defaults to False here (no summary line per judge). Returns the judge
    ids in the order of ``specs``.
    """
    run_kwargs.setdefault("verbose", False)
    unique: dict[str, tuple[str, str]] = {}
    for s in specs:
        unique.setdefault(default_judge_id(s["model"], s["kind"]) + suffix, (s["model"], s["kind"]))
    return list(judge_all(rd, unique.values(), records, suffix=suffix, **run_kwargs))


def judge_on_bench(rd: str | os.PathLike, specs: Sequence[dict], bench: str, *, n_items: int | None = None,
                   **run_kwargs: Any) -> list[str]:
    """Judge ``specs`` (``evaluate_models``) on ``bench`` into ``judges/<id>-eval``; returns the ids.

    ``bench`` is an artifact name, a JSONL path, an official folder or a hub id; offline, a hub id is
    replaced by the run's ``bench/mini`` (and the swap is printed). ``n_items`` records are spread over
    the file (None takes all). Judges nothing when ``specs`` is empty.
    """
    if not specs:
        return []
    records = spread(load_bench(resolve_input(rd, bench, offline_fallback="bench/mini")), n_items)
    return judge_models(rd, specs, records, suffix=EVAL_SUFFIXES[0], **run_kwargs)


# --- what the run holds ---------------------------------------------------------------------------

def load_run(rd: str | os.PathLike, names: Sequence[str] | None = None) -> EvalRun:
    """Load the judges and saved models of a run, with each judge's role.

    ``names`` picks judge ids; None takes every ``judges/<id>`` artifact holding predictions, plus
    judge folders under ``rd/judges`` that ``artifacts.json`` does not list. Prints one line per
    ``judges/...`` entry that is skipped (a table, an unfinished run) and per unlisted judge folder.
    """
    rd = Path(rd)
    index = artifacts(rd)
    folders = saved_judges(rd, names)
    skipped, unregistered = unlisted_judges(index, rd / "judges")
    if names is None:
        folders |= unregistered
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    for jid in unregistered:
        print(f"included {jid}: a judge folder under judges/ that artifacts.json does not list")
    judges = {jid: load_judge(f, jid) for jid, f in folders.items()}
    model_meta = {k.split("/", 1)[1]: (p, read_meta(p) or {}) for k, p in index.items()
                  if k.startswith("models/") and p.is_dir()}
    eval_dir(rd)
    return EvalRun(rd, judges, model_meta, judge_roles(judges, model_meta), skipped, unregistered)


# --- exports --------------------------------------------------------------------------------------

def export_leaderboard(ev: EvalRun, *, n_boot: int = N_BOOT):
    """Write ``eval/leaderboard.csv`` and ``eval/leaderboard.md`` for every loaded judge.

    Returns ``(board, markdown)`` (:func:`~longrm_utils.evaluate.tables.leaderboard` and its
    Markdown rendering) and keeps both in ``ev``.
    """
    ev.board = leaderboard(ev.judges, ev.roles, n_boot=n_boot)
    ev.board.to_csv(ev.out / "leaderboard.csv", index=False)
    ev.markdown = leaderboard_markdown(ev.board, title=f"Leaderboard of run {ev.rd.name}")
    write_text(ev.out / "leaderboard.md", ev.markdown + "\n")
    return ev.board, ev.markdown


def _file_name(bench_label: str) -> str:
    """``long benchmark (generated)`` -> ``long_benchmark``: the part of a figure's file name."""
    return bench_label.split(" (")[0].replace(" ", "_")


def export_groups(ev: EvalRun):
    """Per-task and per-length-bucket scores with 95% intervals, one figure per benchmark.

    Writes ``eval/by_task.csv``, ``eval/by_bucket.csv``, ``eval/figures/by_task_<bench>.png`` and, for a
    benchmark with more than one bucket, ``eval/figures/by_bucket_<bench>.png``. The figures stay open
    for the notebook to show. Returns ``(by_task, by_bucket)``; the figure paths go to ``ev.figures``
    (``task_<bench>``, ``bucket_<bench>``).
    """
    out = ev.out
    by_task, by_bucket = group_frame(ev.judges, "by_task"), group_frame(ev.judges, "by_bucket")
    by_task.to_csv(out / "by_task.csv", index=False)
    by_bucket.to_csv(out / "by_bucket.csv", index=False)
    for bench, g in by_task.groupby("benchmark", sort=False):
        name = _file_name(bench)
        ev.figures[f"task_{name}"] = plot_group_bars(
            g, out / FIGURES / f"by_task_{name}.png", group_order=TASKS,
            title=f"{bench}: official score by task (95% CI)", chance=50)
    for bench, g in by_bucket.groupby("benchmark", sort=False):
        if g["group"].nunique() > 1:
            name = _file_name(bench)
            ev.figures[f"bucket_{name}"] = plot_group_bars(
                g, out / FIGURES / f"by_bucket_{name}.png", group_order=BUCKETS,
                title=f"{bench}: official score by length (95% CI)", chance=50)
    return by_task, by_bucket


def export_calibration(ev: EvalRun):
    """AUC, ECE and reward AUC per judge (overall and per bucket) into ``eval/calibration.csv``, and a
    reliability diagram per benchmark (``eval/figures/reliability_<bench>.png``, ``ev.figures``
    ``reliability_<bench>``), left open for the notebook to show. Returns the table."""
    frame = calibration_frame(ev.judges)
    frame.to_csv(ev.out / "calibration.csv", index=False)
    for bench, g in frame[frame["group"] == "all"].groupby("benchmark", sort=False):
        name = _file_name(bench)
        curves = {jid: reliability_rows(ev.judges[jid]) for jid in g["judge"]}
        ev.figures[f"reliability_{name}"] = plot_reliability(
            curves, ev.out / FIGURES / f"reliability_{name}.png",
            title=f"{bench}: calibration of the preference probability (Wilson 95% CI)")
    return frame


def lineage_lines(lineages: Sequence[dict]) -> list[str]:
    """The printed description of lineages: the judge of each stage, then the notes."""
    lines = []
    for lin in lineages:
        lines.append(f"{lin['name']}: " + " → ".join(f"{st}={lin['stages'].get(st) or '—'}"
                                                    for st in ("base", "sft", "aligned")))
        lines += [f"   note: {n}" for n in lin.get("notes", [])]
    if not lineages:
        lines.append("no trained models in this run: notebooks 04 (Stage I), 05 (aligned generative) and 06 "
                     "(aligned scalar) produce them")
    return lines


def export_lineages(ev: EvalRun, spec: Sequence[dict] | None = None, *, n_boot: int = N_BOOT,
                    verbose: bool = True):
    """Find the lineages base -> Stage I SFT -> aligned and write ``eval/lineage.csv``.

    ``spec`` is the notebook's ``lineages`` parameter: lineages given by hand, or None to discover
    them from the models' ``longrm.json``. Prints them (with ``verbose``), keeps them in
    ``ev.lineages`` and returns :func:`~longrm_utils.evaluate.tables.lineage_table` (also in
    ``ev.lineage_long``).
    """
    ev.lineages = (explicit_lineages(spec, ev.judges, ev.roles) if spec is not None
                   else discover_lineages(ev.judges, ev.roles, ev.models))
    if verbose:
        print("\n".join(lineage_lines(ev.lineages)))
    ev.lineage_long = lineage_table(ev.lineages, ev.judges, n_boot=n_boot)
    ev.lineage_long.to_csv(ev.out / "lineage.csv", index=False)
    return ev.lineage_long


def lineage_figure(ev: EvalRun) -> Path | None:
    """Bars of every lineage's stages on their common items (``eval/figures/lineage.png``), or None
    when no lineage has a judged stage. The path goes to ``ev.figures["lineage"]``."""
    lin = ev.lineage_long
    if lin is None or lin.empty:
        return None
    fr = lin.drop(columns="judge").rename(columns={"lineage": "judge", "stage": "group", "AVG.": "value"})
    ev.figures["lineage"] = plot_group_bars(
        fr.dropna(subset=["value"]), ev.out / FIGURES / "lineage.png", group_order=list(STAGE_TITLES.values()),
        title="official score along each lineage (common items, 95% CI)", chance=50)
    return ev.figures["lineage"]


# --- the short-context check ----------------------------------------------------------------------

def load_short_bench(bench: str | os.PathLike, split: str = "filtered", limit: int | None = None) -> list[dict] | None:
    """RewardBench-format records for the short check, ``limit`` of them spread over the file.

    ``bench`` is a hub id or a JSONL path (a path relative to the repository works too). Returns None,
    and prints why, when the data cannot be loaded (a hub id while offline).
    """
    src = bench
    if not Path(src).exists() and (REPO_ROOT / src).is_file():
        src = REPO_ROOT / src
    try:
        return spread(load_rewardbench(src, split), limit)
    except RuntimeError as e:
        print(f"short check on {bench!r} skipped: {e}")
        return None


def short_check_specs(ev: EvalRun) -> list[dict]:
    """The judges of the short check when it is ``"auto"``: each lineage's base preset and its trained
    models (by folder), each (model, kind) once."""
    specs = [{"model": lin["base_model"], "kind": lin["kind"]} for lin in ev.lineages]
    specs += [{"model": str(ev.models[m][0]), "kind": ev.models[m][1].get("kind", "generative")}
              for lin in ev.lineages for m in lin["models"] if m in ev.models]
    return list({(s["model"], s["kind"]): s for s in specs}.values())


def short_check(ev: EvalRun, bench: str | None, *, split: str = "filtered", limit: int | None = 200,
                specs: str | Sequence[dict] = "auto", rediscover: bool = True, n_boot: int = N_BOOT,
                **run_kwargs: Any):
    """Short-context accuracy of the run's judges, after judging ``bench`` when one is given.

    With ``bench`` (RewardBench-format data, see :func:`load_short_bench`), ``specs`` (``"auto"``:
    :func:`short_check_specs`) judge it into ``judges/<id>-rewardbench``; the new judges join ``ev``,
    the leaderboard is rewritten, and with ``rediscover`` the lineages and ``eval/lineage.csv`` are
    found again. ``n_boot`` and ``run_kwargs`` go to ``run_judge``. Always writes
    ``eval/short_check.csv`` and returns :func:`~longrm_utils.evaluate.tables.short_check_frame` of
    every judge.
    """
    records = load_short_bench(bench, split, limit) if bench else None
    if records:
        chosen = short_check_specs(ev) if specs == "auto" else specs
        ids = judge_models(ev.rd, chosen, records, suffix=EVAL_SUFFIXES[1], n_boot=n_boot, **run_kwargs)
        ev.judges |= {j: load_judge(ev.rd / "judges" / j, j) for j in ids}
        ev.roles = judge_roles(ev.judges, ev.models)
        export_leaderboard(ev, n_boot=n_boot)  # the leaderboard gains a RewardBench section
        if rediscover:  # the trained models' RewardBench judges form lineages of their own
            export_lineages(ev, None, n_boot=n_boot, verbose=False)
        print(f"{len(records)} RewardBench items judged by {ids}")
    short = short_check_frame(ev.judges, n_boot=n_boot)
    short.to_csv(ev.out / "short_check.csv", index=False)
    return short


# --- headline -------------------------------------------------------------------------------------

def _r1(v: Any) -> float | None:
    """``v`` rounded to one decimal; None for None, NaN and ``pandas.NA``."""
    import pandas as pd

    return None if v is None or pd.isna(v) else round(float(v), 1)


def headline_metrics(ev: EvalRun, short) -> dict[str, Any]:
    """The headline numbers: judge and model counts, the best judge per benchmark with its interval,
    each lineage stage's common-item AVG., each RewardBench judge's accuracy, and the producing
    notebooks of judges the run lacks."""
    out: dict[str, Any] = {"judges": len(ev.judges), "trained models": len(ev.models)}
    for bench, g in ev.board.groupby("benchmark", sort=False):
        top = g.iloc[0]
        out[f"best on {bench}"] = (f"{top['judge']} {_r1(top['AVG.'])} [{_r1(top['AVG. lo'])}-{_r1(top['AVG. hi'])}] "
                                   f"on {top['n items']} items")
    for _, r in ev.lineage_long.dropna(subset=["AVG."]).iterrows():
        out[f"{r['lineage']} {r['stage']}"] = _r1(r["AVG."])
    for _, r in short[short["group"] == "all"].iterrows():
        if r["benchmark"] == BENCH_LABELS["rewardbench"]:
            out[f"RewardBench {r['judge']}"] = _r1(r["value"])
    out["missing"] = ", ".join(c["notebook"][:2] for c in coverage(ev.roles, ev.judges) if not c["found"]) or "none"
    return out


def headline(ev: EvalRun, short, *, t0: float) -> dict[str, Any]:
    """Write ``eval/summary.json``, register ``eval`` and record the headline of notebook 07.

    ``short`` is :func:`short_check`'s frame and ``t0`` the ``time.time()`` the evaluation started
    (for ``wall_s``). ``summary.json`` holds the headline, the coverage, the lineages, the skipped and
    unregistered judge entries and the figures (relative to the run). Returns the headline dict.
    """
    head = headline_metrics(ev, short)
    write_json(ev.out / "summary.json", {
        "headline": head, "coverage": coverage(ev.roles, ev.judges), "lineages": ev.lineages,
        "skipped": ev.skipped, "unregistered": sorted(ev.unregistered),
        "figures": {k: str(Path(v).relative_to(ev.rd)) for k, v in ev.figures.items()},
        "wall_s": round(time.time() - t0, 1)})
    register_artifact(ev.rd, EVAL_DIR, ev.out)
    record_headline(ev.rd, NOTEBOOK, head)
    return head
