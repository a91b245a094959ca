"""A generative judge one item at a time against batched items (``HFGenerativeJudge.judge_items``).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge_batch.py --bench RUN/bench/short.jsonl
        [--model smollm2-135m-instruct] [--items 12] [--batch-sizes 1 8] [--max-new-tokens 64]
        [--out benchmarks/results/judge_batch.json]

Judges the same ``--items`` records (spread over the file, both display orders) once per batch
size, greedy, and reports the wall time, the new tokens, and whether every output text, verdict and
teacher-forced verdict log-probability equals the batch-size-1 run's. Without ``--bench`` it uses
toy records (``judge.toy_records``), whose texts mean nothing but whose prompt lengths vary.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from longrm_utils import models
from longrm_utils.bench import schema
from longrm_utils.judge import backends, prompts, toy_records
from longrm_utils.judge import run as jrun


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", default=None, help="a benchmark JSONL (e.g. a course run's bench/short.jsonl)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--items", type=int, default=12)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    loaded = models.load(a.model, kind="generative", device="cpu")
    recs = jrun.spread(jrun.load_bench(a.bench), a.items) if a.bench else toy_records(a.items // 2, a.items - a.items // 2)
    views = [(jrun.item_view(r), schema.display_orders(r, len(schema.answers(r)), 0, 2)) for r in recs]
    templates, runs = prompts.load_templates(), {}
    for b in a.batch_sizes:
        judge = backends.HFGenerativeJudge(loaded, templates=templates, max_new_tokens=a.max_new_tokens,
                                           max_input_tokens=jrun.input_limit(loaded.spec, a.max_new_tokens),
                                           batch_size=b)
        t0 = time.perf_counter()
        res = [r for item in judge.judge_items(views) for r in item]
        runs[b] = {"seconds": round(time.perf_counter() - t0, 2), "results": res,
                   "new_tokens": sum(r.timing["new_tokens"] for r in res)}
        print(f"batch size {b}: {runs[b]['seconds']:.1f} s for {len(views)} items x 2 orders, "
              f"{runs[b]['new_tokens']} new tokens", flush=True)
    ref = runs[a.batch_sizes[0]]["results"]
    rows = []
    for b, r in runs.items():
        lp = [abs(x - y) for u, v in zip(ref, r["results"]) if u.slot_scores and v.slot_scores
              for x, y in zip(u.slot_scores, v.slot_scores)]
        rows.append({"batch_size": b, "seconds": r["seconds"], "new_tokens": r["new_tokens"],
                     "speedup": round(runs[a.batch_sizes[0]]["seconds"] / r["seconds"], 2),
                     "same_text": sum(u.raw == v.raw for u, v in zip(ref, r["results"])),
                     "same_verdict": sum(u.ranking == v.ranking for u, v in zip(ref, r["results"])),
                     "outputs": len(ref), "max_abs_verdict_logp_diff": max(lp, default=0.0)})
        print(rows[-1])
    if a.out:
        Path(a.out).write_text(json.dumps({"model": a.model, "bench": a.bench, "items": len(views),
                                           "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
                                           "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
