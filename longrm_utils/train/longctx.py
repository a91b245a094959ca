"""Memory techniques for long-context training, shared by Stage I, Stage II and the planner.

At 32K-256K tokens the weights are not what fills a GPU: the activations are. Each technique
below removes one term of :func:`longrm_utils.train.memory.predict`, and the planner reads the
same switches, so what it predicts is what the code runs.

* **Checkpointing, offloaded** (:func:`enable_checkpointing`). Each decoder layer keeps only its
  input hidden state; with ``offload=True`` that state waits in pinned host RAM (transformers'
  ``activation_checkpointing_enable(offload=True)``), so device memory no longer grows with
  ``layers x tokens``. Host RAM then needs ``layers x hidden x 2`` bytes per token (about 0.3 MB
  for Qwen3-8B).
* **Tiled MLP** (:func:`tile_mlp`). The SwiGLU MLP of one layer holds ``4 x intermediate`` values
  per token while it is recomputed: for Qwen3-8B at 64K that is 6 GiB. Tiling runs it over
  ``tile_tokens`` positions at a time and recomputes each tile in the backward pass, keeping only
  the layer's input.
* **Chunked log-probabilities** (:func:`chunked_token_logps`). A judgement's log-probabilities go
  through the vocabulary ``LOSS_CHUNK`` positions at a time, each chunk recomputed in backward, so
  at most one chunk's fp32 logits exist. Stage I gets the same from trl's fused LM head.
* **A shared prefix under checkpointing** (:func:`prompt_cache`, :func:`continuation_cache`). Stage
  II runs 1 + V responses from one encoding of the long prompt. transformers drops a layer's KV
  cache under checkpointing, because replaying a layer would write it twice; these caches make
  the replay harmless (the prompt's cache ignores a second write of the same length, the
  continuations' cache never writes), so checkpointed layers may keep them.
"""
from __future__ import annotations

from contextlib import contextmanager

from ..models import unwrap

LOSS_CHUNK = 512
"""Positions per chunk of :func:`chunked_token_logps` (one chunk's ``[512, vocab]`` fp32 logits at a time)."""


def enable_checkpointing(model, *, offload: bool = False) -> None:
    """Checkpoint every decoder layer (non-reentrant); ``offload`` keeps the saved inputs in host RAM."""
    base = unwrap(model)
    # On CPU the saved inputs already live in host RAM (and torch has no pinned allocator there).
    offload = offload and next(base.parameters()).device.type != "cpu"
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False}, offload=offload)
    if hasattr(base, "enable_input_require_grads"):
        base.enable_input_require_grads()  # a frozen embedding must still hand a grad-carrying input to layer 0


def decoder_mlps(model) -> list:
    """The MLP module of every decoder layer (Llama, Qwen2/3 and the tiny model name it ``mlp``)."""
    return [m.mlp for m in unwrap(model).modules() if hasattr(m, "mlp") and hasattr(m, "self_attn")]


def _tiled_function():
    """An autograd function: ``mlp(x)`` over token tiles; the forward keeps only ``x``, the backward
    replays one tile at a time."""
    import torch

    class TiledMLP(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, forward, tile):
            ctx.forward, ctx.tile = forward, tile
            dev = x.device.type  # the replay in backward runs under the forward's autocast
            ctx.autocast = (dev, torch.get_autocast_dtype(dev), torch.is_autocast_enabled(dev))
            ctx.save_for_backward(x)
            with torch.no_grad():
                return torch.cat([forward(t) for t in x.split(tile, dim=-2)], dim=-2)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            grads = []
            for xt, gt in zip(x.split(ctx.tile, dim=-2), grad.split(ctx.tile, dim=-2)):
                xt = xt.detach().requires_grad_(True)
                dev, dtype, on = ctx.autocast
                with torch.enable_grad(), torch.autocast(dev, dtype=dtype, enabled=on):
                    out = ctx.forward(xt)
                torch.autograd.backward(out, gt)  # also accumulates the MLP's own parameter gradients
                grads.append(xt.grad)
            return torch.cat(grads, dim=-2), None, None

    return TiledMLP


