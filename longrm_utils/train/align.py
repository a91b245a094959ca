"""Stage II: fine-grained alignment of long-context reward models (notebooks 05 and 06).

Both objectives work on *one prompt (with its long context) and 1 + V responses* (the losses and
the shared-prefix forward passes are in :mod:`.losses`): the multi-reject SimPO loss for a
generative judge, Bradley-Terry against the mean of the rejects for a scalar RM.

The paper states two settings that disagree (``constants.ALIGN_MAIN_TEXT``: V=2, γ=2.5, β=0.5,
no NLL; ``constants.ALIGN_TABLE5``: V=2, γ=0.5, β=2.5, NLL weight 0.05). Both are available as
``AlignConfig.paper("main_text" | "table5")``.

**Why our own loop rather than trl's CPOTrainer.** trl 1.16 keeps CPO/SimPO in
``trl.experimental.cpo``; its tokenizer, collator and ``concatenated_forward`` are built around
exactly one rejected response, and it encodes the prompt once per response. Taking V rejects would
mean overriding nearly every method but the ``Trainer`` shell, and the prompt (the long context,
which is almost all the tokens) would still be encoded 1 + V times. The loop below is small, computes
log-probabilities only at the judgement tokens, in chunks (``longctx.chunked_token_logps``), and
encodes the shared prompt once per item.

:func:`train_alignment` is the one entry point that loads a model, adds LoRA, trains, saves and
returns the result; the CLI (``python -m longrm_utils train align-gen|align-scalar``) calls it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
import types
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..cli import ArgumentParser, add_flag
from .. import constants, models
from ..contracts import PrefItem, read_pref_jsonl, write_pref_jsonl
from ..io import append_jsonl, write_json, write_text
from ..runtime import launched_world_size, pick_device, progress_enabled
from . import launch as launching, longctx, resume as resuming
from .losses import bradley_terry_loss, completion_logps, multi_reject_simpo_loss, scalar_scores
from .official import load_official_simpo, looks_official
from .options import add_dataclass_args
from .tracking import DEFAULT_REPORT_TO, StepWriter, beside

KINDS = ("generative", "scalar")
METHODS = ("lora", "qlora", "full")
PAPER_SETTINGS = {"main_text": dict(constants.ALIGN_MAIN_TEXT), "table5": dict(constants.ALIGN_TABLE5)}
"""The paper's two Stage II settings (they disagree; see the module docstring)."""


@dataclass
class AlignConfig:
    """Stage II hyperparameters. Every field is a documented CLI flag (``--beta`` …)."""

    beta: float = constants.ALIGN_TABLE5["beta"]
    """β: scale of the length-normalised log-probability reward (generative only)."""
    gamma: float = constants.ALIGN_TABLE5["gamma"]
    """γ: target reward margin (generative only)."""
    V: int = constants.ALIGN_TABLE5["V"]
    """Rejects used per item (the first V of each item's list; an item with fewer uses what it has)."""
    nll_weight: float = constants.ALIGN_TABLE5["nll_weight"]
    """Weight of the length-normalised NLL on the chosen judgement (generative only)."""
    learning_rate: float = 5e-4
    max_steps: int = 20
    items_per_step: int = 4
    """Items (each 1 + V responses) per optimizer step, accumulated one item at a time."""
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 8192
    """Longest prompt + response in tokens; longer items are skipped and counted, never truncated."""
    shared_prefix: bool = True
    """Encode the prompt once per item (False: once per response, as trl does)."""
    report_to: str = DEFAULT_REPORT_TO
    """Tracking: ``tensorboard`` writes each step's scalars to ``RUN/tensorboard/<model>``; ``none`` writes nothing."""
    mixed_precision: str = "auto"
    """``bf16`` (autocast; a full fine-tune then keeps fp32 master weights) or ``no``. ``auto``: the launch
    config's setting under ``accelerate launch``, else bf16 on a GPU that has it and none on CPU."""
    save_steps: int = 0
    """Save a resumable checkpoint every N optimizer steps (0: none) in the model's checkpoint folder."""
    seed: int = 0

    @classmethod
    def paper(cls, which: str, **overrides: Any) -> "AlignConfig":
        """The paper's §4.3 (``main_text``) or Table 5 (``table5``) setting, with overrides."""
        if which not in PAPER_SETTINGS:
            raise ValueError(f"unknown paper setting {which!r}; have {sorted(PAPER_SETTINGS)}")
        return cls(**{**PAPER_SETTINGS[which], **overrides})


