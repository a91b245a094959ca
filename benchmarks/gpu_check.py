"""A short GPU check of the training and judging paths at real width: peak memory and tokens/s.

It builds random-init models of the real shapes from their configs (no weights, no network:
``longrm_utils.miniature.arch_config(full_size=True)``), in bf16, with LoRA r=16 on every linear
layer, and measures one step of each path at each length:

The training steps run with the profiles' memory techniques (``train.longctx``): checkpointing with
the checkpointed inputs offloaded to host RAM, MLP tiles of 4,096 tokens, the shared prefix.

* ``sft``: a Stage I step (Qwen3-8B shape), loss on the last 512 tokens (the judgement), logits
  only there (``logits_to_keep``);
* ``align_gen``: a Stage II generative step, the prompt once and 1 + V = 3 judgements of 256 tokens,
  log-probabilities at the judgement tokens only (``train.losses.completion_logps``);
* ``scalar_bo4``: a Bradley-Terry step on a prompt and 4 responses (Skywork / Llama-3.1-8B shape,
  sequence classification) with the shared prefix (``train.losses.scalar_scores``);
* ``prefill``: a judge prefill of the longest length with ``logits_to_keep=1``, no gradients.

Each training row carries the planner's prediction for its configuration (``predicted_gib``:
weights, adapter gradients, activations and logits; no optimizer step runs here).

4-bit QLoRA is not measured here (the machine it is meant for has no bitsandbytes); the LoRA base is
bf16, so the weights take about 16 GB of the cap. ``--memory-gib 24`` caps the process with
``torch.cuda.set_per_process_memory_fraction`` to mimic a 24 GB card. A step that runs out of memory
is recorded as ``"status": "oom"``, not raised. The whole run must fit in about 4 minutes.

    python benchmarks/gpu_check.py                                # 16k, 32k, 64k under a 24 GB cap
    python benchmarks/gpu_check.py --memory-gib 0 --lengths 16384,65536,131072
    python benchmarks/gpu_check.py --mini --device cpu --lengths 128,256 --out /tmp/gpu_check.json
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JUDGEMENT = 512
"""Tokens of the SFT loss (the judgement at the end of the sequence)."""
ALIGN_JUDGEMENT, ALIGN_RESPONSES = 256, 3
PAIR_RESPONSE, BEST_OF = 256, 4
TILE = 4096


def build(family: str, *, scalar: bool, mini: bool, device: str, dtype):
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from longrm_utils.miniature import FAMILIES, arch_config

    vocab = 4096 if mini else FAMILIES[family].real["vocab_size"]
    cfg = arch_config(family, vocab_size=vocab, pad_token_id=vocab - 1, scalar=scalar, full_size=not mini)
    cls = AutoModelForSequenceClassification if scalar else AutoModelForCausalLM
    torch.manual_seed(0)
    with torch.device(device):
        model = cls.from_config(cfg, dtype=dtype)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                      task_type=TaskType.SEQ_CLS if scalar else TaskType.CAUSAL_LM)
    model = get_peft_model(model, lora)
    model.train()
    return model, vocab


def sft_step(model, vocab: int, L: int, device: str) -> None:
    import torch
    import torch.nn.functional as F

    ids = torch.randint(0, vocab - 1, (1, L), device=device)
    keep = min(JUDGEMENT, L - 1) + 1
    logits = model(input_ids=ids, logits_to_keep=keep).logits[0, :-1]
    F.cross_entropy(logits.float(), ids[0, L - keep + 1:]).backward()


def align_step(model, vocab: int, L: int, device: str) -> None:
    import torch

    from longrm_utils.train.losses import completion_logps

    g = torch.Generator().manual_seed(L)
    n_prompt = max(1, L - ALIGN_JUDGEMENT)
    prompt = torch.randint(0, vocab - 1, (n_prompt,), generator=g).tolist()
    judgements = [torch.randint(0, vocab - 1, (ALIGN_JUDGEMENT,), generator=g).tolist() for _ in range(ALIGN_RESPONSES)]
    lps, lens = completion_logps(model, prompt, judgements, vocab - 1, shared_prefix=True)
    (-(lps[0] / lens[0] - (lps[1:] / lens[1:]).mean())).backward()


def pair_step(model, vocab: int, L: int, device: str) -> None:
    import torch

    from longrm_utils.train.losses import bradley_terry_loss, scalar_scores

    g = torch.Generator().manual_seed(L)
    prompt = torch.randint(0, vocab - 1, (max(1, L - PAIR_RESPONSE),), generator=g).tolist()
    pair = [torch.randint(0, vocab - 1, (PAIR_RESPONSE,), generator=g).tolist() for _ in range(BEST_OF)]
    s = scalar_scores(model, prompt, pair, vocab - 1, shared_prefix=True)
    bradley_terry_loss(s[:1], s[1:].unsqueeze(0))[0].mean().backward()


def prefill(model, vocab: int, L: int, device: str) -> None:
    import torch

    with torch.no_grad():
        model(input_ids=torch.randint(0, vocab - 1, (1, L), device=device), use_cache=True, logits_to_keep=1)


def measure(step: str, fn, model, vocab: int, L: int, device: str, tokens: int) -> dict:
    import torch

    cuda = device.startswith("cuda")
    model.zero_grad(set_to_none=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    row = {"step": step, "tokens": L}
    try:
        fn(model, vocab, L, device)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        row.update(status="ok", seconds=round(dt, 3), tokens_per_s=round(tokens / dt, 1))
    except torch.OutOfMemoryError:
        row.update(status="oom")
    if cuda:
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    model.zero_grad(set_to_none=True)
    print(json.dumps(row), flush=True)
    return row


def predicted_gib(family: str, step: str, L: int, mini: bool) -> float:
    """The planner's weights + gradients + activations + logits for one row (bf16 LoRA r=16, no overhead)."""
    from longrm_utils.miniature import FAMILIES, arch_config
    from longrm_utils.train.memory import GiB, ModelShape, PlanConfig, predict

    vocab = 4096 if mini else FAMILIES[family].real["vocab_size"]
    shape = ModelShape.from_config(arch_config(family, vocab_size=vocab, scalar=step == "scalar_bo4",
                                               full_size=not mini), name=family)
    kw = dict(method="lora", dtype="bf16", attn="sdpa", grad_ckpt=True, offload=True, mlp_tile_tokens=TILE,
              lora_dropout=0.0, overhead_gib=0.0)
    if step == "sft":
        cfg = PlanConfig(seq_len=L, loss_tokens=JUDGEMENT, **kw)
    elif step == "align_gen":
        cfg = PlanConfig(seq_len=L, responses=ALIGN_RESPONSES, response_tokens=ALIGN_JUDGEMENT, loss_chunk=512, **kw)
    else:
        cfg = PlanConfig(seq_len=L, kind="scalar", responses=BEST_OF, response_tokens=PAIR_RESPONSE, **kw)
    b = predict(shape, cfg)
    return round((b.weights + b.grads + b.activations + b.logits) / GiB, 3)


