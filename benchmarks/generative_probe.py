"""Does Stage II cut the position bias of the SmolLM2 Stage I judge on the grounding probe?

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generative_probe.py --run RUN --out OUT
        [--steps 40] [--lr 5e-4] [--train-pairs 60] [--setting table5] [--nll-weight W]

``RUN`` is a course run directory in which notebook 04 trained ``models/stage1-smollm2`` (the
``cpu`` profile's). The script builds the grounding probe's 64 held-out pairs (notebook 06's,
``bench.build.build_grounding``) and ``--train-pairs`` training pairs apart from them, turns the
training pairs into notebook 05's CPU preference items (both display orders; chosen = the
label-correct rule judgement, rejects = one arguing for the worse answer and the chosen one with its
verdict flipped, V = 2), aligns the Stage I adapter on them as notebook 05 does, and judges the 64
pairs in both orders with the Stage I judge and the aligned one (greedy, 64 new tokens). It prints
two-order and consistent accuracy, the position-bias rate and the parse-failure rate of each; the
predictions stay in ``OUT`` (``stage1/``, ``aligned-<steps>-<lr>/``). Measured in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from longrm_utils import models
from longrm_utils.bench.build import build_grounding
from longrm_utils.bench.text import counter_for
from longrm_utils.judge import run as jrun
from longrm_utils.train import align, stage2_data

SHOWN = ("acc_two_order", "acc_consistent", "bias_rate", "parse_failure_rate")


def judge(path: str, records: list[dict], out: Path, loaded=None) -> dict:
    t0 = time.time()
    m = jrun.run_judge(path, kind="generative", bench=records, out_dir=out, orders=2, max_new_tokens=64,
                       device="cpu", loaded=loaded, progress=False)
    row = {k: m["overall"].get(k) for k in SHOWN} | {"seconds": round(time.time() - t0)}
    print(out.name, row, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a course run directory holding models/stage1-smollm2")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--train-pairs", type=int, default=60)
    p.add_argument("--setting", default="table5", choices=sorted(align.PAPER_SETTINGS))
    p.add_argument("--nll-weight", type=float, default=None, help="override the setting's NLL weight")
    a = p.parse_args(argv)
    out = Path(a.out)
    count = counter_for("smollm2-135m-instruct")
    held = build_grounding(count, seed=0, pairs=64, bon=0).records
    train = build_grounding(count, seed=0, pairs=a.train_pairs, bon=0, namespace="grounding-train",
                            exclude=held).records
    prefs, counts = stage2_data.pairwise_preferences(train, tokenizer=models.tokenizer("smollm2-135m-instruct"),
                                                     max_tokens=56, V=2, seed=0)
    print(f"{len(held)} held-out pairs; training items {dict(counts)}")
    init = str(Path(a.run) / "models" / "stage1-smollm2")
    if not (out / "stage1" / "metrics.json").exists():
        judge(init, held, out / "stage1")
    over = {} if a.nll_weight is None else {"nll_weight": a.nll_weight}
    cfg = align.AlignConfig.paper(a.setting, V=2, learning_rate=a.lr, max_steps=a.steps, items_per_step=4,
                                  max_length=2048, seed=0, report_to="none", **over)
    name = f"aligned-{a.steps}-{a.lr}" + (f"-nll{a.nll_weight}" if a.nll_weight is not None else "")
    res = align.train_alignment(init, prefs, cfg, out / "models" / name, kind="generative", method="lora", device="cpu")
    s = res.summary
    print(f"trained {a.steps} steps in {s['seconds']:.0f} s: loss {s['first_loss']:.3f} -> {s['last_loss']:.3f}")
    judge(str(res.out_dir), held, out / name, loaded=res.loaded)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
