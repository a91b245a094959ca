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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..cli import ArgumentParser, add_flag
from .. import constants, models
from ..contracts import PrefItem, read_pref_jsonl
from ..io import append_jsonl, write_json, write_text
from ..runtime import progress_enabled
from . import longctx
from .losses import bradley_terry_loss, completion_logps, multi_reject_simpo_loss, scalar_scores
from .official import load_official_simpo, looks_official
from .options import add_dataclass_args
from .tracking import DEFAULT_REPORT_TO, StepWriter

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


def _cycle(n: int, seed: int) -> Iterator[int]:
    """Item indices in a seeded order, reshuffled each time all ``n`` have been visited."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        while order:
            yield order.pop()


def _step(model, enc: list[Encoded], picks: Iterator[int], params, opt, sched, cfg: AlignConfig, kind: str,
          pad_id: int) -> dict:
    """One optimizer step over ``cfg.items_per_step`` items, accumulated one item at a time."""
    import torch

    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    tot, margins, wins = 0.0, [], []
    for _ in range(cfg.items_per_step):
        loss, m, w = item_loss(model, enc[next(picks)], cfg, kind, pad_id)
        (loss / cfg.items_per_step).backward()
        tot += float(loss.detach()) / cfg.items_per_step
        margins.append(m)
        wins.append(w)
    gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    opt.step()
    sched.step()
    return {"loss": round(tot, 5), "margin": round(sum(margins) / len(margins), 5),
            "win_rate": sum(wins) / len(wins), "grad_norm": round(float(gn), 4),
            "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 3)}


def train_loop(loaded, items: Sequence[PrefItem], cfg: AlignConfig, *, kind: str, out_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict:
    """Align ``loaded.model`` (already LoRA-wrapped or full) on preference items; returns a summary.

    One optimizer step accumulates ``cfg.items_per_step`` items; each item is one shared-prefix
    forward (prompt once, 1 + V responses). Items are visited in a seeded order, cycling. The log
    (loss, margin, whether the chosen beat every reject, seconds) goes to ``out_dir/train_log.jsonl``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    if kind not in KINDS:
        raise ValueError(f"kind must be 'generative' or 'scalar', got {kind!r}")
    enc, counts = encode_items(loaded.tokenizer, items, V=cfg.V, max_length=cfg.max_length, spec=loaded.spec)
    if not enc:
        raise ValueError(f"no training items left: {counts['skipped_too_long']} of {counts['items']} exceed "
                         f"max_length={cfg.max_length}")
    model = loaded.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (add LoRA with models.add_lora, or unfreeze)")
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = get_scheduler("linear", opt, num_warmup_steps=int(math.ceil(cfg.warmup_ratio * cfg.max_steps)),
                          num_training_steps=cfg.max_steps)
    picks = _cycle(len(enc), cfg.seed)
    log_path = Path(out_dir) / "train_log.jsonl" if out_dir is not None else None
    if log_path is not None:
        write_text(log_path, "")
    log = []
    writer = StepWriter(cfg.report_to, out_dir, prefix=f"align-{kind}")
    bar = tqdm(range(cfg.max_steps), desc=f"align-{kind}", disable=not progress_enabled(progress))
    for step in bar:
        row = {"step": step + 1, **_step(model, enc, picks, params, opt, sched, cfg, kind, loaded.tokenizer.pad_token_id)}
        log.append(row)
        if log_path is not None:
            append_jsonl(row, log_path)
        writer.log(step + 1, row)
        bar.set_postfix(loss=row["loss"], win=row["win_rate"])
    writer.close()
    model.eval()
    return {"kind": kind, "config": asdict(cfg), "data": counts, "log": log,
            "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"],
            "seconds": round(sum(r["seconds"] for r in log), 2)}


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
            wins.append(item_loss(loaded.model, e, cfg, kind, loaded.tokenizer.pad_token_id)[2])
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
                    eval_items: Sequence[PrefItem] | None = None, progress: bool = True) -> AlignResult:
    """Load ``model``, add LoRA, align it on ``items``, save it to ``out_dir`` and return the result.

    ``model`` is a preset, a model folder or a saved course model (whose LoRA adapter loads on its
    base and keeps training; its folder is recorded as ``init`` in ``longrm.json``). ``method``:
    ``lora``, ``qlora`` (4-bit base + LoRA) or ``full``; ``quantization`` loads the base quantized
    for any method (``qlora`` implies ``4bit``). ``eval_items`` are scored with
    :func:`pair_accuracy` before and after training. The memory switches (checkpointing, its
    ``offload_checkpoints`` to host RAM, ``mlp_tile_tokens``) are :mod:`.longctx`'s. ``out_dir``
    receives the adapter or weights,
    ``longrm.json`` (method ``stage2-<kind>-<method>``, the config as ``stage2``),
    ``train_log.jsonl`` and ``train_summary.json``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'generative' or 'scalar', got {kind!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    loaded = models.load(model, kind=models.SCALAR if kind == "scalar" else models.GENERATIVE, device=device,
                         attn=attn, quantization=quantization or ("4bit" if method == "qlora" else None),
                         seed=cfg.seed, trainable=True, max_context=cfg.max_length)
    if method in ("lora", "qlora") and not hasattr(loaded.model, "peft_config"):
        loaded = models.add_lora(loaded, r=lora_r, dropout=lora_dropout, gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        longctx.enable_checkpointing(loaded.model, offload=offload_checkpoints)
    longctx.tile_mlp(loaded.model, mlp_tile_tokens)
    before = pair_accuracy(loaded, eval_items, kind=kind, cfg=cfg) if eval_items else None
    summary = train_loop(loaded, items, cfg, kind=kind, out_dir=out_dir, progress=progress)
    after = pair_accuracy(loaded, eval_items, kind=kind, cfg=cfg) if eval_items else None
    init = {"init": str(model)} if (Path(model) / models.META_FILE).exists() else {}
    models.save_model(loaded, out_dir, method=f"stage2-{kind}-{method}", stage2=asdict(cfg), **init)
    write_json(Path(out_dir) / "train_summary.json", {k: v for k, v in summary.items() if k != "log"})
    return AlignResult(Path(out_dir), loaded, summary, before, after)


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
                          lora_dropout=a.lora_dropout)
    print(json.dumps({k: res.summary[k] for k in ("first_loss", "last_loss", "seconds", "data")}, indent=2))
    return 0


def cli_generative(argv: list[str]) -> int:
    """``train align-gen``: the multi-reject SimPO alignment of a generative judge."""
    return _cli(argv, "generative")


def cli_scalar(argv: list[str]) -> int:
    """``train align-scalar``: Bradley-Terry (mean of V rejects) alignment of a scalar RM."""
    return _cli(argv, "scalar")