def tile_mlp(model, tile_tokens: int) -> int:
    """Run every decoder MLP in tiles of ``tile_tokens`` positions (0 leaves the model alone).

    The tiles are replayed in the backward pass, so dropout inside the MLP (LoRA dropout) would draw
    other masks than the forward did: it is refused. Returns the number of MLPs tiled.
    """
    import torch

    if tile_tokens <= 0:
        return 0
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        # each tile's backward would mark the MLP's parameters ready again: DDP and FSDP refuse that
        raise ValueError("tile_mlp: MLP tiles run on one process only (Stage I/II on one GPU); turn them off "
                         "(mlp_tile_tokens=0) under accelerate/torchrun")
    fn = _tiled_function()
    mlps = decoder_mlps(model)
    for mlp in mlps:
        if getattr(mlp, "_longrm_tile_tokens", 0):
            raise ValueError(f"tile_mlp: the model's MLPs are already tiled ({mlp._longrm_tile_tokens} tokens)")
        drops = [m for m in mlp.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
        if drops:
            raise ValueError(f"tile_mlp: {type(mlp).__name__} has dropout p={drops[0].p} (LoRA dropout?); tiles are "
                             "replayed in the backward pass, so use lora_dropout=0 with mlp_tile_tokens")
        inner = mlp.forward

        def tiled(x, _inner=inner):
            if torch.is_grad_enabled():
                return fn.apply(x, _inner, tile_tokens)
            return torch.cat([_inner(t) for t in x.split(tile_tokens, dim=-2)], dim=-2)

        mlp.forward = tiled
        mlp._longrm_tile_tokens = tile_tokens
    return len(mlps)


def chunked_token_logps(hidden, head, targets, chunk: int = LOSS_CHUNK):
    """``log p(target)`` ``[N, L]`` from hidden states ``[N, L, d]`` through the LM ``head``.

    ``chunk`` positions go through the vocabulary at a time, in fp32, each chunk checkpointed: the
    backward recomputes its logits, so no ``[N, L, vocab]`` tensor is ever built. The head's output is
    used as the logits: models that scale or soft-cap them are refused by :func:`check_plain_logits`.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    def one(h, t):
        lg = head(h).float()
        return lg.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, -1)

    N, L, d = hidden.shape
    flat, tgt = hidden.reshape(N * L, d), targets.reshape(N * L)
    parts = [checkpoint(one, flat[i:i + chunk], tgt[i:i + chunk], use_reentrant=False) if torch.is_grad_enabled()
             else one(flat[i:i + chunk], tgt[i:i + chunk]) for i in range(0, N * L, chunk)]
    return torch.cat(parts).view(N, L)


def check_plain_logits(model) -> None:
    """Refuse a model whose logits are not its LM head's output (soft-capping, a logit scale)."""
    cfg = unwrap(model).config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for key in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(text, key, None) not in (None, 1, 1.0):
            raise ValueError(f"{type(unwrap(model)).__name__} sets {key}={getattr(text, key)!r}: the chunked "
                             "judgement log-probabilities use the LM head's raw output, so they would be wrong")


# --- a shared prefix that survives checkpointing --------------------------------------------------

def prompt_cache():
    """A KV cache for the prompt's pass: a replayed layer (same length again) is not written twice."""
    from transformers import DynamicCache

    class PromptCache(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            if layer_idx < len(self.layers) and self.layers[layer_idx].get_seq_length() == key_states.shape[-2]:
                return key_states, value_states  # the backward pass replaying this layer
            return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    return PromptCache()


def continuation_cache(prompt, n: int):
    """A read-only view of ``prompt``'s cache repeated ``n`` times along the batch (an expanded view,
    not a copy): each continuation layer attends to prompt + itself and stores nothing, so a replay
    sees the same. The concatenation each layer makes is transient (one layer at a time)."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class ContinuationCache(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            layer = self.layers[layer_idx]
            return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)

    cache = ContinuationCache()
    cache.layers = []
    for src in prompt.layers:
        layer = DynamicLayer()
        layer.lazy_initialization(src.keys, src.values)
        layer.keys = src.keys.expand(n, *src.keys.shape[1:])
        layer.values = src.values.expand(n, *src.values.shape[1:])
        cache.layers.append(layer)
    return cache


@contextmanager
def cache_through_checkpoints(model):
    """Let checkpointed decoder layers keep the caches above (transformers drops a cache by default)."""
    layers = [m for m in unwrap(model).modules() if hasattr(type(m), "_can_checkpoint_with_cache")]
    for m in layers:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop("_can_checkpoint_with_cache", None)
