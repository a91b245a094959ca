"""Long-RewardBench records: the official fields, validation, JSONL / ``datasets`` io, the official loader.

A record has exactly the official fields (docs/contracts.md) plus, optionally, ONE extra key
``meta`` (a dict) in which this course keeps what later steps need and the official release
does not carry: the golden answer, the spans of the context and of its evidence, the metric
scores of the answers, the perturbation that made each answer, the tokenizer that measured it.

Validation errors name the file, the line, the record ``id`` and the field::

    SchemaError: data/mini/mini.jsonl line 7, id 'LongQA-4k-0003', field 'subtype': ...
"""
from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..constants import BON_SUBTYPES, BUCKETS, OFFICIAL_ORDER_SEED, REPO_ROOT, SHORT_BUCKET, TASKS, TASKTYPES
from .. import io
from ..io import InputError
from ..runtime import hub_offline

COMMON_FIELDS = ("id", "prompt_template", "question", "source", "task", "subtask", "tasktype", "subtype",
                 "ctx_length_for_length", "ctx_length_for_words", "length", "words_count")
"""Fields every official record carries."""
PAIRWISE_FIELDS = ("chosen", "rejected", "chosen_model", "rejected_model")
BON_FIELDS = ("candidates", "candidates_model", "candidates_score")
META_KEY = "meta"
"""The one extra key this course adds. Everything of ours lives under it."""

CONTEXT_OPEN, CONTEXT_CLOSE = "<context>", "</context>"
"""Markers around the long context in the prompts this course generates (``meta.context_span`` is exact)."""

OFFICIAL_FILES = tuple(f"{t}.jsonl" for t in TASKS)
OFFICIAL_HUB_ID = "LCM-Lab/LongRewardBench"


class SchemaError(InputError):
    """A record breaks the schema. The message names file, line, record id and field."""


def _fields_for(tasktype: str) -> tuple[str, ...]:
    return COMMON_FIELDS + (PAIRWISE_FIELDS if tasktype == "PairWise" else BON_FIELDS)


def validate_record(rec: Any, *, file: str | os.PathLike | None = None, line: int | None = None,
                    allow_unknown: bool = False, allow_missing: Sequence[str] = ()) -> dict:
    """Check one record; return it unchanged, or raise :class:`SchemaError` naming file, line, id and field.

    What is accepted is listed in ``docs/contracts.md`` (section 1), with the values of
    ``constants`` (tasks, buckets, task types, Best-of-N sizes). ``allow_unknown`` accepts fields
    outside the official set (the official loader uses it: a future release may add columns).
    ``allow_missing`` lists official length fields that may be absent (same reason). Our own files
    are validated strictly.
    """
    rid = rec.get("id") if isinstance(rec, dict) else None

    def err(field, msg):
        return SchemaError(msg, file=file, line=line, rec_id=rid, field=field)

    if not isinstance(rec, dict):
        raise err(None, f"a record is a JSON object, got {type(rec).__name__}")
    _check_fields(rec, err, allow_unknown, allow_missing)
    _check_common(rec, err)
    (_check_pairwise if rec["tasktype"] == "PairWise" else _check_bon)(rec, err)
    _check_sizes(rec, err)
    return rec


def _check_fields(rec: dict, err, allow_unknown: bool, allow_missing: Sequence[str]) -> None:
    tt = rec.get("tasktype")
    if tt not in TASKTYPES:
        raise err("tasktype", f"must be one of {TASKTYPES}, got {tt!r}")
    need = _fields_for(tt)
    for f in need:
        if f not in rec and f not in allow_missing:
            raise err(f, "missing")
    extra = [k for k in rec if k not in need and k != META_KEY and k not in (PAIRWISE_FIELDS + BON_FIELDS)]
    if extra and not allow_unknown:
        raise err(extra[0], f"unknown field (allowed: the official fields and {META_KEY!r}); all unknown: {extra}")
    wrong_kind = [k for k in (BON_FIELDS if tt == "PairWise" else PAIRWISE_FIELDS) if k in rec]
    if wrong_kind and not allow_unknown:
        raise err(wrong_kind[0], f"a {tt} record must not carry {wrong_kind}")


