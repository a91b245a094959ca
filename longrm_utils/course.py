"""The papermill runner behind ``python -m longrm_utils course``.

A profile (``configs/profiles/<name>.yaml``) maps notebook stems to papermill parameters::

    defaults: {seed: 0, device: auto}          # merged into every notebook
    01_build_long_rewardbench: {items_per_cell: 1}

The runner checks every key against the notebook's own parameter cell (papermill only warns about
unknown parameters), executes the notebooks in order into ``runs/<name>/``, stops at the first
failure naming the notebook and the cell, and writes ``manifest.json`` and ``summary.{json,md}``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .constants import CPU_BUDGET_MIN, NOTEBOOK_DIR, NOTEBOOKS, PROFILE_DIR, REPO_ROOT
from .contracts import LESSONS
from .io import InputError, read_json, write_json, write_text
from .miniature import MINI_SUFFIX
from .models import REGISTRY, SCALAR
from .rundir import check_parameters as check_declared
from .rundir import write_manifest
from .runtime import progress_enabled

RESERVED = ("run_dir",)
"""Parameters the runner sets itself; every notebook declares them."""

CELL_TIMEOUT_S = 1800


class ProfileError(InputError):
    """A profile, a notebook selection or a profile parameter is wrong."""


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


PROFILE_KEYS = ("defaults", "env", "description", "hardware", "smoke", "lessons")
"""Profile keys besides notebook stems. ``lessons`` lists the lesson ids the profile's run must show
holding (``lessons.json``); the summary marks each, and the test suite asserts them for ``cpu``."""


def load_profile(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Return (name, raw mapping). An unknown profile names the ones that exist."""
    p = Path(name_or_path)
    if not p.suffix:
        p = PROFILE_DIR / f"{name_or_path}.yaml"
    if not p.exists():
        raise ProfileError(f"unknown profile {name_or_path!r}; profiles that exist: {', '.join(profiles())}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ProfileError(f"not valid YAML ({getattr(e, 'problem', None) or e})", file=p,
                           line=None if mark is None else mark.line + 1) from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{p}: a profile is a mapping of notebook stem -> parameters")
    for key in raw:
        if key not in PROFILE_KEYS and key not in NOTEBOOKS:
            raise ProfileError(f"{p}: unknown notebook {key!r}; notebooks: {', '.join(NOTEBOOKS)}")
    expected = raw.get("lessons") or []
    if not (isinstance(expected, list) and all(isinstance(x, str) for x in expected)):
        raise ProfileError(f"{p}: 'lessons' is a list of lesson ids, got {expected!r}")
    return p.stem, raw


def notebook_path(stem: str) -> Path:
    return NOTEBOOK_DIR / f"{stem}.ipynb"


def notebook_parameters(stem: str) -> dict[str, Any]:
    """The notebook's declared parameters: name -> {default, inferred_type_name, help}."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook_path(stem)))


def merged_parameters(raw: dict[str, Any], stem: str, run_dir: Path | None = None) -> dict[str, Any]:
    params = dict(raw.get("defaults") or {})
    params.update(raw.get(stem) or {})
    if run_dir is not None:
        params["run_dir"] = str(run_dir)
    return params


def swap_to_mini(value: Any) -> Any:
    """Replace every hub preset named in a parameter value by its miniature (``<preset>@mini``: the same
    architecture, rope, head and template, random-init and small), or by the tiny model of the same
    kind when the preset has none; FlashAttention-2 becomes sdpa."""
    if value == "flash_attention_2":
        return "sdpa"
    if isinstance(value, str) and value in REGISTRY and REGISTRY[value].route == "hub":
        if value + MINI_SUFFIX in REGISTRY:
            return value + MINI_SUFFIX
        return "tiny-rm" if REGISTRY[value].kind == SCALAR else "tiny"
    if isinstance(value, list):
        return [swap_to_mini(v) for v in value]
    if isinstance(value, dict):
        return {k: swap_to_mini(v) for k, v in value.items()}
    return value


def smoke_parameters(raw: dict[str, Any], stem: str, run_dir: Path | None = None) -> dict[str, Any]:
    """A GPU profile's parameters made runnable on the CPU: hub presets -> their miniatures, device ->
    cpu, and the profile's own ``smoke:`` block (smaller sizes) on top. The code paths stay the GPU
    profile's, on the real architectures in miniature."""
    params = {k: swap_to_mini(v) for k, v in merged_parameters(raw, stem, run_dir).items()}
    if "device" in params:
        params["device"] = "cpu"
    params.update((raw.get("smoke") or {}).get(stem) or {})
    return params


