"""Training-data synthesis for both stages of LongRM.

Stage I (this section, notebook 04): *short-to-long* judgement synthesis (paper §4.2).

1. Split an item's context into chunks and **locate the critical ones**: known from the record's
   ``meta`` for our offline generators; found by retrieval (word overlap with the question and the
   golden answer) for hub sources that carry no evidence labels.
2. A **teacher writes the judgement on the short, focused context** (critical chunks only, plus
   the question and golden answer). On CPU the teacher is rule-based: it knows the labels and
   quotes the evidence; elsewhere it is a registry model whose verdict must agree with the labels.
3. **Pad the prompt back to a long target length** with irrelevant chunks: the item's own, then
   distractors from other *training* items. The context is exact to the token of the target, the
   critical chunks sit at recorded depths, intact and in their original order.

Formats: pairwise ``[[A]]``/``[[B]]``, ranking ``[[A>B>C]]`` (analysis first, verdict last) and
the paper's pointwise ``[Analysis] ... [Score: N]``. Every item is written in **both display
orders** (the judge harness's shuffled order and its reverse), so the verdict letters are
balanced: a model cannot lower its loss by always answering ``[[A]]``.

Also here: the content-based **leakage check** (hashes of normalised word n-grams against every
evaluation set) and the import of the **official LongRM SFT layout** (HF ``save_to_disk``).

Stage II (consistency voting, notebooks 05/06) lives in its own section at the end of the file.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..constants import SLOT_LETTERS

# =====================================================================================================
# Stage I: short-to-long judgement synthesis
# =====================================================================================================

CHUNK_SEP = "\n\n"
FORMATS = ("pairwise", "ranking", "pointwise")


class SynthError(ValueError):
    """A record that cannot be synthesised; the message names the record and the field."""


# --- chunks and critical-chunk location ---------------------------------------------------------------

def split_chunks(context: str, sep: str = CHUNK_SEP) -> list[str]:
    """The context's documents/paragraphs, in order (empty pieces dropped)."""
    return [c for c in context.split(sep) if c.strip()]


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("the a an of to in on for with by from at as is was are were be been has have had do does did "
                  "not and or but if then this that these those it its which who what where when why how".split())


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: the normal form used by retrieval and leakage hashing."""
    return _WORD.findall(text.lower())


def overlap_score(chunk: str, query_words: set[str]) -> float:
    """Share of the query's content words that occur in the chunk."""
    if not query_words:
        return 0.0
    cw = set(words(chunk))
    return len(cw & query_words) / len(query_words)


def retrieve_critical(chunks: Sequence[str], question: str, golden: str, k: int = 2,
                      min_score: float = 0.0) -> list[int]:
    """Indices (in context order) of the ``k`` chunks that best cover the question + golden answer.

    This is the route for hub sources, which do not label their evidence. Ties keep context order.
    """
    q = {w for w in words(f"{question} {golden}") if w not in _STOP}
    scored = sorted(range(len(chunks)), key=lambda i: (-overlap_score(chunks[i], q), i))
    top = [i for i in scored[:k] if overlap_score(chunks[i], q) > min_score]
    return sorted(top)


# --- exact-length assembly ------------------------------------------------------------------------------

def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def assemble_context(tokenizer, critical: Sequence[str], fillers: Iterable[str], target: int, *,
                     seed: int | str = 0, tokenizer_name: str = "tokenizer"):
    """Critical chunks among filler chunks, exactly ``target`` tokens long.

    The benchmark's own assembler (:func:`longrm_utils.bench.sources.assemble`) does the work: the
    critical chunks keep their order at seeded positions among the fillers, and the last document
    is grown word by word until the whole context has exactly ``target`` tokens. Returns its
    ``Assembled`` (``text``, ``n_tokens``, ``required_spans`` = character spans of the critical
    chunks). Raises :class:`SynthError` when the critical chunks don't fit or the fillers run out.
    """
    from ..bench import sources

    it = iter(fillers)

    def next_filler(_rng):
        try:
            return next(it)
        except StopIteration:
            raise SynthError(f"ran out of filler chunks before {target} tokens") from None

    try:
        return sources.assemble(list(critical), target, sources.TokenCounter(tokenizer, tokenizer_name),
                                random.Random(f"assemble:{seed}"), next_filler)
    except sources.ContextTooShort as e:
        raise SynthError(f"critical chunks alone do not fit the target: {e}") from e
    except RuntimeError as e:
        raise SynthError(f"no exact fit: {e}") from e


# --- the teacher -------------------------------------------------------------------------------------

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
    g = set(words(golden)) - _STOP
    best = max(sents, key=lambda s: (len(set(words(s)) & g), -len(s)))
    w = best.split()
    if len(w) <= max_words:
        return best.rstrip(".")
    # the window of max_words words that covers the most golden-answer words
    start = max(range(len(w) - max_words + 1), key=lambda i: (len(set(words(" ".join(w[i:i + max_words]))) & g), -i))
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
        from ..judge import prompts

        self.loaded, self.max_new_tokens, self.fallback, self.rejected = loaded, max_new_tokens, fallback, 0
        self.templates = templates or prompts.load_templates()
        self.name = f"model:{loaded.spec.name}"

    def messages(self, f: Focus, fmt: str, slot: int = 0) -> list[dict]:
        from ..judge import prompts

        task = [{"role": "user", "content": (
            "Document (only the passages that matter):\n" + CHUNK_SEP.join(f.evidence)
            + f"\n\nQuestion: {f.question}\n\nReference answer (for the evaluator only): {f.golden}")}]
        if fmt == "pointwise":
            return prompts.pointwise_messages(self.templates, task, f.responses[slot])
        return prompts.judge_messages(self.templates, task, f.responses, pairwise=fmt == "pairwise")

    def judge(self, f: Focus, fmt: str, slot: int = 0) -> str | None:
        from .. import models
        from ..judge import parse

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