def _check_common(rec: dict, err) -> None:
    rid = rec["id"]
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or rid == "":
        raise err("id", f"must be a non-empty string or an integer, got {rid!r}")
    if rec["task"] not in TASKS:
        raise err("task", f"must be one of {TASKS}, got {rec['task']!r}")
    for f in ("question", "source", "subtask"):
        if f in rec and not isinstance(rec[f], str):
            raise err(f, f"must be a string, got {type(rec[f]).__name__}")
    pt = rec["prompt_template"]
    if not isinstance(pt, list) or not pt:
        raise err("prompt_template", "must be a non-empty list of {role, content} messages")
    for i, m in enumerate(pt):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or not isinstance(m.get("content"), str) \
                or m.get("role") not in ("system", "user", "assistant"):
            raise err("prompt_template", f"message {i} must be {{role: system|user|assistant, content: str}}, got {m!r:.120}")
    if not any(m["role"] == "user" for m in pt):
        raise err("prompt_template", "has no user message")
    b = rec["ctx_length_for_length"]
    if b not in BUCKETS and b != SHORT_BUCKET:
        raise err("ctx_length_for_length", f"must be one of {BUCKETS} or {SHORT_BUCKET!r}, got {b!r}")


def _check_pairwise(rec: dict, err) -> None:
    st = rec["subtype"]
    if not isinstance(st, str) or not st:
        raise err("subtype", f"PairWise subtype is 'same' (intra-model) or another non-empty string, got {st!r}")
    for f in ("chosen", "rejected"):
        if not isinstance(rec[f], str) or not rec[f].strip():
            raise err(f, "must be a non-empty string")
    if rec["chosen"] == rec["rejected"]:
        raise err("rejected", "is identical to chosen")
    for f in ("chosen_model", "rejected_model"):
        if not isinstance(rec[f], str):
            raise err(f, "must be a string")


def _check_bon(rec: dict, err) -> None:
    st = rec["subtype"]
    if str(st) not in BON_SUBTYPES:
        raise err("subtype", f"BestOfN subtype must be one of {BON_SUBTYPES}, got {st!r}")
    c, cm, cs = rec["candidates"], rec["candidates_model"], rec["candidates_score"]
    if not isinstance(c, list) or len(c) != int(st) or not all(isinstance(x, str) and x.strip() for x in c):
        raise err("candidates", f"must be a list of {st} non-empty strings (subtype {st!r}), got "
                                f"{len(c) if isinstance(c, list) else type(c).__name__}")
    if len(set(c)) != len(c):
        raise err("candidates", "contains duplicates")
    if not isinstance(cm, list) or len(cm) != len(c):
        raise err("candidates_model", f"must be a list as long as candidates ({len(c)})")
    if not isinstance(cs, list) or len(cs) != len(c) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in cs):
        raise err("candidates_score", f"must be a list of {len(c)} finite numbers (no NaN or infinity), got {cs!r:.80}")
    if any(cs[i] < cs[i + 1] for i in range(len(cs) - 1)):
        raise err("candidates_score", f"candidates must be stored best first, scores {cs} are not non-increasing")


def _check_sizes(rec: dict, err) -> None:
    for f in ("length", "words_count"):
        if f in rec and (not isinstance(rec[f], int) or isinstance(rec[f], bool) or rec[f] < 0):
            raise err(f, f"must be a non-negative integer, got {rec[f]!r}")
    if META_KEY in rec and not isinstance(rec[META_KEY], dict):
        raise err(META_KEY, f"must be a dict, got {type(rec[META_KEY]).__name__}")
    span = (rec.get(META_KEY) or {}).get("context_span")
    if span is not None:
        user = user_prompt(rec)
        if not (isinstance(span, list) and len(span) == 2 and 0 <= span[0] <= span[1] <= len(user)):
            raise err(META_KEY, f"context_span {span!r} does not fit the user prompt ({len(user)} characters)")


# --- io ------------------------------------------------------------------------------------------

def iter_jsonl(path: str | os.PathLike, *, validate: bool = True, **kw) -> Iterator[tuple[int, dict]]:
    """``(physical line, record)`` for each record of a benchmark file, validated unless told not to."""
    for n, rec in io.iter_jsonl(path):
        if validate:
            validate_record(rec, file=path, line=n, **kw)
        yield n, rec


def read_jsonl(path: str | os.PathLike, *, validate: bool = True, **kw) -> list[dict]:
    """Read (and validate) a benchmark file; duplicate ``(task, id)`` pairs are an error."""
    rows = iter_jsonl(path, validate=validate, **kw)
    if not validate:
        return [r for _, r in rows]
    return io.unique_rows(rows, lambda r: (r["task"], r["id"]), file=path, field="id", what="(task, id)")


