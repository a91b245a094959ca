"""The run directory: where each notebook writes its outputs and finds the ones before it.

Layout (documented in ``docs/contracts.md``)::

    runs/<name>/
      manifest.json      git commit, versions, profile, merged parameters, seed, device
      summary.json/.md   per notebook: status, wall time, budget, headline metrics (course.py)
      artifacts.json     logical name -> path relative to the run directory
      headlines/NN.json  the headline metrics each notebook reports
      lessons.json       the course's measured claims (steps.record_lesson)

Artifacts are addressed by logical names such as ``bench/mini``, ``judges/<id>`` or ``models/<id>``.
A notebook run alone falls back to what ``data/`` ships where a fallback exists, and otherwise
names the notebook that produces the missing input.
"""
from __future__ import annotations

import ast
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .constants import ARTIFACT_PRODUCERS, IN_CHECKOUT, REPO_ROOT, SHIPPED_ARTIFACTS
from .io import read_json, write_json
from .runtime import hub_offline, package_versions


class MissingArtifact(FileNotFoundError):
    """An input from an earlier notebook is missing; the message names that notebook."""


class UnknownParameter(ValueError):
    """A parameter given to a notebook (papermill ``-p``, a profile) that the notebook does not declare."""


def run_dir(path: str | os.PathLike | None = None, *, default_name: str = "interactive") -> Path:
    """Resolve (and create) a run directory. ``None`` means ``runs/<default_name>`` in the repo.

    Every notebook calls this in its first code cell, so it is also where a papermill parameter
    that the notebook does not declare is refused (:func:`check_injected`): papermill itself only
    warns, and the notebook would run with its defaults.
    """
    check_injected()
    base = REPO_ROOT if IN_CHECKOUT else Path.cwd()  # a wheel's shipped copy is not the place for runs
    p = Path(path) if path else base / "runs" / default_name
    if not p.is_absolute():
        p = (base / p) if not p.exists() else p.resolve()
    p.mkdir(parents=True, exist_ok=True)
    return p


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except Exception:  # no git, or not a checkout (a wheel install): the manifest says None
        return None


def write_manifest(rd: Path, *, profile: str | None, parameters: dict, seed: int | None,
                   device: str | None = None) -> Path:
    return write_json(Path(rd) / "manifest.json", {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": package_versions(),
        "profile": profile,
        "parameters": parameters,
        "seed": seed,
        "device": device,
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    })


def _index_path(rd: Path) -> Path:
    return Path(rd) / "artifacts.json"


def register_artifact(rd: str | os.PathLike, name: str, path: str | os.PathLike) -> Path:
    """Record ``name -> path`` in the run's artifacts.json (paths stored relative to the run dir)."""
    rd = Path(rd)
    path = Path(path)
    idx = read_json(_index_path(rd)) if _index_path(rd).exists() else {}
    try:
        rel = str(path.resolve().relative_to(rd.resolve()))
    except ValueError:
        rel = str(path.resolve())
    idx[name] = rel
    write_json(_index_path(rd), dict(sorted(idx.items())))
    return path


def artifacts(rd: str | os.PathLike) -> dict[str, Path]:
    rd = Path(rd)
    if not _index_path(rd).exists():
        return {}
    return {k: (rd / v) if not Path(v).is_absolute() else Path(v) for k, v in read_json(_index_path(rd)).items()}


def producer_of(name: str) -> str:
    """The notebook that writes the artifact ``name`` (``bench/mini``, ``judges/<id>`` ...)."""
    return ARTIFACT_PRODUCERS.get(name.split("/")[0], "an earlier notebook")


def find_artifact(rd: str | os.PathLike | None, name: str, *, fallback: bool = True, verbose: bool = True) -> Path:
    """Locate an artifact by logical name: the run's index first, then the shipped fallback.

    Raises :class:`MissingArtifact` naming the producing notebook when neither exists.
    """
    if rd is not None:
        idx = artifacts(rd)
        if name in idx and idx[name].exists():
            return idx[name]
    shipped = SHIPPED_ARTIFACTS.get(name)
    if fallback and shipped is not None and shipped.exists():
        if verbose:
            print(f"[longrm] {name!r} is not in run dir {rd}; using the shipped copy {shipped.relative_to(REPO_ROOT)}")
        return shipped
    raise MissingArtifact(
        f"artifact {name!r} not found in run directory {rd!s}"
        + ("" if shipped is None else f" and no shipped copy at {shipped}")
        + f". It is produced by notebook {producer_of(name)}: run that notebook first with the same run_dir.")


def record_headline(rd: str | os.PathLike, notebook: str, metrics: dict[str, Any]) -> Path:
    """Headline metrics a notebook wants in summary.json/summary.md (merged over earlier calls)."""
    p = Path(rd) / "headlines" / f"{notebook}.json"
    old = read_json(p) if p.exists() else {}
    old.update(metrics)
    return write_json(p, old)


def check_parameters(notebook: str, given: dict[str, Any], declared: dict[str, Any] | Any) -> None:
    """Refuse parameters the notebook does not declare, naming them (papermill only warns)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UnknownParameter(f"notebook {notebook}: unknown parameter(s) {', '.join(unknown)}; "
                               f"it declares: {', '.join(sorted(declared))}")


def _assigned(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}


def check_injected(history: list[str] | None = None) -> None:
    """Refuse parameters that papermill injected but the notebook's parameters cell does not declare.

    papermill runs the cell it injects (it starts with ``# Parameters``) right after the cell tagged
    ``parameters``, so the two are consecutive in the kernel's input history (IPython's ``In``).
    Outside a kernel, or without an injected cell, there is nothing to check.
    """
    if history is None:
        try:
            from IPython import get_ipython  # only inside a kernel; IPython comes with ipykernel
        except ImportError:
            return
        shell = get_ipython()
        history = list(shell.user_ns.get("In", [])) if shell is not None else []
    for i in range(1, len(history)):
        if history[i].lstrip().startswith("# Parameters"):
            unknown = sorted(_assigned(history[i]) - _assigned(history[i - 1]))
            if unknown:
                raise UnknownParameter(f"unknown parameter(s) {', '.join(unknown)} given to this notebook (a typo?); "
                                       f"its parameters cell declares: {', '.join(sorted(_assigned(history[i - 1])))}")


def resolve_input(rd: str | os.PathLike | None, name: str | None, *, offline_fallback: str | None = None):
    """A benchmark parameter as notebooks take it: an artifact name (``bench/...``) through the run
    directory (or its shipped fallback), a path as given, or a hub id. With ``offline_fallback`` set,
    a hub id under ``HF_HUB_OFFLINE=1`` is replaced by that artifact, and the swap is printed."""
    if not name:
        return name
    if name.startswith("bench/"):
        return find_artifact(rd, name)
    looks_like_hub_id = not Path(name).exists() and name.count("/") == 1 and not name.endswith((".jsonl", ".json"))
    if offline_fallback and hub_offline() and looks_like_hub_id:
        print(f"[longrm] {name!r} is a hub id and HF_HUB_OFFLINE is set: using {offline_fallback!r} instead")
        return find_artifact(rd, offline_fallback)
    return name