# --- records -> focused items -> SFT examples ------------------------------------------------------------

def _field(rec: dict, key: str, where: str):
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
        _, ctx, _ = _parts(rec, "<record>")
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
    from ..bench import schema

    raw = schema.answer_scores(rec)
    if not raw:
        return [None] * len(schema.answers(rec))
    top = max(1.0, max(raw))  # scores above 1 are on another scale: normalise to the best
    return [max(0.0, min(1.0, s / top)) for s in raw]


@dataclass
class SynthReport:
    """Counts of what the synthesis did, and skipped (never silently)."""

    items_in: int = 0
    examples: int = 0
    by_format: Counter = field(default_factory=Counter)
    critical_by: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    best_slot: Counter = field(default_factory=Counter)
    """How often the best response sits in each display slot (balance check)."""
    verdict_letter: Counter = field(default_factory=Counter)
    teacher_rejected: int = 0

    def as_dict(self) -> dict:
        return {"items_in": self.items_in, "examples": self.examples, "by_format": dict(self.by_format),
                "critical_by": dict(self.critical_by), "skipped": dict(self.skipped),
                "best_slot": dict(sorted(self.best_slot.items())), "verdict_letter": dict(sorted(self.verdict_letter.items())),
                "teacher_rejected": self.teacher_rejected}


def _parts(rec: dict, where: str) -> tuple[str, str, str]:
    from ..bench import schema

    try:
        return schema.context_parts(rec)
    except Exception as e:  # noqa: BLE001 - re-raised with the record named
        raise SynthError(f"{where}: record {rec.get('id')!r}: cannot split prompt_template into context parts ({e})") from e


def filler_pool(records: Sequence[dict], seed: int = 0, where: str = "<records>") -> list[str]:
    """Non-critical chunks of training records, shuffled with ``seed``: the padding material."""
    pool = []
    for rec in records:
        before, ctx, after = _parts(rec, where)
        chunks = split_chunks(ctx)
        try:
            golden = item_golden(rec, where)
        except SynthError:
            golden = ""
        crit, _ = item_critical(rec, chunks, str(rec.get("question", "")), golden)
        pool += [c for i, c in enumerate(chunks) if i not in set(crit)]
    random.Random(seed).shuffle(pool)
    return pool


@dataclass
class Synthesised:
    """One record's short-to-long result (kept for display in the notebook)."""

    record: dict
    chunks: list[str]
    critical: list[int]
    critical_by: str
    short_context: str
    long_context: str
    layout: Any
    """The benchmark assembler's ``Assembled`` (``required_spans`` = where the critical chunks went), or None."""
    long_record: dict


def short_to_long(rec: dict, tokenizer, target_tokens: int | None, pool: Sequence[str], *, seed: int = 0,
                  where: str = "<records>") -> Synthesised:
    """Steps 1 and 3 for one record: locate the critical chunks, then pad the context to the target.

    ``target_tokens=None`` keeps the original context (the short set trains at its own length).
    The long record is a copy of ``rec`` whose ``prompt_template`` holds the new context.
    """
    before, ctx, after = _parts(rec, where)
    chunks = split_chunks(ctx)
    question = str(_field(rec, "question", where))
    golden = item_golden(rec, where)
    crit, how = item_critical(rec, chunks, question, golden)
    if not crit:
        raise SynthError(f"{where}: record {rec.get('id')!r}: no critical chunk found (meta.evidence absent, "
                         "retrieval found no overlap)")
    short = CHUNK_SEP.join(chunks[i] for i in crit)
    own = [c for i, c in enumerate(chunks) if i not in set(crit)]
    if target_tokens is None:
        long_ctx, layout = ctx, None
    else:
        used = set(chunks)
        others = [c for c in pool if c not in used]
        # the item's own irrelevant chunks (its confusers among them) are mixed with enough distractors
        # from other training items, in a seeded order; the rest of the pool is only a reserve
        need = target_tokens - sum(n_tokens(tokenizer, c) + 2 for c in chunks)
        k, acc = 0, 0
        while k < len(others) and acc < need * 1.2 + 64:
            acc += n_tokens(tokenizer, others[k]) + 2
            k += 1
        mix = own + others[:k]
        random.Random(f"mix:{seed}:{rec.get('task')}:{rec.get('id')}").shuffle(mix)
        layout = assemble_context(tokenizer, [chunks[i] for i in crit], mix + others[k:], target_tokens,
                                  seed=f"{seed}:{rec.get('task')}:{rec.get('id')}")
        long_ctx = layout.text
    from ..bench import schema

    long_rec = schema.with_context(rec, long_ctx)
    return Synthesised(rec, chunks, crit, how, short, long_ctx, layout, long_rec)


