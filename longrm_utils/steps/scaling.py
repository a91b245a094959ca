"""Scaling up as steps (notebook 08): the planner against a measured step, the planner's tables for
the GPU profiles, the accelerate configs, the CPU DDP check, and best-of-2 data selection with a
scalar RM.

The planner is :mod:`longrm_utils.train.memory`, the measurement :mod:`longrm_utils.train.memory_measure`,
the launch checks :mod:`longrm_utils.train.launch` and the selection :mod:`longrm_utils.train.bon`;
this module prints what the notebook shows and writes the files of ``RUN/08_scaling/``:

* ``bon_picks.jsonl`` (one row per prompt) and ``bon_sft.jsonl`` (chat-format SFT data, registered
  as ``scaling/bon_sft``), by :func:`best_of_two`;
* ``summary.json`` (registered as ``scaling/summary``), ``planner_vs_measured.json``,
  ``vllm_args.json`` and ``figures/predicted_memory_vs_length.png``, written by the notebook.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import models, store
from ..io import write_jsonl
from ..rundir import register_artifact
from ..train import bon
from ..train.launch import accelerate_configs, launch_plan, run_ddp_smoke
from ..train.memory import GiB, PROFILE_PLANS, Breakdown, ModelShape, PlanConfig, max_context, predict
from ..train.memory_measure import validate

SCALING_DIR = "08_scaling"
"""The folder of the run directory that holds this notebook's outputs."""


def check_planner(lengths: Sequence[int], *, kind: str = "generative") -> list[dict]:
    """Measure one tiny-model training step at each length (each in a fresh process) and print it
    beside the planner's prediction, with the tokens per second.

    Returns :func:`~longrm_utils.train.memory_measure.validate`'s rows.
    """
    shape = ModelShape.from_config(store.build_tiny(0), name="tiny")
    rows = validate("tiny", tuple(lengths), shape=shape, kind=kind)
    for r in rows:
        print(f"tiny SFT step, {r['seq_len']:>6,} tokens: measured {r['measured_bytes'] / 2**20:7.1f} MiB, "
              f"predicted {r['predicted_bytes'] / 2**20:7.1f} MiB (ratio {r['ratio']:.2f}), "
              f"{r['tokens_per_s']:,.0f} tokens/s")
    return rows


def profile_table(lengths: Sequence[int], plans: dict | None = None) -> dict[str, dict[str, float]]:
    """Predicted peak GiB per GPU (one decimal) of each plan (default :data:`~longrm_utils.train.memory.PROFILE_PLANS`)
    at each length: ``{label: {"4k": GiB, ...}}``."""
    return {label: {f"{n // 1024}k": round(predict(ModelShape.from_preset(p), PlanConfig(seq_len=n, **kw)).total
                                           / GiB, 1) for n in lengths}
            for label, (p, kw, _) in (plans or PROFILE_PLANS).items()}


def longest_by_plan(plans: dict | None = None) -> dict[str, int]:
    """The longest context that fits each plan's card (default the profiles' plans); prints one line each."""
    out = {label: max_context(ModelShape.from_preset(p), PlanConfig(**kw), gib)
           for label, (p, kw, gib) in (plans or PROFILE_PLANS).items()}
    for label, n in out.items():
        print(f"{label:55s} longest context that fits: {n:>8,}")
    return out


def config_table():
    """One row per accelerate config of ``configs/accelerate/``, parsed as ``accelerate launch`` does:
    distributed type, processes, ZeRO stage, FSDP version, context- and sequence-parallel sizes."""
    import pandas as pd

    rows = []
    for stem, path in accelerate_configs().items():
        v = launch_plan(path)
        par = v["parallelism"] or {}
        rows.append({"config": f"{stem}.yaml", "type": v["distributed_type"], "processes": v["num_processes"],
                     "zero": v["zero_stage"], "fsdp": v["fsdp_version"], "cp": par.get("cp", 1),
                     "sp": par.get("sp", 1)})
    return pd.DataFrame(rows)


def ddp_smoke(enabled: bool, *, nproc: int = 2, seq_len: int = 256) -> dict | None:
    """Run the ``nproc``-process CPU DDP step when ``enabled`` and print what it shows (losses, and
    whether the replicas are equal after the step); otherwise say where it is tested. Returns the report."""
    if not enabled:
        print("\n(ddp_smoke=False: `tests/test_accelerate_configs.py` runs the 2-process CPU DDP step)")
        return None
    rep = run_ddp_smoke(nproc=nproc, seq_len=seq_len)
    print(f"\n{nproc}-process CPU DDP step: {rep['distributed_type']} over {rep['backend']}, losses {rep['losses']}, "
          f"replicas equal after the step: {rep['param_checksums'][0] == rep['param_checksums'][1]}")
    return rep


def best_of_two(rd: str | os.PathLike, rm_name: str, records: Sequence[dict], *, device: str = "auto",
                quantization: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Best-of-2 selection with the scalar RM ``rm_name`` over ``records`` (answers 0 and 1 play the
    policy's two samples). Writes ``bon_picks.jsonl`` and ``bon_sft.jsonl`` (registered as
    ``scaling/bon_sft``) into ``rd/08_scaling``, prints the pick accuracy with its 95% interval and
    chance, and returns :func:`~longrm_utils.train.bon.summary`.
    """
    out = Path(rd) / SCALING_DIR
    rm = models.load(rm_name, kind=models.SCALAR, device=device, quantization=quantization, seed=seed)
    picks = bon.best_of_n(rm, records, n=2)
    summ = bon.summary(picks, n=2)
    write_jsonl(picks, out / "bon_picks.jsonl")
    register_artifact(rd, "scaling/bon_sft", write_jsonl(bon.sft_records(records, picks), out / "bon_sft.jsonl"))
    print(f"{summ['items']} prompts: the RM picked the better answer {summ['pick_accuracy']:.0%} of the time "
          f"(95% CI {summ['ci95'][0]:.0%}–{summ['ci95'][1]:.0%}; random picking: {summ['chance']:.0%})")
    return summ


def headline(plan_model: str, cfg: PlanConfig, plan: Breakdown, longest: int, measured: Sequence[dict],
             bon_summary: dict, rm_name: str) -> dict[str, Any]:
    """The notebook's headline: the planned set-up, its predicted peak (GiB) and longest context, the
    planner's ratio at the first measured length, and the best-of-2 pick accuracy."""
    return {"plan_model": plan_model, "plan_method": cfg.method, "plan_seq_len": cfg.seq_len,
            "predicted_peak_gib": round(plan.total / GiB, 1), "longest_context_fits": longest,
            "planner_ratio_measured": round(measured[0]["ratio"], 3) if measured else None,
            "bon_pick_accuracy": bon_summary["pick_accuracy"], "bon_items": bon_summary["items"],
            "bon_rm": str(rm_name)}