def slopes(rows: list[dict]) -> dict:
    """MiB per token between the shortest and longest measured length of each step (ok rows only)."""
    out = {}
    for step in {r["step"] for r in rows}:
        ok = sorted((r["tokens"], r["peak_gib"]) for r in rows if r["step"] == step and r["status"] == "ok"
                    and "peak_gib" in r)
        if len(ok) >= 2 and ok[-1][0] > ok[0][0]:
            out[step] = round((ok[-1][1] - ok[0][1]) * 1024 / (ok[-1][0] - ok[0][0]), 5)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="16384,32768,65536", help="comma-separated sequence lengths")
    p.add_argument("--memory-gib", type=float, default=24.0, help="cap (GiB) to mimic a smaller card; 0: none")
    p.add_argument("--device", default="cuda")
    p.add_argument("--mini", action="store_true", help="miniature sizes (a CPU test of this script)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    a = p.parse_args(argv)
    import torch
    import transformers

    from longrm_utils.models import unwrap
    from longrm_utils.train import longctx

    lengths = [int(x) for x in a.lengths.split(",")]
    dev = a.device
    info = {"device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else platform.processor() or "cpu",
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "mini": a.mini, "memory_cap_gib": a.memory_gib or None, "lora_r": 16, "dtype": "bfloat16",
            "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    if dev.startswith("cuda") and a.memory_gib:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, a.memory_gib / total))
        info["card_gib"] = round(total, 1)
    t0, rows = time.perf_counter(), []
    dtype = torch.bfloat16
    model, vocab = build("qwen3", scalar=False, mini=a.mini, device=dev, dtype=dtype)
    longctx.enable_checkpointing(model, offload=True)
    longctx.tile_mlp(model, TILE)
    for L in lengths:
        rows.append({"model": "qwen3-8b", **measure("sft", sft_step, model, vocab, L, dev, L),
                     "predicted_gib": predicted_gib("qwen3", "sft", L, a.mini)})
        rows.append({"model": "qwen3-8b", **measure("align_gen", align_step, model, vocab, L, dev,
                                                    L + (ALIGN_RESPONSES - 1) * ALIGN_JUDGEMENT),
                     "predicted_gib": predicted_gib("qwen3", "align_gen", L, a.mini)})
    unwrap(model).activation_checkpointing_disable()
    model.eval()
    rows.append({"model": "qwen3-8b", **measure("prefill", prefill, model, vocab, max(lengths), dev, max(lengths))})
    del model
    gc.collect()
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    model, vocab = build("llama3.1", scalar=True, mini=a.mini, device=dev, dtype=dtype)
    longctx.enable_checkpointing(model, offload=True)
    longctx.tile_mlp(model, TILE)
    for L in lengths:
        rows.append({"model": "skywork-reward-v2-llama-3.1-8b",
                     **measure("scalar_bo4", pair_step, model, vocab, L, dev, L + (BEST_OF - 1) * PAIR_RESPONSE),
                     "predicted_gib": predicted_gib("llama3.1", "scalar_bo4", L, a.mini)})
    out = {**info, "wall_s": round(time.perf_counter() - t0, 1), "rows": rows, "mib_per_token": slopes(rows)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out} in {out['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
