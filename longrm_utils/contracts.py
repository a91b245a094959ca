"""The data contracts between the package's parts, each defined once (see ``docs/contracts.md``).

* a **prediction line** -- one judgement of one benchmark item in one display order
  (``predictions.jsonl`` in a judge folder);
* a **judge folder** -- the files ``run_judge`` writes and everything downstream reads;
* a **preference item** -- one Stage II training example: a prompt, a chosen response, V rejects.

The benchmark record itself is defined in :mod:`longrm_utils.bench.schema`.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .constants import BUCKET_ORDER, TASKS, TASKTYPES
from .io import InputError, iter_jsonl, read_json, unique_rows, write_jsonl

# --- prediction lines -----------------------------------------------------------------------------

PRED_FIELDS = ("task", "id", "tasktype", "subtype", "ctx_length_for_length", "source", "pass", "order", "raw",
               "ranking", "parse_error", "strict_error", "slot_scores", "tie", "pref_prob", "score",
               "truncated", "prompt_tokens", "error")
"""Field order of a prediction line, as ``run_judge`` writes it."""

REQUIRED_PRED_FIELDS = ("task", "id", "tasktype", "subtype", "ctx_length_for_length", "pass", "order", "raw",
                        "ranking", "parse_error", "score")
"""Fields every reader relies on; lines from other tools must carry at least these."""


def item_key(p: dict) -> tuple[str, str]:
    """The join key of an item: official ids are unique only within a task."""
    return (str(p["task"]), str(p["id"]))


def is_pairwise(p: dict) -> bool:
    return p.get("tasktype") == "PairWise"


def winner_slot(pred: dict) -> int | None:
    """The display slot the judge ranked first, or None on a parse failure."""
    r = pred.get("ranking")
    return None if r is None else r.index(0)


def top_answer(pred: dict) -> int | None:
    """The true rank of the answer the judge put first (0 = it picked the best answer)."""
    j = winner_slot(pred)
    return None if j is None else pred["order"][j]


def item_score(ranking: Sequence[int] | None, order: Sequence[int]) -> float:
    """The official per-item score: share of slots with ``ranking[j] == order[j]``; 0 when unparsed."""
    if ranking is None or len(ranking) != len(order) or not order:
        return 0.0
    return sum(int(r == o) for r, o in zip(ranking, order)) / len(order)


def top1_correct(ranking: Sequence[int] | None, order: Sequence[int]) -> bool:
    """The slot ranked first holds the true best answer (``order[j] == 0``)."""
    if ranking is None or len(ranking) != len(order):
        return False
    return any(r == 0 and o == 0 for r, o in zip(ranking, order))


def check_prediction(p: Any, *, file: str | os.PathLike = "<predictions>", line: int | None = None) -> dict:
    """Raise :class:`InputError` naming file, line, record and field when a line breaks the contract:
    missing fields, an unknown task, task type or bucket, a pass other than 0/1, an order that is
    not a permutation, a ranking of another length, or a score outside [0, 1] (NaN included)."""
    if not isinstance(p, dict):
        raise InputError(f"expected a JSON object, got {type(p).__name__}", file=file, line=line)
    rid = p.get("id")

    def bad(field: str, msg: str) -> InputError:
        return InputError(msg, file=file, line=line, rec_id=rid, field=field)

    for f in REQUIRED_PRED_FIELDS:
        if f not in p:
            raise bad(f, "missing field")
    for name, allowed in (("task", TASKS), ("tasktype", TASKTYPES), ("ctx_length_for_length", BUCKET_ORDER)):
        if p[name] not in allowed:
            raise bad(name, f"must be one of {', '.join(allowed)}, got {p[name]!r}")
    if p["pass"] not in (0, 1) or isinstance(p["pass"], bool):
        raise bad("pass", f"must be 0 or 1, got {p['pass']!r}")
    order = p["order"]
    if not isinstance(order, list) or sorted(order) != list(range(len(order))) or len(order) < 2:
        raise bad("order", f"must be a permutation of the answers' true ranks, got {order!r}")
    if p["ranking"] is not None and (not isinstance(p["ranking"], list) or len(p["ranking"]) != len(order)):
        raise bad("ranking", f"must be null or a list as long as 'order' ({len(order)} slots)")
    sc = p["score"]
    if isinstance(sc, bool) or not isinstance(sc, (int, float)) or not math.isfinite(sc) or not 0 <= sc <= 1:
        raise bad("score", f"must be a number in [0, 1], got {sc!r}")
    return p


def read_predictions(path: str | os.PathLike, *, check: bool = True) -> list[dict]:
    """A ``predictions.jsonl``: every line checked, duplicates of ``(task, id, pass)`` refused."""
    rows = iter_jsonl(path)
    if not check:
        return [p for _, p in rows]
    checked = ((n, check_prediction(p, file=path, line=n)) for n, p in rows)
    return unique_rows(checked, lambda p: (*item_key(p), p["pass"]), file=path, field="pass", what="(task, id, pass)")


def group_items(preds: Iterable[dict]) -> "OrderedDict[tuple[str, str], dict[int, dict]]":
    """(task, id) -> {pass: line}, in first-seen order. A duplicate (task, id, pass) is an error."""
    items: OrderedDict[tuple[str, str], dict[int, dict]] = OrderedDict()
    for i, p in enumerate(preds):
        for f in ("task", "id", "tasktype", "pass", "order", "score"):
            if f not in p:
                raise InputError("missing field", file="<predictions>", line=i + 1, rec_id=p.get("id"), field=f)
        k = item_key(p)
        passes = items.setdefault(k, {})
        if int(p["pass"]) in passes:
            raise InputError(f"duplicate (task, id, pass) {(*k, p['pass'])}", file="<predictions>", line=i + 1,
                             rec_id=p["id"], field="pass")
        passes[int(p["pass"])] = p
    return items


# --- judge folders --------------------------------------------------------------------------------

PREDICTIONS = "predictions.jsonl"
TIMINGS = "timings.jsonl"
RESULTS = "results.csv"
METRICS = "metrics.json"
RUN_CONFIG = "run_config.json"
BENCH_COPY = "bench.jsonl"
"""The files of a judge folder. ``bench.jsonl`` is written when the judge was given records in memory."""
LESSONS = "lessons.json"
"""The run directory's measured claims (``{"lessons": [entry, ...]}``, docs/contracts.md section 6)."""


