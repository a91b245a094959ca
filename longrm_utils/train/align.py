"""Stage II: fine-grained alignment of long-context reward models.

Two objectives, both over *one prompt (with its long context) and 1 + V responses*:

* **Generative RMs** (a judge that writes its judgement) use the paper's multi-reject,
  reference-free, length-normalised loss (LongRM §4.3, LOGO-style; SimPO with V rejects)::

      L = -log σ( β/|J_w|·log π(J_w) − (β/V)·Σ_j 1/|J_l^j|·log π(J_l^j) − γ )  +  λ_nll · NLL(J_w)/|J_w|

  The paper states two settings that disagree (``constants.ALIGN_MAIN_TEXT``: V=2, γ=2.5, β=0.5,
  no NLL; ``constants.ALIGN_TABLE5``: V=2, γ=0.5, β=2.5, NLL weight 0.05). Both are available as
  ``AlignConfig.paper("main_text" | "table5")``. With V = 1 and λ_nll = 0 the loss is exactly
  trl's SimPO loss (``CPOTrainer.cpo_loss`` with ``loss_type="simpo"``); a test checks it.

* **Scalar RMs** (a sequence-classification head on the last token) use Bradley-Terry against the
  mean of the rejects: ``L = -log σ( r_c − mean_j r_rej_j )``. trl's ``RewardTrainer`` is the
  single-reject baseline (:func:`train_reward_baseline`).

**Why our own loop rather than trl's CPOTrainer.** trl 1.16 keeps CPO/SimPO in
``trl.experimental.cpo``; its tokenizer, collator and ``concatenated_forward`` are built around
exactly one rejected response, and it encodes the prompt once per response. Taking V rejects would
mean overriding nearly every method but the ``Trainer`` shell, and the prompt (the long context,
which is almost all the tokens) would still be encoded 1 + V times. The loop below is small, uses
trl's ``selective_log_softmax`` for the log-probabilities, and encodes the shared prompt **once**
per item: the prompt's KV cache is computed with gradients, repeated 1 + V times along the batch
(``DynamicCache.batch_repeat_interleave``) and every response is run from it as a right-padded
batch with explicit positions. :func:`completion_logps` and :func:`scalar_scores` take
``shared_prefix=False`` to encode each sequence separately instead; tests check both give the same
numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from .. import constants

PAPER_SETTINGS = {"main_text": dict(constants.ALIGN_MAIN_TEXT), "table5": dict(constants.ALIGN_TABLE5)}
"""The paper's two Stage II settings (they disagree; see the module docstring)."""


# ==================================================================================================
# Losses: pure functions of tensors
# ==================================================================================================

def multi_reject_simpo_loss(chosen_logps, chosen_lens, reject_logps, reject_lens, *, beta: float, gamma: float,
                            nll_weight: float = 0.0, reject_mask=None):
    """The Stage II generative loss for a batch of B items with up to V rejects each.

    Args:
        chosen_logps: ``[B]`` summed log-probabilities of the winning judgement ``log π(J_w)``.
        chosen_lens: ``[B]`` its token count ``|J_w|``.
        reject_logps: ``[B, V]`` summed log-probabilities of the rejects ``log π(J_l^j)``.
        reject_lens: ``[B, V]`` their token counts.
        beta, gamma: the paper's β (reward scale) and γ (target margin).
        nll_weight: weight of the length-normalised NLL on the winner (0 turns it off).
        reject_mask: optional ``[B, V]`` bool; items with fewer rejects average over the ones they
            have (``V`` in the formula is then that item's own count).

    Returns:
        ``(losses [B], chosen_rewards [B], reject_rewards [B])`` where the rewards are
        ``β·log π / |J|`` (the reject reward is the mean over the item's rejects).
    """
    import torch
    import torch.nn.functional as F

    if reject_logps.dim() != 2 or reject_logps.shape != reject_lens.shape:
        raise ValueError(f"reject_logps/reject_lens must both be [B, V]; got {tuple(reject_logps.shape)} "
                         f"and {tuple(reject_lens.shape)}")
    if reject_mask is None:
        reject_mask = torch.ones_like(reject_logps, dtype=torch.bool)
    n_rej = reject_mask.sum(-1)
    if bool((n_rej == 0).any()):
        raise ValueError("every item needs at least one reject (reject_mask has an all-False row)")
    if bool((chosen_lens <= 0).any()) or bool((reject_lens[reject_mask] <= 0).any()):
        raise ValueError("response lengths must be positive (an empty response has no log-probability)")
    chosen_rewards = beta * chosen_logps / chosen_lens
    per_rej = torch.where(reject_mask, beta * reject_logps / reject_lens.clamp(min=1), torch.zeros_like(reject_logps))
    reject_rewards = per_rej.sum(-1) / n_rej
    losses = -F.logsigmoid(chosen_rewards - reject_rewards - gamma)
    if nll_weight:
        losses = losses + nll_weight * (-chosen_logps / chosen_lens)
    return losses, chosen_rewards, reject_rewards