# --- encoding: one prompt, many responses ----------------------------------------------------------

def encode_prompt_responses(tokenizer, prompt_messages: Sequence[dict], responses: Sequence[str], spec=None,
                            *, where: str = "") -> tuple[list[int], list[list[int]]]:
    """Token ids of the prompt (with the assistant header) and of each response turn.

    Each response id list is the tail of the full conversation ``prompt + assistant turn`` under
    the model's own chat template (so it includes the end-of-turn tokens). Raises when the template
    does not render the prompt as a prefix of the full conversation, naming ``where``.
    """
    prompt = models.chat_ids(tokenizer, prompt_messages, spec, add_generation_prompt=True)
    outs = []
    for k, r in enumerate(responses):
        full = models.chat_ids(tokenizer, list(prompt_messages) + [{"role": "assistant", "content": r}], spec,
                               add_generation_prompt=False)
        if full[:len(prompt)] != prompt or len(full) <= len(prompt):
            raise ValueError(f"{where or 'item'} response {k}: the chat template does not render the prompt as a "
                             "prefix of prompt+response, so a shared prefix is impossible")
        outs.append(full[len(prompt):])
    return prompt, outs


@dataclass
class Encoded:
    id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    reject_ids: list[list[int]]

    @property
    def longest(self) -> int:
        return len(self.prompt_ids) + max(len(self.chosen_ids), *(len(r) for r in self.reject_ids))


def encode_items(tokenizer, items: Sequence[PrefItem], *, V: int, max_length: int, spec=None) -> tuple[list[Encoded], dict]:
    """Tokenize items (first V rejects each); items longer than ``max_length`` are skipped and counted."""
    enc, skipped = [], []
    for it in items:
        prompt, resp = encode_prompt_responses(tokenizer, it.prompt, [it.chosen] + it.rejects[:V], spec,
                                               where=f"item {it.id!r}")
        e = Encoded(it.id, prompt, resp[0], resp[1:])
        if e.longest > max_length:
            skipped.append(it.id)
            continue
        enc.append(e)
    return enc, {"items": len(items), "kept": len(enc), "skipped_too_long": len(skipped),
                 "skipped_ids": skipped[:20], "max_length": max_length}


# --- the training loop ---------------------------------------------------------------------------

def item_loss(model, e: Encoded, cfg: AlignConfig, kind: str, pad_id: int):
    """``(loss, margin, chosen beats every reject)`` of one item under the objective of ``kind``."""
    if kind == "generative":
        lps, lens = completion_logps(model, e.prompt_ids, [e.chosen_ids] + e.reject_ids, pad_id,
                                     shared_prefix=cfg.shared_prefix)
        losses, cr, rr = multi_reject_simpo_loss(lps[:1], lens[:1], lps[1:].unsqueeze(0), lens[1:].unsqueeze(0),
                                                 beta=cfg.beta, gamma=cfg.gamma, nll_weight=cfg.nll_weight)
        lps, lens, cr, rr = lps.detach(), lens.detach(), cr.detach(), rr.detach()
        return losses[0], float(cr[0] - rr[0]), bool(cr[0] > (cfg.beta * lps[1:] / lens[1:]).max())
    s = scalar_scores(model, e.prompt_ids, [e.chosen_ids] + e.reject_ids, pad_id, shared_prefix=cfg.shared_prefix)
    losses, margins = bradley_terry_loss(s[:1], s[1:].unsqueeze(0))
    s = s.detach()
    return losses[0], float(margins[0].detach()), bool(s[0] > s[1:].max())


FSDP_ITEM_METHOD = "longrm_item_loss"
"""Under FSDP2 an item's forward runs as this method of the root module, registered with
``register_fsdp_forward_method``: the losses call the backbone and the head apart, and FSDP2 gathers
the root's own weights (the head, the score layer) and sets its units up only in a root forward."""


