"""Lessons: the course's claims, measured from prediction files and checked against a rule.

A lesson compares a metric *before* and *after* (two judges on the same items, or one judge on two
buckets). Everything in a lesson entry is computed here from the prediction lines, so no number in
``lessons.json`` is typed by hand, and ``holds`` follows from the numbers and the lesson's rule.
The format is documented in ``docs/contracts.md`` (section 6).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..contracts import group_items, is_pairwise, read_predictions, winner_slot
from ..stats import bootstrap_diff_ci

METRICS = ("parse_failure_rate", "two_order_accuracy", "consistent_accuracy", "bias_rate")


@dataclass(frozen=True)
class Rule:
    """When a lesson holds. ``direction`` is the sign the change must have; its 95% interval must
    exclude 0 on that side. The optional bounds apply to the before/after means and the change."""

    direction: str  # "increase" or "decrease"
    min_items: int
    min_change: float = 0.0
    before_min: float | None = None
    before_max: float | None = None
    after_min: float | None = None
    after_max: float | None = None
    after_at_most_before_times: float | None = None  # e.g. 0.5: "at least halves"

    def describe(self) -> str:
        parts = [f"{'rises' if self.direction == 'increase' else 'falls'} by at least {self.min_change:.2f}"
                 " with a 95% interval that excludes 0", f"at least {self.min_items} items on each side"]
        for name, word in (("before_min", "before >="), ("before_max", "before <="), ("after_min", "after >="),
                           ("after_max", "after <=")):
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{word} {v:.2f}")
        if self.after_at_most_before_times is not None:
            parts.append(f"after <= {self.after_at_most_before_times:g} x before")
        return "; ".join(parts)


RULES: dict[str, Rule] = {
    "format_fixed": Rule("decrease", 40, before_min=0.50, after_max=0.05),
    "scalar_rm_learns": Rule("increase", 60, min_change=0.20, after_min=0.85),
    "bias_reduced": Rule("decrease", 60, after_at_most_before_times=0.5),
    "length_decline": Rule("decrease", 30, min_change=0.15, before_min=0.80),
    "long_training_restores": Rule("increase", 30, min_change=0.15),
}
"""The acceptance rule of each lesson the course teaches."""


def _keep(p: dict, flt: dict[str, Any]) -> bool:
    return all(p.get(k) == v for k, v in flt.items())


def per_item(preds: Sequence[dict], metric: str, flt: dict[str, Any] | None = None) -> dict[tuple[str, str], float]:
    """``{(task, id): value}`` of ``metric`` for each item whose lines ``flt`` keeps.

    Items a metric does not apply to are left out: ``consistent_accuracy`` and ``bias_rate`` take
    pairwise items only, and ``bias_rate`` only pairs parsed in both passes.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown lesson metric {metric!r}; have {METRICS}")
    out = {}
    for key, passes in group_items(p for p in preds if _keep(p, flt or {})).items():
        lines = [passes[k] for k in sorted(passes)]
        if metric == "parse_failure_rate":
            out[key] = sum(p["parse_error"] is not None for p in lines) / len(lines)
        elif metric == "two_order_accuracy":
            out[key] = sum(p["score"] for p in lines) / len(lines)
        elif not is_pairwise(lines[0]) or len(lines) < 2:
            continue
        elif metric == "consistent_accuracy":
            out[key] = float(all(p["score"] == 1 for p in lines))
        else:
            slots = [winner_slot(p) for p in lines]
            if None not in slots:
                out[key] = float(len(set(slots)) == 1)
    return out


def measure(before: Sequence[dict], after: Sequence[dict], metric: str, *, before_filter: dict | None = None,
            after_filter: dict | None = None) -> dict[str, Any]:
    """Before and after means, the 95% interval of after − before and the item counts.

    The difference is paired over the items both sides hold (the usual before/after of a training
    stage), and unpaired when they share none (two length buckets).
    """
    b = per_item(before, metric, before_filter)
    a = per_item(after, metric, after_filter)
    keys = sorted(set(a) & set(b))
    paired = bool(keys)  # the same items on both sides (a wider judging of "before" is cut to them)
    bv = [b[k] for k in keys] if paired else list(b.values())
    av = [a[k] for k in keys] if paired else list(a.values())
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"before_value": mean(bv), "after_value": mean(av), "diff_ci95": bootstrap_diff_ci(bv, av, paired=paired),
            "n_items": len(bv) if paired else min(len(bv), len(av)), "n_before": len(bv), "n_after": len(av),
            "paired": paired}


def holds(rule: Rule, m: dict[str, Any]) -> bool:
    """Whether measured numbers ``m`` (from :func:`measure`) satisfy ``rule``."""
    b, a, ci = m["before_value"], m["after_value"], m["diff_ci95"]
    if b is None or a is None or ci is None or min(m["n_before"], m["n_after"]) < rule.min_items:
        return False
    change = a - b if rule.direction == "increase" else b - a
    excludes_zero = ci[0] > 0 if rule.direction == "increase" else ci[1] < 0
    checks = [excludes_zero, change >= rule.min_change,
              rule.before_min is None or b >= rule.before_min, rule.before_max is None or b <= rule.before_max,
              rule.after_min is None or a >= rule.after_min, rule.after_max is None or a <= rule.after_max,
              rule.after_at_most_before_times is None or a <= rule.after_at_most_before_times * b]
    return all(checks)


def lesson(lesson_id: str, *, notebook: str, claim: str, metric: str, root: str | os.PathLike,
           before: str | os.PathLike, after: str | os.PathLike, before_filter: dict | None = None,
           after_filter: dict | None = None, rule: Rule | None = None) -> dict[str, Any]:
    """One ``lessons.json`` entry, measured from two prediction files (paths relative to ``root``)."""
    root = Path(root).resolve()
    rule = rule or RULES[lesson_id]
    files = [(root / p).resolve() for p in (before, after)]  # absolute paths stay as they are
    m = measure(read_predictions(files[0]), read_predictions(files[1]), metric, before_filter=before_filter,
                after_filter=after_filter)
    rel = [str(f.relative_to(root)) for f in files]
    return {"id": lesson_id, "notebook": notebook, "claim": claim, "metric": metric, "rule": rule.describe(),
            "before": {"predictions": rel[0], "filter": before_filter or {}},
            "after": {"predictions": rel[1], "filter": after_filter or {}},
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()},
            "holds": holds(rule, m)}


def remeasure(entry: dict[str, Any], root: str | os.PathLike) -> dict[str, Any]:
    """A ``lessons.json`` entry measured again from the predictions it cites (relative to ``root``,
    the folder holding ``lessons.json``): the fresh measurement, with ``holds`` under its rule. A
    committed or shared run is checked by comparing this with the entry."""
    root = Path(root)
    m = measure(read_predictions(root / entry["before"]["predictions"]),
                read_predictions(root / entry["after"]["predictions"]), entry["metric"],
                before_filter=entry["before"]["filter"], after_filter=entry["after"]["filter"])
    return {**m, "holds": holds(RULES[entry["id"]], m)}