def check_parameters(stem: str, params: dict[str, Any], declared: dict[str, Any] | None = None) -> None:
    """An unknown parameter is an error naming the parameter and the notebook."""
    check_declared(stem, params, declared if declared is not None else notebook_parameters(stem))


def select(stems: list[str], only: str | None = None, start: str | None = None) -> list[str]:
    def norm(x: str) -> str:
        x = x.strip()
        hits = [s for s in NOTEBOOKS if s == x or s.startswith(x.zfill(2) + "_")]
        if not hits:
            raise ProfileError(f"unknown notebook {x!r}; use a number such as 02, or a stem from {NOTEBOOKS}")
        return hits[0]

    out = list(stems)
    if only:
        wanted = {norm(x) for x in only.split(",") if x.strip()}
        out = [s for s in out if s in wanted]
    if start:
        first = norm(start)
        out = out[out.index(first):] if first in out else []
    return out


@dataclass
class NotebookResult:
    notebook: str
    status: str
    wall_s: float
    budget_s: float | None
    over_budget: bool
    headline: dict
    error: str | None = None


def _failing_cell(nb_path: Path) -> str | None:
    try:
        import nbformat

        nb = nbformat.read(str(nb_path), as_version=4)
        for i, c in enumerate(nb.cells):
            for o in c.get("outputs", []):
                if o.get("output_type") == "error":
                    first = (c.source.strip().splitlines() or [""])[0][:80]
                    return f"cell {i} ({first!r}): {o.get('ename')}: {o.get('evalue')}"
    except Exception:
        return None
    return None


def _plan(raw: dict, stems: list[str], out: Path, smoke: bool, overrides: dict | None) -> dict[str, dict]:
    """Every notebook's parameters, each checked against its parameters cell before anything runs."""
    plan = {}
    for stem in stems:
        params = smoke_parameters(raw, stem, out) if smoke else merged_parameters(raw, stem, out)
        params.update((overrides or {}).get(stem) or {})
        check_parameters(stem, params)
        plan[stem] = params
    return plan


def _execute(stem: str, params: dict, out: Path, *, progress: bool = True,
             stream: bool = False) -> tuple[str, str | None, float]:
    """Run one notebook with papermill into ``out``; (status, error naming the cell, seconds).

    ``progress`` shows a bar of the notebook's cells; ``stream`` copies everything the cells print
    (training logs, progress lines) to stderr as it happens, prefixed by the notebook's number."""
    import logging

    import papermill as pm

    pmlog, handler, level = logging.getLogger("papermill"), None, None
    if stream:  # only for this notebook: a later run without --stream stays quiet
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"[{stem[:2]}] %(message)s"))
        pmlog.addHandler(handler)
        level = pmlog.level
        pmlog.setLevel(logging.INFO)
    t0 = time.time()
    out_nb = out / f"{stem}.ipynb"
    try:
        pm.execute_notebook(str(notebook_path(stem)), str(out_nb), parameters=params, kernel_name="python3",
                            cwd=str(REPO_ROOT / "notebooks"), execution_timeout=CELL_TIMEOUT_S,
                            progress_bar=progress_enabled(progress) and {"desc": f"  {stem} cells", "leave": False},
                            log_output=stream)
        return "ok", None, time.time() - t0
    except Exception as e:  # noqa: BLE001 - papermill raises PapermillExecutionError with the cell
        return "failed", _failing_cell(out_nb) or f"{type(e).__name__}: {str(e)[:500]}", time.time() - t0
    finally:
        if handler is not None:
            pmlog.removeHandler(handler)
            pmlog.setLevel(level)


