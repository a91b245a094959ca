"""The memory planner against measured steps of the shipped training paths, at real width on CPU.

Each row runs one training step in a fresh process (the method is
``longrm_utils.train.memory_measure.MEASURE_METHOD``: peak RSS above the level before the step,
after a short warm-up) of a random-init model with a real preset's hidden size, MLP width and
heads (Qwen3-8B, or Llama-3.1-8B for the scalar RM), one decoder layer, bf16, LoRA r=64 on every
linear layer, and puts :func:`longrm_utils.train.memory.predict`'s step increment beside it.

The steps are the code the profiles run:

* ``sft``: one sequence, loss on its last 256 tokens through trl's fused LM head, as ``SFTTrainer``
  computes it;
* ``align``: a prompt and 1 + V = 3 judgements of 256 tokens through
  ``train.losses.completion_logps`` (chunked log-probabilities) and the multi-reject loss;
* ``scalar``: a prompt and 4 responses (Best-of-4) through ``train.losses.scalar_scores`` and
  Bradley-Terry.

The last two rows load the base in 4-bit (QLoRA, bitsandbytes' CPU backend) as the GPU profiles do.
Techniques: ``grad_ckpt`` (``train.longctx.enable_checkpointing``), ``tiled_mlp`` (tiles of 1,024
tokens), ``shared_prefix`` (the prompt's KV cache under checkpointing), ``chunked_loss`` (always on:
both paths compute their loss that way). Per-layer terms extrapolate by the layer count; the
vocabulary terms are checked by two rows at miniature width with Qwen3's real vocabulary.
Offloading checkpoints to host RAM has no effect on CPU (the tensors already live there), so its
saving is a GPU-only term (see ``GPU_ONLY``).

    python benchmarks/planner_validation.py --out benchmarks/results     # all rows, about 15 minutes
    python benchmarks/planner_validation.py --rows 0,1                   # a subset, printed only
    python benchmarks/planner_validation.py --repredict benchmarks/results/planner_validation.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longrm_utils import models  # noqa: E402
from longrm_utils.miniature import arch_config  # noqa: E402
from longrm_utils.runtime import quiet, seed_everything, set_threads  # noqa: E402
from longrm_utils.train import longctx  # noqa: E402
from longrm_utils.train.align import AlignConfig, Encoded, item_loss  # noqa: E402
from longrm_utils.train.memory import ModelShape, predict  # noqa: E402
from longrm_utils.train.memory_measure import StepPeak, run_isolated, step_increment, technique_plan  # noqa: E402

RESPONSES = {"sft": 1, "align": 3, "scalar": 4}
FAMILY = {"sft": "qwen3", "align": "qwen3", "scalar": "llama3.1"}
ALL = ("grad_ckpt", "tiled_mlp", "shared_prefix")
ROWS = [  # (step, techniques, tokens, width[, method]) -- width "real" or "mini" (vocabulary checks)
    ("sft", (), 1024, "real"),
    ("sft", ("grad_ckpt",), 1024, "real"),
    ("sft", ("grad_ckpt",), 2048, "real"),
    ("sft", ("grad_ckpt", "tiled_mlp"), 1024, "real"),
    ("sft", ("grad_ckpt", "tiled_mlp"), 2048, "real"),
    ("align", ("shared_prefix",), 1024, "real"),
    ("align", ALL, 1024, "real"),
    ("align", ALL, 2048, "real"),
    ("align", ("grad_ckpt",), 2048, "real"),
    ("scalar", ALL, 1024, "real"),
    ("scalar", ALL, 2048, "real"),
    ("sft", ("grad_ckpt",), 1024, "mini"),
    ("align", ALL, 1024, "mini"),
    ("sft", ("grad_ckpt",), 2048, "mini"),
    ("align", ALL, 2048, "mini"),
    ("sft", ("grad_ckpt", "tiled_mlp"), 2048, "real", "qlora"),
    ("align", ALL, 2048, "real", "qlora"),
]
GPU_ONLY = [
    "offload: the checkpointed inputs' device memory (layers x tokens x hidden x 2 bytes) moves to pinned host "
    "RAM; transformers' activation_checkpointing_enable(offload=True) (modeling_utils.py); on CPU there is no "
    "device memory to free",
    "allocator slack and the CUDA context: PlanConfig.overhead_gib (1.5 GiB) plus the 90% usable share",
    "trl's fused LM head scores only the label positions on Triton devices (compact) and every position "
    "elsewhere (trl/trainer/utils.py add_fused_lm_head); the planner counts the label positions",
]


def child(spec: dict) -> dict:
    """Runs in the measuring subprocess: build the model, switch the techniques on, time one step."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    quiet()
    set_threads(int(os.environ.get("LONGRM_THREADS", "1")))
    seed_everything(0)
    scalar = spec["step"] == "scalar"
    cfg = arch_config(spec["family"], vocab_size=spec["vocab"], pad_token_id=0, eos_token_id=1, scalar=scalar,
                      full_size=spec["width"] == "real")
    cfg.num_hidden_layers = spec["layers"]
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = cfg.layer_types[:spec["layers"]]
    cfg._attn_implementation = "sdpa"
    cls = AutoModelForSequenceClassification if scalar else AutoModelForCausalLM
    model = cls.from_config(cfg, dtype=torch.bfloat16)
    if spec["method"] == "qlora":  # the 4-bit base, loaded as the profiles load it (bitsandbytes' CPU backend)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            model = cls.from_pretrained(tmp, dtype=torch.bfloat16, attn_implementation="sdpa",
                                        quantization_config=models.quant_config("4bit", "cpu", torch.bfloat16))
    if spec["step"] == "sft":
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    model = get_peft_model(model, models.lora_config(models.SCALAR if scalar else models.GENERATIVE,
                                                     r=spec["lora_r"], dropout=0.0))
    if spec["grad_ckpt"]:
        longctx.enable_checkpointing(model)
    longctx.tile_mlp(model, spec["mlp_tile_tokens"])
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    N = spec["responses"]
    align_cfg = AlignConfig(V=N - 1, shared_prefix=spec["shared_prefix"])

    def step(n: int, j: int):
        ids = torch.randint(4, spec["vocab"], (n + N * j,), generator=g).tolist()
        if spec["step"] == "sft":
            x = torch.tensor([ids[:n]])
            labels = x.clone()
            labels[:, :n - j] = -100
            loss = model(input_ids=x, labels=labels, fused_lm_head=True, use_cache=False).loss
        else:
            e = Encoded("m", ids[:n - j], ids[n - j:n], [ids[n + k * j:n + (k + 1) * j] for k in range(N - 1)])
            loss = item_loss(model, e, align_cfg, "scalar" if scalar else "generative", 0)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(64, 8)  # warm-up: kernels' code pages and the AdamW states
    with StepPeak() as m:
        step(spec["tokens"], spec["response_tokens"])
    return {"measured_bytes": m.bytes, "step_s": m.seconds}