def synthesize_stage1(records: Sequence[dict], tokenizer, *, target_tokens: int | Sequence[int] | None = None,
                      teacher=None, formats: Sequence[str] = ("pairwise", "ranking"), both_orders: bool = True,
                      pool_records: Sequence[dict] | None = None, templates=None, seed: int = 0,
                      where: str = "<records>") -> tuple[list[dict], SynthReport, list[Synthesised]]:
    """Short-to-long synthesis of Stage I SFT examples from benchmark-format training records.

    ``target_tokens``: one length, a list cycled over the records (a length mix / curriculum), or
    ``None`` to keep each record's own length. ``formats``: which judgement formats to write
    (pairwise for PairWise records, ranking for BestOfN, pointwise for every response with a
    known score). Returns (prompt/completion examples, report, per-record synthesis).
    """
    from ..bench import schema
    from ..judge import prompts
    from ..judge.run import display_orders

    for fmt in formats:
        if fmt not in FORMATS:
            raise SynthError(f"unknown format {fmt!r}; use {FORMATS}")
    templates = templates or prompts.load_templates()
    teacher = teacher or RuleTeacher()
    targets = [target_tokens] if target_tokens is None or isinstance(target_tokens, int) else list(target_tokens)
    pool = filler_pool(pool_records if pool_records is not None else records, seed, where)
    rep = SynthReport(items_in=len(records))
    examples: list[dict] = []
    done: list[Synthesised] = []
    for n, rec in enumerate(records):
        target = targets[n % len(targets)]
        try:
            s = short_to_long(rec, tokenizer, target, pool, seed=seed, where=where)
        except SynthError as e:
            rep.skipped[_reason(e)] += 1
            continue
        done.append(s)
        rep.critical_by[s.critical_by] += 1
        answers = schema.answers(rec)
        scores = item_scores(rec)
        pairwise = rec.get("tasktype") == "PairWise"
        question, golden = str(rec["question"]), item_golden(rec, where)
        evidence = [s.chunks[i] for i in s.critical]
        orders = display_orders(rec, len(answers), order_seed=seed, passes=2 if both_orders else 1)
        for oi, order in enumerate(orders):
            slots = [answers[r] for r in order]
            f = Focus(str(rec.get("id")), str(rec.get("task")), question, golden, evidence, slots, list(order),
                      [scores[r] if r < len(scores) else None for r in order])
            fmt = "pairwise" if pairwise else "ranking"
            if fmt in formats:
                text = teacher.judge(f, fmt)
                if text is None:
                    rep.teacher_rejected += 1
                else:
                    examples.append(_example(prompts.judge_messages(templates, s.long_record["prompt_template"], slots,
                                                                    pairwise=pairwise), text, rec, fmt, order, target))
                    rep.by_format[fmt] += 1
                    rep.best_slot[SLOT_LETTERS[order.index(0)]] += 1
                    rep.verdict_letter[_verdict_letter(text)] += 1
            if "pointwise" in formats and oi == 0:  # one order is enough: a single response has no position
                for j, resp in enumerate(slots):
                    if f.scores[j] is None:
                        rep.skipped["pointwise_without_score"] += 1
                        continue
                    text = teacher.judge(f, "pointwise", slot=j)
                    if text is None:
                        rep.teacher_rejected += 1
                        continue
                    examples.append(_example(prompts.pointwise_messages(templates, s.long_record["prompt_template"], resp),
                                             text, rec, "pointwise", [order[j]], target))
                    rep.by_format["pointwise"] += 1
    rep.examples = len(examples)
    return examples, rep, done


def _verdict_letter(text: str) -> str:
    m = re.findall(r"\[\[([A-D])", text)
    return m[-1] if m else "?"


def _reason(e: Exception) -> str:
    msg = str(e)
    for key, label in (("critical chunks alone", "critical_longer_than_target"), ("ran out of filler", "not_enough_fillers"),
                       ("exactly", "no_exact_fit"), ("no critical chunk", "no_critical_chunk"),
                       ("golden", "no_golden_answer"), ("exceeds", "judgement_too_long")):
        if key in msg:
            return label
    return "other"


def _example(messages: list[dict], judgement: str, rec: dict, fmt: str, order, target) -> dict:
    return {"prompt": messages, "completion": [{"role": "assistant", "content": judgement}],
            "id": str(rec.get("id")), "task": rec.get("task"), "format": fmt, "order": list(order),
            "target_tokens": target}


# --- leakage: content hashes against every evaluation set ---------------------------------------------

def ngram_hashes(text: str, n: int = 8) -> set[int]:
    """64-bit hashes of the normalised word n-grams of ``text`` (lower case, alphanumeric words)."""
    w = words(text)
    return {int.from_bytes(hashlib.blake2b(" ".join(w[i:i + n]).encode(), digest_size=8).digest(), "big")
            for i in range(max(0, len(w) - n + 1))}


def record_content(rec: dict) -> str:
    """The item-specific text of an evaluation record: question, answers, and its evidence chunks
    (the whole context when the record does not mark its evidence, as official records don't).

    Filler documents are left out when the evidence is known: the offline generators write them
    from one small shared grammar, so their n-grams recur across *all* items by design.
    """
    from ..bench import schema

    _, ctx, _ = schema.context_parts(rec)
    spans = (rec.get("meta") or {}).get("evidence_spans")
    body = [ctx[a:b] for a, b in spans] if spans else [ctx]
    return "\n".join(body + [str(rec.get("question", ""))] + [str(x) for x in schema.answers(rec)])


def example_content(ex: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in list(ex["prompt"]) + list(ex["completion"]))


def common_ngrams(texts: Sequence[str], n: int = 8, min_count: int = 2) -> set[int]:
    """n-grams present in at least ``min_count`` of the texts: templates, not one item's content."""
    c: Counter = Counter()
    for t in texts:
        c.update(ngram_hashes(t, n))
    return {h for h, m in c.items() if m >= min_count}


