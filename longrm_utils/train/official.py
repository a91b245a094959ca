"""Importing the official LongRM training data (Stage I SFT, Stage II SimPO), every split of it.

The layouts are those of the official release, LCM-Lab/LongRM on GitHub (indexed as LCM-Lab/Long-RM):

* ``datas/SFT_Data_Sampled20`` and ``datas/SimPO_Data_Sampled20`` are ``datasets.save_to_disk``
  folders with the splits ``train``, ``eval`` and ``test`` (one subfolder each); the official
  scripts ``scripts/cli/train_sft.py`` and ``scripts/cli/train_simpo_grm.py`` open them with
  ``load_from_disk`` and read ``["train"]`` and ``["eval"]``.
* SFT features (``SFT_Data_Sampled20/test/dataset_info.json``): :data:`SFT_FEATURES`. The prompt is
  ``chat_template`` (system and user turns); the judgement is ``golden``, which
  ``train_sft.py`` passes as the response key. There is no ``index`` column.
* SimPO features (``SimPO_Data_Sampled20/train/dataset_info.json``): :data:`SIMPO_FEATURES`.
  ``train_simpo_grm.py`` reads ``chat_template`` (prompt), ``chosen`` and ``rejects`` (a list);
  ``scores`` maps each answering model to an int; ``conf`` is a list of ints.

``conf``: the official code never reads it and the release does not say what it means. We read it
as vote counts (the paper, arXiv 2510.06915, builds Stage II preferences by consistency voting), so
``min_conf=N`` keeps a row when ``max(conf) >= N``: at least N votes agree. This is our reading,
not a documented fact.

Rows that do not fit are skipped and counted by split and reason; a layout that does not fit (a
missing column, a bad path) raises :class:`~longrm_utils.io.InputError`.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..cli import ArgumentParser
from ..contracts import PrefItem
from ..io import InputError, iter_jsonl, read_json, write_jsonl
from .sft import example_length

SFT_FEATURES = ("chat_template", "golden", "ctx_length", "language", "hop", "org_pos", "perspective")
SIMPO_FEATURES = ("index", "extra_generate_kwargs", "paragraph_id", "answer", "sub-paragraphs", "word count",
                  "Date", "context", "query", "context_and_question", "chosen_model", "reject_models", "scores",
                  "conf", "insert_index", "chat_template", "prompt_ctx_length", "chosen", "rejects")
SFT_REQUIRED = ("chat_template", "golden")
SIMPO_REQUIRED = ("chat_template", "chosen", "rejects")
SFT_KEEP = ("ctx_length", "language", "hop", "org_pos", "perspective")
SIMPO_META = ("index", "scores", "conf", "prompt_ctx_length", "chosen_model", "reject_models")
MAX_EXAMPLES = 10


class _Skip(Exception):
    """A row that cannot be imported: the field and the reason."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


# --- reading the splits ------------------------------------------------------------------------

def _load_disk(p: Path) -> dict[str, Any]:
    """A save_to_disk folder -> {split: Dataset}; a folder of split folders without dataset_dict.json too."""
    from datasets import DatasetDict, load_from_disk

    if (p / "dataset_dict.json").exists() or (p / "state.json").exists():
        ds = load_from_disk(str(p))
        return dict(ds) if isinstance(ds, DatasetDict) else {p.name: ds}
    subs = sorted(d for d in p.iterdir() if (d / "state.json").exists())
    if not subs:
        raise InputError("not a datasets.save_to_disk folder (no dataset_dict.json or state.json, nor split "
                         "folders holding one)", file=p)
    return {d.name: load_from_disk(str(d)) for d in subs}


def _load_json(p: Path) -> dict[str, list]:
    """JSONL (one split, named after the file) or JSON: a list of rows, or {split: [rows]}."""
    if p.suffix == ".jsonl":
        return {p.stem: [row for _, row in iter_jsonl(p)]}
    data = read_json(p)
    if isinstance(data, list):
        return {p.stem: data}
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return data
    raise InputError("expected a list of rows or an object {split: [rows]}", file=p)


def _columns(split: Any) -> set[str]:
    if hasattr(split, "column_names"):
        return set(split.column_names)
    return set().union(*(r.keys() for r in split if isinstance(r, dict)))


