"""Peak memory and tokens/s of one training step against context length (tiny model, CPU).

Three steps, each measured in a fresh process (``longrm_utils.train.memory_measure.run_isolated``;
the method is ``memory_measure.MEASURE_METHOD``: peak RSS above the level before the step, after a
short warm-up):

* ``sft``: causal-LM loss over the whole sequence (tiny, full fine-tuning), one sequence of L tokens.
* ``rm_shared``: our scalar-RM step (``train.losses.scalar_scores(shared_prefix=True)`` +
  ``losses.bradley_terry_loss``): the prompt is encoded once and both responses run from its KV cache.
* ``rm_trl``: trl's ``RewardTrainer.training_step`` on the same pair: chosen and rejected each
  carry the full prompt (a batch of two sequences).

Fairness: the same tiny-rm weights, sdpa attention, fp32, no gradient checkpointing (the shared
prefix is compared without checkpointing, as trl runs it), one pair per step. A pair is a
prompt of ``L - R`` tokens plus two responses of ``R`` tokens, so L is the length of one full
sequence. tokens/s counts the pair's distinct tokens (``L + R``) for both RM steps.

    python benchmarks/train_memory.py                      # 1k, 2k, 4k, 8k
    python benchmarks/train_memory.py --lengths 1024,8192 --response 64 --out benchmarks/results
    python benchmarks/train_memory.py --planner            # the memory planner against measured peaks
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = ("sft", "rm_shared", "rm_trl")


def _pair(vocab: int, L: int, R: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (L - R + 2 * R,), generator=g).tolist()
    return ids[: L - R], ids[L - R: L], ids[L:]


def child(spec: dict) -> dict:
    """One measured step (runs inside a fresh process)."""
    import torch

    from longrm_utils import models
    from longrm_utils.runtime import quiet, seed_everything
    from longrm_utils.train import losses
    from longrm_utils.train.memory_measure import StepPeak

    quiet()
    torch.set_num_threads(int(os.environ.get("LONGRM_THREADS", "1")))
    seed_everything(0)
    step, L, R = spec["step"], spec["seq_len"], spec["response"]
    kind = models.GENERATIVE if step == "sft" else models.SCALAR
    loaded = models.load("tiny" if step == "sft" else "tiny-rm", kind=kind, device="cpu", attn="sdpa", trainable=True)
    model, pad = loaded.model, loaded.tokenizer.pad_token_id
    model.train()
    vocab = model.config.vocab_size
    warm = 2 * R + 64

    if step == "sft":
        def run(n):
            ids = torch.tensor([_pair(vocab, n, R)[0] + _pair(vocab, n, R)[1]])
            model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
            model.zero_grad(set_to_none=True)
        tokens = L
    elif step == "rm_shared":
        def run(n):
            p, c, r = _pair(vocab, n, R)
            s = losses.scalar_scores(model, p, [c, r], pad, shared_prefix=True)
            losses.bradley_terry_loss(s[:1], s[1:].unsqueeze(0))[0].sum().backward()
            model.zero_grad(set_to_none=True)
        tokens = L + R
    else:
        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer

        rows = []
        for n in (warm, L):
            p, c, r = _pair(vocab, n, R)
            rows.append({"chosen_ids": p + c, "rejected_ids": p + r})
        args = RewardConfig(output_dir=str(Path(spec["tmp"]) / "rt"), max_length=L + 1, bf16=False, use_cpu=True,
                            per_device_train_batch_size=1, report_to=[], save_strategy="no", disable_tqdm=True)
        tr = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                           processing_class=loaded.tokenizer)
        if len(tr.train_dataset) != 2:
            raise RuntimeError(f"RewardTrainer dropped pairs: kept {len(tr.train_dataset)} of 2")

        def run(n):
            ex = tr.train_dataset[0 if n == warm else 1]
            batch = tr.data_collator([ex])
            tr.current_gradient_accumulation_steps = 1  # set by Trainer.train(); one micro-step here
            tr.training_step(tr.model, batch)
            tr.model.zero_grad(set_to_none=True)
        tokens = L + R

    run(warm)  # warm-up: kernels' code pages, lazy buffers
    with StepPeak() as m:
        run(L)
    return {"peak_mib": m.bytes / 2**20, "step_s": m.seconds, "tokens_per_s": tokens / m.seconds}


def run(lengths, response: int = 64, threads: int = 1, out: Path | None = None) -> list[dict]:
    import tempfile

    from longrm_utils.train.memory_measure import run_isolated

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for L in lengths:
            for step in STEPS:
                spec = {"step": step, "seq_len": int(L), "response": response, "tmp": tmp}
                r = run_isolated(f"{Path(__file__).resolve()}:child", spec, threads=threads)
                rows.append({"step": step, "seq_len": int(L), **{k: round(v, 3) for k, v in r.items()}})
                print(f"{step:10s} L={L:6d}  peak {r['peak_mib']:8.1f} MiB  {r['tokens_per_s']:8.0f} tok/s", flush=True)
    report = {"rows": rows, "response_tokens": response, "threads": threads, "machine": machine(),
              "command": "python benchmarks/train_memory.py " + " ".join(sys.argv[1:])}
    by = {(r["step"], r["seq_len"]): r for r in rows}
    report["rm_shared_over_trl"] = {L: round(by[("rm_shared", L)]["peak_mib"] / by[("rm_trl", L)]["peak_mib"], 3)
                                    for L in lengths}
    if len(lengths) > 1:
        lo, hi = min(lengths), max(lengths)
        report["growth"] = {s: round(by[(s, hi)]["peak_mib"] / by[(s, lo)]["peak_mib"], 2) for s in STEPS}
        report["length_ratio"] = hi / lo
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_memory.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "train_memory.md").write_text(to_markdown(report) + "\n")
    return report


PLANNER_GRID = [
    ("tiny", dict(kind="generative"), (1024, 4096, 8192)),
    ("tiny", dict(kind="generative", grad_ckpt=True), (1024, 4096, 8192)),
    ("tiny", dict(kind="scalar"), (1024, 4096, 8192)),
    ("tiny", dict(kind="scalar", grad_ckpt=True), (1024, 4096, 8192)),
    ("tiny", dict(kind="scalar", method="lora"), (1024, 8192)),
    ("tiny", dict(kind="scalar", method="qlora"), (1024, 8192)),
    ("tiny", dict(kind="scalar", attn="eager"), (512, 1024, 2048)),
    ("smollm2-135m-instruct", dict(kind="generative", method="lora"), (1024, 2048)),
    ("smollm2-135m-instruct", dict(kind="scalar", method="lora"), (1024, 2048)),
]
"""(model, measure_step options, lengths) the planner is checked against with ``--planner``."""


def planner_validation(out: Path | None, threads: int = 1) -> list[dict]:
    """Measured step peak vs the planner's prediction over PLANNER_GRID (tiny and SmolLM2, CPU)."""
    from longrm_utils import store
    from longrm_utils.train import memory, memory_measure

    rows = []
    for model, kw, lengths in PLANNER_GRID:
        folder = store.build_tiny(0) if model == "tiny" else store.smollm2_dir()
        shape = memory.ModelShape.from_config(folder, name=model)
        for r in memory_measure.validate(model, lengths, shape=shape, threads=threads, **kw):
            row = {"model": model, **{k: r[k] for k in ("method", "kind", "grad_ckpt", "attn", "seq_len")},
                   "measured_mib": round(r["measured_bytes"] / 2**20, 1),
                   "predicted_mib": round(r["predicted_bytes"] / 2**20, 1), "ratio": round(r["ratio"], 3)}
            rows.append(row)
            print(row, flush=True)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "planner_validation_tiny.json").write_text(json.dumps({"rows": rows, "machine": machine()}, indent=2) + "\n")
    return rows


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()}")


def to_markdown(report: dict) -> str:
    lines = ["| step | tokens | peak MiB | tokens/s |", "|---|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['step']} | {r['seq_len']:,} | {r['peak_mib']:,.1f} | {r['tokens_per_s']:,.0f} |")
    lines.append("")
    lines.append("shared-prefix / RewardTrainer peak: " + ", ".join(
        f"{k}: {v:.2f}x" for k, v in report["rm_shared_over_trl"].items()))
    if "growth" in report:
        lines.append(f"peak growth for {report['length_ratio']:.0f}x tokens: " + ", ".join(
            f"{k} {v:.2f}x" for k, v in report["growth"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="1024,2048,4096,8192")
    p.add_argument("--response", type=int, default=64, help="tokens per response")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--planner", action="store_true", help="instead: measured vs predicted peaks over PLANNER_GRID")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.planner:
        planner_validation(Path(a.out), a.threads)
        return 0
    t0 = time.time()
    rep = run([int(x) for x in a.lengths.split(",")], a.response, a.threads, Path(a.out))
    print(to_markdown(rep))
    print(f"({time.time() - t0:.0f} s; {rep['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