def leakage_report(train_texts: Sequence[str], eval_sets: dict[str, Sequence[dict]], n: int = 8,
                   threshold: float = 0.3, groups: Sequence[str] | None = None,
                   template_share: float = 0.05) -> dict[str, Any]:
    """Per evaluation set: how much of each eval item's content occurs in the training texts.

    Template text is excluded: n-grams found in at least 3 (or ``template_share``) of the training
    *records* (``groups``: one key per text, e.g. ``task:id``, since one record yields several
    texts), or in two or more items of the evaluation set. An eval item *leaks* when more than
    ``threshold`` of its remaining n-grams occur in training; the report lists those ids. A copied
    item scores near 1; on the shipped sets, chance collisions of the generators' small vocabularies
    reach about 0.2 (short ICL items, whose answers are label sequences).
    """
    train_h: set[int] = set()
    per_group: dict[str, set[int]] = {}
    for i, t in enumerate(train_texts):
        h = ngram_hashes(t, n)
        train_h |= h
        per_group.setdefault(str(groups[i]) if groups is not None else str(i), set()).update(h)
    df: Counter = Counter()
    for h in per_group.values():
        df.update(h)
    k = max(3, int(template_share * len(per_group)))
    boiler = {h for h, m in df.items() if m >= k}
    out: dict[str, Any] = {"n": n, "threshold": threshold, "train_ngrams": len(train_h), "sets": {}}
    for name, recs in eval_sets.items():
        contents = [record_content(r) for r in recs]
        # only what is unique to one item of the set counts as its content: an n-gram shared by two
        # evaluation items is template text (a question pattern, a generator's sentence)
        boiler_e = boiler | common_ngrams(contents, n, min_count=2)
        overlaps, leaked = [], []
        for r, c in zip(recs, contents):
            h = ngram_hashes(c, n) - boiler_e
            ov = len(h & train_h) / len(h) if h else 0.0
            overlaps.append(ov)
            if ov > threshold:
                leaked.append(f"{r.get('task')}:{r.get('id')}")
        out["sets"][name] = {"items": len(recs), "leaked": len(leaked), "leaked_ids": leaked[:20],
                             "max_overlap": round(max(overlaps), 4) if overlaps else 0.0,
                             "mean_overlap": round(sum(overlaps) / len(overlaps), 5) if overlaps else 0.0}
    return out


# --- the official LongRM SFT layout -------------------------------------------------------------------

OFFICIAL_SFT_FIELDS = ("chat_template", "golden", "ctx_length", "language", "hop", "perspective")


def load_official_sft(path: str | Path, *, tokenizer=None, max_length: int | None = None,
                      limit: int | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Import the official Stage I data (``datasets.save_to_disk``) as prompt/completion examples.

    Each row's ``chat_template`` is the conversation whose last turn is the assistant's judgement.
    Rows that don't fit (a missing field, a malformed conversation, no final assistant turn, longer
    than ``max_length`` tokens) are skipped and counted by reason in the report, with the first few
    row numbers.
    """
    from datasets import load_from_disk

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"official SFT data: {p} does not exist (expected a datasets.save_to_disk folder)")
    ds = load_from_disk(str(p))
    if hasattr(ds, "keys") and not hasattr(ds, "column_names"):  # a DatasetDict: take 'train' or the only split
        ds = ds["train"] if "train" in ds else ds[list(ds.keys())[0]]
    missing_cols = [c for c in OFFICIAL_SFT_FIELDS if c not in ds.column_names]
    if "chat_template" in missing_cols:
        raise SynthError(f"{p}: not the official SFT layout: column 'chat_template' is missing "
                         f"(columns: {ds.column_names}; expected {list(OFFICIAL_SFT_FIELDS)})")
    skipped: Counter = Counter()
    examples_rows: dict[str, list[int]] = {}
    out = []
    for i, row in enumerate(ds):
        if limit is not None and len(out) >= limit:
            break
        reason = None
        conv = row.get("chat_template")
        if any(row.get(c) is None for c in OFFICIAL_SFT_FIELDS if c in ds.column_names) or missing_cols:
            reason = "missing_field"
        elif not isinstance(conv, list) or not conv or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in conv):
            reason = "malformed_chat_template"
        elif conv[-1]["role"] != "assistant" or not conv[-1]["content"].strip() or len(conv) < 2:
            reason = "no_final_assistant_turn"
        if reason is None:
            ex = {"prompt": [dict(role=m["role"], content=m["content"]) for m in conv[:-1]],
                  "completion": [dict(role="assistant", content=conv[-1]["content"])],
                  "id": str(i), "format": "official",
                  **{k: row.get(k) for k in ("golden", "ctx_length", "language", "hop", "perspective")}}
            if tokenizer is not None and max_length is not None:
                from .sft import example_length

                if example_length(tokenizer, ex) > max_length:
                    reason = "longer_than_max_length"
            if reason is None:
                out.append(ex)
                continue
        skipped[reason] += 1
        examples_rows.setdefault(reason, []).append(i)
    report = {"path": str(p), "rows": len(ds), "imported": len(out), "skipped": dict(skipped),
              "skipped_rows_first": {k: v[:5] for k, v in examples_rows.items()},
              "missing_columns": missing_cols}
    return out, report


# =====================================================================================================
# Stage II: consistency-voted preference data (notebooks 05/06) — below this line
# =====================================================================================================
#
# Paper §4.3: each pair is split into pointwise scoring tasks; several judges score and explain each
# response; the scores are clustered by agreement; the highest-consensus explanation is *chosen* and
# low-consistency explanations are *rejects* (up to V); items without consensus are dropped.
#
# Two routes produce Stage II preference items (``align.PrefItem``: prompt, chosen, rejects):
#
# * :func:`consistency_vote` — the paper's pointwise voting. Judges are anything with
#   ``name``, ``rank`` and ``judge(task) -> raw text``: :class:`ModelJudge` (a registry model, greedy
#   or sampled at a temperature) and :class:`RuleJudge` (label- or metric-based). GPU profiles use
#   registry models; the CPU route uses the Stage I model at several temperatures plus rule judges.
# * :func:`pairwise_preferences` — the CPU default's documented departure: the pairwise judge
#   prompt in BOTH display orders, chosen = the label-correct rule judgement, rejects = a fluent
#   judgement that argues for the worse response, and one whose verdict contradicts its own
#   analysis (the paper's §2.2 failure pattern). It attacks position bias directly.
#
# :func:`load_official_simpo` imports the official LongRM SimPO layout.

@dataclass(frozen=True)
class PointTask:
    """One response of one benchmark item, to be scored on its own (pointwise)."""

    key: str
    """``task/id/r<true rank>``: unique across tasks (official ids are unique only within a task)."""
    record_id: str
    task: str
    true_rank: int
    """0 = the item's best response."""
    response: str
    messages: list
    """The pointwise judge prompt (``judge.prompts.pointwise_messages``) with the full long context."""
    focus: Any = None
    """The labelled short view (:class:`Focus`, one slot) for rule judges; None when labels are missing."""


