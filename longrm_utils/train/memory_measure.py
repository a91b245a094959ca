"""Measuring a real training step on CPU, and the memory planner's prediction beside it.

:func:`measure_step` runs one training step of a model in a fresh Python process and reports the
peak resident memory it added (:data:`MEASURE_METHOD` says exactly how); :func:`validate` puts
:func:`longrm_utils.train.memory.predict`'s step increment beside each measurement. Notebook 08,
``tests/test_memory.py`` and ``benchmarks/train_memory.py`` use it to check the planner.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import models, store
from ..constants import REPO_ROOT
from ..runtime import quiet, seed_everything, set_threads
from .longctx import LOSS_CHUNK
from .memory import METHODS, Breakdown, ModelShape, PlanConfig, predict

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

    quiet()
    set_threads(int(os.environ.get("LONGRM_THREADS", "1")))
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
            **run_isolated("longrm_utils.train.memory_measure:_child_step", spec, threads=threads, timeout=timeout)}


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
    if shape is None:
        shape = ModelShape.from_config(store.build_tiny(0) if model in ("tiny", "tiny-rm") else model, name=model)
    rows = []
    for n in lengths:
        m = measure_step(model, seq_len=n, **kw)
        pred = step_increment(predict(shape, plan_config_for(m)))
        rows.append({**m, "predicted_bytes": pred, "ratio": pred / m["measured_bytes"]})
    return rows


# --- the training paths as shipped, at real width (benchmarks/planner_validation.py measures them) ---

def technique_plan(m: dict) -> PlanConfig:
    """The PlanConfig of one row of ``benchmarks/planner_validation.py`` (a shipped step at real
    width: ``sft``, ``align`` or ``scalar``, LoRA, no GPU overhead)."""
    return PlanConfig(method=m.get("method", "lora"), seq_len=m["tokens"], grad_ckpt=m["grad_ckpt"], attn="sdpa",
                      dtype={"bfloat16": "bf16", "float32": "fp32"}[m["dtype"]],
                      kind="scalar" if m["step"] == "scalar" else "generative",
                      # trl scores every position off Triton devices (CPU); Stage II scores all 1 + V judgements
                      loss_tokens=None if m["step"] == "align" or not m.get("gpu") else m["response_tokens"],
                      loss_chunk=32768 if m["step"] == "sft" else LOSS_CHUNK, lora_r=m["lora_r"], lora_dropout=0.0,
                      overhead_gib=0.0, mlp_tile_tokens=m["mlp_tile_tokens"], responses=m["responses"],
                      response_tokens=m["response_tokens"], shared_prefix=m["shared_prefix"],
                      fused_head=m["step"] == "sft")
