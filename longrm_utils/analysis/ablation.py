"""Context neglect, the pure parts: ablate a benchmark's contexts, pick the items and the judges, and
compare the verdicts with and without the context.

Judging the ablated items is a notebook step (:func:`longrm_utils.steps.ablation.run_ablation`); the
analysis itself never loads a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..bench.schema import context_parts, with_context
from ..contracts import group_items, item_key, judge_args, judge_bench_file, top_answer
from ..models import get_spec
from ..stats import wilson_ci
from .inputs import bucket_key

ABLATION_MODES = ("remove", "distractor")
"""``remove``: the context is deleted; ``distractor``: it is replaced by other records' contexts."""


def ablate_records(records: Sequence[dict], mode: str = "remove", seed: int = 0) -> list[dict]:
    """Copies of ``records`` with the context removed (``remove``) or replaced by ``distractor`` text of
    the same length in characters, cut at a word boundary, taken from the OTHER records' contexts
    (rotated with ``seed``). Everything else (question, instructions, answers) is unchanged."""
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be 'remove' or 'distractor', got {mode!r}")
    ctxs = [context_parts(r)[1] for r in records]
    for r, c in zip(records, ctxs):
        if not c.strip():
            raise ValueError(f"record (task={r['task']!r}, id={r['id']!r}): field 'prompt_template' has no context "
                             "to ablate (context_parts found an empty context)")
    if mode == "remove":
        return [with_context(r, "") for r in records]
    if len(records) < 2:
        raise ValueError("mode='distractor' needs at least 2 records: the distractors come from other records")
    out = []
    for i, (r, c) in enumerate(zip(records, ctxs)):
        donors = [ctxs[(i + 1 + seed + k) % len(ctxs)] for k in range(len(ctxs) - 1)]
        donors = [d for k, d in enumerate(donors) if (i + 1 + seed + k) % len(ctxs) != i]
        text, k = "", 0
        while len(text) < len(c):
            text += (" " if text else "") + donors[k % len(donors)].strip()
            k += 1
        cut = text[:len(c)]
        sp = cut.rfind(" ")
        cut = cut[:sp] if sp > len(c) // 2 else cut
        out.append(with_context(r, cut.ljust(len(c))))
    return out


def select_subset(preds: Sequence[dict], k: int) -> list[tuple[str, str]]:
    """``k`` item keys spread evenly over the (bucket, task, id)-sorted items of ``preds``."""
    bucket = {item_key(p): p.get("ctx_length_for_length") for p in preds}
    keys = sorted(group_items(preds), key=lambda key: (bucket_key(bucket[key]), key))
    if k >= len(keys):
        return keys
    return [keys[int(i * len(keys) / k)] for i in range(k)]


def compare_verdicts(original: Sequence[dict], ablated: Sequence[dict]) -> dict[str, Any]:
    """How often the judge's verdict survives the ablation, per (task, id, pass) line.

    ``unchanged_rate``: among lines parsed both times, the share whose first-placed answer is the
    same answer (by true rank, so display order does not matter). ``ranking_unchanged_rate``: the
    whole predicted ranking of answers is the same. Lines missing from either side are counted.
    """
    def key(p):
        return (*item_key(p), int(p["pass"]))

    orig = {key(p): p for p in original}
    same_top = same_rank = both = parse_changed = 0
    acc_o, acc_a = [], []
    missing = 0
    for p in ablated:
        o = orig.get(key(p))
        if o is None:
            missing += 1
            continue
        acc_o.append(float(o["score"]))
        acc_a.append(float(p["score"]))
        if (o.get("ranking") is None) != (p.get("ranking") is None):
            parse_changed += 1
        if o.get("ranking") is None or p.get("ranking") is None:
            continue
        both += 1
        same_top += top_answer(o) == top_answer(p)
        ro = [o["ranking"][o["order"].index(a)] for a in range(len(o["order"]))]
        ra = [p["ranking"][p["order"].index(a)] for a in range(len(p["order"]))]
        same_rank += ro == ra
    return {"n_lines": len(acc_a), "n_parsed_both": both, "unchanged_rate": same_top / both if both else None,
            "unchanged_ci95": wilson_ci(same_top, both), "ranking_unchanged_rate": same_rank / both if both else None,
            "parse_status_changed": parse_changed, "acc_with_context": sum(acc_o) / len(acc_o) if acc_o else None,
            "acc_ablated": sum(acc_a) / len(acc_a) if acc_a else None, "missing_in_original": missing}


def pick_ablation_judges(found: dict[str, Path], spec: str | Sequence[str] = "auto") -> list[str]:
    """Judge ids to ablate. ``"auto"``: for the generative and the scalar kind, the saved judge with the
    largest model (registry size), plus the context-overlap heuristic as a control that does read
    the context. A list is taken as given (each id must be saved)."""
    if spec != "auto":
        missing = [j for j in spec if j not in found]
        if missing:
            raise ValueError(f"ablation judge(s) {missing} are not saved in this run; saved: {sorted(found)}")
        return list(spec)
    cfgs = {j: judge_args(f) for j, f in found.items()}
    out = []
    for kind in ("generative", "scalar"):
        cands = [j for j, c in cfgs.items() if c.get("kind") == kind and judge_bench_file(found[j]) is not None]

        def size(j):
            try:
                return get_spec(cfgs[j]["judge"]).params_b
            except Exception:  # noqa: BLE001 - a folder without registry entry
                return 0.0

        if cands:
            out.append(max(cands, key=lambda j: (size(j), -list(found).index(j))))
    overlap = [j for j, c in cfgs.items() if c.get("kind") == "heuristic" and c.get("judge") == "overlap"]
    return out + overlap[:1]