def pointwise_tasks(records: Sequence[dict], *, templates=None, where: str = "<records>") -> tuple[list[PointTask], Counter]:
    """Step 1: split every Pairwise/BestOfN record into one pointwise task per response.

    Returns ``(tasks, skipped)``; a record without the fields the prompt needs raises
    :class:`SynthError` naming it. Rule judges need the golden answer and evidence from ``meta``;
    records without them still yield tasks (``focus=None``) and are counted under
    ``skipped['no_labels_for_rule_judges']``.
    """
    from ..bench import schema
    from ..judge import prompts

    templates = templates or prompts.load_templates()
    tasks: list[PointTask] = []
    skipped: Counter = Counter()
    for rec in records:
        rid = rec.get("id")
        if "prompt_template" not in rec or "tasktype" not in rec:
            raise SynthError(f"{where}: record {rid!r} needs 'prompt_template' and 'tasktype'")
        try:
            answers = schema.answers(rec)
        except KeyError as e:
            raise SynthError(f"{where}: record {rid!r} has no field {e.args[0]!r}") from None
        try:
            _, ctx, _ = _parts(rec, where)
            golden = item_golden(rec, where)
            chunks = split_chunks(ctx)
            crit, _ = item_critical(rec, chunks, str(rec.get("question", "")), golden)
            scores = item_scores(rec)
            evidence = [chunks[i] for i in crit]
        except SynthError:
            golden, evidence, scores = None, [], [None] * len(answers)
            skipped["no_labels_for_rule_judges"] += 1
        for r, resp in enumerate(answers):
            focus = None if golden is None else Focus(str(rid), str(rec.get("task")), str(rec.get("question", "")),
                                                      golden, evidence, [resp], [r], [scores[r]])
            tasks.append(PointTask(f"{rec.get('task')}/{rid}/r{r}", str(rid), str(rec.get("task")), r, resp,
                                   prompts.pointwise_messages(templates, rec["prompt_template"], resp), focus))
    return tasks, skipped


# --- judges ----------------------------------------------------------------------------------------------

class RuleJudge:
    """A judge written from labels. ``mode``:

    * ``label``: the task metric stored with the item (``Focus.scores``), else the true rank;
    * ``rank``: only the true rank (best 9, worst 2, linear between) — agrees on order, not on level;
    * ``overlap``: token F1 of the response against the golden answer (``bench.metrics.token_f1``) —
      a weaker judge that is fooled by wording.
    """

    def __init__(self, name: str, rank: int, mode: str = "label", n_responses: int = 2, quote_words: int = 12):
        if mode not in ("label", "rank", "overlap"):
            raise ValueError(f"unknown rule judge mode {mode!r}; use label, rank or overlap")
        self.name, self.rank, self.mode, self.n, self.quote_words = name, rank, mode, n_responses, quote_words

    def score(self, t: PointTask) -> float:
        f = t.focus
        if self.mode == "label" and f.scores[0] is not None:
            return float(f.scores[0])
        if self.mode in ("label", "rank"):
            return 0.9 - 0.7 * t.true_rank / max(1, self.n - 1)
        from ..bench.metrics import token_f1

        return float(token_f1(t.response, f.golden))

    def judge(self, t: PointTask) -> str | None:
        if t.focus is None:
            return None
        f = Focus(**{**f_asdict(t.focus), "scores": [self.score(t)]})
        return rule_judgement(f, "pointwise", quote_words=self.quote_words, slot=0)


def f_asdict(f: Focus) -> dict:
    return {k: getattr(f, k) for k in Focus.__dataclass_fields__}


class ModelJudge:
    """A registry model scoring the pointwise prompt; ``temperature > 0`` samples (seeded per task)."""

    def __init__(self, loaded, name: str, rank: int, *, temperature: float = 0.0, max_new_tokens: int = 256,
                 seed: int = 0, max_input_tokens: int | None = None):
        self.loaded, self.name, self.rank = loaded, name, rank
        self.temperature, self.max_new_tokens, self.seed = temperature, max_new_tokens, seed
        self.max_input_tokens = max_input_tokens

    def judge(self, t: PointTask) -> str | None:
        from .. import models

        ids = models.chat_ids(self.loaded.tokenizer, t.messages, self.loaded.spec)
        if self.max_input_tokens:
            ids, _ = models.keep_ends(ids, self.max_input_tokens)
        seed = int(hashlib.sha256(f"{self.seed}:{self.name}:{t.key}".encode()).hexdigest()[:8], 16)
        text, _ = models.generate(self.loaded, ids, self.max_new_tokens, temperature=self.temperature, seed=seed)
        return text.strip()


