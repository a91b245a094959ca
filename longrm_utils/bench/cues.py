"""Surface cues: the heuristic judges, and the check that the benchmark does not reward them.

There is one definition of each heuristic and one tie rule, used by the data card's cue check,
by the build-time cue guard (:mod:`longrm_utils.bench.build`), by the judged heuristic baselines
(``python -m longrm_utils judge --kind heuristic --model overlap``) and by the failure analysis:

* ``longer``: more characters is better;
* ``overlap``: a larger share of the answer's distinct words occurs in the context is better;
* ties are broken by a coin seeded by the item (``seed``, task, id), drawn per *answer*, so the
  ranking of the answers does not depend on where they are displayed: a tie never favours slot A.

The per-item score is the official one (:func:`longrm_utils.contracts.item_score`): the share of
answers ranked at their true rank. Since it does not depend on the display order, it is also the
score the judged heuristic gets in either pass.
"""
from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from typing import Sequence

from ..contracts import item_score
from .schema import answers, context_parts

HEURISTICS = ("random", "longer", "overlap")
CUE_KINDS = ("longer", "overlap")
"""The heuristics that read a surface cue (``random`` reads nothing)."""
TIE_SEED = 42
"""Seed of the tie-breaking coin (the official order seed, so a rerun reproduces every tie)."""

_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The distinct lower-cased words of a text."""
    return {w.lower() for w in _WORD.findall(text)}


def overlap_score(response: str, context: str | set[str]) -> float:
    """Share of the response's distinct words that occur in the context (0 for an empty response)."""
    rw = words(response)
    if not rw:
        return 0.0
    ctx = context if isinstance(context, set) else words(context)
    return len(rw & ctx) / len(rw)


def surface_scores(kind: str, texts: Sequence[str], context: str | set[str]) -> list[float]:
    """Per-answer scores of a surface heuristic; ``context`` is the context text or its :func:`words`."""
    if kind == "longer":
        return [float(len(a)) for a in texts]
    if kind == "overlap":
        ctx = context if isinstance(context, set) else words(context)
        return [overlap_score(a, ctx) for a in texts]
    raise ValueError(f"unknown heuristic {kind!r}: longer or overlap")


def heuristic_scores(rec: dict, kind: str) -> list[float]:
    """Per-answer scores of a surface heuristic, in ``answers(rec)`` order (best answer first)."""
    return surface_scores(kind, answers(rec), "" if kind == "longer" else context_parts(rec)[1])


def tie_key(kind: str, task: str, rec_id, seed: int = TIE_SEED) -> str:
    """The seed of an item's tie coin (known before the record is assembled: task and id suffice)."""
    return f"{kind}|{seed}|{task}|{rec_id}"


def rank_with_ties(scores: Sequence[float], key: str) -> list[int]:
    """Predicted rank of each answer (0 = best) by descending score; ties broken by a coin seeded by ``key``."""
    rng = random.Random(key)
    coin = [rng.random() for _ in scores]
    by = sorted(range(len(scores)), key=lambda i: (-scores[i], coin[i]))
    ranks = [0] * len(scores)
    for r, i in enumerate(by):
        ranks[i] = r
    return ranks


def ranks_score(ranks: Sequence[int]) -> float:
    """The official per-item score of predicted ranks of answers stored best first."""
    return item_score(list(ranks), list(range(len(ranks))))


def heuristic_ranking(rec: dict, kind: str, seed: int = TIE_SEED) -> list[int]:
    """Predicted rank of each answer (``answers(rec)`` order) by a heuristic; ``random`` is a seeded shuffle."""
    key = tie_key(kind, rec["task"], rec["id"], seed)
    if kind == "random":
        ranks = list(range(len(answers(rec))))
        random.Random(key).shuffle(ranks)
        return ranks
    return rank_with_ties(heuristic_scores(rec, kind), key)


def heuristic_item_score(rec: dict, kind: str, seed: int = TIE_SEED) -> float:
    """The official per-item score of a heuristic judge: share of answers ranked at their true rank.

    It does not depend on the display order, so it equals the score the judged heuristic gets in
    either pass.
    """
    return ranks_score(heuristic_ranking(rec, kind, seed))


