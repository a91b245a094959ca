"""A training-memory planner: predicted peak memory per GPU, and the longest trainable context.

The model is an explicit sum, each term derived from what PyTorch keeps alive in a Llama/Qwen
decoder step (and checked against measured peaks of the tiny model on CPU, see
:mod:`.memory_measure` and ``tests/test_memory.py``)::

    peak = weights + grads + optimizer + activations + logits + overhead

* **weights**: bytes per parameter by method. ``full``: the compute copy in the training dtype.
  ``lora``: the frozen base in the training dtype. ``qlora``: nf4 (4 bits plus 0.127 bits of
  double-quantized block constants) for the linear layers; embeddings and lm_head stay 16-bit.
* **grads**: the trainable parameters only (all of them for ``full``; the adapters for LoRA).
* **optimizer**: AdamW keeps two fp32 moments (8 B/param); with a 16-bit ``full`` run, a fp32
  master copy as well (4 B/param). For LoRA the adapters' own fp32 weights (4 B/param) are
  counted here too, so *weights* is the frozen base alone.
* **activations**: per token and per layer, what autograd saves (no recomputation)::

      24*h                         two RMSNorms (fp32 input, normalised fp32, output), in bytes
      E*(3*hq + 2*kv)              RoPE'd q and k, v, the attention output and its contiguous copy
      E*4*I                        SwiGLU: gate, silu(gate), up, their product
      (E+1)*(5*h + hq + I)         LoRA dropout copies and masks (inputs of q,k,v,gate,up | o | down)

  with ``E`` the activation bytes (2 for bf16, 4 for fp32), ``h`` hidden, ``hq`` the query width
  (= hidden for every preset), ``kv = kv_heads*head_dim`` and ``I`` the MLP width. Flash
  attention and PyTorch's SDPA kernels (CUDA flash / mem-efficient, and the CPU flash kernel)
  keep O(seq) state, so attention adds no seq² term. ``eager`` keeps the softmax probabilities:
  ``heads * seq² * E`` per layer, plus two copies in flight during a layer's backward.
  Gradient checkpointing keeps only each layer's input (``E*h`` per token per layer) and
  recomputes one layer at a time during backward. A layer's backward also holds gradients in
  flight, about ``E*I`` per token (measured on the tiny model; the saved tensors are freed as
  their gradients arrive, so the working set is small).
* **logits**: a causal LM materialises ``loss_tokens x vocab`` logits in the training dtype,
  then the loss works in fp32: log-softmax output, its gradient and the logits' gradient
  (``E + 12`` bytes per element at the peak). A scalar RM has one logit per token. The loss
  peak comes before the layers' backward, so the two peaks do not add: the breakdown lists under
  *logits* only what the loss peak adds beyond the layer-backward working set.
* **overhead**: the CUDA context and allocator fragmentation on a GPU (default 1.5 GiB), and the
  usable share of the card (default 90%).

Sharding divides the per-GPU share: ZeRO-2 shards grads and optimizer states, ZeRO-3 / FSDP
(``fsdp``) shards weights too. Context parallelism (``cp_size``, accelerate's ring attention, or
DeepSpeed-Ulysses ``sp_size``) divides activations and logits by the group size.

The long-context techniques of :mod:`.longctx` are terms too: ``offload`` moves the checkpointed
inputs to host RAM (reported as ``host``, not in the total), ``mlp_tile_tokens`` bounds the MLP's
share of the layer working set to one tile, ``loss_chunk`` bounds the logits, and ``responses`` with
``shared_prefix`` plans a Stage II item (the prompt once, its K/V and their gradients kept, then
1 + V responses). ``plan --profile`` (:mod:`.plan`) reads a profile into these fields.

What this does *not* model: allocator caching beyond the fixed overhead, the offload copies'
traffic, tensor parallelism, and the activations of packed multi-sequence batches beyond their token
count. ``benchmarks/planner_validation.py`` measures the shipped steps at real width on CPU.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..io import read_json
from ..models import REGISTRY

GiB = 2**30
METHODS = ("full", "lora", "qlora")
ATTNS = ("flash", "sdpa", "eager")
SHARDINGS = ("none", "zero2", "zero3", "fsdp")
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
NF4_BITS = 4.0 + 8 / 64 + 32 / (64 * 256)
"""nf4 with double quantization: 4 bits + an 8-bit absmax per 64-block + a fp32 constant per 256 blocks."""


# --- model shapes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    """The numbers the planner needs about a decoder-only model."""

    name: str
    params: float
    """Total parameters (count, not billions)."""
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int
    """MLP width (``intermediate_size``)."""
    heads: int
    tied: bool = False
    """Input embedding and lm_head share one matrix."""
    qk_norm: bool = False
    """RMSNorm on every query and key head (Qwen3), which saves fp32 copies of q and k."""

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def lora_params(self, r: int) -> int:
        """Adapter parameters of rank ``r`` on all seven linear layers of every block."""
        h, q, kv, i = self.hidden, self.q_width, self.kv_width, self.intermediate
        per_layer = (h + q) + (h + kv) * 2 + (q + h) + (h + i) * 2 + (i + h)
        return r * per_layer * self.layers

    @classmethod
    def from_preset(cls, name: str, *, intermediate: int | None = None, tied: bool | None = None) -> "ModelShape":
        """A registry preset (``models.REGISTRY``). The MLP width is derived from ``params_b``::

            params = embeddings + layers * (attention + 3*h*I + 2*h)

        which gives Qwen3-8B 12,288, Con-J (Qwen2-7B) 18,944, SmolLM2-135M 1,536 and the 8B Llamas
        14,336. The course's own models (tiny, SmolLM2) tie embeddings, and scalar presets have no
        lm_head; the generative hub presets have both matrices. ``params_b`` is rounded in the
        registry, so for the tiny model prefer :meth:`from_config` (exact).
        """
        if name not in REGISTRY:
            raise KeyError(f"unknown preset {name!r}; presets: {', '.join(REGISTRY)}")
        s = REGISTRY[name]
        if not (s.params_b and s.layers and s.hidden and s.kv_heads and s.head_dim and s.vocab):
            raise ValueError(f"preset {name!r} lacks shape numbers (params_b, layers, hidden, kv_heads, head_dim, vocab)")
        # One vocabulary matrix: the course's own models tie embeddings, and a scalar RM has no lm_head.
        tied = (s.route in ("tiny", "wheel") or s.kind == "scalar") if tied is None else tied
        params = s.params_b * 1e9
        heads = s.hidden // s.head_dim
        if intermediate is None:
            h, q, kv = s.hidden, heads * s.head_dim, s.kv_heads * s.head_dim
            emb = s.vocab * h * (1 if tied else 2)
            attn = h * q + 2 * h * kv + q * h
            per_layer = (params - emb) / s.layers
            intermediate = max(1, round((per_layer - attn - 2 * h) / (3 * h) / 128) * 128) if s.hidden >= 512 \
                else max(1, round((per_layer - attn - 2 * h) / (3 * h)))
        return cls(name, params, s.layers, s.hidden, s.kv_heads, s.head_dim, s.vocab, intermediate, heads, tied,
                   qk_norm=s.family == "qwen3")

    @classmethod
    def from_config(cls, config: Any, name: str | None = None) -> "ModelShape":
        """Exact numbers from a transformers config (object, dict, or a folder holding config.json)."""
        if isinstance(config, (str, os.PathLike)):
            p = Path(config)
            config = read_json(p / "config.json" if p.is_dir() else p)
            name = name or str(p)
        get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        h, heads = get("hidden_size"), get("num_attention_heads")
        hd = get("head_dim") or h // heads
        kvh = get("num_key_value_heads") or heads
        L, V, I = get("num_hidden_layers"), get("vocab_size"), get("intermediate_size")
        tied = bool(get("tie_word_embeddings", False))
        per_layer = h * heads * hd * 2 + 2 * h * kvh * hd + 3 * h * I + 2 * h
        params = V * h * (1 if tied else 2) + L * per_layer + h
        return cls(name or get("_name_or_path", "config") or "config", float(params), L, h, kvh, hd, V, I, heads, tied,
                   qk_norm=get("model_type") == "qwen3")

    @classmethod
    def from_numbers(cls, *, params_b: float, layers: int, hidden: int, kv_heads: int, head_dim: int, vocab: int,
                     intermediate: int, heads: int | None = None, tied: bool = False, name: str = "custom") -> "ModelShape":
        return cls(name, params_b * 1e9, layers, hidden, kv_heads, head_dim, vocab, intermediate,
                   heads or hidden // head_dim, tied)


# --- the plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanConfig:
    """One training set-up. Every field is a planner input."""

    method: str = "qlora"
    """full, lora or qlora."""
    seq_len: int = 32768
    """Tokens per sequence (prompt + response)."""
    batch: int = 1
    """Sequences per GPU per micro-step."""
    grad_ckpt: bool = True
    """Gradient (activation) checkpointing per decoder layer."""
    attn: str = "flash"
    """flash, sdpa (O(seq) kernels on CUDA and CPU) or eager (materialises seq² probabilities)."""
    dtype: str = "bf16"
    """Training dtype: bf16, fp16 or fp32 (CPU)."""
    kind: str = "generative"
    """generative (causal-LM loss over the vocabulary) or scalar (one logit per sequence position)."""
    loss_tokens: int | None = None
    """Positions whose vocabulary logits are materialised; None = every position (what HF does)."""
    lora_r: int = 16
    lora_dropout: float = 0.05
    n_gpus: int = 1
    sharding: str = "none"
    """none (DDP), zero2 (grads+optimizer sharded), zero3 or fsdp (weights too)."""
    cp_size: int = 1
    """Context/sequence-parallel group size: activations and logits are split across it."""
    overhead_gib: float = 1.5
    """CUDA context + allocator slack; use 0 to compare with a measured step increment on CPU."""
    autocast: bool = False
    """The step runs under bf16/fp16 autocast (trl's SFTTrainer with ``bf16=True``); the Stage II loop does not."""
    offload: bool = False
    """Checkpointed layer inputs wait in pinned host RAM (needs ``grad_ckpt``; GPU only)."""
    mlp_tile_tokens: int = 0
    """The MLP runs over token tiles of this size (0: off; :func:`.longctx.tile_mlp`)."""
    loss_chunk: int = 0
    """Positions whose vocabulary logits exist at once (0: all ``loss_tokens`` together). trl's fused
    head of Stage I takes 32,768; Stage II's :func:`.longctx.chunked_token_logps` takes 512."""
    responses: int = 1
    """Sequences per item that share one prompt: 1 for SFT, 1 + V for Stage II."""
    response_tokens: int = 512
    """Tokens of each response (the rest of ``seq_len`` is the prompt) when ``responses > 1``."""
    shared_prefix: bool = True
    """With ``responses > 1``: the prompt is encoded once and its KV cache kept for the responses."""
    fused_head: bool = False
    """The loss runs through trl's fused LM head (Stage I): ``E + 4`` bytes per logit at its peak
    (measured), against ``E + 12`` for logits, log-softmax and their gradients."""

    def __post_init__(self):
        checks = [("method", self.method, METHODS), ("attn", self.attn, ATTNS), ("dtype", self.dtype, tuple(DTYPE_BYTES)),
                  ("sharding", self.sharding, SHARDINGS), ("kind", self.kind, ("generative", "scalar"))]
        for name, val, ok in checks:
            if val not in ok:
                raise ValueError(f"PlanConfig.{name}={val!r}: use one of {', '.join(ok)}")
        for name in ("seq_len", "batch", "n_gpus", "cp_size", "lora_r", "responses", "response_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PlanConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.offload and not self.grad_ckpt:
            raise ValueError("PlanConfig.offload needs grad_ckpt: only checkpointed layer inputs are offloaded")
        if self.cp_size > self.n_gpus:
            raise ValueError(f"PlanConfig.cp_size={self.cp_size} exceeds n_gpus={self.n_gpus}")


@dataclass
class Breakdown:
    """Predicted peak bytes per GPU, by term."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    notes: list[str] = field(default_factory=list)
    host: float = 0.0
    """Host RAM the step holds (offloaded checkpoints), bytes; not part of ``total``."""

    TERMS = ("weights", "grads", "optimizer", "activations", "logits", "overhead")

    @property
    def total(self) -> float:
        return sum(getattr(self, t) for t in self.TERMS)

    def gib(self) -> dict[str, float]:
        out = {t: round(getattr(self, t) / GiB, 3) for t in self.TERMS}
        out["total"] = round(self.total / GiB, 3)
        out["host_ram"] = round(self.host / GiB, 3)
        return out

    def table(self) -> str:
        rows = [f"| {t} | {v:,.2f} |" for t, v in self.gib().items()]
        return "\n".join(["| term | GiB |", "|---|---|", *rows])


def lora_copy_bytes(cfg: PlanConfig) -> int:
    """Bytes per input element of the copy each LoRA layer saves: peft keeps adapters in fp32 and casts
    a 16-bit input to fp32 before them (a 4-byte copy per adapter). Under autocast the adapter's
    matmul saves a 16-bit cast instead; an fp32 step needs no copy."""
    E = DTYPE_BYTES[cfg.dtype]
    if E == 4:
        return 0
    return E if cfg.autocast else 4


def _dropout_bytes(cfg: PlanConfig) -> float:
    return DTYPE_BYTES[cfg.dtype] + 1.0 if cfg.method != "full" and cfg.lora_dropout > 0 else 0.0


def attention_bytes_per_token_layer(shape: ModelShape, cfg: PlanConfig) -> float:
    """Bytes autograd saves per token in one layer outside the MLP.

    ``full`` (calibrated on the tiny model in fp32): two RMSNorms with trainable weights (fp32 input,
    normalised fp32, output: ``24*h``) and q/k/v/o. A frozen base (LoRA, QLoRA; measured at Qwen3-8B
    width in bf16, ``benchmarks/planner_validation.py``): each norm keeps only its fp32 input
    (``8*h``), Qwen3's q/k norms their fp32 inputs, attention its q, k, v and output, and the adapters
    their inputs: one shared 16-bit copy, or peft's fp32 cast of it per adapter (:func:`lora_copy_bytes`).
    """
    E = DTYPE_BYTES[cfg.dtype]
    h, q, kv = shape.hidden, shape.q_width, shape.kv_width
    if cfg.method == "full":
        return float(24 * h + E * (3 * q + 2 * kv) + 4 * shape.heads)
    copy = lora_copy_bytes(cfg)
    b = 8 * h + E * (2 * q + 2 * kv) + 4 * shape.heads + (4 * (q + kv) if shape.qk_norm else 0)
    b += copy * (3 * h + q) if copy else E * h  # adapters' inputs: q, k, v | o (o's is attention's output)
    return float(b + _dropout_bytes(cfg) * (3 * h + q))


def mlp_bytes_per_token_layer(shape: ModelShape, cfg: PlanConfig) -> float:
    """SwiGLU's saved tensors per token, and its adapters' inputs.

    ``full``: gate, silu(gate), up and their product (``4*E*I``). A frozen base: the frozen down
    projection keeps no input, so the product is kept only as its adapter's input (a 16-bit tensor,
    or peft's fp32 copy; gate and up each copy the norm output too)."""
    E, h, I = DTYPE_BYTES[cfg.dtype], shape.hidden, shape.intermediate
    if cfg.method == "full":
        return float(E * 4 * I)
    copy = lora_copy_bytes(cfg)
    b = 3 * E * I + (copy * (2 * h + I) if copy else E * I)
    return float(b + _dropout_bytes(cfg) * (2 * h + I))


def mlp_backward_bytes_per_token(shape: ModelShape, cfg: PlanConfig) -> float:
    """Gradients in flight while one MLP runs backward. ``full``: ``E*I`` (calibrated on the tiny
    model). A frozen base: two of the gate/up/product gradients and the gradient of the adapters'
    copy of the product (``(2*E + copy)*I``; fitted on the 1,024-token rows at Qwen3-8B width)."""
    E, I = DTYPE_BYTES[cfg.dtype], shape.intermediate
    return float(E * I if cfg.method == "full" else (2 * E + lora_copy_bytes(cfg)) * I)


def dead_prompt_bytes(shape: ModelShape, cfg: PlanConfig, per_tl: float) -> float:
    """Per prompt token, what the prompt's last layer saves for nothing (without checkpointing): only
    its K and V reach the responses, so its query, attention output, o projection and MLP feed the
    discarded prompt output and autograd frees them at once."""
    E, q = DTYPE_BYTES[cfg.dtype], shape.q_width
    copy = lora_copy_bytes(cfg) if cfg.method != "full" else 0
    attn_dead = copy * (shape.hidden + q) + E * 2 * q + (4 * q if shape.qk_norm else 0)
    return per_tl - attention_bytes_per_token_layer(shape, cfg) + attn_dead


def activation_bytes_per_token_layer(shape: ModelShape, cfg: PlanConfig) -> float:
    """Bytes autograd saves per token per decoder layer without checkpointing or tiling."""
    return attention_bytes_per_token_layer(shape, cfg) + mlp_bytes_per_token_layer(shape, cfg)


def eager_bytes_per_layer(shape: ModelShape, cfg: PlanConfig, seq: int) -> float:
    return float(shape.heads * seq * seq * DTYPE_BYTES[cfg.dtype]) if cfg.attn == "eager" else 0.0


def phases(cfg: PlanConfig) -> tuple[list[float], float, float]:
    """``(tokens of each forward pass, tokens encoded in all, prompt tokens whose KV cache is shared)``
    for one item on this GPU: one sequence, or a prompt with ``responses`` continuations."""
    cp = cfg.cp_size
    if cfg.responses == 1:
        n = cfg.batch * cfg.seq_len / cp
        return [n], n, 0.0
    J = min(cfg.response_tokens, cfg.seq_len - 1)
    if not cfg.shared_prefix:
        n = cfg.batch * cfg.responses * cfg.seq_len / cp
        return [n], n, 0.0
    P = cfg.batch * (cfg.seq_len - J) / cp
    S = cfg.batch * cfg.responses * J / cp
    return [P, S], P + S, P


def _pow2_ceil(nbytes: float) -> float:
    return float(2 ** math.ceil(math.log2(nbytes))) if nbytes > 1 else float(nbytes)


def layer_working(shape: ModelShape, cfg: PlanConfig, n: float) -> float:
    """One layer's backward working set over ``n`` tokens: what it saves again when replayed
    (checkpointing) plus the MLP's gradients in flight (:func:`mlp_backward_bytes_per_token`).
    A tiled MLP holds one tile's worth of both."""
    E = DTYPE_BYTES[cfg.dtype]
    mlp_tokens = min(n, cfg.mlp_tile_tokens) if cfg.mlp_tile_tokens else n
    return (n * attention_bytes_per_token_layer(shape, cfg)
            + mlp_tokens * (mlp_bytes_per_token_layer(shape, cfg) + mlp_backward_bytes_per_token(shape, cfg))
            + (n * E * shape.hidden if cfg.mlp_tile_tokens else 0.0))  # the tiled MLP's saved input


def predict(shape: ModelShape, cfg: PlanConfig) -> Breakdown:
    """Predicted per-GPU peak memory of one training step (forward + backward + AdamW step)."""
    E = DTYPE_BYTES[cfg.dtype]
    notes: list[str] = []
    P, emb = shape.params, shape.embed_params
    if cfg.method == "full":
        weights = P * E
        trainable = P
        grads = trainable * E
        optimizer = trainable * (8 + (4 if E < 4 else 0))
    else:
        trainable = shape.lora_params(cfg.lora_r)
        if cfg.kind == "scalar":
            trainable += shape.hidden  # the score head (modules_to_save)
        if cfg.method == "lora":
            weights = P * E
        else:
            weights = (P - emb) * NF4_BITS / 8 + emb * 2
            notes.append("qlora: linear layers in nf4 with double quantization; embeddings/lm_head 16-bit")
        grads = trainable * 4
        optimizer = trainable * (4 + 8)  # fp32 adapter weights + two AdamW moments
    if cfg.sharding in ("zero2", "zero3", "fsdp"):
        grads /= cfg.n_gpus
        optimizer /= cfg.n_gpus
    if cfg.sharding in ("zero3", "fsdp"):
        weights /= cfg.n_gpus
        notes.append(f"{cfg.sharding}: one layer's full weights are gathered at a time (not counted)")

    passes, tokens, prompt = phases(cfg)
    L = shape.layers
    eager = cfg.batch * eager_bytes_per_layer(shape, cfg, cfg.seq_len)
    host = 0.0
    if cfg.grad_ckpt:  # each layer's input stays (on the host when offloaded); one layer is replayed at a time
        inputs = tokens * L * E * shape.hidden
        # pinned host blocks come from torch's caching host allocator, which rounds each up to a power of two
        pinned = L * sum(_pow2_ceil(n * E * shape.hidden) for n in passes)
        stored, host = (0.0, pinned) if cfg.offload else (inputs, 0.0)
        # the shared prompt's K and V are live tensors, not checkpointed, and their gradients
        # gather during the responses' backward before the prompt's layers are replayed
        stored += 2 * prompt * L * 2 * shape.kv_width * E
        working = max(layer_working(shape, cfg, n) for n in passes) + 3 * eager
        if cfg.offload:
            working += max(passes) * E * shape.hidden * 2  # one layer's input being copied in and out
            notes.append(f"offload: {host / GiB:,.2f} GiB of checkpointed inputs in pinned host RAM; the copies' "
                         "traffic and stream overlap exist only on a GPU and are not modelled")
    else:
        per_tl = (attention_bytes_per_token_layer(shape, cfg)
                  + (E * shape.hidden if cfg.mlp_tile_tokens else mlp_bytes_per_token_layer(shape, cfg)))
        stored = tokens * L * per_tl + eager * L
        stored -= prompt * dead_prompt_bytes(shape, cfg, per_tl)
        n = max(passes)
        mt = min(n, cfg.mlp_tile_tokens) if cfg.mlp_tile_tokens else n
        # gradients in flight, and a tiled MLP's replayed tile
        working = 2 * eager + mt * (mlp_backward_bytes_per_token(shape, cfg)
                                    + (mlp_bytes_per_token_layer(shape, cfg) if cfg.mlp_tile_tokens else 0))
    last = passes[-1]  # the final norm's output feeds the head only for the last pass
    stored += last * 12 * shape.hidden
    if cfg.attn == "eager" and cfg.cp_size > 1:
        notes.append("eager attention cannot be context-parallel; the seq² term assumes the full sequence")
    if cfg.kind == "generative":
        positions = cfg.loss_tokens if cfg.loss_tokens is not None else last
        positions = min(positions, last)
        if cfg.loss_chunk:
            positions = min(positions, cfg.loss_chunk)
        loss_peak = cfg.batch * positions * shape.vocab * (E + (4 if cfg.fused_head else 12))
    else:
        loss_peak = last * 4 * 4
    # The loss peak (start of backward) and the layer-backward peak do not coincide: the total is
    # stored + max(loss_peak, working). 'activations' reports stored + working, 'logits' the excess.
    acts = stored + working
    logits = max(0.0, loss_peak - working)
    if loss_peak > 0:
        notes.append(f"logits at the loss peak: {loss_peak / GiB:,.2f} GiB (listed: only what exceeds the "
                     f"layer-backward working set)")
    overhead = cfg.overhead_gib * GiB
    return Breakdown(weights, grads, optimizer, acts, logits, overhead, notes, host)


def max_context(shape: ModelShape, cfg: PlanConfig, gpu_mem_gib: float, *, usable: float = 0.9,
                granularity: int = 1024, ceiling: int = 1 << 22) -> int:
    """Longest ``seq_len`` (a multiple of ``granularity``) whose predicted peak fits ``usable * gpu_mem``.

    Returns 0 when not even ``granularity`` tokens fit. ``loss_tokens`` grows with the sequence
    when it was left at None, and stays fixed otherwise.
    """
    budget = gpu_mem_gib * GiB * usable

    def fits(n: int) -> bool:
        return predict(shape, replace(cfg, seq_len=n)).total <= budget

    lo, hi = 0, ceiling // granularity
    if not fits(granularity):
        return 0
    if fits(hi * granularity):
        return hi * granularity
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid * granularity) else (lo, mid)
    return lo * granularity


# --- set-ups plotted in notebook 08 -------------------------------------------------------------------

PROFILE_PLANS = {
    "gpu-qlora-24gb: Qwen3-8B QLoRA, 1 GPU, logits at every position": ("qwen3-8b", dict(method="qlora"), 24),
    "gpu-qlora-24gb: Qwen3-8B QLoRA, 1 GPU": ("qwen3-8b", dict(method="qlora", loss_tokens=2048), 24),
    "gpu-qlora-24gb as shipped: + offloaded checkpoints, MLP tiles, fused loss": (
        "qwen3-8b", dict(method="qlora", loss_tokens=512, offload=True, mlp_tile_tokens=4096, lora_dropout=0.0,
                         lora_r=64, fused_head=True, autocast=True), 24),
    "gpu-full-80gb: Qwen3-8B full, ZeRO-3 over 8 GPUs": (
        "qwen3-8b", dict(method="full", n_gpus=8, sharding="zero3", loss_tokens=2048), 80),
    "gpu-full-80gb + context parallel 4 (cp4_fsdp2)": (
        "qwen3-8b", dict(method="full", n_gpus=8, sharding="fsdp", cp_size=4, loss_tokens=2048), 80),
    "Skywork-RM-8B scalar RM, LoRA, 1 GPU": ("skywork-reward-v2-llama-3.1-8b", dict(method="lora", kind="scalar"), 80),
}
"""Set-ups plotted in notebook 08: label -> (preset, PlanConfig fields, GiB per GPU). Logits are
computed for 2,048 response positions except where the label says otherwise."""


def plot_curves(lengths, plans: dict | None = None, path: str | os.PathLike | None = None):
    """Predicted per-GPU peak (GiB) against sequence length for each plan, with each card's size."""
    import matplotlib.pyplot as plt

    plans = plans or PROFILE_PLANS
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, (preset, kw, gib) in plans.items():
        shape = ModelShape.from_preset(preset)
        ys = [predict(shape, PlanConfig(seq_len=n, **kw)).total / GiB for n in lengths]
        ax.plot(lengths, ys, marker="o", label=label, ls="--" if kw.get("loss_tokens") is None
                and kw.get("kind", "generative") == "generative" else "-")
    for gib in sorted({g for _, _, g in plans.values()}):
        ax.axhline(gib, color="grey", ls=":", lw=1)
        ax.text(lengths[0], gib * 1.04, f"{gib:g} GB card", color="grey", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(lengths), [f"{n // 1024}k" for n in lengths])
    ax.set_xlabel("tokens per sequence")
    ax.set_ylabel("predicted peak GiB per GPU")
    ax.set_title("Planner: peak training memory per GPU (checkpointing, bf16, FlashAttention)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