# --- voting ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vote:
    judge: str
    rank: int
    """Judge rank: 0 = the most trusted judge; breaks ties."""
    score: float | None
    """Parsed ``[Score: N]`` (0..10), None when the output did not parse."""
    text: str


@dataclass
class VoteResult:
    status: str
    """``ok``, ``no_consensus``, ``no_reject`` (everyone agreed) or ``too_few_votes``."""
    chosen: Vote | None = None
    rejects: list = field(default_factory=list)
    consensus: list = field(default_factory=list)
    """The votes in the winning agreement cluster."""
    center: float | None = None
    conf: float = 0.0
    """Share of parsed votes in the winning cluster."""


def vote(votes: Sequence[Vote], *, tolerance: float = 1.0, min_agreement: float = 0.5, V: int = 2,
         min_votes: int = 2) -> VoteResult:
    """Cluster parsed scores by agreement and pick chosen/rejects (a pure function).

    * A cluster is centred on one observed score and holds every vote within ``tolerance`` of it.
      The winning cluster has the most votes; ties go to the cluster holding the best-ranked judge,
      then the higher centre.
    * No consensus (the winner holds no more than ``min_agreement`` of the parsed votes, or fewer than
      2 votes) drops the item. With fewer than ``min_votes`` parsed votes it is ``too_few_votes``.
    * Chosen: the consensus vote closest to the cluster's mean score, ties to the best-ranked judge.
    * Rejects: votes outside the cluster, the furthest from the centre first (ties by judge rank),
      up to ``V``; unparsed outputs come after them (a format failure is the least consistent).
      Everyone agreeing leaves no reject: ``no_reject``.
    """
    parsed = [v for v in votes if v.score is not None]
    if len(parsed) < min_votes:
        return VoteResult("too_few_votes")
    centres = sorted({v.score for v in parsed})
    best = None
    for c in centres:
        members = [v for v in parsed if abs(v.score - c) <= tolerance]
        key = (len(members), -min(v.rank for v in members), c)
        if best is None or key > best[0]:
            best = (key, c, members)
    _, centre, members = best
    conf = len(members) / len(parsed)
    if len(members) < 2 or conf <= min_agreement:
        return VoteResult("no_consensus", center=centre, conf=conf, consensus=members)
    mean = sum(v.score for v in members) / len(members)
    chosen = min(members, key=lambda v: (abs(v.score - mean), v.rank))
    ids = {id(v) for v in members}
    outside = sorted((v for v in parsed if id(v) not in ids), key=lambda v: (-abs(v.score - centre), v.rank))
    unparsed = sorted((v for v in votes if v.score is None and v.text), key=lambda v: v.rank)
    rejects = (outside + unparsed)[:V]
    if not rejects:
        return VoteResult("no_reject", chosen=chosen, center=centre, conf=conf, consensus=members)
    return VoteResult("ok", chosen, rejects, members, centre, conf)


@dataclass
class VoteReport:
    tasks: int = 0
    items: int = 0
    status: Counter = field(default_factory=Counter)
    unparsed_votes: int = 0
    votes: int = 0
    rejects_per_item: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"tasks": self.tasks, "items": self.items, "status": dict(self.status), "votes": self.votes,
                "unparsed_votes": self.unparsed_votes, "rejects_per_item": dict(sorted(self.rejects_per_item.items())),
                "skipped": dict(self.skipped)}


def collect_votes(tasks: Sequence[PointTask], judges: Sequence[Any], *, progress: bool = False) -> dict[str, list[Vote]]:
    """Step 2: every judge scores and explains every task (``[Analysis] ... [Score: N]``)."""
    from ..judge import parse

    out: dict[str, list[Vote]] = {}
    it = tasks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(tasks, desc="pointwise votes")
    for t in it:
        vs = []
        for j in judges:
            text = j.judge(t)
            if text is None:
                continue
            s, err = parse.parse_score(text)
            vs.append(Vote(j.name, j.rank, None if err else s, text))
        out[t.key] = vs
    return out


def consistency_vote(tasks: Sequence[PointTask], votes: dict[str, list[Vote]], *, V: int = 2, tolerance: float = 1.0,
                     min_agreement: float = 0.5, min_votes: int = 2) -> tuple[list, VoteReport, dict[str, VoteResult]]:
    """Steps 3-4: cluster each task's votes; return (``align.PrefItem`` list, report, per-task results).

    Each kept item's prompt is the task's pointwise prompt (long context included), ``chosen`` the
    consensus explanation, ``rejects`` the low-consistency ones; ``meta`` keeps the scores, the
    consensus share (``conf``), judges and the true rank. Dropped tasks are counted by status.
    """
    from .align import PrefItem

    rep = VoteReport(tasks=len(tasks))
    items, results = [], {}
    for t in tasks:
        vs = votes.get(t.key)
        if vs is None:
            rep.skipped["no_votes_collected"] += 1
            continue
        rep.votes += len(vs)
        rep.unparsed_votes += sum(v.score is None for v in vs)
        r = vote(vs, tolerance=tolerance, min_agreement=min_agreement, V=V, min_votes=min_votes)
        results[t.key] = r
        rep.status[r.status] += 1
        if r.status != "ok":
            continue
        rep.rejects_per_item[len(r.rejects)] += 1
        items.append(PrefItem(t.key, list(t.messages), r.chosen.text, [v.text for v in r.rejects], {
            "record_id": t.record_id, "task": t.task, "true_rank": t.true_rank, "conf": round(r.conf, 4),
            "consensus_score": r.center, "chosen_judge": r.chosen.judge, "chosen_score": r.chosen.score,
            "scores": [r.chosen.score] + [v.score for v in r.rejects],
            "reject_judges": [v.judge for v in r.rejects], "source": "consistency_vote"}))
    rep.items = len(items)
    return items, rep, results