def bradley_terry_loss(chosen_scores, reject_scores, reject_mask=None):
    """Scalar-RM Stage II loss ``-log σ(r_c − mean_j r_rej_j)`` for ``[B]`` and ``[B, V]`` scores.

    Returns ``(losses [B], margins [B])``; with V = 1 it is trl's RewardTrainer loss.
    """
    import torch
    import torch.nn.functional as F

    if reject_scores.dim() != 2:
        raise ValueError(f"reject_scores must be [B, V]; got {tuple(reject_scores.shape)}")
    if reject_mask is None:
        reject_mask = torch.ones_like(reject_scores, dtype=torch.bool)
    n_rej = reject_mask.sum(-1)
    if bool((n_rej == 0).any()):
        raise ValueError("every item needs at least one reject (reject_mask has an all-False row)")
    mean_rej = torch.where(reject_mask, reject_scores, torch.zeros_like(reject_scores)).sum(-1) / n_rej
    margins = chosen_scores - mean_rej
    return -F.logsigmoid(margins), margins


# ==================================================================================================
# Encoding: one prompt, many responses
# ==================================================================================================

def encode_prompt_responses(tokenizer, prompt_messages: Sequence[dict], responses: Sequence[str], spec=None,
                            *, where: str = "") -> tuple[list[int], list[list[int]]]:
    """Token ids of the prompt (with the assistant header) and of each response turn.

    Each response id list is the tail of the full conversation ``prompt + assistant turn`` under
    the model's own chat template (so it includes the end-of-turn tokens). Raises when the template
    does not render the prompt as a prefix of the full conversation, naming ``where``.
    """
    from ..models import chat_ids

    prompt = chat_ids(tokenizer, prompt_messages, spec, add_generation_prompt=True)
    outs = []
    for k, r in enumerate(responses):
        full = chat_ids(tokenizer, list(prompt_messages) + [{"role": "assistant", "content": r}], spec,
                        add_generation_prompt=False)
        if full[:len(prompt)] != prompt or len(full) <= len(prompt):
            raise ValueError(f"{where or 'item'} response {k}: the chat template does not render the prompt as a "
                             "prefix of prompt+response, so a shared prefix is impossible")
        outs.append(full[len(prompt):])
    return prompt, outs


def _right_pad(seqs: Sequence[Sequence[int]], pad_id: int, device):
    import torch

    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(seqs), L), dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long, device=device)
        mask[i, :len(s)] = 1
    return ids, mask


