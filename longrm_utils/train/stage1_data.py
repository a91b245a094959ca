"""Stage I training data (notebook 04): *short-to-long* judgement synthesis (paper §4.2), and the
content-based leakage check.

1. Split an item's context into chunks and **locate the critical ones** (:mod:`.evidence`: known
   from the record's ``meta``, or found by retrieval for hub sources without evidence labels).
2. A **teacher writes the judgement on the short, focused context** (critical chunks only, plus
   the question and golden answer; :mod:`.teachers`).
3. **Pad the prompt back to a long target length** with irrelevant chunks: the item's own, then
   distractors from other *training* items. The context is exact to the token of the target, the
   critical chunks sit at recorded depths, intact and in their original order.

Every item is written in **both display orders** (the benchmark's shuffled order and its reverse,
:func:`longrm_utils.bench.schema.display_orders`), so the verdict letters are balanced: a model
cannot lower its loss by always answering ``[[A]]``.

The **leakage check** hashes normalised word n-grams of the training examples and reports, per
evaluation set, how much of each evaluation item's own content occurs in them.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..bench import schema
from ..bench.text import ContextTooShort, TokenCounter, assemble
from ..constants import SLOT_LETTERS
from ..judge import prompts
from .evidence import (CHUNK_SEP, SynthError, item_critical, item_golden, item_scores, n_tokens, normal_words,
                       record_field, record_parts, skip_reason, split_chunks)
from .teachers import FORMATS, Focus, RuleTeacher


# --- exact-length assembly ------------------------------------------------------------------------------

def assemble_context(tokenizer, critical: Sequence[str], fillers: Iterable[str], target: int, *,
                     seed: int | str = 0, tokenizer_name: str = "tokenizer"):
    """Critical chunks among filler chunks, exactly ``target`` tokens long.

    The benchmark's own assembler (:func:`longrm_utils.bench.text.assemble`) does the work: the
    critical chunks keep their order at seeded positions among the fillers, and the last document
    is grown word by word until the whole context has exactly ``target`` tokens. Returns its
    ``Assembled`` (``text``, ``n_tokens``, ``required_spans`` = character spans of the critical
    chunks). Raises :class:`SynthError` when the critical chunks don't fit or the fillers run out.
    """
    it = iter(fillers)

    def next_filler(_rng):
        try:
            return next(it)
        except StopIteration:
            raise SynthError(f"ran out of filler chunks before {target} tokens") from None

    try:
        return assemble(list(critical), target, TokenCounter(tokenizer, tokenizer_name),
                        random.Random(f"assemble:{seed}"), next_filler)
    except ContextTooShort as e:
        raise SynthError(f"critical chunks alone do not fit the target: {e}") from e
    except RuntimeError as e:
        raise SynthError(f"no exact fit: {e}") from e


# --- records -> focused items -> SFT examples ------------------------------------------------------------

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


def filler_pool(records: Sequence[dict], seed: int = 0, where: str = "<records>") -> list[str]:
    """Non-critical chunks of training records, shuffled with ``seed``: the padding material."""
    pool = []
    for rec in records:
        before, ctx, after = record_parts(rec, where)
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
    before, ctx, after = record_parts(rec, where)
    chunks = split_chunks(ctx)
    question = str(record_field(rec, "question", where))
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
            rep.skipped[skip_reason(e)] += 1
            continue
        done.append(s)
        rep.critical_by[s.critical_by] += 1
        examples += _record_examples(s, rec, teacher, formats, templates, rep, target=target, seed=seed,
                                     both_orders=both_orders, where=where)
    rep.examples = len(examples)
    return examples, rep, done


def _record_examples(s: Synthesised, rec: dict, teacher, formats: Sequence[str], templates, rep: SynthReport, *,
                     target, seed: int, both_orders: bool, where: str) -> list[dict]:
    """Step 2 for one synthesised record: the teacher's judgements in each display order and format."""
    answers = schema.answers(rec)
    scores = item_scores(rec)
    pairwise = rec.get("tasktype") == "PairWise"
    question, golden = str(rec["question"]), item_golden(rec, where)
    evidence = [s.chunks[i] for i in s.critical]
    out = []
    orders = schema.display_orders(rec, len(answers), order_seed=seed, passes=2 if both_orders else 1)
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
                out.append(_example(prompts.judge_messages(templates, s.long_record["prompt_template"], slots,
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
                out.append(_example(prompts.pointwise_messages(templates, s.long_record["prompt_template"], resp),
                                    text, rec, "pointwise", [order[j]], target))
                rep.by_format["pointwise"] += 1
    return out


def _verdict_letter(text: str) -> str:
    m = re.findall(r"\[\[([A-D])", text)
    return m[-1] if m else "?"


def _example(messages: list[dict], judgement: str, rec: dict, fmt: str, order, target) -> dict:
    return {"prompt": messages, "completion": [{"role": "assistant", "content": judgement}],
            "id": str(rec.get("id")), "task": rec.get("task"), "format": fmt, "order": list(order),
            "target_tokens": target}


# --- leakage: content hashes against every evaluation set ---------------------------------------------

def ngram_hashes(text: str, n: int = 8) -> set[int]:
    """64-bit hashes of the normalised word n-grams of ``text`` (lower case, alphanumeric words)."""
    w = normal_words(text)
    return {int.from_bytes(hashlib.blake2b(" ".join(w[i:i + n]).encode(), digest_size=8).digest(), "big")
            for i in range(max(0, len(w) - n + 1))}


def record_content(rec: dict) -> str:
    """The item-specific text of an evaluation record: question, answers, and its evidence chunks
    (the whole context when the record does not mark its evidence, as official records don't).

    Filler documents are left out when the evidence is known: the offline generators write them
    from one small shared grammar, so their n-grams recur across *all* items by design.
    """
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