def write_jsonl(records: Iterable[dict], path: str | os.PathLike, *, validate: bool = True) -> Path:
    """Validate every record first, then write atomically (one JSON object per line)."""
    records = list(records)
    if validate:
        for i, r in enumerate(records, 1):
            validate_record(r, file=path, line=i)
    return io.write_jsonl(records, path)


def to_dataset(records: Sequence[dict]):
    """A ``datasets.Dataset``; ``meta`` is stored as a JSON string (its keys vary by task)."""
    from datasets import Dataset

    rows = []
    for r in records:
        row = {k: r.get(k) for k in COMMON_FIELDS}
        for k in PAIRWISE_FIELDS + BON_FIELDS:
            row[k] = r.get(k)
        row["candidates_score"] = [float(x) for x in r["candidates_score"]] if r.get("candidates_score") else None
        row["id"] = str(r["id"])
        row["subtype"] = str(r["subtype"])
        row[META_KEY] = json.dumps(r.get(META_KEY) or {}, ensure_ascii=False)
        rows.append(row)
    return Dataset.from_list(rows)


def from_dataset(ds) -> list[dict]:
    """Inverse of :func:`to_dataset` (drops the None-valued fields of the other format)."""
    out = []
    for row in ds:
        r = {k: v for k, v in row.items() if v is not None and k != META_KEY}
        if row.get(META_KEY):
            r[META_KEY] = json.loads(row[META_KEY])
        out.append(r)
    return out


# --- the official release -----------------------------------------------------------------------

def load_official(path_or_hub_id: str | os.PathLike = OFFICIAL_HUB_ID, tasks: Sequence[str] | None = None,
                  *, cache_dir: str | None = None) -> list[dict]:
    """Load the official Long-RewardBench: a local folder of ``{Task}.jsonl`` files, or the hub id.

    Offline it needs a local folder (or a hub copy in the local cache). Records are validated
    leniently (unknown columns allowed) and normalised: ``subtype`` becomes a string and BoN
    candidates are checked to be stored best first.
    """
    tasks = list(tasks or TASKS)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task(s) {bad}; tasks are {TASKS}")
    p = Path(path_or_hub_id)
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).is_dir():
        p = REPO_ROOT / p  # a repo-relative folder, from a notebook running elsewhere
    if p.is_dir():
        folder = p
    else:
        if os.sep in str(path_or_hub_id) and not p.exists():
            raise FileNotFoundError(f"official benchmark folder {p} does not exist")
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(str(path_or_hub_id), repo_type="dataset", cache_dir=cache_dir,
                                            allow_patterns=[f"{t}.jsonl" for t in tasks],
                                            local_files_only=hub_offline()))
        except Exception as e:  # noqa: BLE001 - re-raised with the reason and the offline route
            raise RuntimeError(f"could not fetch {path_or_hub_id!r} from the hub ({type(e).__name__}: {e}). "
                               "Offline, download the folder once elsewhere and pass its path.") from None
    out = []
    for t in tasks:
        f = folder / f"{t}.jsonl"
        if not f.exists():
            raise FileNotFoundError(f"{folder} has no {t}.jsonl (expected files: {', '.join(OFFICIAL_FILES)})")
        for n, rec in iter_jsonl(f, validate=False):
            rec = dict(rec)
            rec["subtype"] = str(rec.get("subtype")) if rec.get("tasktype") == "BestOfN" else rec.get("subtype")
            validate_record(rec, file=f, line=n, allow_unknown=True,
                            allow_missing=("ctx_length_for_words", "length", "words_count", "subtask", "source"))
            if rec["task"] != t:
                raise SchemaError(f"record of task {rec['task']!r} in {t}.jsonl", file=f, line=n,
                                  rec_id=rec["id"], field="task")
            out.append(rec)
    return out


# --- accessors ------------------------------------------------------------------------------------

def answers(rec: dict) -> list[str]:
    """The responses, best first: ``[chosen, rejected]`` or the BestOfN candidates."""
    return [rec["chosen"], rec["rejected"]] if rec["tasktype"] == "PairWise" else list(rec["candidates"])


def answer_models(rec: dict) -> list[str]:
    return [rec["chosen_model"], rec["rejected_model"]] if rec["tasktype"] == "PairWise" \
        else list(rec["candidates_model"])