def forward_item(model, e: Encoded, cfg: AlignConfig, kind: str, pad_id: int):
    """:func:`item_loss` through the FSDP2 root method when the model is sharded, directly otherwise."""
    method = getattr(model, FSDP_ITEM_METHOD, None)
    return method(e, cfg, kind, pad_id) if method is not None else item_loss(model, e, cfg, kind, pad_id)


def _cycle(n: int, seed: int) -> Iterator[int]:
    """Item indices in a seeded order, reshuffled each time all ``n`` have been visited."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        while order:
            yield order.pop()


class _Run:
    """What one optimizer step needs: the Accelerator, the model to call and its trainable parameters.

    Three set-ups, chosen by the launch (``configs/accelerate/``):

    * one process: plain PyTorch under the Accelerator's autocast;
    * several processes without sharding (DDP configs, 2 CPU processes in the tests): each rank scores
      its share of the step's items and the trainable gradients are summed across ranks by hand before
      the step. The shared-prefix forward calls the backbone twice and the LM head apart, which a DDP
      wrapper (one ``forward`` per backward) does not allow; the sum is the one-process gradient (with
      LoRA dropout, each rank draws its own masks);
    * FSDP2 (``fsdp2.yaml``): ``accelerator.prepare`` shards weights, gradients and Adam states; each
      item's forward is a registered root method (:data:`FSDP_ITEM_METHOD`), and FSDP averages the
      gradients (reducing in bf16 under bf16 mixed precision), hence the ``world`` factor. This branch
      has not run on GPUs yet: accelerate turns FSDP off on CPU.
    """

    def __init__(self, acc, model, params, opt, sched, sharded: bool):
        self.acc, self.model, self.params, self.opt, self.sched, self.sharded = acc, model, params, opt, sched, sharded
        self.world, self.rank = acc.num_processes, acc.process_index


def make_accelerator(cfg: AlignConfig, device: str):
    """The Accelerator of a Stage II run (create it *before* loading the model: FSDP reads its state)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = os.environ.get("ACCELERATE_MIXED_PRECISION") or (
            "bf16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "no")
    if mp not in ("no", "bf16"):
        raise ValueError(f"mixed_precision={mp!r}: Stage II runs 'bf16' or 'no' (fp16 would need a loss scaler)")
    shared = AcceleratorState._shared_state
    if launched_world_size() == 1 and shared and shared.get("_mixed_precision") not in (None, mp):
        AcceleratorState._reset_state()  # one process: an earlier trainer's precision (trl's) may differ
    acc = Accelerator(mixed_precision=mp, cpu=not device.startswith("cuda"))
    if acc.distributed_type == DistributedType.DEEPSPEED:
        raise ValueError("Stage II's loop runs one process, DDP or FSDP2 launches, not DeepSpeed: launch it with "
                         "configs/accelerate/fsdp2.yaml (Stage I's trl trainer takes the DeepSpeed configs)")
    if acc.distributed_type == DistributedType.FSDP and (not acc.is_fsdp2 or acc.parallelism_config is not None):
        raise ValueError("Stage II shards with FSDP2 only, without context or tensor parallelism: launch it with "
                         "configs/accelerate/fsdp2.yaml")
    if acc.gradient_accumulation_steps != 1:
        raise ValueError("Stage II accumulates items_per_step items itself; remove gradient_accumulation_steps from "
                         "the accelerate config")
    return acc


def _sum_grads(params) -> None:
    """Sum the trainable gradients over the ranks (one flat all-reduce)."""
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    off = 0
    for p, g in zip(params, grads):
        p.grad = flat[off:off + g.numel()].view_as(p).to(p.dtype)
        off += g.numel()


def _step(run: _Run, enc: list[Encoded], picks: Iterator[int], cfg: AlignConfig, kind: str, pad_id: int) -> dict:
    """One optimizer step over ``cfg.items_per_step`` items, split over the ranks, accumulated one item at a time."""
    import torch

    t0 = time.perf_counter()
    run.opt.zero_grad(set_to_none=True)
    mine = [next(picks) for _ in range(cfg.items_per_step)][run.rank::run.world]
    scale = (run.world if run.sharded else 1) / cfg.items_per_step
    stats = torch.zeros(3, dtype=torch.float64, device=run.acc.device)  # loss, margin, wins
    for i in mine:
        with run.acc.autocast():
            loss, m, w = forward_item(run.model, enc[i], cfg, kind, pad_id)
        run.acc.backward(loss * scale)
        stats += torch.tensor([float(loss.detach()), m, float(w)], dtype=torch.float64, device=stats.device)
    if run.world > 1:
        if not run.sharded:
            _sum_grads(run.params)
        stats = run.acc.reduce(stats, reduction="sum")
    gn = run.acc.clip_grad_norm_(run.params, cfg.max_grad_norm)
    run.opt.step()
    run.sched.step()
    n = cfg.items_per_step
    return {"loss": round(float(stats[0]) / n, 5), "margin": round(float(stats[1]) / n, 5),
            "win_rate": float(stats[2]) / n, "grad_norm": round(float(gn), 4),
            "lr": run.sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 3)}


