"""A training-memory planner: predicted peak memory per GPU, and the longest trainable context.

The model is an explicit sum, each term derived from what PyTorch keeps alive in a Llama/Qwen
decoder step (and checked against measured peaks of the tiny model on CPU, see
:func:`measure_step` and ``tests/test_memory.py``)::

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

What this does *not* model: allocator caching beyond the fixed overhead, CPU offload, fused or
chunked cross-entropy kernels (use ``loss_tokens`` to model logits computed only on the response),
tensor parallelism, and the activations of packed multi-sequence batches beyond their token count.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

GiB = 2**30
METHODS = ("full", "lora", "qlora")
ATTNS = ("flash", "sdpa", "eager")
SHARDINGS = ("none", "zero2", "zero3", "fsdp")
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
NF4_BITS = 4.0 + 8 / 64 + 32 / (64 * 256)
"""nf4 with double quantization: 4 bits + an 8-bit absmax per 64-block + a fp32 constant per 256 blocks."""
LORA_TARGETS = 7
"""``all-linear`` on a Llama/Qwen layer: q, k, v, o, gate, up, down."""


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
        from ..models import REGISTRY

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
        return cls(name, params, s.layers, s.hidden, s.kv_heads, s.head_dim, s.vocab, intermediate, heads, tied)

    @classmethod
    def from_config(cls, config: Any, name: str | None = None) -> "ModelShape":
        """Exact numbers from a transformers config (object, dict, or a folder holding config.json)."""
        if isinstance(config, (str, os.PathLike)):
            p = Path(config)
            config = json.loads((p / "config.json" if p.is_dir() else p).read_text())
            name = name or str(p)
        get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        h, heads = get("hidden_size"), get("num_attention_heads")
        hd = get("head_dim") or h // heads
        kvh = get("num_key_value_heads") or heads
        L, V, I = get("num_hidden_layers"), get("vocab_size"), get("intermediate_size")
        tied = bool(get("tie_word_embeddings", False))
        per_layer = h * heads * hd * 2 + 2 * h * kvh * hd + 3 * h * I + 2 * h
        params = V * h * (1 if tied else 2) + L * per_layer + h
        return cls(name or get("_name_or_path", "config") or "config", float(params), L, h, kvh, hd, V, I, heads, tied)

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

    def __post_init__(self):
        checks = [("method", self.method, METHODS), ("attn", self.attn, ATTNS), ("dtype", self.dtype, tuple(DTYPE_BYTES)),
                  ("sharding", self.sharding, SHARDINGS), ("kind", self.kind, ("generative", "scalar"))]
        for name, val, ok in checks:
            if val not in ok:
                raise ValueError(f"PlanConfig.{name}={val!r}: use one of {', '.join(ok)}")
        for name in ("seq_len", "batch", "n_gpus", "cp_size", "lora_r"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PlanConfig.{name} must be >= 1, got {getattr(self, name)!r}")
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

    TERMS = ("weights", "grads", "optimizer", "activations", "logits", "overhead")

    @property
    def total(self) -> float:
        return sum(getattr(self, t) for t in self.TERMS)

    def gib(self) -> dict[str, float]:
        out = {t: round(getattr(self, t) / GiB, 3) for t in self.TERMS}
        out["total"] = round(self.total / GiB, 3)
        return out

    def table(self) -> str:
        rows = [f"| {t} | {v:,.2f} |" for t, v in self.gib().items()]
        return "\n".join(["| term | GiB |", "|---|---|", *rows])


def activation_bytes_per_token_layer(shape: ModelShape, cfg: PlanConfig) -> float:
    """Bytes autograd saves per token per decoder layer without checkpointing (see the module doc)."""
    E = DTYPE_BYTES[cfg.dtype]
    h, q, kv, i = shape.hidden, shape.q_width, shape.kv_width, shape.intermediate
    b = 24 * h + E * (3 * q + 2 * kv) + E * 4 * i + 4 * shape.heads  # + fp32 logsumexp per head
    if cfg.method in ("lora", "qlora") and cfg.lora_dropout > 0:
        b += (E + 1) * (5 * h + q + i)
    return float(b)


def eager_bytes_per_layer(shape: ModelShape, cfg: PlanConfig, seq: int) -> float:
    return float(shape.heads * seq * seq * DTYPE_BYTES[cfg.dtype]) if cfg.attn == "eager" else 0.0


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

    seq = cfg.seq_len / cfg.cp_size  # tokens this GPU holds
    tokens = cfg.batch * seq
    per_tl = activation_bytes_per_token_layer(shape, cfg)
    eager = cfg.batch * eager_bytes_per_layer(shape, cfg, cfg.seq_len)
    if cfg.grad_ckpt:  # each layer's input stays; one layer at a time is recomputed in backward
        stored = tokens * shape.layers * E * shape.hidden
        working = tokens * per_tl + 3 * eager
    else:
        stored = tokens * shape.layers * per_tl + eager * shape.layers
        working = 2 * eager  # the probabilities' gradient and the softmax backward's output
    stored += tokens * 12 * shape.hidden  # the final norm
    working += tokens * E * shape.intermediate  # gradients in flight in one layer (calibrated, see tests)
    if cfg.attn == "eager" and cfg.cp_size > 1:
        notes.append("eager attention cannot be context-parallel; the seq² term assumes the full sequence")
    if cfg.kind == "generative":
        lt = min(cfg.loss_tokens if cfg.loss_tokens is not None else cfg.seq_len, cfg.seq_len) / cfg.cp_size
        loss_peak = cfg.batch * lt * shape.vocab * (E + 12)
    else:
        loss_peak = tokens * 4 * 4
    # The loss peak (start of backward) and the layer-backward peak do not coincide: the total is
    # stored + max(loss_peak, working). 'activations' reports stored + working, 'logits' the excess.
    acts = stored + working
    logits = max(0.0, loss_peak - working)
    if loss_peak > 0:
        notes.append(f"logits at the loss peak: {loss_peak / GiB:,.2f} GiB (listed: only what exceeds the "
                     f"layer-backward working set)")
    overhead = cfg.overhead_gib * GiB
    return Breakdown(weights, grads, optimizer, acts, logits, overhead, notes)


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


# --- measuring a real step on CPU --------------------------------------------------------------------

MEASURE_METHOD = (
    "peak resident memory (VmHWM) of a fresh Python process per configuration. The child loads the "
    "model, builds the optimizer, runs a 32-token warm-up step, resets the high-water mark (write '5' to /proc/self/clear_refs), "
    "reads VmRSS, runs one full step (forward, backward, AdamW step) and reads VmHWM. "
    "measured = VmHWM - VmRSS before the step. glibc's malloc is told to mmap every block above "
    "64 KiB (MALLOC_MMAP_THRESHOLD_=65536) so freed tensors leave the RSS at once and the "
    "high-water mark tracks live tensors, not heap fragmentation."
)


def _rss_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name} line (Linux only)")


class StepPeak:
    """Peak resident memory of a block, above the level at its start (Linux ``/proc``; see MEASURE_METHOD).

    ``with StepPeak() as m: ...`` then ``m.bytes`` and ``m.seconds``. Only meaningful in a process
    started by :func:`run_isolated` (which sets the malloc threshold) and measured once.
    """

    def __enter__(self):
        import gc

        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        self.rss0 = _rss_kib("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.peak = _rss_kib("VmHWM")
        self.bytes = (self.peak - self.rss0) * 1024


def run_isolated(target: str, spec: dict, *, threads: int = 1, timeout: float = 600) -> dict:
    """Run ``target`` (``"package.module:function"`` or ``"path/to/file.py:function"``) on ``spec``
    in a fresh Python process, with the malloc settings of MEASURE_METHOD; return its dict."""
    from ..constants import REPO_ROOT

    mod, fn = target.rsplit(":", 1)
    if mod.endswith(".py"):
        load = (f"import importlib.util as u; s=u.spec_from_file_location('m', {str(Path(mod).resolve())!r}); "
                "m=u.module_from_spec(s); s.loader.exec_module(m)")
    else:
        load = f"import importlib; m=importlib.import_module({mod!r})"
    code = f"import json,sys\n{load}\nprint('@@' + json.dumps(getattr(m, {fn!r})(json.loads(sys.argv[1]))))"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1",
               TRANSFORMERS_NO_ADVISORY_WARNINGS="1", LONGRM_THREADS=str(threads))
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("@@")]
    if r.returncode != 0 or not line:
        raise RuntimeError(f"isolated run {target} {spec} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(line[-1][2:])


def _child_step(spec: dict) -> dict:
    """Runs inside the measuring subprocess: one training step, returns bytes and seconds."""
    import torch

    from .. import models
    from ..env import quiet, seed_everything

    quiet()
    torch.set_num_threads(int(os.environ.get("LONGRM_THREADS", "1")))
    seed_everything(0)
    kind = spec["kind"]
    loaded = models.load(spec["model"], kind=kind, device="cpu", attn=spec["attn"], trainable=True,
                         quantization="4bit" if spec["method"] == "qlora" else None)
    if spec["method"] in ("lora", "qlora"):
        loaded = models.add_lora(loaded, r=spec["lora_r"], dropout=spec["lora_dropout"],
                                 gradient_checkpointing=spec["grad_ckpt"])
    model = loaded.model
    model.train()
    if spec["grad_ckpt"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if spec["method"] in ("lora", "qlora"):
            model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (spec["batch"], spec["seq_len"]), generator=g)

    def step(n: int):
        kw = {"input_ids": ids[:, :n], "use_cache": False}
        if kind == "generative":
            kw["labels"] = ids[:, :n]
        out = model(**kw)
        loss = out.loss if kind == "generative" else out.logits.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # A 32-token warm-up step faults in the kernels' code pages and creates the AdamW states, so
    # the measured increment is a steady-state step: activations, logits and gradients.
    step(32)
    with StepPeak() as m:
        step(spec["seq_len"])
    return {"measured_bytes": m.bytes, "rss_before_bytes": m.rss0 * 1024, "peak_rss_bytes": m.peak * 1024,
            "step_s": m.seconds, "tokens_per_s": spec["batch"] * spec["seq_len"] / m.seconds}


def measure_step(model: str = "tiny", *, method: str = "full", seq_len: int = 2048, batch: int = 1,
                 grad_ckpt: bool = False, attn: str = "sdpa", kind: str = "generative", lora_r: int = 16,
                 lora_dropout: float = 0.05, threads: int = 1, timeout: float = 600) -> dict:
    """Measure one CPU training step's peak memory increment in a fresh subprocess (see MEASURE_METHOD).

    Returns ``measured_bytes`` (peak RSS during the step minus RSS before it), ``step_s`` and
    ``tokens_per_s``, plus the configuration.
    """
    if attn not in ("sdpa", "eager"):
        raise ValueError(f"attn={attn!r}: on CPU only 'sdpa' or 'eager' can be measured")
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}")
    spec = dict(model=model, method=method, seq_len=int(seq_len), batch=int(batch), grad_ckpt=bool(grad_ckpt),
                attn=attn, kind=kind, lora_r=lora_r, lora_dropout=lora_dropout)
    return {**spec, "threads": threads,
            **run_isolated("longrm_utils.train.memory:_child_step", spec, threads=threads, timeout=timeout)}


def plan_config_for(measured: dict, **overrides: Any) -> PlanConfig:
    """The PlanConfig that describes a :func:`measure_step` run (fp32 on CPU, no overhead)."""
    kw = dict(method=measured["method"], seq_len=measured["seq_len"], batch=measured["batch"],
              grad_ckpt=measured["grad_ckpt"], attn=measured["attn"], dtype="fp32", kind=measured["kind"],
              lora_r=measured["lora_r"], lora_dropout=measured["lora_dropout"], overhead_gib=0.0)
    kw.update(overrides)
    return PlanConfig(**kw)


def step_increment(b: Breakdown) -> float:
    """What :func:`measure_step` sees: activations, logits and gradients (weights and AdamW states
    exist before the measured step)."""
    return b.grads + b.activations + b.logits


def validate(model: str = "tiny", lengths=(1024, 2048, 4096, 8192), *, shape: ModelShape | None = None,
             **kw: Any) -> list[dict]:
    """Measure at several lengths and put the prediction beside each; ``ratio`` = predicted / measured."""
    from .. import models

    if shape is None:
        shape = ModelShape.from_config(models.build_tiny(0) if model in ("tiny", "tiny-rm") else model, name=model)
    rows = []
    for n in lengths:
        m = measure_step(model, seq_len=n, **kw)
        pred = step_increment(predict(shape, plan_config_for(m)))
        rows.append({**m, "predicted_bytes": pred, "ratio": pred / m["measured_bytes"]})
    return rows


# --- accelerate launch configs -------------------------------------------------------------------

def accelerate_configs() -> dict[str, Path]:
    """The course's accelerate configs (``configs/accelerate/*.yaml``) by stem."""
    from ..constants import REPO_ROOT

    return {p.stem: p for p in sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml"))}


def launch_plan(path: str | os.PathLike) -> dict:
    """Parse an accelerate config exactly as ``accelerate launch --config_file`` does (accelerate 1.15),
    build the environment the launcher would give each rank, and instantiate the parallelism and
    FSDP settings from it. Raises ``ValueError`` naming the file when any step refuses it.

    Returns ``{file, distributed_type, num_processes, mixed_precision, zero_stage, fsdp_version,
    parallelism: {dp_shard, cp, sp, ...} or None, env}``. Needs no GPU and no deepspeed.
    """
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

    path = Path(path)
    try:
        args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
        args, defaults, mp_from_config = _validate_launch_command(args)
        dtype = str(defaults.distributed_type).split(".")[-1]
        if args.use_deepspeed:
            keys = list(defaults.deepspeed_config or {}) + (["mixed_precision"] if mp_from_config else [])
            args.deepspeed_fields_from_accelerate_config = ",".join(keys)
            _, env = prepare_deepspeed_cmd_env(args)
        elif args.use_fsdp or args.multi_gpu:
            env = prepare_multi_gpu_env(args)
        else:
            _, env = prepare_simple_launcher_cmd_env(args)
        with mock.patch.dict(os.environ, env):
            pc = ParallelismConfig() if env.get("ACCELERATE_USE_PARALLELISM_CONFIG") == "true" else None
            fsdp = FullyShardedDataParallelPlugin() if env.get("ACCELERATE_USE_FSDP") == "true" else None
    except Exception as e:  # accelerate raises ValueError, AssertionError, KeyError...
        raise ValueError(f"{path}: accelerate refuses this config: {type(e).__name__}: {e}") from e
    par = None
    if pc is not None:
        par = {"dp_replicate": pc.dp_replicate_size, "dp_shard": pc.dp_shard_size, "tp": pc.tp_size,
               "cp": pc.cp_size, "sp": pc.sp_size, "total": pc.total_size}
        world = int(args.num_processes) * int(args.num_machines or 1)
        if pc.sp_size == 1 and pc.total_size != world:
            raise ValueError(f"{path}: parallelism sizes multiply to {pc.total_size}, but num_processes is {world}")
        if pc.sp_size > 1 and world % pc.sp_size:
            raise ValueError(f"{path}: sp_size {pc.sp_size} does not divide num_processes {world}")
    zero = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    return {"file": str(path), "distributed_type": dtype, "num_processes": int(args.num_processes),
            "mixed_precision": args.mixed_precision, "zero_stage": int(zero) if zero else None,
            "fsdp_version": getattr(fsdp, "fsdp_version", None), "parallelism": par, "env": env}


CP_ON_CPU = (
    "Context parallelism cannot run on CPU with accelerate 1.15 / torch 2.13: accelerate accepts a "
    "ParallelismConfig only under FSDP2, multi-GPU or DeepSpeed (Accelerator(cpu=True) makes the run "
    "MULTI_CPU, which ParallelismConfig._validate_accelerator refuses), and torch's ring attention "
    "(torch.distributed.tensor.experimental.context_parallel) only replaces the CUDA SDPA kernels "
    "(flash, mem-efficient, cuDNN), not the CPU one. DeepSpeed-Ulysses needs deepspeed and NCCL. "
    "configs/accelerate/README.md gives the GPU launch commands.")


def ddp_smoke_step(seq_len: int = 256) -> dict:
    """One DDP training step of the tiny model, run under ``torchrun --nproc_per_node 2`` on CPU (gloo).

    Each rank trains on different tokens; after the step the ranks' parameters must be identical
    (gradients were all-reduced). Rank 0 returns the report; every rank returns it.
    """
    import torch
    from accelerate import Accelerator

    from .. import models
    from ..env import quiet

    quiet()
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    loaded = models.load("tiny", device="cpu", attn="sdpa", trainable=True)
    model = loaded.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt = acc.prepare(model, opt)
    g = torch.Generator().manual_seed(1000 + acc.process_index)
    ids = torch.randint(4, model.module.config.vocab_size if hasattr(model, "module") else 4096, (1, seq_len), generator=g)
    out = model(input_ids=ids, labels=ids, use_cache=False)
    acc.backward(out.loss)
    opt.step()
    opt.zero_grad()
    flat = torch.cat([p.detach().reshape(-1) for p in acc.unwrap_model(model).parameters()])
    checksums = acc.gather(torch.tensor([float(flat.double().sum()), float(flat.double().abs().sum())]).unsqueeze(0))
    losses = acc.gather(out.loss.detach().reshape(1))
    return {"distributed_type": str(acc.distributed_type).split(".")[-1], "world_size": acc.num_processes,
            "backend": acc.state.backend, "rank": acc.process_index, "losses": losses.tolist(),
            "param_checksums": checksums.tolist()}


def run_ddp_smoke(nproc: int = 2, seq_len: int = 256, timeout: float = 180) -> dict:
    """Launch :func:`ddp_smoke_step` on ``nproc`` CPU processes with torchrun; return rank 0's report."""
    from ..constants import REPO_ROOT

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "longrm_utils.train.memory", "ddp-smoke", str(seq_len)]
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(REPO_ROOT), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers too (their own session)
        proc.communicate()
        raise RuntimeError(f"torchrun DDP smoke test timed out after {timeout:.0f} s: {' '.join(cmd)}")
    lines = [ln for ln in out.splitlines() if ln.startswith("@@")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"torchrun DDP smoke test failed (exit {proc.returncode}):\n{err[-3000:]}")
    return {**json.loads(lines[0][2:]), "command": " ".join(cmd[2:])}


