"""Outcomes: one exclusive label per prediction line, for the stacked plots and the example gallery."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from ..contracts import group_items, is_pairwise, item_key
from .contradiction import prediction_contradiction
from .inputs import bucket_key, task_key

OUTCOMES = ("correct", "partial", "wrong", "position_bound", "contradiction", "format", "run_error")
"""Exclusive outcome of one prediction line, in the order they are checked (last first)."""


def outcomes(preds: Sequence[dict], bench: dict | None = None) -> list[str]:
    """One label per line, checked in this order: ``run_error``; ``format`` (the official parser
    refused it); ``contradiction`` (generative, the detector fires); ``position_bound`` (pairwise,
    parsed in both passes, the same slot letter won both times, so the verdict followed the slot);
    then ``correct`` (score 1), ``partial`` (0 < score < 1), ``wrong``."""
    items = group_items(preds)
    bound = set()
    for key, ps in items.items():
        if 0 in ps and 1 in ps and is_pairwise(ps[0]) and ps[0].get("ranking") is not None \
                and ps[1].get("ranking") is not None and ps[0]["ranking"][0] == ps[1]["ranking"][0]:
            bound.add(key)
    out = []
    for p in preds:
        if p.get("error"):
            out.append("run_error")
        elif p.get("ranking") is None:
            out.append("format")
        elif (c := prediction_contradiction(p, bench)) is not None and c["contradiction"]:
            out.append("contradiction")
        elif item_key(p) in bound:
            out.append("position_bound")
        else:
            s = float(p["score"])
            out.append("correct" if s >= 1 else "partial" if s > 0 else "wrong")
    return out


def outcome_table(preds: Sequence[dict], bench: dict | None = None, by: str = "ctx_length_for_length") -> dict:
    """Shares of each outcome per value of ``by`` (``ctx_length_for_length`` or ``task``) and overall."""
    labs = outcomes(preds, bench)
    groups: dict[str, Counter] = {}
    for p, o in zip(preds, labs):
        groups.setdefault(str(p.get(by)), Counter())[o] += 1
        groups.setdefault("all", Counter())[o] += 1
    key = bucket_key if by == "ctx_length_for_length" else task_key
    order = sorted((g for g in groups if g != "all"), key=key) + ["all"]
    return {g: {"n": sum(groups[g].values()), **{o: groups[g].get(o, 0) / sum(groups[g].values()) for o in OUTCOMES}}
            for g in order}