def answer_scores(rec: dict) -> list[float] | None:
    """Metric scores of :func:`answers` (BoN: ``candidates_score``; PairWise: ours, from ``meta``)."""
    if rec["tasktype"] == "BestOfN":
        return [float(x) for x in rec["candidates_score"]]
    s = (rec.get(META_KEY) or {}).get("scores")
    return [float(x) for x in s] if s else None


def user_prompt(rec: dict) -> str:
    """The content of the last user message of ``prompt_template`` (where the long context lives)."""
    users = [m["content"] for m in rec["prompt_template"] if m["role"] == "user"]
    return users[-1]


def display_orders(rec: dict, n: int | None = None, order_seed: int = OFFICIAL_ORDER_SEED,
                   passes: int = 2) -> list[list[int]]:
    """The display orders of an item's answers. Pass 0 is a shuffle seeded by ``(order_seed, task,
    id)``, so ``--limit`` and ``--tasks`` never change an item's order; pass 1 is pass 0 reversed.
    ``order[j]`` is the true rank of the answer shown in slot ``j``."""
    n = len(answers(rec)) if n is None else n
    rng = random.Random(f"{order_seed}|{rec['task']}|{rec['id']}")
    o = list(range(n))
    rng.shuffle(o)
    return [o, o[::-1]][:passes]


def context_parts(rec: dict) -> tuple[str, str, str]:
    """Split the user prompt into ``(before, context, after)`` with ``before + context + after`` equal to it.

    Our records carry the exact ``meta.context_span``. Official records do not: there the
    context is taken between our markers if present, else everything before the question's last
    occurrence (``before`` empty), else the whole prompt minus nothing (``after`` empty).
    """
    text = user_prompt(rec)
    span = (rec.get(META_KEY) or {}).get("context_span")
    if span:
        s, e = span
        return text[:s], text[s:e], text[e:]
    i, j = text.find(CONTEXT_OPEN), text.rfind(CONTEXT_CLOSE)
    if i >= 0 and j > i:
        s = i + len(CONTEXT_OPEN)
        return text[:s], text[s:j], text[j:]
    q = (rec.get("question") or "").strip()
    k = text.rfind(q) if q else -1
    if k > 0:
        return "", text[:k], text[k:]
    return "", text, ""


def with_context(rec: dict, new_context: str) -> dict:
    """A copy of ``rec`` whose user prompt has its context replaced (for context ablations)."""
    before, _, after = context_parts(rec)
    new = json.loads(json.dumps(rec))
    msgs = new["prompt_template"]
    k = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    msgs[k]["content"] = before + new_context + after
    if (new.get(META_KEY) or {}).get("context_span"):
        new[META_KEY]["context_span"] = [len(before), len(before) + len(new_context)]
        new[META_KEY].pop("evidence_spans", None)
    return new


# --- RewardBench-format short preference data ------------------------------------------------------

REWARDBENCH_SOURCE = "reward-bench"
"""``source`` prefix of records converted by :func:`from_rewardbench`: ``reward-bench/<section>/<subset>``."""

REWARDBENCH_SECTIONS = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
"""RewardBench (allenai/reward-bench, split ``filtered``): section -> subsets. Other subsets go to ``Other``."""

REWARDBENCH_TASK = {"Chat": "LongQA", "Chat Hard": "LongQA", "Safety": "Safety", "Other": "LongQA"}
"""Which of the seven task names a converted record carries. The schema needs one of them; it is only a
placeholder (``LongQA`` = general question answering). The RewardBench section and subset are kept
in ``source`` and ``subtask``, which the judge copies into its predictions. Reasoning is split:
``math-prm`` -> Math, ``hep-*`` -> Code."""


def rewardbench_section(subset: str) -> str:
    for sec, subs in REWARDBENCH_SECTIONS.items():
        if subset in subs:
            return sec
    return "Other"


