"""``python -m longrm_utils plan``: the memory planner on the command line, and each profile's plan.

:func:`profile_limits` reads a profile's shipped training configuration (notebook 04's ``long_run``,
05's and 06's parameters) into :class:`~.memory.PlanConfig` objects, one per training step, and
returns the longest context each fits in the profile's GPU::

    python -m longrm_utils plan --profile gpu-qlora-24gb --json
    python -m longrm_utils plan --model qwen3-8b --method qlora --seq-len 32768 --gpu-mem 24
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from typing import Any

import yaml

from ..cli import ArgumentParser, add_flag
from ..constants import PROFILE_DIR
from .longctx import LOSS_CHUNK
from .memory import GiB, ModelShape, PlanConfig, max_context, predict
from .options import field_docs
from .sft import SFTRun

TRL_CHUNK = 32768
"""Positions trl's fused LM head (Stage I) sends through the vocabulary at once."""
BEST_OF = 4
"""The scalar step is planned for Best-of-4 (the issue's target): a prompt and four responses."""


def profile_plans(profile: str) -> tuple[dict[str, Any], dict[str, tuple[ModelShape, PlanConfig, int]]]:
    """``(hardware, {step: (shape, config, shipped max_length)})`` for ``sft``, ``align`` and ``scalar``,
    read from ``configs/profiles/<profile>.yaml`` exactly as the notebooks will run them."""
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.exists():
        raise SystemExit(f"plan: no profile {path}; have {sorted(p.stem for p in PROFILE_DIR.glob('*.yaml'))}")
    raw = yaml.safe_load(path.read_text())
    hw = dict(raw.get("hardware") or {})
    share = dict(n_gpus=int(hw.get("plan_gpus", 1)), sharding=hw.get("plan_sharding", "none"), attn="flash",
                 dtype="bf16")
    s1, s2, s3 = raw["04_stage1_long_sft"], raw["05_stage2_align_generative_rm"], raw["06_stage2_align_scalar_rm"]
    run = SFTRun.from_dict(s1["long_run"])
    judgement = int(s1.get("max_judgement_tokens", 512))
    sft = PlanConfig(method=run.method, seq_len=run.max_length, grad_ckpt=run.gradient_checkpointing,
                     loss_tokens=judgement, loss_chunk=TRL_CHUNK, lora_r=run.lora_r, lora_dropout=run.lora_dropout,
                     offload=run.offload_checkpoints, mlp_tile_tokens=run.mlp_tile_tokens, autocast=True,
                     fused_head=True, **share)

    def stage2(p: dict, kind: str, r: int, dropout: float, responses: int) -> PlanConfig:
        method = "full" if p.get("method") == "full" else "qlora" if p.get("quantization") == "4bit" else "lora"
        # the Stage II loop is one process on one GPU (no sharding); every judgement's positions are scored
        return PlanConfig(method=method, seq_len=int(p.get("max_length", 2048)),
                          grad_ckpt=bool(p.get("gradient_checkpointing", False)), kind=kind, loss_tokens=None,
                          loss_chunk=LOSS_CHUNK, n_gpus=1, sharding="none", attn="flash", dtype="bf16",
                          lora_r=r, lora_dropout=dropout, offload=bool(p.get("offload_checkpoints", False)),
                          mlp_tile_tokens=int(p.get("mlp_tile_tokens", 0)), responses=responses,
                          response_tokens=int(p.get("max_judgement_tokens", judgement)),
                          shared_prefix=bool(p.get("shared_prefix", True)))

    align = stage2(s2, "generative", run.lora_r, run.lora_dropout, 1 + int(s2.get("V", 2)))  # continues Stage I's adapter
    scalar = stage2(s3, "scalar", int(s3.get("lora_r", 16)), float(s3.get("lora_dropout", 0.05)), BEST_OF)
    return hw, {"sft": (ModelShape.from_preset(run.base), sft, run.max_length),
                "align": (ModelShape.from_preset(s2["base_judge"]), align, align.seq_len),
                "scalar": (ModelShape.from_preset(s3["scalar_base"]), scalar, scalar.seq_len)}


def profile_limits(profile: str, usable: float = 0.9) -> dict[str, Any]:
    """The longest trainable context per step for a profile's shipped configuration, with the
    prediction at the length it ships (``shipped``) and the host RAM its offloaded checkpoints need."""
    hw, plans = profile_plans(profile)
    gib = float(hw["gpu_memory_gib"])
    out: dict[str, Any] = {"profile": profile, "gpu_mem_gib": gib, "usable": usable}
    for step, (shape, cfg, shipped) in plans.items():
        b = predict(shape, cfg)
        out[step] = max_context(shape, cfg, gib, usable=usable)
        out.setdefault("shipped", {})[step] = {
            "model": shape.name, "max_length": shipped, "predicted_gib": round(b.total / GiB, 2),
            "host_ram_gib": round(b.host / GiB, 2), "fits": b.total <= gib * GiB * usable,
            "config": {k: v for k, v in asdict(cfg).items() if k != "overhead_gib"}}
    return out