def _ranks_agree(run: _Run):
    """Whether every rank holds the same trainable weights (None for one process or a sharded model)."""
    import torch

    if run.world == 1 or run.sharded:
        return None
    sums = torch.stack([p.detach().double().sum() for p in run.params]).to(run.acc.device)
    every = run.acc.gather(sums.unsqueeze(0))
    return bool((every == every[0]).all())


def train_loop(loaded, items: Sequence[PrefItem], cfg: AlignConfig, *, kind: str, out_dir: str | os.PathLike | None = None,
               progress: bool = True, accelerator=None, resume: bool = True) -> dict:
    """Align ``loaded.model`` (already LoRA-wrapped or full) on preference items; returns a summary.

    One optimizer step takes ``cfg.items_per_step`` items, split over the processes of a launch;
    each item is one shared-prefix forward (prompt once, 1 + V responses). Items are visited in a
    seeded order, cycling, the same for any number of processes. Under ``accelerator``
    (:func:`make_accelerator`; one is made when None) the step runs with its mixed precision, and
    FSDP2 shards the model. The log (loss, margin, whether the chosen beat every reject, seconds)
    goes to ``out_dir/train_log.jsonl``; with ``cfg.save_steps`` and ``out_dir``, resumable
    checkpoints go beside it (:mod:`.resume`), and ``resume`` continues from the newest one.
    """
    import torch
    from accelerate.utils import DistributedType
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    if kind not in KINDS:
        raise ValueError(f"kind must be 'generative' or 'scalar', got {kind!r}")
    acc = accelerator or make_accelerator(cfg, loaded.device)
    if cfg.items_per_step % acc.num_processes:
        raise ValueError(f"items_per_step={cfg.items_per_step} must be a multiple of the {acc.num_processes} processes")
    enc, counts = encode_items(loaded.tokenizer, items, V=cfg.V, max_length=cfg.max_length, spec=loaded.spec)
    if not enc:
        raise ValueError(f"no training items left: {counts['skipped_too_long']} of {counts['items']} exceed "
                         f"max_length={cfg.max_length}")
    model = loaded.model
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (add LoRA with models.add_lora, or unfreeze)")
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW([p for _, p in named], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = get_scheduler("linear", opt, num_warmup_steps=int(math.ceil(cfg.warmup_ratio * cfg.max_steps)),
                          num_training_steps=cfg.max_steps)
    sharded = acc.distributed_type == DistributedType.FSDP
    if sharded:
        from torch.distributed.fsdp import register_fsdp_forward_method

        model, opt = acc.prepare(model, opt)
        acc.register_for_checkpointing(sched)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        setattr(model, FSDP_ITEM_METHOD, types.MethodType(item_loss, model))
        register_fsdp_forward_method(model, FSDP_ITEM_METHOD)
    else:
        if acc.num_processes > 1:  # every rank starts from rank 0's weights
            for _, p in named:
                torch.distributed.broadcast(p.data, 0)
        acc.register_for_checkpointing(resuming.TrainState(named, opt, sched))
    run = _Run(acc, model, [p for _, p in named], opt, sched, sharded)
    picks = _cycle(len(enc), cfg.seed)
    identity = resuming.run_identity(asdict(cfg), kind, [e.id for e in enc])
    done, log = resuming.load_newest(acc, out_dir, identity, resume=resume) if out_dir is not None else (0, [])
    for _ in range(done * cfg.items_per_step):
        next(picks)
    main = acc.is_main_process
    log_path = Path(out_dir) / "train_log.jsonl" if out_dir is not None and main else None
    if log_path is not None:
        write_text(log_path, "".join(json.dumps(r) + "\n" for r in log))
    writer = StepWriter(cfg.report_to if main else "none", out_dir, prefix=f"align-{kind}")
    bar = tqdm(range(done, cfg.max_steps), desc=f"align-{kind}", initial=done, total=cfg.max_steps,
               disable=not (main and progress_enabled(progress)))
    for step in bar:
        row = {"step": step + 1, **_step(run, enc, picks, cfg, kind, loaded.tokenizer.pad_token_id)}
        log.append(row)
        if log_path is not None:
            append_jsonl(row, log_path)
        writer.log(step + 1, row)
        bar.set_postfix(loss=row["loss"], win=row["win_rate"])
        if out_dir is not None and cfg.save_steps and (step + 1) % cfg.save_steps == 0:
            resuming.save(acc, out_dir, step + 1, log, identity)
    writer.close()
    model.eval()
    return {"kind": kind, "config": asdict(cfg), "data": counts, "log": log,
            "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"],
            "seconds": round(sum(r["seconds"] for r in log), 2), "resumed_from_step": done,
            "world_size": run.world, "distributed_type": str(acc.distributed_type).split(".")[-1],
            "mixed_precision": acc.mixed_precision, "ranks_agree": _ranks_agree(run)}


