"""Candidate answers, their labels, and the Long-RewardBench record that holds them.

From a generated triplet (:func:`longrm_utils.bench.generators.generate`) this module makes the
answers a judge must rank:

* **Candidates.** The scripted policy "models" ``script-concise`` and ``script-narrative`` write
  fluent answers in two phrasings. A *perturbation* (the paper's recipe for the task, see
  :data:`RECIPES`) replaces some answer slots with wrong values that occur in the context, so the
  answers of an item are length-matched and overlap-matched: a judge has to read the context.
* **Labels.** Every answer is scored with the task metric (:func:`longrm_utils.bench.metrics.score`);
  its *ratio* is that score over the score of the golden answer in the same phrasing. Pairwise:
  chosen must beat rejected by ``margin`` (relative, the paper's 40-80 %). BestOfN: the answers
  fall in distinct paper tiers (>90 %, 60-85 %, 25-50 %, <15 % of the golden answer's score).
* **Records.** :func:`make_record` writes a validated record, answers best first, in one of the
  :data:`FORMATS` (``same`` / ``cross`` pairs, ``bon2`` / ``bon3`` / ``bon4``); :func:`fmt_of` reads
  the format back.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Sequence

from ..constants import BUCKET_TOKENS, BUCKETS, SHORT_BUCKET
from . import metrics as M
from .generators import GENERATOR_SOURCE, Triplet
from .schema import CONTEXT_CLOSE, CONTEXT_OPEN, META_KEY, validate_record
from .text import TokenCounter

FORMATS = ("same", "cross", "bon2", "bon3", "bon4")
"""Format cells: intra-model pair, cross-model pair, BestOfN with 2, 3, 4 candidates."""
CROSS_SUBTYPE = "cross"
"""Our value of ``subtype`` for cross-model pairs (the official rule: anything but ``same``)."""
GEN_VERSION = "1"

RECIPES = {
    "LongQA": "drop-clue-docs",          # clue documents dropped with p = 0.5 before answering
    "Summ": "truncate-source",           # source truncated by 0 / 20 / 50 %
    "ICL": "remove-exemplars",           # the exemplars of some queries removed
    "Cite": "wrong-citations",           # wrong citations injected
    "Math": "corrupt-steps",             # intermediate steps corrupted
    "Safety": "misaligned-compliance",   # generated under a misaligned condition
    "Code": "corrupt-trace",             # execution traced with wrong intermediate values
}
"""The paper's perturbation per task (App. A); an intra-model (``same``) pair also records the
context perturbation it stands for (added distractors or truncation)."""
SAME_CONTEXT_PERTURBATIONS = ("add-distractors", "truncate-context")


def model_name(style: str) -> str:
    return f"script-{style}"


def words_bucket(words: int) -> str:
    """``ctx_length_for_words``: the smallest bucket whose nominal size holds ``words`` × 4/3 tokens."""
    for b in BUCKETS:
        if words * 4 / 3 <= BUCKET_TOKENS[b]:
            return b
    return BUCKETS[-1]


# --- candidates ----------------------------------------------------------------------------------------

@dataclass
class Candidate:
    text: str
    model: str
    score: float
    """Raw task metric."""
    ratio: float
    """Score over the golden answer's score in the same phrasing."""
    wrong: tuple[int, ...]
    """Indices of the slots that were replaced by wrong values."""
    perturbation: str


def render_candidate(trip: Triplet, style: str, wrong: Sequence[int], rng: random.Random,
                     perturbation: str | None = None) -> Candidate:
    values = [rng.choice(trip.alts[i]) if i in wrong else s for i, s in enumerate(trip.slots)]
    text = trip.render(values, style)
    gold = M.score(trip.task, trip.render(list(trip.slots), style), trip.reference)
    sc = M.score(trip.task, text, trip.reference)
    ratio = sc / gold if gold > 0 else 0.0
    pert = "none" if not wrong else (perturbation or RECIPES[trip.task])
    if wrong:
        pert += ":" + ",".join(trip.slot_names[i] for i in sorted(wrong))
    return Candidate(text, model_name(style), round(sc, 4), round(min(ratio, 1.0), 4), tuple(sorted(wrong)), pert)


def _masks(k: int) -> list[tuple[int, ...]]:
    return [m for r in range(k + 1) for m in itertools.combinations(range(k), r)]


