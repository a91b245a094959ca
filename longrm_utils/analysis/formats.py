"""Format non-compliance: what is wrong with a judge's output, classified from its raw text alone.

The official parser (:mod:`longrm_utils.judge.parse`) only says whether a verdict was found; the
kinds here (:data:`FORMAT_KINDS`) say how an output missed the format, and they are compared with
the parser's decisions in :func:`format_table`, so each checks the other.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence

from ..constants import MAX_RANK_ARROWS, SLOT_LETTERS
from ..contracts import is_pairwise

FORMAT_KINDS = ("no_verdict", "wrong_pattern", "several_verdicts", "missing_letter", "repeated_letter",
                "too_many_arrows", "no_score", "several_scores")
"""Kinds of format non-compliance. ``several_*`` may still be accepted by the official parser."""

OFFICIAL_PAIR = re.compile(r"\[\[([AB])\]\]")
ANY_DOUBLE = re.compile(r"\[\[([^\[\]]{0,60})\]\]")
"""Any ``[[...]]``: the official verdict brackets, whatever they hold."""
_LOOSE_VERDICT = re.compile(
    r"(?<!\[)\[\s*[A-D]\s*\](?!\])"                                       # [A]
    r"|^\s*\**\(?[A-D]\)?\**\s*[:.)]"                                     # A: / (A) / **A**. at the start
    r"|\b(?:verdict|answer|winner|choice|response|assistant|output)\s*(?:is|:)\s*\**\(?[A-D]\)?\b"
    r"|\b(?:response|assistant|answer|output|option)\s+\(?[A-D]\)?\s+is\s+(?:the\s+)?(?:better|best|correct)",
    re.MULTILINE)
_LOOSE_CHAIN = re.compile(r"\b[A-D]\s*>\s*[A-D]\b")
_SCORE_TAG = re.compile(r"\[\s*Score\s*:\s*(-?\d+(?:\.\d+)?)\s*\]", re.IGNORECASE)
_LOOSE_SCORE = re.compile(r"score\s*(?:of|is|:)?\s*\d+|\b\d+\s*/\s*10\b", re.IGNORECASE)
_STRIP = re.compile(r"assistant|Assistant|:|\s")


def style(pred: dict) -> str:
    """``generative`` (raw is text), ``pointwise`` (raw is one text per slot), ``scores`` (numbers or None)."""
    raw = pred.get("raw")
    if isinstance(raw, str):
        return "generative"
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return "pointwise"
    return "scores"


def ranking_parts(content: str) -> list[str]:
    """The slot letters of a ranking ``A > Assistant B > C`` (the official parser's reading)."""
    return _STRIP.sub("", content).split(">")


def format_kind_pairwise(text: str) -> str | None:
    letters = set(OFFICIAL_PAIR.findall(text))
    if len(letters) > 1:
        return "several_verdicts"
    if letters:
        return None
    if ANY_DOUBLE.search(text) or _LOOSE_VERDICT.search(text):
        return "wrong_pattern"
    return "no_verdict"


def _ranking_error(parts: list[str], letters: str) -> str | None:
    if any(len(p) != 1 or not p.isalpha() for p in parts):
        return "wrong_pattern"
    if len(set(parts)) != len(parts):
        return "repeated_letter"
    if set(parts) != set(letters):
        return "missing_letter"
    return None


def format_kind_ranking(text: str, n: int) -> str | None:
    if text.count(">") >= MAX_RANK_ARROWS:
        return "too_many_arrows"
    found = [m.group(1) for m in ANY_DOUBLE.finditer(text) if ">" in m.group(1)]
    if not found:
        return "wrong_pattern" if (ANY_DOUBLE.search(text) or _LOOSE_CHAIN.search(text)
                                   or _LOOSE_VERDICT.search(text)) else "no_verdict"
    letters = SLOT_LETTERS[:n]
    valid = []
    first_error = None
    for content in found:
        parts = ranking_parts(content)
        err = _ranking_error(parts, letters)
        if err is None:
            valid.append(tuple(parts))
        if first_error is None and not valid:
            first_error = err
    if len(set(valid)) > 1:
        return "several_verdicts"
    return None if valid and first_error is None else first_error


def format_kind_pointwise(texts: Sequence[str]) -> str | None:
    for t in texts:
        vals = {float(v) for v in _SCORE_TAG.findall(t)}
        if not vals:
            return "wrong_pattern" if _LOOSE_SCORE.search(t) else "no_score"
        if len(vals) > 1:
            return "several_scores"
        if not 0 <= next(iter(vals)) <= 10:
            return "wrong_pattern"
    return None


def format_kind(pred: dict) -> str | None:
    """The format failure of one line from its raw output, or None (compliant, or a scalar/heuristic judge).

    Classified from ``raw`` alone, not from the parser's error strings: ``several_verdicts`` is
    reported even where the official parser accepted the first verdict.
    """
    if pred.get("error"):
        return None
    st = style(pred)
    if st == "scores":
        return None
    if st == "pointwise":
        return format_kind_pointwise(pred["raw"])
    if is_pairwise(pred):
        return format_kind_pairwise(pred["raw"])
    return format_kind_ranking(pred["raw"], len(pred["order"]))


def format_table(preds: Sequence[dict]) -> dict[str, Any]:
    """Counts and rates of each format kind among judged lines (run errors excluded).

    ``official_failures`` is what the official parser refused; ``disagree`` counts lines where our
    classifier and the parser disagree on pass/fail (``several_verdicts`` accepted by the parser
    is not a disagreement), so the two can be checked against each other.
    """
    lines = [p for p in preds if not p.get("error") and style(p) != "scores"]
    kinds = Counter(format_kind(p) for p in lines)
    accepted_several = sum(1 for p in lines if format_kind(p) in ("several_verdicts", "several_scores")
                           and p.get("ranking") is not None)
    disagree = sum(1 for p in lines if (p.get("ranking") is None) != (format_kind(p) is not None)
                   and not (format_kind(p) in ("several_verdicts", "several_scores") and p.get("ranking") is not None))
    n = len(lines)
    return {
        "n_lines": n,
        "compliant": kinds.get(None, 0),
        "counts": {k: kinds.get(k, 0) for k in FORMAT_KINDS},
        "rates": {k: (kinds.get(k, 0) / n if n else None) for k in FORMAT_KINDS},
        "noncompliance_rate": (1 - kinds.get(None, 0) / n) if n else None,
        "official_failures": sum(1 for p in lines if p.get("ranking") is None),
        "several_but_accepted": accepted_several,
        "disagree_with_parser": disagree,
    }