def _unwrap(model):
    """The transformers model under a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _device(model):
    return next(model.parameters()).device


def prefix_expand_forward(model, prefix_ids: Sequence[int], continuations: Sequence[Sequence[int]], pad_id: int,
                          *, head: str):
    """Run N continuations from ONE encoding of a shared prefix (gradients flow through both).

    The prefix is encoded once with ``use_cache=True``; its KV cache is repeated N times along the
    batch and the continuations run as one right-padded batch with explicit ``position_ids`` and an
    attention mask over prefix + continuation. ``head="lm"`` returns logits ``[N, L, vocab]``;
    ``head="hidden"`` returns the backbone's last hidden states ``[N, L, d]``. Also returns the
    continuation mask ``[N, L]``.
    """
    import torch

    if not prefix_ids:
        raise ValueError("shared prefix is empty")
    if any(len(c) == 0 for c in continuations):
        raise ValueError("every continuation needs at least one token")
    base = _unwrap(model)
    if getattr(base, "is_gradient_checkpointing", False) and base.training and torch.is_grad_enabled():
        raise ValueError("shared-prefix training needs the prompt's KV cache, and with gradient checkpointing on "
                         "transformers' layers silently drop it (cache=None). Turn gradient checkpointing off, or "
                         "set shared_prefix=False (each response then re-encodes the prompt).")
    dev = _device(model)
    fwd = base if head == "lm" else getattr(base, base.base_model_prefix)
    P, N = len(prefix_ids), len(continuations)
    pre = fwd(torch.tensor([list(prefix_ids)], device=dev), use_cache=True)
    cache = pre.cache if getattr(pre, "cache", None) is not None else pre.past_key_values
    cache.batch_repeat_interleave(N)
    ids, mask = _right_pad(continuations, pad_id, dev)
    L = ids.shape[1]
    attn = torch.cat([torch.ones((N, P), dtype=torch.long, device=dev), mask], dim=1)
    pos = torch.arange(P, P + L, device=dev).unsqueeze(0).expand(N, L)
    out = fwd(ids, attention_mask=attn, position_ids=pos, cache=cache, use_cache=True)
    return (out.logits if head == "lm" else out.last_hidden_state), mask


def completion_logps(model, prompt_ids: Sequence[int], completions: Sequence[Sequence[int]], pad_id: int,
                     *, shared_prefix: bool = True):
    """Summed log-probabilities ``[N]`` and lengths ``[N]`` of each completion given the prompt."""
    import torch
    from trl.trainer.utils import selective_log_softmax

    dev = _device(model)
    lens = torch.tensor([len(c) for c in completions], device=dev, dtype=torch.float32)
    if shared_prefix:
        # The last prompt token goes with the continuations, so its logit predicts each first token.
        conts = [[prompt_ids[-1]] + list(c) for c in completions]
        logits, mask = prefix_expand_forward(model, prompt_ids[:-1] or prompt_ids[:1], conts, pad_id, head="lm") \
            if len(prompt_ids) > 1 else _full_logits(model, conts, pad_id)
        targets, tmask = _right_pad(conts, pad_id, dev)
        lp = selective_log_softmax(logits[:, :-1].float(), targets[:, 1:])
        return (lp * tmask[:, 1:]).sum(-1), lens
    seqs = [list(prompt_ids) + list(c) for c in completions]
    logits, _ = _full_logits(model, seqs, pad_id)
    targets, tmask = _right_pad(seqs, pad_id, dev)
    P = len(prompt_ids)
    tmask = tmask.clone()
    tmask[:, :P] = 0  # score only the completion tokens
    lp = selective_log_softmax(logits[:, :-1].float(), targets[:, 1:])
    return (lp * tmask[:, 1:]).sum(-1), lens


def _full_logits(model, seqs, pad_id):
    ids, mask = _right_pad(seqs, pad_id, _device(model))
    return _unwrap(model)(ids, attention_mask=mask).logits, mask


def scalar_scores(model, prompt_ids: Sequence[int], responses: Sequence[Sequence[int]], pad_id: int,
                  *, shared_prefix: bool = True):
    """Scalar-RM scores ``[N]`` of prompt + each response, read at the last real token.

    ``shared_prefix=False`` is the reference: each sequence through the model's own
    ``ForSequenceClassification`` forward (which pools the last non-pad token), batched with right
    padding. A response whose last token *is* the pad id would be pooled differently by that
    reference (SmolLM2's GGUF tokenizer pads with ``<|im_end|>``), so it is refused.
    """
    import torch

    for k, r in enumerate(responses):
        if r and r[-1] == pad_id:
            raise ValueError(f"response {k} ends with the pad token id {pad_id}; the model's own pooling would skip "
                             "it. Give the tokenizer a distinct pad token (see stack-notes, SmolLM2's pad token).")
    if shared_prefix:
        hidden, mask = prefix_expand_forward(model, prompt_ids, responses, pad_id, head="hidden")
        last = mask.sum(-1) - 1
        h = hidden[torch.arange(len(responses), device=hidden.device), last]
        return _unwrap(model).score(h).squeeze(-1).float()
    seqs = [list(prompt_ids) + list(r) for r in responses]
    ids, mask = _right_pad(seqs, pad_id, _device(model))
    return _unwrap(model)(ids, attention_mask=mask).logits.squeeze(-1).float()


# ==================================================================================================
# Preference items and configs
# ==================================================================================================

@dataclass
class PrefItem:
    """One Stage II training item: a prompt (messages, long context included), a chosen response and V rejects."""

    id: str
    prompt: list[dict]
    chosen: str
    rejects: list[str]
    meta: dict = field(default_factory=dict)


def pref_items_from_records(records: Sequence[dict], *, file: str = "<records>") -> list[PrefItem]:
    """Validate dicts ``{id, prompt: [{role, content}], chosen: str, rejects: [str], meta?}``.

    An error names the file, the record (line number and id) and the field.
    """
    out = []
    for i, r in enumerate(records):
        where = f"{file} record {i + 1} (id={r.get('id')!r})" if isinstance(r, dict) else f"{file} record {i + 1}"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected an object, got {type(r).__name__}")
        for key in ("prompt", "chosen", "rejects"):
            if key not in r:
                raise ValueError(f"{where}: missing field {key!r}")
        p = r["prompt"]
        if not (isinstance(p, list) and p and all(isinstance(m, dict) and "role" in m and "content" in m for m in p)):
            raise ValueError(f"{where}: field 'prompt' must be a non-empty list of {{role, content}} messages")
        if not isinstance(r["chosen"], str) or not r["chosen"]:
            raise ValueError(f"{where}: field 'chosen' must be a non-empty string")
        rej = r["rejects"]
        if not (isinstance(rej, list) and rej and all(isinstance(x, str) and x for x in rej)):
            raise ValueError(f"{where}: field 'rejects' must be a non-empty list of non-empty strings")
        out.append(PrefItem(str(r.get("id", i)), p, r["chosen"], list(rej), dict(r.get("meta") or {})))
    return out


def read_pref_jsonl(path: str | os.PathLike) -> list[PrefItem]:
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n}: not valid JSON ({e})") from None
    return pref_items_from_records(recs, file=str(path))


def write_pref_jsonl(items: Sequence[PrefItem], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for it in items:
            f.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
    return path


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
    seed: int = 0

    @classmethod
    def paper(cls, which: str, **overrides: Any) -> "AlignConfig":
        """The paper's §4.3 (``main_text``) or Table 5 (``table5``) setting, with overrides."""
        if which not in PAPER_SETTINGS:
            raise ValueError(f"unknown paper setting {which!r}; have {sorted(PAPER_SETTINGS)}")
        return cls(**{**PAPER_SETTINGS[which], **overrides})


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


# ==================================================================================================
# Training loops
# ==================================================================================================

def _item_loss(model, e: Encoded, cfg: AlignConfig, kind: str, pad_id: int):
    import torch

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


def train_loop(loaded, items: Sequence[PrefItem], cfg: AlignConfig, *, kind: str, out_dir: str | os.PathLike | None = None,
               progress: bool = True) -> dict:
    """Align ``loaded.model`` (already LoRA-wrapped or full) on preference items; returns a summary.

    One optimizer step accumulates ``cfg.items_per_step`` items; each item is one shared-prefix
    forward (prompt once, 1 + V responses). Items are visited in a seeded order, cycling. The log
    (loss, margin, whether the chosen beat every reject, seconds) goes to ``out_dir/train_log.jsonl``.
    """
    import torch
    from transformers import get_scheduler

    if kind not in ("generative", "scalar"):
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
    rng = random.Random(cfg.seed)
    order: list[int] = []
    pad_id = loaded.tokenizer.pad_token_id
    log = []
    log_f = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        log_f = open(Path(out_dir) / "train_log.jsonl", "w")
    try:
        from tqdm.auto import tqdm

        bar = tqdm(range(cfg.max_steps), desc=f"align-{kind}", disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            tot, margins, wins = 0.0, [], []
            for _ in range(cfg.items_per_step):
                if not order:
                    order = list(range(len(enc)))
                    rng.shuffle(order)
                e = enc[order.pop()]
                loss, m, w = _item_loss(model, e, cfg, kind, pad_id)
                (loss / cfg.items_per_step).backward()
                tot += float(loss.detach()) / cfg.items_per_step
                margins.append(m)
                wins.append(w)
            gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            row = {"step": step + 1, "loss": round(tot, 5), "margin": round(sum(margins) / len(margins), 5),
                   "win_rate": sum(wins) / len(wins), "grad_norm": round(float(gn), 4),
                   "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 3)}
            log.append(row)
            if log_f:
                log_f.write(json.dumps(row) + "\n")
                log_f.flush()
            bar.set_postfix(loss=row["loss"], win=row["win_rate"])
    finally:
        if log_f:
            log_f.close()
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
            wins.append(_item_loss(loaded.model, e, cfg, kind, loaded.tokenizer.pad_token_id)[2])
    loaded.model.train(was_training)
    return {"accuracy": sum(wins) / len(wins) if wins else float("nan"), "n": len(wins), **counts}


# ==================================================================================================
# trl RewardTrainer: the single-reject scalar baseline
# ==================================================================================================

def train_reward_baseline(loaded, items: Sequence[PrefItem], cfg: AlignConfig, out_dir: str | os.PathLike) -> dict:
    """trl's RewardTrainer on (prompt, chosen, first reject) pairs, encoded exactly as our loop encodes them.

    RewardConfig drops pairs longer than ``max_length`` instead of truncating them; we tokenize
    first, count what exceeds ``cfg.max_length``, and check that trl kept exactly the rest.
    """
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    enc, counts = encode_items(loaded.tokenizer, items, V=1, max_length=cfg.max_length, spec=loaded.spec)
    if not enc:
        raise ValueError(f"no pairs left for RewardTrainer: all {counts['items']} exceed max_length={cfg.max_length}")
    ds = Dataset.from_list([{"chosen_ids": e.prompt_ids + e.chosen_ids, "rejected_ids": e.prompt_ids + e.reject_ids[0]}
                            for e in enc])
    args = RewardConfig(output_dir=str(out_dir), max_steps=cfg.max_steps,
                        per_device_train_batch_size=cfg.items_per_step, learning_rate=cfg.learning_rate,
                        warmup_steps=int(math.ceil(cfg.warmup_ratio * cfg.max_steps)), max_length=cfg.max_length,
                        bf16=False, logging_steps=1, save_strategy="no", report_to=[], seed=cfg.seed,
                        use_cpu=loaded.device == "cpu", disable_tqdm=True, max_grad_norm=cfg.max_grad_norm)
    tr = RewardTrainer(model=loaded.model, args=args, train_dataset=ds, processing_class=loaded.tokenizer)
    tr.remove_callback(PrinterCallback)  # the losses are returned below; no per-step dict printing
    if len(tr.train_dataset) != len(enc):
        raise RuntimeError(f"RewardTrainer kept {len(tr.train_dataset)} of {len(enc)} pairs although all are within "
                           f"max_length={cfg.max_length}")
    t0 = time.perf_counter()
    tr.train()
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    loaded.model.eval()
    return {"kind": "scalar-rewardtrainer", "data": counts, "losses": losses, "first_loss": losses[0],
            "last_loss": losses[-1], "seconds": round(time.perf_counter() - t0, 2)}


# ==================================================================================================
# Measuring the shared prefix: time and memory of one training step
# ==================================================================================================

def synthetic_long_item(tokenizer, prompt_tokens: int, *, n_responses: int = 4, seed: int = 0) -> PrefItem:
    """A mechanics-only item: a user prompt of exactly ``prompt_tokens`` chat tokens (filler text and a
    question) and ``n_responses`` short responses. For timing and memory, not for learning."""
    from ..models import chat_ids

    rng = random.Random(seed)
    vocab = ("the report says station river museum market north south value total year team claim "
             "evidence answer document section figure number city project").split()
    question = "\nQuestion: which station does the document name?"

    def prompt(text: str) -> list[dict]:
        return [{"role": "user", "content": text + question}]

    filler = " ".join(rng.choice(vocab) for _ in range(prompt_tokens))
    ids = tokenizer.encode(filler, add_special_tokens=False)
    lo, hi = 0, len(ids)
    while lo < hi:  # the longest filler prefix whose full chat prompt fits prompt_tokens
        mid = (lo + hi + 1) // 2
        if len(chat_ids(tokenizer, prompt(tokenizer.decode(ids[:mid])))) <= prompt_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = tokenizer.decode(ids[:lo])
    responses = [f"The document names the {rng.choice(vocab)} station, response {k}." for k in range(n_responses)]
    return PrefItem(f"synthetic-{prompt_tokens}-{seed}", prompt(text), responses[0], responses[1:],
                    {"source": "synthetic_mechanics"})


def measure_step(loaded, e: Encoded, *, kind: str, shared_prefix: bool, cfg: AlignConfig | None = None) -> dict:
    """Time and memory of one forward + backward of one item (1 + V responses).

    Memory is measured two ways: ``saved_mib``, the bytes of every tensor autograd saves for the
    backward pass (the activations; exact and the same on any device, counted with
    ``torch.autograd.graph.saved_tensors_hooks``, each storage once), and on CUDA ``peak_mib``, the
    allocator's peak above the starting level.
    """
    import gc

    import torch

    cfg = cfg or AlignConfig()
    cfg = AlignConfig(**{**asdict(cfg), "shared_prefix": shared_prefix})
    gc.collect()
    cuda = str(_device(loaded.model)).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    seen: dict = {}
    weights = {q.untyped_storage().data_ptr() for q in loaded.model.parameters()}  # weights are not activations

    def pack(t):
        try:
            st = t.untyped_storage()
            if st.data_ptr() not in weights:
                seen[(st.data_ptr(), t.device.type)] = st.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse)
            pass
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _, _ = _item_loss(loaded.model, e, cfg, kind, loaded.tokenizer.pad_token_id)
    loss.backward()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    loaded.model.zero_grad(set_to_none=True)
    n = 1 + len(e.reject_ids)
    resp = sum(len(r) for r in [e.chosen_ids] + e.reject_ids)
    tokens = len(e.prompt_ids) + resp if shared_prefix else n * len(e.prompt_ids) + resp
    return {"shared_prefix": shared_prefix, "prompt_tokens": len(e.prompt_ids), "responses": n,
            "tokens_encoded": tokens, "seconds": round(dt, 3), "saved_mib": round(sum(seen.values()) / 2**20, 1),
            "peak_mib": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1) if cuda else None,
            "loss": float(loss.detach())}


# ==================================================================================================
# Reading judge results: base -> SFT -> aligned in one table
# ==================================================================================================

def _ci(m: dict, key: str) -> str:
    v, ci = m.get(key), m.get(key + "_ci95")
    if v is None:
        return "-"
    return f"{100 * v:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else f"{100 * v:.1f}"


def progress_table(rows: dict[str, dict], group: str = "overall"):
    """A Table-1-like frame from judge ``metrics.json`` dicts, one row per stage (label -> metrics).

    Columns (percent): the official AVG. (pass 0), two-order and consistent accuracy with bootstrap
    95% intervals, the position-bias rate, the first-slot rate and the parse-failure rate, plus n.
    ``group`` picks ``overall`` or a ``by_tasktype`` entry (``PairWise``/``BestOfN``).
    """
    import pandas as pd

    out = []
    for label, met in rows.items():
        m = met["overall"] if group == "overall" else met["by_tasktype"][group]
        pct = lambda k: None if m.get(k) is None else round(100 * m[k], 1)  # noqa: E731
        out.append({"stage": label, "AVG. (official)": (met.get("results") or {}).get("AVG."),
                    "two-order acc [95% CI]": _ci(m, "acc_two_order"),
                    "consistent acc [95% CI]": _ci(m, "acc_consistent"),
                    "bias rate": pct("bias_rate"), "first-slot rate": pct("first_slot_rate"),
                    "parse failures": pct("parse_failure_rate"), "n items": m.get("n_items")})
    return pd.DataFrame(out).set_index("stage")


# ==================================================================================================
# CLI: `python -m longrm_utils train align-gen|align-scalar ...`
# ==================================================================================================

def _parser(prog: str, kind: str) -> argparse.ArgumentParser:
    from . import add_dataclass_args

    p = argparse.ArgumentParser(prog=prog, description=(
        "Stage II alignment of a " + ("generative judge with the multi-reject SimPO loss" if kind == "generative"
                                      else "scalar RM with Bradley-Terry against the mean of the rejects")))
    p.add_argument("--model", required=True, help="preset, model folder, or a saved course model (LoRA adapters load on their base)")
    p.add_argument("--data", required=True, help="preference JSONL {id, prompt, chosen, rejects}, or an official LongRM "
                   "SimPO file/folder (fields chat_template, chosen, rejects, scores, conf, prompt_ctx_length)")
    p.add_argument("--out", required=True, help="output model folder (adapter or weights + longrm.json + train_log.jsonl)")
    p.add_argument("--paper", choices=sorted(PAPER_SETTINGS), default=None,
                   help="start from the paper's §4.3 (main_text) or Table 5 (table5) hyperparameters")
    p.add_argument("--method", choices=("lora", "qlora", "full"), default="lora")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--attn", default="auto")
    p.add_argument("--gradient-checkpointing", action="store_true")
    add_dataclass_args(p, AlignConfig)
    return p


def _cli(argv: list[str], kind: str) -> int:
    from .. import models
    from .synth import load_official_simpo

    a = _parser(f"longrm_utils train align-{'gen' if kind == 'generative' else 'scalar'}", kind).parse_args(argv)
    base = AlignConfig.paper(a.paper) if a.paper else AlignConfig()
    over = {f.name: getattr(a, f.name) for f in fields(AlignConfig) if getattr(a, f.name) is not None}
    cfg = AlignConfig(**{**asdict(base), **over})
    data = Path(a.data)
    items = load_official_simpo(data)["items"] if (data.is_dir() or _looks_official(data)) else read_pref_jsonl(data)
    is_saved = (Path(a.model) / models.META_FILE).exists()
    loaded = models.load(a.model, kind=models.SCALAR if kind == "scalar" else models.GENERATIVE, device=a.device,
                         attn=a.attn, quantization="4bit" if a.method == "qlora" else None, seed=cfg.seed,
                         trainable=True)
    if a.method in ("lora", "qlora") and not hasattr(loaded.model, "peft_config"):
        loaded = models.add_lora(loaded, r=a.lora_r, gradient_checkpointing=a.gradient_checkpointing)
    elif a.gradient_checkpointing:
        loaded.model.gradient_checkpointing_enable()
    summary = train_loop(loaded, items, cfg, kind=kind, out_dir=a.out)
    models.save_model(loaded, a.out, method=f"stage2-{kind}-{a.method}", stage2=asdict(cfg),
                      **({"init": str(a.model)} if is_saved else {}))
    (Path(a.out) / "train_summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=2))
    print(json.dumps({k: summary[k] for k in ("first_loss", "last_loss", "seconds", "data")}, indent=2))
    return 0


def _looks_official(path: Path) -> bool:
    if path.suffix not in (".jsonl", ".json"):
        return True
    with open(path) as f:
        first = next((ln for ln in f if ln.strip()), "{}")
    try:
        return "chat_template" in json.loads(first)
    except json.JSONDecodeError:
        return False


def cli_generative(argv: list[str]) -> int:
    """``train align-gen``: the multi-reject SimPO alignment of a generative judge."""
    return _cli(argv, "generative")


def cli_scalar(argv: list[str]) -> int:
    """``train align-scalar``: Bradley-Terry (mean of V rejects) alignment of a scalar RM."""
    return _cli(argv, "scalar")