def _shape_from_args(a) -> ModelShape:
    if a.config:
        return ModelShape.from_config(a.config)
    if a.params_b:
        missing = [k for k in ("layers", "hidden", "kv_heads", "head_dim", "vocab", "intermediate") if getattr(a, k) is None]
        if missing:
            raise SystemExit(f"plan: with --params-b also give {', '.join('--' + m.replace('_', '-') for m in missing)}")
        return ModelShape.from_numbers(params_b=a.params_b, layers=a.layers, hidden=a.hidden, kv_heads=a.kv_heads,
                                       head_dim=a.head_dim, vocab=a.vocab, intermediate=a.intermediate, tied=a.tied)
    return ModelShape.from_preset(a.model, intermediate=a.intermediate)


def cli(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="longrm_utils plan",
        description="Predict peak training memory per GPU and the longest context that fits. "
                    "Example: python -m longrm_utils plan --model qwen3-8b --method qlora --seq-len 32768 --gpu-mem 24")
    p.add_argument("--profile", default=None, help="plan a profile's shipped Stage I, Stage II and scalar steps "
                   "(configs/profiles/<name>.yaml) and print the longest context of each")
    p.add_argument("--model", default="qwen3-8b", help="registry preset (models.REGISTRY)")
    p.add_argument("--config", default=None, help="a model folder or config.json instead of a preset")
    for k, t in (("params-b", float), ("layers", int), ("hidden", int), ("kv-heads", int), ("head-dim", int),
                 ("vocab", int), ("intermediate", int)):
        p.add_argument(f"--{k}", type=t, default=None, help="explicit model numbers (with --params-b)")
    add_flag(p, "tied", default=False, help="explicit model: tied input/output embeddings")
    docs = field_docs(PlanConfig)
    for f in fields(PlanConfig):
        flag = "--" + f.name.replace("_", "-")
        doc = docs.get(f.name, "")
        if f.type in ("bool",):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                           help=f"{doc} (default {f.default})")
        elif f.name == "loss_tokens":
            p.add_argument(flag, type=int, default=None, help=doc)
        else:
            typ = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, type=typ, default=f.default, help=f"{doc} (default {f.default})")
    p.add_argument("--gpu-mem", type=float, default=None, help="GiB per GPU: also report the longest context that fits")
    p.add_argument("--usable", type=float, default=0.9, help="share of the card the plan may use (default 0.9)")
    add_flag(p, "json", default=False, help="print JSON")
    a = p.parse_args(argv)
    if a.profile:
        return _print_profile(a.profile, a.usable, a.json)
    shape = _shape_from_args(a)
    try:
        cfg = PlanConfig(**{f.name: getattr(a, f.name) for f in fields(PlanConfig)})
    except ValueError as e:
        raise SystemExit(f"plan: {e}")
    b = predict(shape, cfg)
    out: dict[str, Any] = {"model": shape.name, "config": asdict(cfg), "predicted_gib": b.gib(), "notes": b.notes}
    if a.gpu_mem:
        out["gpu_mem_gib"] = a.gpu_mem
        out["fits"] = b.total <= a.gpu_mem * GiB * a.usable
        out["max_context"] = max_context(shape, cfg, a.gpu_mem, usable=a.usable)
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{shape.name}: {cfg.method}, {cfg.seq_len:,} tokens x {cfg.batch}, ckpt={cfg.grad_ckpt}, attn={cfg.attn}, "
          f"{cfg.dtype}, {cfg.n_gpus} GPU(s) sharding={cfg.sharding} cp={cfg.cp_size}")
    print(b.table())
    for n in b.notes:
        print(f"note: {n}")
    if a.gpu_mem:
        verdict = "fits" if out["fits"] else "does NOT fit"
        print(f"{verdict} in {a.usable:.0%} of {a.gpu_mem:g} GiB; longest context that fits: {out['max_context']:,} tokens")
    return 0


def _print_profile(profile: str, usable: float, as_json: bool) -> int:
    out = profile_limits(profile, usable)
    if as_json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{profile}: {out['gpu_mem_gib']:g} GiB per GPU, {usable:.0%} usable")
    for step in ("sft", "align", "scalar"):
        sh = out["shipped"][step]
        print(f"  {step:6s} {sh['model']}: longest {out[step]:>9,} tokens; ships {sh['max_length']:,} "
              f"({sh['predicted_gib']:.1f} GiB, {'fits' if sh['fits'] else 'does NOT fit'}; host RAM "
              f"{sh['host_ram_gib']:.1f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