def read_splits(path: str | Path, required: Iterable[str], keep: Iterable[str],
                splits: Iterable[str] | None = None) -> dict[str, Iterable]:
    """``{split: rows}`` of a save_to_disk folder (Dataset or DatasetDict), a .jsonl or a .json file.

    Only the columns in ``required`` and ``keep`` are read. A split without a required column is an
    :class:`InputError`, since that is another layout, not a bad row.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", file=p)
    if p.is_dir():
        data = _load_disk(p)
    elif p.suffix in (".jsonl", ".json"):
        data = _load_json(p)
    else:
        raise InputError("expected a datasets.save_to_disk folder, a .jsonl or a .json file", file=p)
    if splits is not None:
        unknown = [s for s in splits if s not in data]
        if unknown:
            raise InputError(f"no split {unknown[0]!r} (have {', '.join(data)})", file=p)
        data = {s: data[s] for s in splits}
    out = {}
    for name, split in data.items():
        cols = _columns(split)
        for f in required:
            if f not in cols and len(split):
                raise InputError(f"split {name!r} has no column {f!r} (columns: {', '.join(sorted(cols))})",
                                 file=p, field=f)
        if hasattr(split, "select_columns"):  # skip the long `context` columns nobody reads here
            split = split.select_columns([c for c in (*required, *keep) if c in cols])
        out[name] = split
    return out


# --- checking one row --------------------------------------------------------------------------

def _messages(x: Any) -> list[dict]:
    """``chat_template`` as prompt messages: a non-empty list of {role, content} strings, not ending
    with an assistant turn (the release holds only the system and user turns)."""
    if not (isinstance(x, list) and x and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                              and isinstance(m.get("content"), str) for m in x)):
        raise _Skip("chat_template", "not a non-empty list of {role, content} messages")
    if x[-1]["role"] == "assistant":
        raise _Skip("chat_template", "ends with an assistant turn; expected the prompt only")
    return [{"role": m["role"], "content": m["content"]} for m in x]


def _text(row: dict, field: str) -> str:
    v = row.get(field)
    if not isinstance(v, str) or not v.strip():
        raise _Skip(field, "missing or not a non-empty string")
    return v


def _votes(conf: Any) -> int:
    """The largest vote count of ``conf`` (a list of ints in the release)."""
    if not (isinstance(conf, list) and conf and all(isinstance(c, int) and not isinstance(c, bool) for c in conf)):
        raise _Skip("conf", "not a non-empty list of vote counts")
    return max(conf)


# --- the import loop ---------------------------------------------------------------------------

def _import(path: str | Path, data: dict[str, Iterable], convert: Callable[[dict, str, str], Any],
            kind: str) -> tuple[list, dict]:
    """Run ``convert(row, split, id)`` over every row; count imports and skips per split and reason.

    The id is ``split:index`` (the official ``index`` column) or ``split:row`` when there is none.
    A repeated index within a split is skipped, with the row where it was first seen.
    """
    out: list = []
    report: dict[str, Any] = {"path": str(path), "kind": kind, "splits": {}, "skip_examples": []}
    total: Counter = Counter()
    for split, rows in data.items():
        seen: dict[Any, int] = {}
        skipped: Counter = Counter()
        n = 0
        for i, row in enumerate(rows):
            n += 1
            try:
                if not isinstance(row, dict):
                    raise _Skip("row", "not an object")
                key = row.get("index", i)
                if key is None:
                    raise _Skip("index", "missing")
                if key in seen:
                    raise _Skip("index", f"{key!r} repeats row {seen[key]} of this split")
                seen[key] = i
                out.append(convert(row, split, f"{split}:{key}"))
            except _Skip as e:
                skipped[str(e)] += 1
                if len(report["skip_examples"]) < MAX_EXAMPLES:
                    report["skip_examples"].append(f"split {split!r} row {i} field {e.field!r}: {e.reason}")
        imported = n - sum(skipped.values())
        report["splits"][split] = {"rows": n, "imported": imported, "skipped": dict(skipped)}
        total.update(skipped)
    report["rows"] = sum(s["rows"] for s in report["splits"].values())
    report["imported"] = len(out)
    report["skipped"] = dict(total)
    if not out:
        raise InputError(f"none of {report['rows']} rows could be imported as official {kind} data; skipped: "
                         f"{dict(total)}; e.g. {report['skip_examples'][:2]}", file=path)
    return out, report


def load_official_sft(path: str | Path, *, tokenizer=None, max_length: int | None = None,
                      splits: Iterable[str] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Import the official Stage I data as prompt/completion examples, every split (or ``splits``).

    ``prompt`` is ``chat_template``; ``completion`` is ``golden`` as the assistant turn. Each example
    also carries ``id`` (``split:row``, or ``split:index`` given an ``index`` column, which the release
    lacks), ``split`` and the release's ``ctx_length``, ``language``,
    ``hop``, ``org_pos``, ``perspective``. With ``tokenizer`` and ``max_length``, longer examples are
    skipped. Returns ``(examples, report)``; the report counts rows, imports and skips per split.
    """
    data = read_splits(path, SFT_REQUIRED, SFT_KEEP + ("index",), splits)

    def convert(row: dict, split: str, rid: str) -> dict:
        ex = {"id": rid, "split": split, "task": "official_sft", "format": "official",
              "prompt": _messages(row.get("chat_template")),
              "completion": [{"role": "assistant", "content": _text(row, "golden")}],
              **{k: row[k] for k in SFT_KEEP if k in row}}
        if tokenizer is not None and max_length is not None and example_length(tokenizer, ex) > max_length:
            raise _Skip("chat_template", f"longer than max_length {max_length} tokens")
        return ex

    return _import(path, data, convert, "sft")