def pair_accuracy(loaded, items: Sequence[PrefItem], *, kind: str, cfg: AlignConfig | None = None) -> dict:
    """Share of items whose chosen response beats every reject (scalar score or β-normalised log-prob)."""
    import torch

    cfg = cfg or AlignConfig()
    enc, counts = encode_items(loaded.tokenizer, items, V=cfg.V, max_length=cfg.max_length, spec=loaded.spec)
    wins = []
    was_training = loaded.model.training
    loaded.model.eval()  # no dropout while measuring
    with torch.no_grad():
        for e in enc:
            wins.append(forward_item(loaded.model, e, cfg, kind, loaded.tokenizer.pad_token_id)[2])
    loaded.model.train(was_training)
    return {"accuracy": sum(wins) / len(wins) if wins else float("nan"), "n": len(wins), **counts}


# --- load, add LoRA, train, save -----------------------------------------------------------------

@dataclass
class AlignResult:
    out_dir: Path
    loaded: Any
    """The aligned :class:`~longrm_utils.models.Loaded` (eval mode), ready for ``run_judge(loaded=...)``."""
    summary: dict
    """:func:`train_loop`'s summary (``log``, ``first_loss``, ``last_loss``, ``seconds``, ``data``, ``config``)."""
    before: dict | None = None
    """:func:`pair_accuracy` on ``eval_items`` before training (None without ``eval_items``)."""
    after: dict | None = None
    """The same after training."""