def run_course(profile: str = "cpu", out: str | os.PathLike = "runs/cpu", only: str | None = None,
               start: str | None = None, budget_scale: float | None = None,
               overrides: dict[str, dict] | None = None, progress: bool = True,
               smoke: bool = False, stream: bool = False) -> list[NotebookResult]:
    """Execute the selected notebooks of a profile into ``out``; returns one result per notebook run.

    ``smoke=True`` runs a GPU profile on the CPU with its models swapped for the tiny one (see
    :func:`smoke_parameters`), so that the GPU code paths execute in CI. A failing notebook stops
    the run with an error naming the notebook, the cell and the run directory.
    """
    from tqdm.auto import tqdm

    name, raw = load_profile(profile)
    stems = select([s for s in NOTEBOOKS if notebook_path(s).exists()], only, start)
    if not stems:
        raise ProfileError(f"the selection (--only {only!r}, --from {start!r}) matches no notebook; "
                           f"notebooks: {', '.join(NOTEBOOKS)}")
    out = Path(out) if Path(out).is_absolute() else (Path.cwd() / out).resolve()
    for k, v in (raw.get("env") or {}).items():
        os.environ[str(k)] = str(v)
    plan = _plan(raw, stems, out, smoke, overrides)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, profile=name, parameters=plan, seed=(raw.get("defaults") or {}).get("seed"),
                   device=(raw.get("defaults") or {}).get("device", "auto"))
    summary_path = out / "summary.json"
    previous = {r["notebook"]: r for r in read_json(summary_path)["notebooks"]} if summary_path.exists() else {}
    results: list[NotebookResult] = []
    bar = tqdm(total=len(stems), desc=f"course[{name}]", unit="nb", disable=not progress_enabled(progress))
    for stem in stems:
        bar.set_postfix_str(stem)
        budget = CPU_BUDGET_MIN.get(stem, 0) * 60 * (budget_scale or 1.0) if name.startswith("cpu") else None
        status, err, wall = _execute(stem, plan[stem], out, progress=progress, stream=stream)
        hl_path = out / "headlines" / f"{stem}.json"
        res = NotebookResult(stem, status, round(wall, 1), budget, bool(budget and wall > budget),
                             read_json(hl_path) if hl_path.exists() else {}, err)
        results.append(res)
        previous[stem] = res.__dict__
        _write_summary(out, name, previous, raw.get("lessons") or [])
        bar.update(1)
        if status != "ok":
            bar.close()
            raise RuntimeError(f"notebook {stem} failed at {err} (run directory {out}; executed copy "
                               f"{out / (stem + '.ipynb')})")
    bar.close()
    return results


def lesson_status(out: Path, expected: list[str]) -> list[dict[str, Any]]:
    """One row per lesson of ``out/lessons.json`` and per expected lesson not (yet) recorded."""
    path = out / LESSONS
    entries = {e["id"]: e for e in read_json(path)["lessons"]} if path.exists() else {}
    rows = []
    for lid in list(entries) + [x for x in expected if x not in entries]:
        e = entries.get(lid, {})
        rows.append({"id": lid, "expected": lid in expected, "recorded": bool(e), "holds": e.get("holds", False),
                     **{k: e.get(k) for k in ("notebook", "metric", "before_value", "after_value", "diff_ci95",
                                              "n_items")}})
    return rows


def _write_summary(out: Path, profile: str, by_nb: dict[str, dict], expected: list[str] | None = None) -> None:
    rows = [by_nb[s] for s in NOTEBOOKS if s in by_nb]
    total = sum(r["wall_s"] for r in rows)
    lessons = lesson_status(out, list(expected or []))
    write_json(out / "summary.json", {"profile": profile, "total_wall_s": round(total, 1), "notebooks": rows,
                                      "lessons": lessons})
    lines = [f"# Course run `{out.name}` (profile `{profile}`)", "",
             f"Total wall time: {total / 60:.1f} min", "",
             "| notebook | status | wall time | budget | headline metrics |", "|---|---|---|---|---|"]
    for r in rows:
        b = r.get("budget_s")
        flag = " **over budget**" if r.get("over_budget") else ""
        hl = ", ".join(f"{k}={_fmt(v)}" for k, v in (r.get("headline") or {}).items())
        lines.append(f"| {r['notebook']} | {r['status']} | {r['wall_s'] / 60:.1f} min{flag} | "
                     f"{'' if b is None else f'{b / 60:.0f} min'} | {hl} |")
    if lessons:
        lines += ["", "| lesson | notebook | metric | before -> after | 95% CI of the change | items | holds |",
                  "|---|---|---|---|---|---|---|"]
        for x in lessons:
            ci = x["diff_ci95"]
            measured = x["recorded"] and None not in (x["before_value"], x["after_value"])
            change = f"{x['before_value']:.3f} -> {x['after_value']:.3f}" if measured else "not measured"
            mark = ("yes" if x["holds"] else "**no**") + (" (expected)" if x["expected"] else "")
            lines.append(f"| {x['id']} | {x['notebook'] or ''} | {x['metric'] or ''} | {change} | "
                         f"{'' if not ci else f'[{ci[0]:+.3f}, {ci[1]:+.3f}]'} | {x['n_items'] or ''} | {mark} |")
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        lines += ["", f"**{r['notebook']} failed:** {r.get('error')}"]
    write_text(out / "summary.md", "\n".join(lines) + "\n")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
