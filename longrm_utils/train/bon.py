"""LongRM-guided best-of-N rejection sampling for long-context SFT data (the paper's §6.2), small scale.

A policy proposes N responses per long-context prompt; a scalar RM scores each (prompt encoded
once, candidates scored from its KV cache: :func:`judge.backends.score_shared_prefix`), and the
highest-scoring response becomes the SFT target. On the course's data the candidates are a
benchmark item's own answers, so we know which one is truly better and can report how often the
RM's pick was right, against the 1/N of picking at random.
"""
from __future__ import annotations

import os
from typing import Sequence

from .. import models
from ..bench import schema
from ..judge import backends, prompts
from ..rundir import artifacts
from ..stats import wilson_ci


def find_scalar_rm(run_dir: str | os.PathLike | None, preferred: str = "auto", fallback: str = "tiny-rm") -> tuple[str, str]:
    """``(model, why)``: ``preferred`` unless ``auto``; then the newest scalar model the run trained
    (an artifact ``models/<id>`` whose ``longrm.json`` says ``kind: scalar``), else ``fallback``."""
    if preferred != "auto":
        return preferred, "given as a parameter"
    if run_dir is not None:
        found = [(p.stat().st_mtime, k, p) for k, p in artifacts(run_dir).items()
                 if k.startswith("models/") and p.is_dir() and (models.read_meta(p) or {}).get("kind") == models.SCALAR]
        if found:
            _, k, p = max(found)
            return str(p), f"the run's scalar RM {k!r}"
    return fallback, f"no scalar RM trained in this run (notebook 06 makes one); using the {fallback!r} preset"


def best_of_n(loaded: models.Loaded, records: Sequence[dict], *, n: int = 2,
              max_input_tokens: int = 131072) -> list[dict]:
    """Score the first ``n`` answers of each record and pick the best. Records with fewer than ``n``
    answers are an error naming the record. Returns one row per record:
    ``{id, task, scores, picked, correct, truncated, prompt_tokens}`` (answer 0 is the truly best)."""
    rows = []
    for rec in records:
        ans = schema.answers(rec)
        if len(ans) < n:
            raise ValueError(f"record {rec.get('task')}/{rec.get('id')}: field 'candidates'/'chosen' gives "
                             f"{len(ans)} answers, fewer than n={n}")
        msgs = rec["prompt_template"]
        seqs, trunc = [], False
        for a in ans[:n]:
            ids = models.chat_ids(loaded.tokenizer, prompts.scalar_messages(msgs, a), loaded.spec,
                                  add_generation_prompt=False)
            ids, t = models.keep_ends(ids, max_input_tokens)
            seqs.append(ids)
            trunc = trunc or t
        scores, _ = backends.score_shared_prefix(loaded, seqs)
        picked = max(range(n), key=lambda i: scores[i])
        rows.append({"id": rec["id"], "task": rec["task"], "scores": scores, "picked": picked,
                     "correct": picked == 0, "truncated": trunc, "prompt_tokens": max(len(s) for s in seqs)})
    return rows


def sft_records(records: Sequence[dict], rows: Sequence[dict]) -> list[dict]:
    """The selected responses as chat SFT examples: ``{id, task, messages}``, the picked answer last."""
    by = {(r["task"], r["id"]): r for r in rows}
    out = []
    for rec in records:
        row = by[(rec["task"], rec["id"])]
        out.append({"id": rec["id"], "task": rec["task"], "source": "best-of-n",
                    "messages": list(rec["prompt_template"]) + [
                        {"role": "assistant", "content": schema.answers(rec)[row["picked"]]}]})
    return out


def summary(rows: Sequence[dict], n: int = 2) -> dict:
    """Pick accuracy (with a Wilson 95% interval, ``stats.wilson_ci``), chance, per task, truncations."""
    k, m = sum(r["correct"] for r in rows), len(rows)
    p = k / m if m else float("nan")
    ci = wilson_ci(k, m) or [float("nan"), float("nan")]
    tasks = sorted({r["task"] for r in rows})
    return {"items": m, "n": n, "pick_accuracy": round(p, 3), "ci95": ci, "chance": round(1 / n, 3),
            "per_task": {t: round(sum(r["correct"] for r in rows if r["task"] == t)
                                  / sum(1 for r in rows if r["task"] == t), 3) for t in tasks},
            "truncated": sum(r["truncated"] for r in rows)}
