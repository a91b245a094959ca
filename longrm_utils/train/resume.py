"""Resumable checkpoints of Stage II's loop (:mod:`.align`): saved and loaded by accelerate.

A checkpoint is ``<checkpoint folder of the model>/step-N``: accelerate's state (the trainable weights,
Adam and the schedule through :class:`TrainState`, or the sharded model and optimizer under FSDP2; each
process's RNG) and ``trainer_state.json`` (the step, the log so far, and the run's identity). The last
two are kept. A run resumes only from a checkpoint of the same run: same settings (but how often it
saves and where it logs), objective and items; anything else is refused, never silently mixed.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from .. import models
from ..io import write_json
from .tracking import beside

IGNORED = ("save_steps", "report_to")
"""Settings a resumed run may change."""


class TrainState:
    """The resumable state of an unsharded run (trainable weights, optimizer, scheduler), for
    ``accelerator.register_for_checkpointing``."""

    def __init__(self, named: list, opt, sched):
        self.named, self.opt, self.sched = named, opt, sched

    def state_dict(self) -> dict:
        return {"params": {n: p.detach().clone() for n, p in self.named}, "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        import torch

        with torch.no_grad():
            for n, p in self.named:
                p.copy_(sd["params"][n])
        self.opt.load_state_dict(sd["opt"])
        self.sched.load_state_dict(sd["sched"])


def checkpoint_dirs(out_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints of the model folder ``out_dir``, oldest first."""
    ck = beside(out_dir, "checkpoints")
    found = [p for p in ck.glob("step-*") if (p / "trainer_state.json").exists()] if ck.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def run_identity(config: dict, kind: str, item_ids: Sequence[str]) -> dict:
    """What a checkpoint must share with the run that resumes it: the settings (but :data:`IGNORED`),
    the objective, and the items (their ids, in order)."""
    return {"config": {k: v for k, v in config.items() if k not in IGNORED}, "kind": kind,
            "items": models.fingerprint(*item_ids)}


def save(acc, out_dir, step: int, log: list, identity: dict) -> None:
    """Save step ``step`` (every process takes part) and drop all but the last two checkpoints."""
    path = beside(out_dir, "checkpoints") / f"step-{step}"
    acc.save_state(str(path))
    if acc.is_main_process:
        write_json(path / "trainer_state.json", {"step": step, "log": log, **identity})
        for old in checkpoint_dirs(out_dir)[:-2]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def load_newest(acc, out_dir, identity: dict, *, resume: bool) -> tuple[int, list]:
    """Load the newest checkpoint of ``out_dir``; returns ``(its step, its log)``, or ``(0, [])``.

    ``resume=False`` deletes the checkpoints there instead, so the rotation never keeps an older
    run's. A checkpoint of another run is refused, naming what differs."""
    found = checkpoint_dirs(out_dir)
    if not resume:
        if acc.is_main_process:
            for old in found:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return 0, []
    if not found:
        return 0, []
    state = json.loads((found[-1] / "trainer_state.json").read_text())
    saved = {k: state.get(k) for k in identity}
    if saved != identity:
        diff = sorted(k for k in identity["config"] if (saved["config"] or {}).get(k) != identity["config"][k])
        diff += [k for k in ("kind", "items") if saved[k] != identity[k]]
        raise ValueError(f"{found[-1]}: this checkpoint was saved by another run (it differs in {', '.join(diff)}); "
                         "resume with the same settings and items, or pass resume=False to start afresh")
    acc.load_state(str(found[-1]))
    print(f"resumed from {found[-1]} (step {state['step']})")
    return state["step"], state["log"]