def run_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The whole ``run_config.json`` of a judge folder (``{"args": ..., "resolved": ...}``); {} if absent."""
    p = Path(folder) / RUN_CONFIG
    return read_json(p) if p.exists() else {}


def judge_args(folder: str | os.PathLike) -> dict[str, Any]:
    """The arguments ``run_judge`` recorded (judge, kind, bench, orders ...); {} if absent."""
    return run_config(folder).get("args", {})


def judge_bench_file(folder: str | os.PathLike) -> Path | None:
    """The benchmark file a judge folder was run on: its own copy, else the recorded path if it exists."""
    folder = Path(folder)
    args = judge_args(folder)
    if args.get("bench_file") and (folder / args["bench_file"]).exists():
        return folder / args["bench_file"]
    b = args.get("bench")
    return Path(b) if isinstance(b, str) and b.endswith(".jsonl") and Path(b).exists() else None


# --- preference items (Stage II) ------------------------------------------------------------------

@dataclass
class PrefItem:
    """One Stage II training item: a prompt (messages, long context included), a chosen response and V rejects."""

    id: str
    prompt: list[dict]
    chosen: str
    rejects: list[str]
    meta: dict = field(default_factory=dict)


def pref_items_from_records(records: Sequence[Any], *, file: str | os.PathLike = "<records>",
                            lines: Sequence[int] | None = None) -> list[PrefItem]:
    """Validate dicts ``{id, prompt: [{role, content}], chosen: str, rejects: [str], meta?}``."""
    out = []
    for i, r in enumerate(records):
        line = lines[i] if lines else i + 1
        rid = r.get("id") if isinstance(r, dict) else None
        if not isinstance(r, dict):
            raise InputError(f"expected an object, got {type(r).__name__}", file=file, line=line)
        for key in ("prompt", "chosen", "rejects"):
            if key not in r:
                raise InputError("missing field", file=file, line=line, rec_id=rid, field=key)
        p = r["prompt"]
        if not (isinstance(p, list) and p and all(isinstance(m, dict) and "role" in m and "content" in m for m in p)):
            raise InputError("must be a non-empty list of {role, content} messages", file=file, line=line,
                             rec_id=rid, field="prompt")
        if not isinstance(r["chosen"], str) or not r["chosen"]:
            raise InputError("must be a non-empty string", file=file, line=line, rec_id=rid, field="chosen")
        rej = r["rejects"]
        if not (isinstance(rej, list) and rej and all(isinstance(x, str) and x for x in rej)):
            raise InputError("must be a non-empty list of non-empty strings", file=file, line=line, rec_id=rid,
                             field="rejects")
        out.append(PrefItem(str(r.get("id", i)), p, r["chosen"], list(rej), dict(r.get("meta") or {})))
    return out


def read_pref_jsonl(path: str | os.PathLike) -> list[PrefItem]:
    rows = list(iter_jsonl(path))
    return pref_items_from_records([r for _, r in rows], file=path, lines=[n for n, _ in rows])


def write_pref_jsonl(items: Sequence[PrefItem], path: str | os.PathLike) -> Path:
    return write_jsonl((asdict(it) for it in items), path)