# --- the CPU route: pairwise preferences in both orders ------------------------------------------------

def flip_verdict(judgement: str) -> str:
    """The same analysis with the final pairwise verdict letter swapped (A<->B): a self-contradiction."""
    m = list(re.finditer(r"\[\[([AB])\]\]", judgement))
    if not m:
        raise SynthError(f"no [[A]]/[[B]] verdict to flip in {judgement[-60:]!r}")
    last = m[-1]
    other = "B" if last.group(1) == "A" else "A"
    return judgement[:last.start(1)] + other + judgement[last.end(1):]


def pairwise_preferences(records: Sequence[dict], *, tokenizer=None, max_tokens: int | None = None,
                         both_orders: bool = True, V: int = 2, seed: int = 0, templates=None,
                         where: str = "<records>") -> tuple[list, Counter]:
    """Preference items for the pairwise judge prompt, in both display orders (CPU route).

    For each PairWise record and each order: chosen = the label-correct rule judgement (fitted to
    ``max_tokens`` new tokens when a tokenizer is given); rejects, in this order and up to ``V``:
    (1) the same kind of judgement arguing for the worse response, (2) the chosen analysis with its
    verdict flipped. Only PairWise records are used; others are counted under ``not_pairwise``.
    """
    from ..bench import schema
    from ..judge import prompts
    from ..judge.run import display_orders
    from .align import PrefItem

    if V < 1:
        raise ValueError("V must be at least 1")
    templates = templates or prompts.load_templates()
    items, counts = [], Counter()
    for rec in records:
        if rec.get("tasktype") != "PairWise":
            counts["not_pairwise"] += 1
            continue
        try:
            s = short_to_long(rec, tokenizer, None, [], seed=seed, where=where)
            golden = item_golden(rec, where)
        except SynthError as e:
            counts[_reason(e)] += 1
            continue
        answers, scores = schema.answers(rec), item_scores(rec)
        evidence = [s.chunks[i] for i in s.critical]
        key = f"{rec.get('task')}:{rec.get('id')}"
        for order in display_orders(rec, 2, order_seed=seed, passes=2 if both_orders else 1):
            slots = [answers[r] for r in order]
            f = Focus(str(rec.get("id")), str(rec.get("task")), str(rec.get("question", "")), golden, evidence, slots,
                      list(order), [scores[r] for r in order])
            wrong = Focus(**{**f_asdict(f), "true_rank": [1 - r for r in order], "scores": f.scores[::-1]})
            try:
                chosen = fit_judgement(tokenizer, f, "pairwise", max_tokens) if tokenizer else rule_judgement(f, "pairwise")
                argued = fit_judgement(tokenizer, wrong, "pairwise", max_tokens) if tokenizer else rule_judgement(wrong, "pairwise")
            except SynthError as e:
                counts[_reason(e)] += 1
                continue
            rejects = [argued, flip_verdict(chosen)][:V]
            items.append(PrefItem(f"{key}:{''.join(map(str, order))}",
                                  prompts.judge_messages(templates, rec["prompt_template"], slots, pairwise=True),
                                  chosen, rejects, {"record_id": str(rec.get("id")), "task": rec.get("task"),
                                                    "order": list(order), "best_slot": SLOT_LETTERS[order.index(0)],
                                                    "source": "pairwise_both_orders"}))
            counts["items"] += 1
            counts[f"best_slot_{SLOT_LETTERS[order.index(0)]}"] += 1
    return items, counts


# --- long training prompts for Stage II ------------------------------------------------------------------

def pad_records(records: Sequence[dict], tokenizer, target_tokens: int | None, *, pool_records: Sequence[dict] | None = None,
                seed: int = 0, where: str = "<records>") -> tuple[list[dict], Counter]:
    """Stage I's short-to-long padding applied to whole records, so Stage II can train at long length.

    Each record's context is padded to exactly ``target_tokens`` with its own irrelevant chunks, then
    other training records' (``pool_records``); the critical chunks stay intact. ``None`` returns the
    records unchanged. Records that can't be padded are skipped and counted by reason.
    """
    if not target_tokens:
        return list(records), Counter()
    pool = filler_pool(pool_records if pool_records is not None else records, seed, where)
    out, skipped = [], Counter()
    for rec in records:
        try:
            out.append(short_to_long(rec, tokenizer, target_tokens, pool, seed=seed, where=where).long_record)
        except SynthError as e:
            skipped[_reason(e)] += 1
    return out, skipped


# --- scalar RMs: the benchmark's own labels -----------------------------------------------------------

def record_preferences(records: Sequence[dict], *, V: int = 3, tasktypes: Sequence[str] = ("PairWise", "BestOfN"),
                       where: str = "<records>") -> tuple[list, Counter]:
    """Scalar-RM preference items straight from labelled records: prompt = the task prompt (long
    context included), chosen = the best answer, rejects = the others, best first, up to ``V``.

    A PairWise record gives one reject; a BestOfN-4 record up to three. Records of other tasktypes
    are counted under ``skipped_tasktype``; a record missing its answers raises naming it.
    """
    from ..bench import schema
    from .align import PrefItem

    items, counts = [], Counter()
    for rec in records:
        if rec.get("tasktype") not in tasktypes:
            counts["skipped_tasktype"] += 1
            continue
        try:
            ans = schema.answers(rec)
        except KeyError as e:
            raise SynthError(f"{where}: record {rec.get('id')!r} has no field {e.args[0]!r}") from None
        if len(ans) < 2 or not all(isinstance(a, str) and a for a in ans):
            raise SynthError(f"{where}: record {rec.get('id')!r} needs at least two non-empty answers")
        items.append(PrefItem(f"{rec.get('task')}:{rec.get('id')}", list(rec["prompt_template"]), ans[0], ans[1:1 + V],
                              {"record_id": str(rec.get("id")), "task": rec.get("task"),
                               "tasktype": rec.get("tasktype"), "bucket": rec.get("ctx_length_for_length"),
                               "source": "benchmark_labels"}))
        counts[rec["tasktype"]] += 1
    return items, counts


