"""Shared-prefix vs naive scalar scoring, and the generative judge's second-order prefill cost.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge_speed.py [--model tiny-rm] [--contexts 4096 8192 16384]
        [--n 2 4] [--answer-tokens 128] [--repeats 3] [--gen-model tiny] [--out benchmarks/judge_speed.json]

For each context length C and candidate count N it builds one item whose context is C tokens and
whose N answers are about ``--answer-tokens`` tokens each, then times

* naive: every candidate scored as a full sequence (N·(C+r) tokens);
* shared: the common prefix encoded once and every candidate scored from its KV cache (C+N·r).

It prints the measured speed-up beside the theoretical N·(C+r)/(C+N·r) (token-count ratio; the
attention term grows faster than linearly, so at long C the measured ratio can exceed it), and
the largest score difference. Then, for the generative judge, the prefill cost of the second
display order with and without reusing the first order's context cache. Timings are the median
of ``--repeats`` runs after one warm-up.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from longrm_utils import env, models
from longrm_utils.judge import backends, prompts
from longrm_utils.judge.run import display_orders, item_view


def filler_item(tok, spec, context_tokens: int, n: int, answer_tokens: int, seed: int = 0) -> dict:
    """A BestOfN-shaped record whose context has ``context_tokens`` tokens under ``tok``."""
    import random

    rng = random.Random(seed)
    words = models._WORDS  # the tiny tokenizer's vocabulary words, also plain English for others
    ctx_ids: list[int] = []
    parts: list[str] = []
    while len(ctx_ids) < context_tokens:
        parts.append(" ".join(rng.choice(words) for _ in range(200)) + ".")
        ctx_ids = tok(" ".join(parts), add_special_tokens=False)["input_ids"]
    ctx = tok.decode(ctx_ids[:context_tokens])
    answers = []
    for k in range(n):
        a_ids = tok(" ".join(rng.choice(words) for _ in range(answer_tokens * 2)), add_special_tokens=False)["input_ids"]
        answers.append(f"Answer {k}: " + tok.decode(a_ids[:answer_tokens]))
    return {"id": f"speed-{context_tokens}-{n}", "task": "LongQA", "tasktype": "BestOfN", "subtype": str(n),
            "prompt_template": [{"role": "user", "content": f"<context>{ctx}</context>\nQuestion: which value?"}],
            "candidates": answers, "question": "which value?"}


def timed(fn, repeats: int):
    fn()  # warm-up
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def scalar_bench(model: str, contexts, ns, answer_tokens: int, repeats: int) -> list[dict]:
    rm = models.load(model, kind="scalar", device="cpu")
    judge = backends.ScalarJudge(rm, max_input_tokens=10**7)
    rows = []
    for C in contexts:
        for n in ns:
            rec = filler_item(rm.tokenizer, rm.spec, C, n, answer_tokens)
            seqs, _ = judge.candidate_ids(item_view(rec))
            t_full, full = timed(lambda: backends.score_full(rm, seqs), repeats)
            t_sh, (shared, P) = timed(lambda: backends.score_shared_prefix(rm, seqs), repeats)
            r = sum(len(s) - P for s in seqs) / n
            theory = n * (P + r) / (P + n * r)
            rows.append({"context": C, "n": n, "prefix_tokens": P, "answer_tokens": round(r, 1),
                         "naive_s": round(t_full, 4), "shared_s": round(t_sh, 4),
                         "speedup": round(t_full / t_sh, 3), "theory": round(theory, 3),
                         "of_theory": round(t_full / t_sh / theory, 3),
                         "max_abs_diff": max(abs(a - b) for a, b in zip(full, shared))})
            print(f"C={C:6d} N={n}  naive {t_full:7.3f}s  shared {t_sh:7.3f}s  speed-up {t_full / t_sh:5.2f}x  "
                  f"theory {theory:5.2f}x  ({100 * t_full / t_sh / theory:5.1f}%)  max|diff| {rows[-1]['max_abs_diff']:.1e}")
    return rows


def prefill_bench(model: str, contexts, repeats: int) -> list[dict]:
    """Prefill of the 2nd order's prompt: from scratch vs from the 1st order's shared-context cache."""
    lm = models.load(model, device="cpu")
    t = prompts.load_templates()
    rows = []
    for C in contexts:
        rec = filler_item(lm.tokenizer, lm.spec, C, 2, 128)
        rec.update(tasktype="PairWise", subtype="same", chosen=rec["candidates"][0], rejected=rec["candidates"][1])
        item = item_view(rec)
        seqs = [models.chat_ids(lm.tokenizer, prompts.judge_messages(t, item.messages, [item.answers[o] for o in od],
                                                                     pairwise=True), lm.spec)
                for od in display_orders(rec, 2)]
        P = backends.lcp(seqs)

        def full():
            with torch.no_grad():
                lm.model(input_ids=torch.tensor([seqs[1]]), use_cache=True)

        with torch.no_grad():
            cache = lm.model(input_ids=torch.tensor([seqs[0][:P]]), use_cache=True).cache

        def reuse():
            with torch.no_grad():
                lm.model(input_ids=torch.tensor([seqs[1][P:]]), cache=cache, use_cache=True)
            cache.crop(P - cache.get_seq_length())

        t_full, _ = timed(full, repeats)
        t_reuse, _ = timed(reuse, repeats)
        rows.append({"context": C, "prompt_tokens": len(seqs[1]), "shared_tokens": P,
                     "second_order_prefill_s": round(t_full, 4), "with_reuse_s": round(t_reuse, 4),
                     "added_without_reuse_pct": round(100 * t_full / (t_full + t_full), 1),
                     "added_with_reuse_pct": round(100 * t_reuse / (t_full + t_reuse), 1)})
        print(f"C={C:6d} 2nd-order prefill: {t_full:6.3f}s from scratch (+100% over one order), "
              f"{t_reuse:6.3f}s from the shared cache (+{100 * t_reuse / t_full:.1f}%), shared {P}/{len(seqs[1])} tokens")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny-rm")
    p.add_argument("--gen-model", default="tiny")
    p.add_argument("--contexts", type=int, nargs="+", default=[4096, 8192, 16384])
    p.add_argument("--n", type=int, nargs="+", default=[2, 4])
    p.add_argument("--answer-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    a = p.parse_args(argv)
    env.quiet()
    threads = env.set_threads(a.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {threads} torch threads, torch {torch.__version__}")
    res = {"scalar": scalar_bench(a.model, a.contexts, a.n, a.answer_tokens, a.repeats),
           "prefill": prefill_bench(a.gen_model, a.contexts, a.repeats),
           "machine": {"platform": platform.platform(), "threads": threads, "torch": torch.__version__}}
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
