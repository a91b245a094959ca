"""Loaders for the paper's hub sources (LongBench, InfiniteBench, LEval, BABILong, L-CiteEval, LongSafety).

A loader maps a source record to a :class:`SourceRecord`, and :func:`triplet_from_source` turns it
into a :class:`~longrm_utils.bench.generators.Triplet` whose context is cut to a bucket exactly.
The hub is read only behind ``use_hub=True``; the loaders are tested on local sample files
(``data/samples/``) that follow the sources' formats.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime import check_hub
from .generators import Triplet
from .text import SEP, ContextTooShort, TokenCounter


class SourceFormatError(ValueError):
    """A hub or sample record lacks a field; the message names file, line and field."""


HUB_SOURCES = {
    "longbench": {"hub_id": "THUDM/LongBench", "tasks": ("LongQA", "Summ", "Code", "ICL"),
                  "fields": ("input", "context", "answers")},
    "infinitebench": {"hub_id": "xinrongzhang2022/InfiniteBench", "tasks": ("LongQA", "Summ", "Code", "Math"),
                      "fields": ("input", "context", "answer")},
    "leval": {"hub_id": "L4NLP/LEval", "tasks": ("LongQA", "Summ"), "fields": ("input", "outputs")},
    "babilong": {"hub_id": "RMT-team/babilong", "tasks": ("LongQA",), "fields": ("input", "question", "target")},
    "l-citeeval": {"hub_id": "Jonaszky123/L-CiteEval", "tasks": ("Cite",), "fields": ("question", "docs", "answer")},
    "longsafety": {"hub_id": "thu-coai/LongSafety", "tasks": ("Safety",), "fields": ("instruction", "context")},
}
"""The paper's sources, their hub ids, which of our tasks they feed, and the fields our loaders read."""


@dataclass
class SourceRecord:
    """A (question, context, golden answer) triplet read from a hub source."""

    task: str
    source: str
    subtask: str
    question: str
    context: str
    golden: str
    reference: dict
    line: int


def _reference(golden: str, **extra) -> dict:
    """A reference dict every task metric can read, from one golden answer string."""
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", golden.replace(",", ""))]
    ref = {"answer": golden, "summary": golden, "outputs": golden.split() or [golden],
           "steps": nums[-1:] if nums else [], "labels": [golden.strip()], "label_set": [golden.strip()],
           "sensitive": [], "statements": [[golden, []]]}
    ref.update(extra)
    return ref


def _need(rec: dict, key: str, file, line) -> Any:
    if key not in rec:
        raise SourceFormatError(f"{file} line {line}: field {key!r} missing (has {sorted(rec)})")
    return rec[key]


def parse_source_record(source: str, rec: dict, *, file="<memory>", line: int = 0, task: str | None = None) -> SourceRecord:
    """Map one record of a hub source to a :class:`SourceRecord` (raises :class:`SourceFormatError`)."""
    if source not in HUB_SOURCES:
        raise ValueError(f"unknown source {source!r}; have {sorted(HUB_SOURCES)}")
    task = task or HUB_SOURCES[source]["tasks"][0]
    g = lambda k: _need(rec, k, file, line)  # noqa: E731
    if source == "longbench":
        ans = g("answers")
        golden = ans[0] if isinstance(ans, list) and ans else str(ans)
        sub = rec.get("dataset", "longbench")
        return SourceRecord(task, f"LongBench/{sub}", sub, g("input"), g("context"), golden,
                            _reference(golden), line)
    if source == "infinitebench":
        ans = g("answer")
        golden = ans[0] if isinstance(ans, list) and ans else str(ans)
        return SourceRecord(task, "InfiniteBench", rec.get("id", "infinitebench") and "infinitebench", g("input"),
                            g("context"), golden, _reference(golden), line)
    if source == "leval":
        outs, ins = g("outputs"), g("instructions") if "instructions" in rec else [g("input")]
        ctx = rec.get("input") if "instructions" in rec else g("context")
        return SourceRecord(task, "LEval", rec.get("evaluation", "leval"), ins[0], ctx, outs[0],
                            _reference(outs[0]), line)
    if source == "babilong":
        tgt = g("target")
        return SourceRecord(task, "BABILong", "qa", g("question"), g("input"), tgt, _reference(tgt), line)
    if source == "l-citeeval":
        docs = g("docs")
        ctx = SEP.join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
        ans = g("answer")
        golden = ans[0] if isinstance(ans, list) else ans
        return SourceRecord("Cite", "L-CiteEval", rec.get("dataset", "citation"), g("question"), ctx, golden,
                            _reference(golden, statements=[
                                [st, sorted({int(x) for x in re.findall(r"\[(\d+)\]", st)})]
                                for st in re.split(r"(?<=[.!?])\s+", golden) if st.strip()]), line)
    if source == "longsafety":
        ins = g("instruction")
        return SourceRecord("Safety", "LongSafety", rec.get("safety_type", "safety"), ins, g("context"),
                            "I can't help with that request.", _reference("I can't help with that request."), line)
    raise AssertionError(source)