def candidate_for_tier(trip: Triplet, style: str, want: int, rng: random.Random, tries: int = 3) -> Candidate | None:
    """A candidate whose ratio falls in paper tier ``want`` (0 best), or ``None`` if none can."""
    masks = _masks(len(trip.slots))
    rng.shuffle(masks)
    masks.sort(key=lambda m: len(m))
    if want > 0:
        masks = [m for m in masks if m] if want < 3 else sorted([m for m in masks if m], key=len, reverse=True)
    for m in masks:
        for _ in range(tries):
            c = render_candidate(trip, style, m, rng)
            if M.tier(c.ratio) == want:
                return c
    return None


def candidate_pair(trip: Triplet, chosen_style: str, rejected_style: str, rng: random.Random, margin: float,
                   max_margin: float = 1.0) -> tuple[Candidate, Candidate] | None:
    """(chosen, rejected): chosen is the golden content (or one slot off), rejected loses ≥ ``margin``."""
    chosen = render_candidate(trip, chosen_style, (), rng)
    masks = [m for m in _masks(len(trip.slots)) if m]
    rng.shuffle(masks)
    for m in masks:
        rej = render_candidate(trip, rejected_style, m, rng)
        if rej.text != chosen.text and margin <= M.pair_margin(chosen.ratio, rej.ratio) <= max_margin:
            return chosen, rej
    return None


# --- records --------------------------------------------------------------------------------------------

def user_prompt_for(trip: Triplet, context: str | None = None) -> tuple[str, list[int]]:
    """The user prompt of an item (``context``: the triplet's own by default) and the context's span in it."""
    context = trip.context if context is None else context
    head = f"{trip.instruction}\n\n{CONTEXT_OPEN}\n"
    text = f"{head}{context}\n{CONTEXT_CLOSE}\n\nQuestion: {trip.question}"
    return text, [len(head), len(head) + len(context)]


def make_record(trip: Triplet, fmt: str, cands: Sequence[Candidate], *, rec_id: str, bucket: str,
                count: TokenCounter, seed: int, extra_meta: dict | None = None) -> dict:
    """A validated Long-RewardBench record (answers best first) with our extras under ``meta``."""
    user, span = user_prompt_for(trip)
    rec: dict[str, Any] = {
        "id": rec_id,
        "prompt_template": [{"role": "user", "content": user}],
        "question": trip.question,
        "source": trip.source,
        "task": trip.task,
        "subtask": trip.subtask,
    }
    if fmt in ("same", "cross"):
        c, r = cands
        rec.update(tasktype="PairWise", subtype="same" if fmt == "same" else CROSS_SUBTYPE, chosen=c.text,
                   rejected=r.text, chosen_model=c.model, rejected_model=r.model)
    else:
        rec.update(tasktype="BestOfN", subtype=str(len(cands)), candidates=[c.text for c in cands],
                   candidates_model=[c.model for c in cands], candidates_score=[c.ratio for c in cands])
    words = len(user.split())
    rec.update(ctx_length_for_length=bucket, ctx_length_for_words=words_bucket(words) if bucket != SHORT_BUCKET
               else SHORT_BUCKET, length=count(user), words_count=words)
    rec[META_KEY] = {
        "generator": f"{GENERATOR_SOURCE} v{GEN_VERSION}", "seed": seed, "item_seed": list(trip.seed),
        "tokenizer": count.name, "context_tokens": trip.context_tokens, "context_span": span,
        "evidence_spans": [list(s) for s in trip.evidence_spans],
        "confuser_spans": [list(s) for s in trip.extra.get("confuser_spans", [])],
        "slot_evidence": trip.slot_evidence, "golden": trip.golden("concise"), "golden_slots": trip.slots,
        "slot_names": trip.slot_names, "metric": M.METRIC_OF_TASK[trip.task], "reference": trip.reference,
        "scores": [c.ratio for c in cands], "raw_scores": [c.score for c in cands],
        "wrong_slots": [list(c.wrong) for c in cands], "perturbations": [c.perturbation for c in cands],
        **{k: v for k, v in trip.extra.items() if k != "confuser_spans"},
        **(extra_meta or {}),
    }
    return validate_record(rec)


def fmt_of(rec: dict) -> str:
    """The format of a record (one of :data:`FORMATS`): the inverse of :func:`make_record`'s mapping."""
    if rec["tasktype"] == "PairWise":
        return "same" if rec["subtype"] == "same" else "cross"
    return f"bon{rec['subtype']}"
