"""Experiment tracking: where a run's TensorBoard logs and checkpoints go, and how the trainers get them.

``report_to`` is the transformers setting, passed through from profiles and the CLI: a comma-separated
string of integrations (``"tensorboard"``, ``"trackio"``, ``"wandb"`` ...), or ``"none"``. The default
is ``"tensorboard"``, which needs no account and no network: the course writes its logs under the run
directory (``RUN/tensorboard/<model>``) and ``tensorboard --logdir RUN/tensorboard`` shows them.

* trl's SFT trainer reports through transformers' callbacks; :func:`trainer_logging` points its
  TensorBoard writer at :func:`tensorboard_dir`.
* The Stage II loop is our own; :class:`StepWriter` writes its per-step scalars to TensorBoard. Other
  integrations are not wired into that loop: they are named in a warning, never silently dropped.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..runtime import get_logger

log = get_logger("tracking")
DEFAULT_REPORT_TO = "tensorboard"


def integrations(report_to: str | None) -> list[str]:
    """``report_to`` as a list; ``"none"`` or empty gives []."""
    items = [x.strip() for x in str(report_to or "").split(",") if x.strip()]
    return [] if items in ([], ["none"]) else items


def beside(out_dir: str | os.PathLike, what: str) -> Path:
    """A folder that belongs to the model folder ``out_dir`` but must not sit in it (checkpoints, logs):
    ``RUN/<what>/<name>`` for ``RUN/models/<name>``, else ``<parent>/<name>-<what>``."""
    out_dir = Path(out_dir)
    if out_dir.parent.name == "models":
        return out_dir.parent.parent / what / out_dir.name
    return out_dir.parent / f"{out_dir.name}-{what}"


def tensorboard_dir(out_dir: str | os.PathLike) -> Path:
    return beside(out_dir, "tensorboard")


@contextlib.contextmanager
def trainer_logging(report_to: str | None, out_dir: str | os.PathLike) -> Iterator[list[str]]:
    """While a transformers trainer is built: its ``report_to`` list, with TensorBoard's writer
    pointed at :func:`tensorboard_dir` (transformers 5 reads ``TENSORBOARD_LOGGING_DIR``)."""
    names = integrations(report_to)
    old = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if "tensorboard" in names:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(out_dir))
    try:
        yield names
    finally:
        if old is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = old


class StepWriter:
    """Per-step scalars of a custom training loop to TensorBoard (when ``report_to`` names it)."""

    def __init__(self, report_to: str | None, out_dir: str | os.PathLike | None, prefix: str = "train"):
        names = integrations(report_to)
        other = [n for n in names if n != "tensorboard"]
        if other:
            log.warning(f"report_to {', '.join(other)}: the Stage II loop logs to TensorBoard only; "
                        "use trl or transformers trainers for other integrations")
        self.prefix, self.writer = prefix, None
        if "tensorboard" in names and out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(tensorboard_dir(out_dir)))

    def log(self, step: int, values: dict) -> None:
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.writer.add_scalar(f"{self.prefix}/{k}", float(v), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