def load_official_simpo(path: str | Path, *, min_conf: int | None = None,
                        splits: Iterable[str] | None = None) -> dict[str, Any]:
    """Import the official Stage II data as ``PrefItem`` s, every split (or ``splits``).

    ``id`` is ``split:index``; ``prompt`` is ``chat_template``; ``chosen`` and ``rejects`` as in the
    release (all rejects kept, in order). ``meta`` holds ``split`` and the release's ``index``,
    ``scores``, ``conf``, ``prompt_ctx_length``, ``chosen_model``, ``reject_models``. ``min_conf``
    keeps rows whose largest ``conf`` vote count is at least ``min_conf``. Returns
    ``{"items": [PrefItem], "report": {...}}``.
    """
    data = read_splits(path, SIMPO_REQUIRED, SIMPO_META, splits)

    def convert(row: dict, split: str, rid: str) -> PrefItem:
        prompt = _messages(row.get("chat_template"))
        chosen = _text(row, "chosen")
        rejects = row.get("rejects")
        if not (isinstance(rejects, list) and rejects and all(isinstance(r, str) and r.strip() for r in rejects)):
            raise _Skip("rejects", "not a non-empty list of non-empty strings")
        if min_conf is not None and _votes(row.get("conf")) < min_conf:
            raise _Skip("conf", f"largest vote count below min_conf {min_conf}")
        meta = {"split": split, **{k: row[k] for k in SIMPO_META if k in row}, "source": "official_simpo"}
        return PrefItem(rid, prompt, chosen, list(rejects), meta)

    items, report = _import(path, data, convert, "simpo")
    report["min_conf"] = min_conf
    return {"items": items, "report": report}


def looks_official(path: str | Path) -> bool:
    """Whether a preference file is in the official SimPO layout (a folder, or JSON rows with
    ``chat_template``) rather than ours (``{id, prompt, chosen, rejects, meta}`` JSONL)."""
    path = Path(path)
    if path.is_dir() or path.suffix not in (".jsonl", ".json"):
        return True
    with open(path, encoding="utf-8") as f:
        first = next((ln for ln in f if ln.strip()), "{}")
    try:
        return "chat_template" in json.loads(first)
    except (json.JSONDecodeError, TypeError):
        return False


# --- the command line --------------------------------------------------------------------------

def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as lines: rows, imported and skipped (by reason) per split, then the total."""
    lines = []
    for split, s in report["splits"].items():
        lines.append(f"{split:8s} rows {s['rows']:6d}  imported {s['imported']:6d}  "
                     f"skipped {sum(s['skipped'].values()):6d}")
        lines += [f"           skipped {n} x {reason}" for reason, n in sorted(s["skipped"].items())]
    lines.append(f"{'total':8s} rows {report['rows']:6d}  imported {report['imported']:6d}  "
                 f"skipped {sum(report['skipped'].values()):6d}")
    lines += [f"  e.g. {e}" for e in report["skip_examples"]]
    return lines


def cli(argv: list[str]) -> int:
    """``import-official {sft,simpo} PATH --out FILE.jsonl [--min-conf N] [--splits a,b]``."""
    p = ArgumentParser(prog="longrm_utils import-official",
                                description="import the official LongRM SFT or SimPO data (every split) into JSONL")
    p.add_argument("kind", choices=("sft", "simpo"))
    p.add_argument("path", help="a datasets.save_to_disk folder (Dataset or DatasetDict), .jsonl or .json")
    p.add_argument("--out", required=True, help="the JSONL to write")
    p.add_argument("--min-conf", type=int, default=None, metavar="N",
                   help="simpo only: keep rows whose largest conf vote count is at least N")
    p.add_argument("--splits", default=None, help="comma-separated splits to import (default: all)")
    a = p.parse_args(argv)
    if a.min_conf is not None and (a.kind == "sft" or a.min_conf < 1):
        p.error("--min-conf takes a vote count of at least 1, and applies to simpo data only")
    splits = a.splits.split(",") if a.splits else None
    if a.kind == "sft":
        rows, report = load_official_sft(a.path, splits=splits)
    else:
        res = load_official_simpo(a.path, min_conf=a.min_conf, splits=splits)
        rows, report = [asdict(it) for it in res["items"]], res["report"]
    write_jsonl(rows, a.out)
    print("\n".join(report_lines(report)))
    print(f"wrote {len(rows)} lines to {a.out}")
    return 0