def train_alignment(model: str, items: Sequence[PrefItem], cfg: AlignConfig, out_dir: str | os.PathLike, *,
                    kind: str, method: str = "lora", lora_r: int = 16, quantization: str | None = None,
                    device: str = "auto", attn: str = "auto", gradient_checkpointing: bool = False,
                    offload_checkpoints: bool = False, mlp_tile_tokens: int = 0, lora_dropout: float = 0.05,
                    eval_items: Sequence[PrefItem] | None = None, progress: bool = True, resume: bool = True,
                    launch: str | None = None) -> AlignResult:
    """Load ``model``, add LoRA, align it on ``items``, save it to ``out_dir`` and return the result.

    ``model`` is a preset, a model folder or a saved course model (whose LoRA adapter loads on its
    base and keeps training; its folder is recorded as ``init`` in ``longrm.json``). ``method``:
    ``lora``, ``qlora`` (4-bit base + LoRA) or ``full`` (fp32 master weights under bf16 autocast);
    ``quantization`` loads the base quantized for any method (``qlora`` implies ``4bit``).
    ``eval_items`` are scored with :func:`pair_accuracy` before and after training. The memory
    switches (checkpointing, its ``offload_checkpoints`` to host RAM, ``mlp_tile_tokens``) are
    :mod:`.longctx`'s. ``resume`` continues from the newest checkpoint (``cfg.save_steps``).

    ``launch``: an accelerate config (``configs/accelerate/<x>.yaml``). The same call then runs as
    ``accelerate launch --config_file <x> -m longrm_utils train launched …`` in a subprocess whose
    output streams here, and the saved model is loaded back (:mod:`.launch`).

    ``out_dir`` receives the adapter or weights, ``longrm.json`` (method ``stage2-<kind>-<method>``,
    the config as ``stage2``), ``train_log.jsonl`` and ``train_summary.json``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'generative' or 'scalar', got {kind!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    args = dict(kind=kind, method=method, lora_r=lora_r, quantization=quantization, device=device, attn=attn,
                gradient_checkpointing=gradient_checkpointing, offload_checkpoints=offload_checkpoints,
                mlp_tile_tokens=mlp_tile_tokens, lora_dropout=lora_dropout, progress=progress, resume=resume)
    if launch and launched_world_size() == 1:
        return _launch_alignment(model, items, cfg, Path(out_dir), eval_items, args, launch)
    import torch

    device = pick_device(device)
    acc = make_accelerator(cfg, device)
    dist_at_load = torch.distributed.is_available() and torch.distributed.is_initialized()
    full_fp32 = method == "full" and acc.mixed_precision == "bf16"
    loaded = models.load(model, kind=models.SCALAR if kind == "scalar" else models.GENERATIVE, device=device,
                         attn=attn, quantization=quantization or ("4bit" if method == "qlora" else None),
                         seed=cfg.seed, trainable=True, max_context=cfg.max_length,
                         dtype="float32" if full_fp32 else None)
    if method in ("lora", "qlora") and not hasattr(loaded.model, "peft_config"):
        loaded = models.add_lora(loaded, r=lora_r, dropout=lora_dropout, gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        longctx.enable_checkpointing(loaded.model, offload=offload_checkpoints)
    longctx.tile_mlp(loaded.model, mlp_tile_tokens)
    # Under FSDP the model is whole (or partly on the meta device) until train_loop shards it: no "before".
    fsdp = str(acc.distributed_type).endswith("FSDP")
    before = pair_accuracy(loaded, eval_items, kind=kind, cfg=cfg) if eval_items and not fsdp else None
    summary = train_loop(loaded, items, cfg, kind=kind, out_dir=out_dir, progress=progress, accelerator=acc,
                         resume=resume)
    after = pair_accuracy(loaded, eval_items, kind=kind, cfg=cfg) if eval_items else None
    summary.update(before=before, after=after, distributed_before_load=dist_at_load)
    init = {"init": str(model)} if models.read_meta(model) else {}
    state = acc.get_state_dict(loaded.model) if summary["distributed_type"] == "FSDP" else None
    if acc.is_main_process:
        models.save_model(loaded, out_dir, state_dict=state, method=f"stage2-{kind}-{method}", stage2=asdict(cfg),
                          **init)
        write_json(Path(out_dir) / "train_summary.json", {k: v for k, v in summary.items() if k != "log"})
    acc.wait_for_everyone()
    return AlignResult(Path(out_dir), loaded, summary, before, after)


def _launch_alignment(model: str, items, cfg: AlignConfig, out_dir: Path, eval_items, args: dict,
                      config: str) -> AlignResult:
    """:func:`train_alignment` through ``accelerate launch``: write the items and the call, launch, load back."""
    spec_dir = beside(out_dir, "launch")
    write_pref_jsonl(items, spec_dir / "items.jsonl")
    if eval_items:
        write_pref_jsonl(eval_items, spec_dir / "eval_items.jsonl")
    spec = {"verb": "align", "model": launching.absolute(model), "out_dir": str(out_dir.resolve()),
            "cfg": asdict(cfg), "args": args,
            "items": "items.jsonl", "eval_items": "eval_items.jsonl" if eval_items else None}
    launching.accelerate_train(config, spec, spec_dir)
    summary = json.loads((out_dir / "train_summary.json").read_text())
    summary["log"] = [json.loads(x) for x in (out_dir / "train_log.jsonl").read_text().splitlines() if x.strip()]
    quant = args["quantization"] or ("4bit" if args["method"] == "qlora" else None)
    loaded = models.load(str(out_dir), device=args["device"], attn=args["attn"], quantization=quant,
                         max_context=cfg.max_length)
    return AlignResult(out_dir, loaded, summary, summary.get("before"), summary.get("after"))


def launched(spec: dict, folder: Path) -> None:
    """The launched side of :func:`_launch_alignment` (``train launched``): the same call, on every rank."""
    eval_file = spec["eval_items"] and folder / spec["eval_items"]
    train_alignment(spec["model"], read_pref_jsonl(folder / spec["items"]), AlignConfig(**spec["cfg"]),
                    spec["out_dir"], eval_items=read_pref_jsonl(eval_file) if eval_file else None, **spec["args"])


# --- CLI: `python -m longrm_utils train align-gen|align-scalar ...` -------------------------------

def _parser(prog: str, kind: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=(
        "Stage II alignment of a " + ("generative judge with the multi-reject SimPO loss" if kind == "generative"
                                      else "scalar RM with Bradley-Terry against the mean of the rejects")))
    p.add_argument("--model", required=True, help="preset, model folder, or a saved course model (LoRA adapters load on their base)")
    p.add_argument("--data", required=True, help="preference JSONL {id, prompt, chosen, rejects}, or an official LongRM "
                   "SimPO file/folder (fields chat_template, chosen, rejects, scores, conf, prompt_ctx_length)")
    p.add_argument("--out", required=True, help="output model folder (adapter or weights + longrm.json + train_log.jsonl)")
    p.add_argument("--paper", choices=sorted(PAPER_SETTINGS), default=None,
                   help="start from the paper's §4.3 (main_text) or Table 5 (table5) hyperparameters")
    p.add_argument("--method", choices=METHODS, default="lora")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--attn", default="auto")
    add_flag(p, "gradient-checkpointing", default=False, help="recompute activations in the backward pass")
    add_flag(p, "offload-checkpoints", default=False, help="keep checkpointed layer inputs in pinned host RAM (GPU)")
    p.add_argument("--mlp-tile-tokens", type=int, default=0, help="run each MLP over token tiles of this size (0: off)")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="dropout of a fresh LoRA adapter (0 with tiling)")
    add_flag(p, "resume", default=True, help="continue from the newest checkpoint of --out (see --save-steps)")
    add_dataclass_args(p, AlignConfig)
    return p


def _cli(argv: list[str], kind: str) -> int:
    """Parse the options, read the preferences, :func:`train_alignment`."""
    a = _parser(f"longrm_utils train align-{'gen' if kind == 'generative' else 'scalar'}", kind).parse_args(argv)
    base = AlignConfig.paper(a.paper) if a.paper else AlignConfig()
    over = {f.name: getattr(a, f.name) for f in fields(AlignConfig) if getattr(a, f.name) is not None}
    cfg = AlignConfig(**{**asdict(base), **over})
    items = load_official_simpo(a.data, splits=["train"])["items"] if looks_official(a.data) else read_pref_jsonl(a.data)
    res = train_alignment(a.model, items, cfg, a.out, kind=kind, method=a.method, lora_r=a.lora_r, device=a.device,
                          attn=a.attn, gradient_checkpointing=a.gradient_checkpointing,
                          offload_checkpoints=a.offload_checkpoints, mlp_tile_tokens=a.mlp_tile_tokens,
                          lora_dropout=a.lora_dropout, resume=a.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: res.summary[k] for k in ("first_loss", "last_loss", "seconds", "data")}, indent=2))
    return 0


def cli_generative(argv: list[str]) -> int:
    """``train align-gen``: the multi-reject SimPO alignment of a generative judge."""
    return _cli(argv, "generative")


def cli_scalar(argv: list[str]) -> int:
    """``train align-scalar``: Bradley-Terry (mean of V rejects) alignment of a scalar RM."""
    return _cli(argv, "scalar")