def from_rewardbench(rows: Iterable[dict], *, where: str = "RewardBench rows") -> list[dict]:
    """Convert RewardBench-format rows (``prompt``, ``chosen``, ``rejected``, ``subset``; optional
    ``id``, ``chosen_model``, ``rejected_model``) into validated PairWise records of the short bucket.

    * ``prompt`` is a string (or a list of ``{role, content}`` messages); it becomes the one user turn
      of ``prompt_template`` and the ``question``.
    * ``chosen``/``rejected`` are strings; a one-element list (RewardBench 2 style) is accepted. A
      list with several rejected answers has no full ranking, so it is an error, not a guess.
    * ``source`` is ``reward-bench/<section>/<subset>``, ``subtask`` the subset, ``task`` from
      :data:`REWARDBENCH_TASK` (a placeholder); ``subtype`` is ``same`` when both answers come from one
      model, else ``<chosen_model> vs <rejected_model>``.
    * ``ctx_length_for_length`` is ``short``; ``length`` and ``words_count`` are whitespace word counts
      of the prompt (no tokenizer is assumed; ``meta.length_unit`` says so).

    A bad row raises :class:`SchemaError` naming ``where``, the row number (1-based), its id and the
    field. Ids must be unique; a row without ``id`` gets ``rb-<row number>``.
    """
    out: list[dict] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, 1):
        rid = row.get("id") if isinstance(row, dict) else None

        def err(field, msg, _i=i, _rid=rid):
            return SchemaError(msg, file=where, line=_i, rec_id=_rid, field=field)

        if not isinstance(row, dict):
            raise err(None, f"a row is a mapping, got {type(row).__name__}")
        for f in ("prompt", "chosen", "rejected", "subset"):
            if f not in row:
                raise err(f, "missing")
        prompt = row["prompt"]
        if isinstance(prompt, list):
            msgs = [dict(m) for m in prompt]
            if not msgs or not all(isinstance(m, dict) and set(m) == {"role", "content"} for m in msgs):
                raise err("prompt", "a message list must hold {role, content} dicts")
        elif isinstance(prompt, str) and prompt.strip():
            msgs = [{"role": "user", "content": prompt}]
        else:
            raise err("prompt", f"must be a non-empty string or a message list, got {prompt!r:.80}")
        ans = {}
        for f in ("chosen", "rejected"):
            v = row[f]
            if isinstance(v, list):
                if len(v) != 1:
                    raise err(f, f"holds {len(v)} answers; only one {f} answer per row can be ranked")
                v = v[0]
            if not isinstance(v, str) or not v.strip():
                raise err(f, "must be a non-empty string")
            ans[f] = v
        subset = row["subset"]
        if not isinstance(subset, str) or not subset:
            raise err("subset", f"must be a non-empty string, got {subset!r}")
        section = rewardbench_section(subset)
        task = ("Math" if subset == "math-prm" else "Code") if section == "Reasoning" else REWARDBENCH_TASK[section]
        new_id = f"rb-{rid}" if rid is not None and str(rid) != "" else f"rb-{i}"
        if new_id in seen:
            raise err("id", f"duplicate id (first at row {seen[new_id]})")
        seen[new_id] = i
        cm, rm = str(row.get("chosen_model") or "unknown"), str(row.get("rejected_model") or "unknown")
        question = msgs[-1]["content"] if msgs[-1]["role"] == "user" else ""
        words = sum(len(m["content"].split()) for m in msgs)
        rec = {"id": new_id, "prompt_template": msgs, "question": question,
               "source": f"{REWARDBENCH_SOURCE}/{section}/{subset}", "task": task, "subtask": subset,
               "tasktype": "PairWise", "subtype": "same" if cm == rm and cm != "unknown" else f"{cm} vs {rm}",
               "chosen": ans["chosen"], "rejected": ans["rejected"], "chosen_model": cm, "rejected_model": rm,
               "ctx_length_for_length": SHORT_BUCKET, "ctx_length_for_words": SHORT_BUCKET,
               "length": words, "words_count": words,
               META_KEY: {"rewardbench": {"id": rid, "subset": subset, "section": section}, "length_unit": "words"}}
        try:
            validate_record(rec, file=where, line=i)
        except SchemaError as e:
            raise err(e.field, str(e).split(": ", 1)[-1]) from None
        out.append(rec)
    return out


def load_rewardbench(path_or_hub_id: str | os.PathLike, split: str = "filtered") -> list[dict]:
    """RewardBench-format rows from a local JSONL file, or from the hub with ``datasets`` (online only),
    converted by :func:`from_rewardbench`. Offline, a hub id is an error that says so (no 50 s hang)."""
    p = Path(path_or_hub_id)
    if p.is_file():
        return from_rewardbench(io.read_jsonl(p), where=str(p))
    if hub_offline():
        raise RuntimeError(f"{path_or_hub_id!r} is not a local file and HF_HUB_OFFLINE is set: the hub dataset "
                           "cannot be loaded offline. Pass a local JSONL file in RewardBench format instead.")
    import datasets

    ds = datasets.load_dataset(str(path_or_hub_id), split=split)
    return from_rewardbench(ds, where=f"{path_or_hub_id}[{split}]")
