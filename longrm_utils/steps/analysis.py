"""Failure analysis of a run (notebook 03): read the judges saved in the run directory, judge some of
them again without their context, and record the headline numbers.

The measures themselves are pure functions in :mod:`longrm_utils.analysis`; the notebook writes the
report with :func:`longrm_utils.analysis.report.analyze` into ``RUN/analysis``, where
:func:`ablate_judges` also writes its judgings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..analysis.ablation import ABLATION_MODES, pick_ablation_judges
from ..analysis.inputs import bench_of, read_nonempty_predictions, saved_judges
from ..analysis.report import headline
from ..contracts import PREDICTIONS
from ..rundir import record_headline
from .ablation import ablate_saved_judge

NOTEBOOK = "03_failure_analysis"


def read_judges(rd: str | os.PathLike, names: Sequence[str] | None = None
                ) -> tuple[dict[str, Path], dict[str, list[dict]], dict[str, list[dict] | None]]:
    """The ``judges/<id>`` artifacts of a run (all, or those in ``names``) as three dicts keyed by judge
    id: the folder, its prediction lines (a file without lines is an error), and the benchmark records
    named in its ``run_config.json`` (None when that benchmark is not a file here)."""
    folders = saved_judges(rd, names)
    preds = {j: read_nonempty_predictions(f / PREDICTIONS) for j, f in folders.items()}
    bench = {j: bench_of(f) for j, f in folders.items()}
    return folders, preds, bench


def ablate_judges(rd: str | os.PathLike, folders: dict[str, Path], spec: str | Sequence[str] = "auto", *,
                  k: int = 8, modes: Sequence[str] = ABLATION_MODES, seed: int = 0,
                  device: str = "auto") -> dict[str, dict[str, Any]]:
    """Judge ``k`` items of the judges that ``spec`` picks (:func:`~longrm_utils.analysis.ablation.pick_ablation_judges`)
    again with their context ablated in each of ``modes``; prints the picked ids and returns
    ``{judge id: ablate_saved_judge(...)}`` (the files go under ``RUN/analysis/ablation/``)."""
    picked = pick_ablation_judges(folders, spec)
    print("ablating:", picked)
    return {j: ablate_saved_judge(rd, j, k=k, modes=modes, seed=seed, device=device) for j in picked}


def record_headlines(rd: str | os.PathLike, report: dict) -> dict[str, Any]:
    """Record the report's :func:`~longrm_utils.analysis.report.headline` numbers as notebook 03's
    headline for ``summary.md``; returns them."""
    numbers = headline(report)
    record_headline(rd, NOTEBOOK, numbers)
    return numbers
