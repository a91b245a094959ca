"""Verdict parsing: the official rules, plus a strict mode that flags ambiguous outputs.

Nothing here raises on any input; every failure comes back as a short error kind, which the run
records next to the raw output.

A parsed verdict is a *ranking*: ``ranking[j]`` is the predicted rank of display slot ``j``
(0 = best). ``[[B]]`` for two slots is ``[1, 0]``; ``[[B>A>C]]`` is ``[1, 0, 2]``.

Official rules (the official Long-RewardBench scorer; see docs/contracts.md):

* pairwise: ``[[A]]`` anywhere wins for A; otherwise ``[[B]]`` for B; otherwise ``no_verdict``.
* ranking: 10 or more ``>`` characters is ``too_many_arrows``; otherwise the first ``[[...>...]]``
  match, with the words assistant/Assistant, colons and whitespace removed, split on ``>``; each
  part must be one slot letter, every letter present once.

Strict mode applies the same rules and also refuses:

* pairwise outputs holding both ``[[A]]`` and ``[[B]]`` (``ambiguous_both``);
* ranking outputs holding two different valid rankings (``ambiguous_multiple``);
* pointwise outputs holding two different scores, or a score outside 0..10.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..constants import MAX_RANK_ARROWS, SLOT_LETTERS

OFFICIAL, STRICT = "official", "strict"

_RANK = re.compile(r"\[\[([^\[\]]*?>[^\[\]]*?)\]\]")
_STRIP = re.compile(r"assistant|Assistant|:|\s")
_SCORE = re.compile(r"\[\s*Score\s*:\s*(-?\d+(?:\.\d+)?)\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    ranking: list[int] | None
    """Predicted rank of each display slot (0 = best), or None on a failure."""
    error: str | None = None


def _text(x: object) -> str | None:
    if isinstance(x, str):
        return x
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return None


def parse_pairwise(text: object, mode: str = OFFICIAL) -> Parsed:
    t = _text(text)
    if t is None:
        return Parsed(None, "not_text")
    a, b = "[[A]]" in t, "[[B]]" in t
    if mode == STRICT and a and b:
        return Parsed(None, "ambiguous_both")
    if a:
        return Parsed([0, 1])
    if b:
        return Parsed([1, 0])
    return Parsed(None, "no_verdict")


def _ranking_from(content: str, n: int) -> Parsed:
    parts = _STRIP.sub("", content).split(">")
    letters = SLOT_LETTERS[:n]
    if any(len(p) != 1 or p not in SLOT_LETTERS for p in parts):
        return Parsed(None, "bad_letters")
    if any(p not in letters for p in parts):
        return Parsed(None, "letter_out_of_range")
    if len(set(parts)) != len(parts):
        return Parsed(None, "repeated_letter")
    if len(parts) != n:
        return Parsed(None, "missing_letter")
    ranking = [0] * n
    for rank, letter in enumerate(parts):
        ranking[letters.index(letter)] = rank
    return Parsed(ranking)


def parse_ranking(text: object, n: int, mode: str = OFFICIAL) -> Parsed:
    t = _text(text)
    if t is None:
        return Parsed(None, "not_text")
    if not isinstance(n, int) or not 2 <= n <= len(SLOT_LETTERS):
        return Parsed(None, "bad_n")
    if t.count(">") >= MAX_RANK_ARROWS:
        return Parsed(None, "too_many_arrows")
    matches = list(_RANK.finditer(t))
    if not matches:
        return Parsed(None, "no_ranking")
    first = _ranking_from(matches[0].group(1), n)
    if mode == STRICT and first.ranking is not None:
        others = {tuple(r.ranking) for m in matches[1:] if (r := _ranking_from(m.group(1), n)).ranking is not None}
        if others - {tuple(first.ranking)}:
            return Parsed(None, "ambiguous_multiple")
    return first


def parse_verdict(text: object, n: int, *, pairwise: bool, mode: str = OFFICIAL) -> Parsed:
    """Pairwise items use ``[[A]]``/``[[B]]``; BestOfN items (even with 2 candidates) use rankings."""
    return parse_pairwise(text, mode) if pairwise else parse_ranking(text, n, mode)


def parse_score(text: object, mode: str = OFFICIAL) -> tuple[float | None, str | None]:
    """A pointwise ``[Score: N]``: the last one in the text. Returns (score, error)."""
    t = _text(text)
    if t is None:
        return None, "not_text"
    vals = [float(m.group(1)) for m in _SCORE.finditer(t)]
    if not vals:
        return None, "no_score"
    if mode == STRICT:
        if len(set(vals)) > 1:
            return None, "ambiguous_multiple"
        if not 0 <= vals[-1] <= 10:
            return None, "score_out_of_range"
    return vals[-1], None


def rank_by_scores(scores: Sequence[float]) -> list[int]:
    """Ranks (0 = best) from per-slot scores, higher is better; ties go to the earlier slot.

    Tie-breaking by slot is deterministic but favours slot A, so ties show up as position bias in
    the two-order metrics; :func:`has_tie` lets the scorer count them.
    """
    idx = sorted(range(len(scores)), key=lambda j: (-scores[j], j))
    ranking = [0] * len(scores)
    for rank, j in enumerate(idx):
        ranking[j] = rank
    return ranking


def has_tie(scores: Sequence[float]) -> bool:
    return len(set(scores)) < len(scores)
