"""Teachers: who writes a judgement on the *short, focused* view of an item (step 2 of Stage I).

A :class:`Focus` holds what the teacher sees: the critical chunks only, the question, the golden
answer and the responses in display order, with their labels. Judgement formats: pairwise
``[[A]]``/``[[B]]``, ranking ``[[A>B>C]]`` (analysis first, verdict last) and the paper's pointwise
``[Analysis] ... [Score: N]``.

* :class:`RuleTeacher` (CPU): writes the judgement from the labels, quoting the evidence, so its
  verdicts are right by construction;
* :class:`ModelTeacher`: a registry model judges the focused view; its output is kept only when its
  verdict agrees with the labels.

Stage II reuses :func:`rule_judgement` for its rule judges and label-correct chosen judgements.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .. import models
from ..constants import SLOT_LETTERS
from ..judge import parse, prompts
from .evidence import CHUNK_SEP, STOP_WORDS, SynthError, n_tokens, normal_words

FORMATS = ("pairwise", "ranking", "pointwise")


@dataclass
class Focus:
    """What the teacher sees: the short, focused version of an item, plus its labels."""

    item_id: str
    task: str
    question: str
    golden: str
    evidence: list[str]
    """The critical chunks, in context order."""
    responses: list[str]
    """In display order."""
    true_rank: list[int]
    """``true_rank[j]``: the true rank of display slot ``j`` (0 = best), as the harness's ``order``."""
    scores: list[float | None]
    """Per display slot: the task metric against the golden answer (0..1), when known."""


def evidence_quote(evidence: Sequence[str], golden: str, max_words: int) -> str:
    """The evidence sentence that shares the most words with the golden answer, cut to ``max_words``."""
    sents = [s.strip() for e in evidence for s in re.split(r"(?<=[.!?])\s+|\n", e) if s.strip()]
    if not sents or max_words <= 0:
        return ""
    g = set(normal_words(golden)) - STOP_WORDS
    best = max(sents, key=lambda s: (len(set(normal_words(s)) & g), -len(s)))
    w = best.split()
    if len(w) <= max_words:
        return best.rstrip(".")
    # the window of max_words words that covers the most golden-answer words
    start = max(range(len(w) - max_words + 1),
                key=lambda i: (len(set(normal_words(" ".join(w[i:i + max_words]))) & g), -i))
    return ("... " if start else "") + " ".join(w[start:start + max_words]) + (" ..." if start + max_words < len(w) else "")


def _agreement(score: float | None, rank: int, n: int) -> str:
    if score is not None:
        return "agrees with it" if score >= 0.8 else ("only partly agrees" if score >= 0.4 else "is not supported")
    return "agrees with it" if rank == 0 else ("is less complete" if rank < n - 1 else "is not supported")


def rule_judgement(f: Focus, fmt: str, *, quote_words: int = 12, slot: int = 0) -> str:
    """A judgement written from the known labels: analysis (quoting the evidence) first, verdict last.

    ``fmt`` is ``pairwise``, ``ranking`` or ``pointwise`` (``slot`` picks the response scored).
    """
    quote = evidence_quote(f.evidence, f.golden, quote_words)
    said = f'The document says "{quote}". ' if quote else "Checked against the document: "
    n = len(f.responses)
    if fmt == "pointwise":
        s = f.scores[slot]
        if s is None:
            raise SynthError(f"item {f.item_id}: a pointwise judgement needs the response's score")
        return f"[Analysis] {said}The response {_agreement(s, f.true_rank[slot], n)}. [Score: {round(10 * s)}]"
    best_first = sorted(range(n), key=lambda j: f.true_rank[j])
    L = SLOT_LETTERS
    if fmt == "pairwise":
        if n != 2:
            raise SynthError(f"item {f.item_id}: pairwise needs 2 responses, got {n}")
        w, l = best_first
        return (f"{said}Response {L[w]} {_agreement(f.scores[w], 0, 2)}; Response {L[l]} "
                f"{_agreement(f.scores[l], 1, 2)}.\n[[{L[w]}]]")
    if fmt == "ranking":
        order = ", then ".join(L[j] for j in best_first[1:])
        return (f"{said}Best supported: Response {L[best_first[0]]}, then {order}.\n"
                f"[[{'>'.join(L[j] for j in best_first)}]]")
    raise SynthError(f"unknown judgement format {fmt!r}; use one of {FORMATS}")


def fit_judgement(tokenizer, f: Focus, fmt: str, max_tokens: int | None, *, slot: int = 0,
                  quote_words: int = 12) -> str:
    """The longest rule judgement (shortening the quote) that fits ``max_tokens`` new tokens.

    On CPU generation stops at 64 new tokens, so the verdict must come before that.
    """
    for q in range(quote_words, -1, -2):
        text = rule_judgement(f, fmt, quote_words=q, slot=slot)
        if max_tokens is None or n_tokens(tokenizer, text) + 1 <= max_tokens:
            return text
    raise SynthError(f"item {f.item_id}: even the shortest {fmt} judgement exceeds {max_tokens} tokens")


class RuleTeacher:
    """The CPU teacher: it knows the labels, so its verdicts are right by construction."""

    name = "rule"

    def __init__(self, tokenizer=None, max_tokens: int | None = None, quote_words: int = 12):
        self.tokenizer, self.max_tokens, self.quote_words = tokenizer, max_tokens, quote_words

    def judge(self, f: Focus, fmt: str, slot: int = 0) -> str | None:
        if self.tokenizer is None:
            return rule_judgement(f, fmt, quote_words=self.quote_words, slot=slot)
        return fit_judgement(self.tokenizer, f, fmt, self.max_tokens, slot=slot, quote_words=self.quote_words)


class ModelTeacher:
    """A registry model that judges the *short* focused context with the question and golden answer.

    Its output is kept only when its verdict agrees with the labels. A rejected output is counted
    (``rejected``) and replaced by the ``fallback`` teacher's judgement when one is given, else dropped.
    """

    def __init__(self, loaded, templates=None, max_new_tokens: int = 512, fallback=None):
        self.loaded, self.max_new_tokens, self.fallback, self.rejected = loaded, max_new_tokens, fallback, 0
        self.templates = templates or prompts.load_templates()
        self.name = f"model:{loaded.spec.name}"

    def messages(self, f: Focus, fmt: str, slot: int = 0) -> list[dict]:
        task = [{"role": "user", "content": (
            "Document (only the passages that matter):\n" + CHUNK_SEP.join(f.evidence)
            + f"\n\nQuestion: {f.question}\n\nReference answer (for the evaluator only): {f.golden}")}]
        if fmt == "pointwise":
            return prompts.pointwise_messages(self.templates, task, f.responses[slot])
        return prompts.judge_messages(self.templates, task, f.responses, pairwise=fmt == "pairwise")

    def judge(self, f: Focus, fmt: str, slot: int = 0) -> str | None:
        ids = models.chat_ids(self.loaded.tokenizer, self.messages(f, fmt, slot), self.loaded.spec)
        text, _ = models.generate(self.loaded, ids, self.max_new_tokens)
        if fmt == "pointwise":
            s, err = parse.parse_score(text)
            want = f.scores[slot]
            ok = err is None and s is not None and want is not None and abs(s / 10 - want) <= 0.3
        else:
            p = parse.parse_verdict(text, len(f.responses), pairwise=fmt == "pairwise")
            ok = p.ranking is not None and p.ranking.index(0) == f.true_rank.index(0)
        if ok:
            return text.strip()
        self.rejected += 1
        return self.fallback.judge(f, fmt, slot) if self.fallback is not None else None