# --- the official LongRM SimPO layout ------------------------------------------------------------------

OFFICIAL_SIMPO_FIELDS = ("chat_template", "chosen", "rejects", "scores", "conf", "prompt_ctx_length")


def _as_text(x: Any) -> str | None:
    """A response given as a string, a message dict, or a list ending in an assistant message."""
    if isinstance(x, str):
        return x
    if isinstance(x, dict) and isinstance(x.get("content"), str):
        return x["content"]
    if isinstance(x, list) and x and isinstance(x[-1], dict) and isinstance(x[-1].get("content"), str):
        return x[-1]["content"]
    return None


def official_simpo_record(rec: dict, index: int, where: str):
    """One official record -> ``align.PrefItem``, or raise :class:`SynthError` naming record and field."""
    from .align import PrefItem

    here = f"{where} record {index}"
    for k in ("chat_template", "chosen", "rejects"):
        if k not in rec or rec[k] is None:
            raise SynthError(f"{here}: missing field {k!r}")
    ct = rec["chat_template"]
    if isinstance(ct, str):
        ct = [{"role": "user", "content": ct}]
    if not (isinstance(ct, list) and ct and all(isinstance(m, dict) and "role" in m and "content" in m for m in ct)):
        raise SynthError(f"{here}: field 'chat_template' must be a list of {{role, content}} messages")
    prompt = [{"role": m["role"], "content": m["content"]} for m in ct]
    if prompt[-1]["role"] == "assistant":  # a template that already holds a response: keep the prompt only
        prompt = prompt[:-1]
    if not prompt:
        raise SynthError(f"{here}: field 'chat_template' has no prompt message")
    chosen = _as_text(rec["chosen"])
    if not chosen:
        raise SynthError(f"{here}: field 'chosen' must be text or an assistant message")
    rej_raw = rec["rejects"] if isinstance(rec["rejects"], list) else [rec["rejects"]]
    rejects = [_as_text(r) for r in rej_raw]
    if not rejects or any(not r for r in rejects):
        raise SynthError(f"{here}: field 'rejects' must be a non-empty list of texts or assistant messages")
    meta = {k: rec[k] for k in ("scores", "conf", "prompt_ctx_length") if k in rec}
    meta["source"] = "official_simpo"
    return PrefItem(str(rec.get("id", index)), prompt, chosen, rejects, meta)


def load_official_simpo(path: str | Path, *, min_conf: float | None = None, where: str | None = None) -> dict:
    """Import the official LongRM Stage II (SimPO) data: a ``save_to_disk`` folder, JSONL, JSON or parquet.

    Records that don't fit (missing or malformed fields) are skipped and counted by reason, with the
    first few messages kept; ``min_conf`` drops low-confidence items (counted). Returns
    ``{"items": [PrefItem], "report": {...}}``; raises when nothing is left.
    """
    import json as _json

    p = Path(path)
    where = where or str(p)
    if not p.exists():
        raise FileNotFoundError(f"official SimPO data not found at {p}")
    if p.is_dir():
        from datasets import load_from_disk

        ds = load_from_disk(str(p))
        if hasattr(ds, "keys"):  # a DatasetDict: take the train split
            ds = ds["train"] if "train" in ds else ds[list(ds.keys())[0]]
        rows: Iterable[dict] = (ds[i] for i in range(len(ds)))
    elif p.suffix == ".parquet":
        from datasets import Dataset

        ds = Dataset.from_parquet(str(p))
        rows = (ds[i] for i in range(len(ds)))
    elif p.suffix == ".json":
        data = _json.loads(p.read_text())
        rows = data if isinstance(data, list) else data.get("data", [])
    else:
        def _lines():
            with open(p) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield _json.loads(line)
                        except _json.JSONDecodeError as e:
                            yield SynthError(f"{where} line {n}: not valid JSON ({e})")
        rows = _lines()
    items, skipped, examples = [], Counter(), []
    total = 0
    for i, rec in enumerate(rows, 1):
        total += 1
        try:
            if isinstance(rec, Exception):
                raise rec
            if not isinstance(rec, dict):
                raise SynthError(f"{where} record {i}: expected an object")
            it = official_simpo_record(rec, i, where)
        except SynthError as e:
            msg = str(e)
            skipped[msg.split(": ", 1)[-1].split(" (")[0]] += 1
            if len(examples) < 5:
                examples.append(msg)
            continue
        if min_conf is not None and isinstance(it.meta.get("conf"), (int, float)) and it.meta["conf"] < min_conf:
            skipped[f"conf < {min_conf}"] += 1
            continue
        items.append(it)
    report = {"records": total, "kept": len(items), "skipped": dict(skipped), "skip_examples": examples,
              "fields": OFFICIAL_SIMPO_FIELDS}
    if not items:
        raise SynthError(f"{where}: none of {total} records could be imported; {dict(skipped)}; e.g. {examples[:2]}")
    return {"items": items, "report": report}
