"""What a training record knows about itself: its context's chunks, which of them are critical, its
golden answer and its per-answer scores. Both stages' data synthesis start here.

The critical chunks are known from the record's ``meta`` for the offline generators (evidence
spans or evidence texts); hub sources carry no evidence labels, so for them the chunks are found by
**retrieval**: the ``k`` chunks that cover most of the question's and golden answer's content words.

Words here are lower-cased ASCII alphanumeric runs (:func:`normal_words`), a list in text order:
the normal form of retrieval and of the leakage check's n-gram hashes. The heuristic judges'
overlap (:mod:`longrm_utils.bench.cues`) is a different measure, the share of an *answer's* words
found in the context, and keeps its own word definition.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..bench import schema

CHUNK_SEP = "\n\n"


class SynthError(ValueError):
    """A record that cannot be synthesised; the message names the record and the field."""


# --- words and retrieval -------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset("the a an of to in on for with by from at as is was are were be been has have had do does "
                       "did not and or but if then this that these those it its which who what where when why how"
                       .split())


def normal_words(text: str) -> list[str]:
    """Lower-cased alphanumeric words in text order: the normal form used by retrieval and leakage hashing."""
    return _WORD.findall(text.lower())


def coverage(chunk: str, query_words: set[str]) -> float:
    """Retrieval score: the share of the query's content words that occur in the chunk."""
    if not query_words:
        return 0.0
    cw = set(normal_words(chunk))
    return len(cw & query_words) / len(query_words)


def retrieve_critical(chunks: Sequence[str], question: str, golden: str, k: int = 2,
                      min_score: float = 0.0) -> list[int]:
    """Indices (in context order) of the ``k`` chunks that best cover the question + golden answer.

    This is the route for hub sources, which do not label their evidence. Ties keep context order.
    """
    q = {w for w in normal_words(f"{question} {golden}") if w not in STOP_WORDS}
    scored = sorted(range(len(chunks)), key=lambda i: (-coverage(chunks[i], q), i))
    top = [i for i in scored[:k] if coverage(chunks[i], q) > min_score]
    return sorted(top)


# --- a record's parts and labels ------------------------------------------------------------------

def split_chunks(context: str, sep: str = CHUNK_SEP) -> list[str]:
    """The context's documents/paragraphs, in order (empty pieces dropped)."""
    return [c for c in context.split(sep) if c.strip()]


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def record_parts(rec: dict, where: str) -> tuple[str, str, str]:
    """``(before, context, after)`` of the record's user prompt; a :class:`SynthError` names the record."""
    try:
        return schema.context_parts(rec)
    except Exception as e:  # noqa: BLE001 - re-raised with the record named
        raise SynthError(f"{where}: record {rec.get('id')!r}: cannot split prompt_template into context parts ({e})") from e


def record_field(rec: dict, key: str, where: str):
    if key not in rec:
        raise SynthError(f"{where}: record {rec.get('id')!r} has no field {key!r}")
    return rec[key]


def item_golden(rec: dict, where: str = "<records>") -> str:
    meta = rec.get("meta") or {}
    for k in ("golden", "golden_answer", "answer"):
        if meta.get(k) not in (None, ""):
            g = meta[k]
            return g if isinstance(g, str) else str(g)
    raise SynthError(f"{where}: record {rec.get('id')!r} has no golden answer in meta (looked for meta.golden)")


def item_critical(rec: dict, chunks: Sequence[str], question: str, golden: str, k: int = 2) -> tuple[list[int], str]:
    """Critical chunk indices and how they were found: ``meta`` (labelled evidence) or ``retrieval``."""
    meta = rec.get("meta") or {}
    spans = meta.get("evidence_spans")
    if spans:  # character spans in the context (the offline generators record them)
        starts, pos = [], 0
        _, ctx, _ = record_parts(rec, "<record>")
        for c in chunks:
            s = ctx.index(c, pos)
            starts.append((s, s + len(c)))
            pos = s + len(c)
        idx = sorted({i for i, (s, e) in enumerate(starts) for a, b in spans if s < b and a < e})
        if idx:
            return idx, "meta"
    ev = meta.get("evidence")
    if ev:
        ev = [ev] if isinstance(ev, str) else list(ev)
        idx = sorted({i for i, c in enumerate(chunks) for e in ev if isinstance(e, str) and e.strip() and
                      (e.strip() in c or c.strip() in e)})
        if idx:
            return idx, "meta"
    return retrieve_critical(chunks, question, golden, k=k), "retrieval"


def item_scores(rec: dict) -> list[float | None]:
    """Task-metric score (0..1) per answer, best first, when the record carries them."""
    raw = schema.answer_scores(rec)
    if not raw:
        return [None] * len(schema.answers(rec))
    top = max(1.0, max(raw))  # scores above 1 are on another scale: normalise to the best
    return [max(0.0, min(1.0, s / top)) for s in raw]


def skip_reason(e: Exception) -> str:
    """The counter key under which a skipped record is reported, from its :class:`SynthError`."""
    msg = str(e)
    for key, label in (("critical chunks alone", "critical_longer_than_target"), ("ran out of filler", "not_enough_fillers"),
                       ("exactly", "no_exact_fit"), ("no critical chunk", "no_critical_chunk"),
                       ("golden", "no_golden_answer"), ("exceeds", "judgement_too_long")):
        if key in msg:
            return label
    return "other"
