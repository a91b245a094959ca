"""Does Bradley-Terry training teach SmolLM2-135M-RM (LoRA) to ground, and how many steps does it take?

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding_probe.py [--train-items 160] [--steps 40]
        [--lr 2e-3] [--V 2] [--items-per-step 4] [--range 224 288] [--rejects records|splices] [--threads 2]
        [--out benchmarks/results/grounding_probe.json]

The research behind lesson ``scalar_rm_learns`` (issue: the lessons of the CPU default). It builds
the grounding probe, the LongQA ``founders`` subtask of :mod:`longrm_utils.bench.generators`: five
institutions and their founders in a short context, the question asks for one founder, and every
wrong answer is spliced from names in the context (so word overlap and length cannot separate the
answers; only the pairing of first name and surname is wrong). Training items are pairs and
Best-of-2/3 records with V rejects (``--rejects records``), or items with exactly two one-word splices
(``--rejects splices``, :func:`longrm_utils.train.stage2_data.splice_preferences`); the held-out set is
64 benchmark pairs built apart from them.

It trains with :func:`longrm_utils.train.align.train_alignment` (``kind="scalar"``, the notebook-06
call) and scores the held-out pairs before and after with :func:`~longrm_utils.train.align.pair_accuracy`
(chosen scores above the reject; chance 0.5). Each run appends one row to ``--out`` with its
command, the loss every few steps and the wall time on this machine. One run takes about 7 minutes on
2 cores; run one at a time (two torch jobs on 2 cores slow each other many times over).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from longrm_utils.bench.build import build_grounding
from longrm_utils.bench.generators import FOUNDERS_TOKENS
from longrm_utils.bench.text import counter_for
from longrm_utils.judge.run import spread
from longrm_utils.train import align, stage2_data

MODEL = "smollm2-135m-rm"


def probe_sets(train_items: int, token_range: tuple[int, int], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(training records, 64 held-out pairs), disjoint by content, counted with SmolLM2's tokenizer."""
    count = counter_for("smollm2-135m-instruct")
    held = build_grounding(count, seed=seed, pairs=64, bon=0, namespace="probe", token_range=token_range)
    bon = train_items // 3
    train = build_grounding(count, seed=seed, pairs=train_items - bon, bon=bon, namespace="probe-train",
                            token_range=token_range, exclude=held.records)
    return train.records, held.records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-items", type=int, default=160)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--V", type=int, default=2)
    p.add_argument("--items-per-step", type=int, default=4)
    p.add_argument("--range", type=int, nargs=2, default=FOUNDERS_TOKENS, help="context tokens, lowest and highest")
    p.add_argument("--rejects", choices=("records", "splices"), default="records",
                   help="records: the benchmark's pairs and Best-of-2/3 records; splices: two one-word splices per item")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/grounding_probe.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    train, held = probe_sets(a.train_items, tuple(a.range), a.seed)
    if a.rejects == "records":
        items, counts = stage2_data.record_preferences(spread(train, a.train_items), V=a.V)
    else:
        items, counts = stage2_data.splice_preferences(a.train_items, counter_for("smollm2-135m-instruct"), seed=a.seed,
                                                       token_range=tuple(a.range),
                                                       exclude_golden=[r["meta"]["golden"] for r in held])
    pairs, _ = stage2_data.record_preferences(held, V=1)
    cfg = align.AlignConfig(V=a.V, learning_rate=a.lr, max_steps=a.steps, items_per_step=a.items_per_step,
                            max_length=2048, seed=a.seed, report_to="none")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        res = align.train_alignment(MODEL, items, cfg, tmp, kind="scalar", eval_items=pairs, progress=False,
                                    resume=False)
    losses = [round(x["loss"], 3) for x in res.summary["log"]]
    row = {"model": MODEL, "rejects": a.rejects, "train_items": len(items), "train_formats": dict(counts), "steps": a.steps, "lr": a.lr,
           "V": a.V, "items_per_step": a.items_per_step, "context_tokens": list(a.range), "seed": a.seed,
           "held_out_pairs": res.after["n"], "before": round(res.before["accuracy"], 4),
           "after": round(res.after["accuracy"], 4), "loss_every_5_steps": losses[::5], "last_loss": losses[-1],
           "train_seconds": round(res.summary["seconds"]), "wall_seconds": round(time.time() - t0),
           "threads": a.threads, "machine": platform.platform(), "torch": torch.__version__,
           "command": "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding_probe.py " + shlex.join(sys.argv[1:])}
    print(json.dumps(row))
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {"rows": []}
    doc["rows"].append(row)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