# --- presets for plots and the CLI -------------------------------------------------------------------

GPU_PROFILES = {
    "gpu-qlora-24gb": dict(gpu_mem_gib=24, n_gpus=1, method="qlora", sharding="none"),
    "gpu-full-80gb": dict(gpu_mem_gib=80, n_gpus=8, method="full", sharding="zero3"),
    "1x80gb-lora": dict(gpu_mem_gib=80, n_gpus=1, method="lora", sharding="none"),
}
"""GPU set-ups the course discusses (gpu_mem_gib per card)."""


def curve(shape: ModelShape, cfg: PlanConfig, lengths) -> list[dict]:
    """Predicted breakdown (GiB) at each sequence length."""
    return [{"seq_len": n, **predict(shape, replace(cfg, seq_len=n)).gib()} for n in lengths]


PROFILE_PLANS = {
    "gpu-qlora-24gb: Qwen3-8B QLoRA, 1 GPU, logits at every position": ("qwen3-8b", dict(method="qlora"), 24),
    "gpu-qlora-24gb: Qwen3-8B QLoRA, 1 GPU": ("qwen3-8b", dict(method="qlora", loss_tokens=2048), 24),
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


def vllm_args(preset: str, *, max_context: int | None = None, tensor_parallel_size: int = 1,
              max_new_tokens: int = 2048, quantization: str | None = None) -> dict:
    """Keyword arguments for ``vllm.LLM`` to judge with a registry preset at ``max_context`` tokens.

    Beyond the native window the registry's rope scaling is applied (YaRN for Qwen3-8B and Con-J:
    factor = max_context / 32768, as ``models.load(max_context=...)`` does for transformers);
    vLLM takes it through ``hf_overrides``. Prefix caching reuses the long context's KV blocks
    across the two display orders and across candidates.
    """
    from ..models import REGISTRY, base_folder

    s = REGISTRY[preset]
    # vLLM loads hub ids or folders: hub presets by id, the offline ones (tiny, SmolLM2) from their cache folder.
    model = s.hf_id if s.route == "hub" else base_folder(s)
    ctx = max_context or s.max_context
    limit = s.yarn_context or s.max_context
    if ctx > limit:
        raise ValueError(f"{preset}: max_context {ctx} exceeds what the registry allows ({limit})")
    kw: dict[str, Any] = {"model": model, "tensor_parallel_size": tensor_parallel_size, "dtype": "bfloat16",
                          "enable_prefix_caching": True, "max_model_len": ctx + max_new_tokens}
    if ctx + max_new_tokens > s.max_context:
        if not s.rope_scaling:
            raise ValueError(f"{preset}: {ctx + max_new_tokens} tokens exceed the native {s.max_context} and the "
                             "registry has no rope scaling for it")
        factor = max(1.0, (ctx + max_new_tokens) / s.max_context)
        kw["hf_overrides"] = {"rope_scaling": dict(s.rope_scaling, factor=round(factor, 3))}
    if quantization == "4bit":
        kw["quantization"] = "bitsandbytes"
    return kw


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
    p = argparse.ArgumentParser(
        prog="longrm_utils plan",
        description="Predict peak training memory per GPU and the longest context that fits. "
                    "Example: python -m longrm_utils plan --model qwen3-8b --method qlora --seq-len 32768 --gpu-mem 24")
    p.add_argument("--model", default="qwen3-8b", help="registry preset (models.REGISTRY)")
    p.add_argument("--config", default=None, help="a model folder or config.json instead of a preset")
    for k, t in (("params-b", float), ("layers", int), ("hidden", int), ("kv-heads", int), ("head-dim", int),
                 ("vocab", int), ("intermediate", int)):
        p.add_argument(f"--{k}", type=t, default=None, help="explicit model numbers (with --params-b)")
    p.add_argument("--tied", action="store_true", help="explicit model: tied input/output embeddings")
    from . import field_docs

    docs = field_docs(PlanConfig)
    for f in fields(PlanConfig):
        flag = "--" + f.name.replace("_", "-")
        doc = docs.get(f.name, "")
        if f.type in ("bool",):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=f.default,
                           help=f"{doc} true/false (default {f.default})")
        elif f.name == "loss_tokens":
            p.add_argument(flag, type=int, default=None, help=doc)
        else:
            typ = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, type=typ, default=f.default, help=f"{doc} (default {f.default})")
    p.add_argument("--gpu-mem", type=float, default=None, help="GiB per GPU: also report the longest context that fits")
    p.add_argument("--usable", type=float, default=0.9, help="share of the card the plan may use (default 0.9)")
    p.add_argument("--json", action="store_true", help="print JSON")
    a = p.parse_args(argv)
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["ddp-smoke"]:
        rep = ddp_smoke_step(int(sys.argv[2]) if len(sys.argv) > 2 else 256)
        if rep["rank"] == 0:
            print("@@" + json.dumps(rep), flush=True)
        sys.exit(0)
    sys.exit(cli())