def _local_rows(p: Path) -> list[tuple[int, dict]]:
    """(line, record) of a local JSON or JSONL file; a line that is not JSON becomes an ``__error__`` row."""
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        data = json.loads(text)
        return list(enumerate(data if isinstance(data, list) else data.get("data", []), 1))
    rows: list[tuple[int, dict]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                rows.append((n, {"__error__": f"not valid JSON ({e.msg})"}))
    return rows


def load_source(source: str, path_or_hub: str | os.PathLike | None = None, *, use_hub: bool = False,
                limit: int | None = None, task: str | None = None) -> tuple[list[SourceRecord], list[str]]:
    """Read a source from a local JSONL/JSON file, or (``use_hub=True``) from the hub.

    ``source`` may name a hub configuration and split as ``name/config/split``, e.g.
    ``babilong/4k/qa2`` or ``longbench/hotpotqa`` (split ``test`` by default).
    Returns (records, skips): malformed records are skipped, each skip a message naming file,
    line and field; the caller shows the count (nothing is dropped silently).
    """
    source, *sel = source.split("/")
    config = sel[0] if sel else None
    split = sel[1] if len(sel) > 1 else "test"
    info = HUB_SOURCES.get(source)
    if info is None:
        raise ValueError(f"unknown source {source!r}; have {sorted(HUB_SOURCES)}")
    fname = str(path_or_hub or info["hub_id"])
    if path_or_hub is not None and Path(path_or_hub).exists():
        rows = _local_rows(Path(path_or_hub))
    else:
        if not use_hub:
            raise FileNotFoundError(f"source {source!r}: no local file {path_or_hub!r}; pass use_hub=True to read "
                                    f"{info['hub_id']} from the Hugging Face hub")
        from datasets import load_dataset

        check_hub(info["hub_id"], "dataset")
        ds = load_dataset(str(path_or_hub or info["hub_id"]), config, split=split)
        rows = list(enumerate(ds.select(range(min(len(ds), limit))) if limit else ds, 1))
    out, skips = [], []
    for n, r in rows:
        if limit is not None and len(out) >= limit:
            break
        if "__error__" in r:
            skips.append(f"{fname} line {n}: {r['__error__']}")
            continue
        try:
            out.append(parse_source_record(source, r, file=fname, line=n, task=task))
        except SourceFormatError as e:
            skips.append(str(e))
    return out, skips


def fit_source_context(rec: SourceRecord, target: int, count: TokenCounter) -> str:
    """Cut a source context to exactly ``target`` tokens (its head kept); a shorter context is an error.

    Decoding a token prefix and re-encoding it does not always give the same count, so the prefix
    length is corrected until the re-count matches.
    """
    ids = count.tokenizer(rec.context, add_special_tokens=False)["input_ids"]
    if len(ids) < target:
        raise ContextTooShort(f"{rec.source} line {rec.line}: context has {len(ids)} tokens, fewer than the "
                              f"bucket's {target}")
    k, tried = target, set()
    for _ in range(32):
        tried.add(k)
        text = count.tokenizer.decode(ids[:k], skip_special_tokens=True)
        n = count(text)
        if n == target:
            return text
        k = min(len(ids), max(1, k + (target - n)))
        if k in tried:
            k = min(len(ids), max(1, k + (1 if n < target else -1)))
    raise RuntimeError(f"{rec.source} line {rec.line}: could not cut the context to exactly {target} tokens")


def triplet_from_source(rec: SourceRecord, target: int, count: TokenCounter) -> Triplet:
    """A :class:`Triplet` from a hub record, its context cut to exactly ``target`` tokens.

    It has no answer slots (``render`` is None): candidates for it come from a policy model
    (:func:`longrm_utils.bench.policy.policy_item`), as in the paper.
    """
    ctx = fit_source_context(rec, target, count)
    return Triplet(rec.task, rec.subtask, rec.source, "Answer the question using the context.", rec.question, ctx,
                   target, count.name, [], [], [], [], None, None, rec.reference, (rec.source, rec.line, target),
                   {"golden": rec.golden})
