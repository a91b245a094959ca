"""What the analysis reads and how it groups it: the judges saved in a run, their benchmark records,
the join between predictions and records, and the sort order of buckets and tasks.

Prediction lines are read with :func:`longrm_utils.contracts.read_predictions`; a judge folder's
files are described in ``docs/contracts.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from ..bench.schema import answers, read_jsonl
from ..constants import BUCKET_ORDER, TASKS
from ..contracts import PREDICTIONS, item_key, judge_bench_file, read_predictions
from ..io import InputError
from ..rundir import MissingArtifact, artifacts, find_artifact, producer_of

"""Display order of the length buckets: the course's short set, then the official buckets."""


def bucket_key(b: Any) -> tuple[int, str]:
    """Sort key of a bucket label: the known buckets in :data:`BUCKET_ORDER`, then any other label."""
    return (BUCKET_ORDER.index(b) if b in BUCKET_ORDER else len(BUCKET_ORDER), str(b))


def task_key(t: Any) -> tuple[int, str]:
    """Sort key of a task: the official column order, then any other task."""
    return (TASKS.index(t) if t in TASKS else 99, t)


def judge_name(path: str | Path) -> str:
    """A judge's id from its file: ``judges/<id>/predictions.jsonl`` -> ``<id>``."""
    p = Path(path)
    return p.parent.name if p.name == PREDICTIONS else p.stem


def read_nonempty_predictions(path: str | Path) -> list[dict]:
    """:func:`~longrm_utils.contracts.read_predictions`, refusing a file without prediction lines."""
    preds = read_predictions(path)
    if not preds:
        raise InputError("no prediction lines", file=path)
    return preds


def bench_index(records: Iterable[dict]) -> dict[tuple[str, str], dict]:
    """Benchmark records by their join key ``(task, id)``."""
    return {item_key(r): r for r in records}


def slot_texts(pred: dict, bench: dict[tuple[str, str], dict] | None) -> list[str] | None:
    """The responses in display order (``answers[order[j]]``), or None without the record."""
    if not bench:
        return None
    rec = bench.get(item_key(pred))
    if rec is None:
        return None
    ans = answers(rec)
    return [ans[o] for o in pred["order"]]


def saved_judges(rd: str | Path, names: Sequence[str] | None = None) -> dict[str, Path]:
    """``judge id -> folder`` for the ``judges/<id>`` artifacts of a run that hold predictions.

    ``names`` picks some (an unknown one is an error naming the producing notebook); None takes all.
    """
    found = {k.split("/", 1)[1]: v for k, v in artifacts(rd).items()
             if k.startswith("judges/") and Path(v).is_dir() and (Path(v) / PREDICTIONS).exists()}
    if names is None:
        if not found:
            raise MissingArtifact(f"no judges/<id> artifacts with predictions in run directory {rd}. They are "
                                  f"produced by notebook {producer_of('judges/x')}: run it first with the "
                                  "same run_dir.")
        return found
    return {n: find_artifact(rd, f"judges/{n}", fallback=False) for n in names}


def bench_of(folder: str | Path) -> list[dict] | None:
    """The benchmark records a saved judge was run on (:func:`~longrm_utils.contracts.judge_bench_file`),
    or None when that benchmark is not a file here."""
    path = judge_bench_file(folder)
    return None if path is None else read_jsonl(path)
