"""Judging: prompts, parsing, backends, the resumable run, and official + extended scoring.

Public entry points::

    from longrm_utils.judge.run import run_judge          # judge a benchmark, write the 4 files
    from longrm_utils.judge.score import score_file        # recompute results.csv / metrics.json
    from longrm_utils.judge import toy_records             # small valid records for tests and benchmarks
"""
from __future__ import annotations

import random

_FILLER = ("The report notes that the river station near the market was moved north in the third year. "
           "A team of engineers checked the total and the museum kept a copy of each record. ")


def toy_records(n_pairwise: int = 4, n_bon: int = 3, *, context_words: int = 60, seed: int = 0,
                bucket: str = "4k", task: str = "LongQA") -> list[dict]:
    """Schema-valid Long-RewardBench records with a synthetic context of about ``context_words``
    words per item (Pairwise first, then BestOfN with 2, 3, 4, 2, ... candidates). No labels mean
    anything: these exercise the mechanics, not judgement."""
    rng = random.Random(seed)
    base = (_FILLER * (context_words // 30 + 1)).split()
    recs = []
    for i in range(n_pairwise + n_bon):
        ctx = " ".join(base[:context_words]) + f" Item {i} has value {rng.randint(10, 99)}."
        q = f"What value does item {i} have?"
        rec = {
            "id": f"toy-{i:03d}", "task": task, "subtask": "toy", "source": "toy", "question": q,
            "prompt_template": [{"role": "user", "content": f"<context>{ctx}</context>\n\nQuestion: {q}"}],
            "ctx_length_for_length": bucket, "ctx_length_for_words": bucket,
            "length": len(ctx.split()), "words_count": len(ctx.split()),
        }
        answers = [f"Item {i} has value {rng.randint(10, 99)} according to the passage, answer {k}."
                   + " It is supported." * k for k in range(4)]
        if i < n_pairwise:
            rec.update(tasktype="PairWise", subtype="same" if i % 2 == 0 else "cross",
                       chosen=answers[0], rejected=answers[1], chosen_model="m1", rejected_model="m2")
        else:
            n = 2 + (i - n_pairwise) % 3
            rec.update(tasktype="BestOfN", subtype=str(n), candidates=answers[:n],
                       candidates_model=[f"m{k}" for k in range(n)],
                       candidates_score=[float(n - k) for k in range(n)])
        recs.append(rec)
    return recs