def predicted_mib(spec: dict) -> float:
    """The planner's step increment (MiB) for one row's configuration."""
    cfg = arch_config(spec["family"], vocab_size=spec["vocab"], scalar=spec["step"] == "scalar",
                      full_size=spec["width"] == "real")
    cfg.num_hidden_layers = spec["layers"]
    shape = ModelShape.from_config(cfg, name=f"{spec['family']}-{spec['width']}")
    return step_increment(predict(shape, technique_plan(spec))) / 2**20


def repredict(path: Path) -> None:
    """Recompute every row's prediction with the current planner (the measurements stay)."""
    doc = json.loads(path.read_text())
    for r in doc["rows"]:
        r["predicted_mib"] = round(predicted_mib(r["spec"]), 1)
        r["ratio"] = round(r["predicted_mib"] / r["measured_mib"], 3)
        print(f"{r['step']:6s} {'+'.join(r['techniques']):48s} {r['tokens']:5d} measured {r['measured_mib']:8.1f} "
              f"predicted {r['predicted_mib']:8.1f} ratio {r['ratio']:.3f}")
    path.write_text(json.dumps(doc, indent=2) + "\n")


def measure(step: str, techniques: tuple[str, ...], tokens: int, width: str, method: str = "lora",
            threads: int = 1) -> dict:
    family = FAMILY[step]
    vocab = 4096 if width == "real" else 151936
    spec = dict(family=family, step=step, tokens=tokens, width=width, layers=1, vocab=vocab, lora_r=64,
                grad_ckpt="grad_ckpt" in techniques, shared_prefix="shared_prefix" in techniques,
                mlp_tile_tokens=1024 if "tiled_mlp" in techniques else 0, responses=RESPONSES[step],
                response_tokens=256, dtype="bfloat16", method=method)
    m = run_isolated(f"{Path(__file__).resolve()}:child", spec, threads=threads, timeout=1800)
    pred = predicted_mib(spec) * 2**20
    cfg = arch_config(family, vocab_size=vocab, scalar=step == "scalar", full_size=width == "real")
    return {"model": f"{'Qwen3-8B' if family == 'qwen3' else 'Llama-3.1-8B'} width, random init"
                     + ("" if width == "real" else f" (miniature width, vocab {vocab:,})"),
            "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size, "layers": 1,
            "vocab": vocab, "method": method, "step": step,
            "techniques": list(techniques) + ["chunked_loss"], "tokens": tokens, "responses": RESPONSES[step],
            "response_tokens": 256, "measured_mib": round(m["measured_bytes"] / 2**20, 1),
            "predicted_mib": round(pred / 2**20, 1), "ratio": round(pred / m["measured_bytes"], 3),
            "step_s": round(m["step_s"], 1), "spec": spec}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=None, help="comma-separated row indices (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="folder for planner_validation.json")
    p.add_argument("--repredict", default=None, help="a planner_validation.json: recompute its predictions only")
    a = p.parse_args(argv)
    if a.repredict:
        repredict(Path(a.repredict))
        return 0
    idx = [int(i) for i in a.rows.split(",")] if a.rows else list(range(len(ROWS)))
    rows = []
    for i in idx:
        step, tech, n, width, *method = ROWS[i]
        r = measure(step, tech, n, width, *method, threads=a.threads)
        r["command"] = f"python benchmarks/planner_validation.py --rows {i}"
        rows.append(r)
        print(f"{i:2d} {step:6s} {'+'.join(tech) or 'plain':34s} {n:5d} {width:4s} measured {r['measured_mib']:8.1f} "
              f"predicted {r['predicted_mib']:8.1f} MiB ratio {r['ratio']:.3f} ({r['step_s']} s)", flush=True)
    if a.out:
        machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                   "threads": a.threads}
        doc = {"rows": rows, "machine": machine, "gpu_only_terms": GPU_ONLY,
               "method": "benchmarks/planner_validation.py (module docstring)"}
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "planner_validation.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