def expected_item_score(scores: Sequence[float]) -> float:
    """:func:`heuristic_item_score` averaged over the tie coin, for answers (best first) scored ``scores``.

    :func:`rank_with_ties` orders the answers of a tie group by independent uniform coins, that is
    in a uniformly random order; the rest of the ranking is fixed by the scores. So an answer with
    ``above`` answers scoring higher and ``tied`` answers (itself included) scoring the same sits at
    each rank ``above .. above + tied - 1`` with probability ``1 / tied``, and at its true rank ``i``
    with probability ``1 / tied`` when ``i`` is in that range, else 0. A pair tie is worth 0.5 and
    a constant heuristic sits exactly at chance (``1 / n``). ``tests/test_bench_construct.py``
    checks this against the coin itself.
    """
    n = len(scores)
    total = 0.0
    for i, s in enumerate(scores):
        above = sum(1 for x in scores if x > s)
        tied = sum(1 for x in scores if x == s)
        total += (1.0 / tied) if above <= i < above + tied else 0.0
    return total / n


def cue_item_scores(texts: Sequence[str], context: str | set[str], task: str, rec_id,
                    kinds: Sequence[str] = CUE_KINDS, seed: int = TIE_SEED) -> dict[str, tuple[float, float]]:
    """Per heuristic, ``(score, expected)`` for answers ``texts`` (best first) of item ``(task, rec_id)``.

    ``score`` is what :func:`heuristic_item_score` gives the finished record (the same scores, the
    same tie coin: the coin's key needs only task and id), ``expected`` its average over the coin
    (:func:`expected_item_score`). The build-time cue guard uses it before the record exists.
    """
    out = {}
    for kind in kinds:
        s = surface_scores(kind, texts, context)
        out[kind] = (ranks_score(rank_with_ties(s, tie_key(kind, task, rec_id, seed))), expected_item_score(s))
    return out


# --- the cue check of the data card ----------------------------------------------------------------

CUE_LIMIT = 65.0
"""A heuristic above this pairwise accuracy means the answers leak a surface cue."""
CUE_MIN_PAIRS = 8
"""Per-task cue checks need this many pairs; below it one item moves the rate by more than 12 points."""


def _cue_columns(rec: dict) -> tuple[str, ...]:
    """The columns of the cue table an item counts in: ``ALL``, its task type, and its task if a pair."""
    return ("ALL", rec["tasktype"]) + ((rec["task"],) if rec["tasktype"] == "PairWise" else ())


def cue_baselines(records: Sequence[dict], kinds: Sequence[str] = CUE_KINDS,
                  seed: int = TIE_SEED) -> dict[str, dict[str, float]]:
    """Accuracy (%) of each heuristic judge (:func:`heuristic_item_score`): per task on PairWise
    items (chance 50), then over all PairWise items, all BestOfN items and all items (``ALL``)."""
    out: dict[str, dict[str, float]] = {}
    for kind in kinds:
        by: dict[str, list[float]] = defaultdict(list)
        for r in records:
            sc = heuristic_item_score(r, kind, seed)
            for key in _cue_columns(r):
                by[key].append(sc)
        out[kind] = {k: round(100 * sum(v) / len(v), 1) for k, v in by.items()}
    return out


def cue_counts(records: Sequence[dict]) -> dict[str, int]:
    """How many items stand behind each column of :func:`cue_baselines`."""
    return dict(Counter(key for r in records for key in _cue_columns(r)))


def cue_violations(baselines: dict[str, dict[str, float]], limit: float = CUE_LIMIT, *,
                   mirror: bool = False, n: dict[str, int] | None = None, min_pairs: int = CUE_MIN_PAIRS) -> list[str]:
    """Pairwise columns where a heuristic beats ``limit`` (with ``mirror``: where its opposite would).

    With ``n`` (from :func:`cue_counts`), task columns with fewer than ``min_pairs`` pairs are not judged.
    """
    out = []
    for kind, row in baselines.items():
        for k, v in row.items():
            if k in ("BestOfN", "ALL") or (n is not None and n.get(k, 0) < min_pairs):
                continue
            if v > limit:
                out.append(f"prefer-{kind} scores {v:.1f}% on {k} pairs")
            elif mirror and 100 - v > limit:
                out.append(f"the opposite of prefer-{kind} would score {100 - v:.1f}% on {k} pairs")
    return out
