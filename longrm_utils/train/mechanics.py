"""Stage II mechanics against the usual way (notebook 06): what the shared prefix saves in one
training step, and trl's ``RewardTrainer`` as the single-reject scalar baseline.

* :func:`synthetic_long_item` + :func:`measure_step`: time and activation memory of one item's
  forward + backward with the prompt encoded once (:mod:`.losses`) or once per response;
* :func:`train_reward_baseline`: trl's RewardTrainer on (prompt, chosen, first reject) pairs,
  encoded exactly as :mod:`.align` encodes them.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import replace
from typing import Sequence

from .. import models
from ..contracts import PrefItem
from .align import AlignConfig, Encoded, encode_items, item_loss
from .losses import model_device


def synthetic_long_item(tokenizer, prompt_tokens: int, *, n_responses: int = 4, seed: int = 0) -> PrefItem:
    """A mechanics-only item: a user prompt of exactly ``prompt_tokens`` chat tokens (filler text and a
    question) and ``n_responses`` short responses. For timing and memory, not for learning."""
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
        if len(models.chat_ids(tokenizer, prompt(tokenizer.decode(ids[:mid])))) <= prompt_tokens:
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

    cfg = replace(cfg or AlignConfig(), shared_prefix=shared_prefix)
    gc.collect()
    cuda = str(model_device(loaded.model)).startswith("cuda")
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
        loss, _, _ = item_loss(loaded.model, e, cfg, kind, loaded.tokenizer.pad_token_id)
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
