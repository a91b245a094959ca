"""Length: how accuracy declines as the context grows, and whether the judge favours long responses.

* :func:`length_curve`: two-order accuracy per length bucket with bootstrap intervals, and the
  least-squares slope in accuracy points per doubling of the context;
* :func:`length_bias`: how often the longest response is picked when it is not the best one.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..constants import BUCKET_TOKENS
from ..contracts import group_items, winner_slot
from ..stats import BOOT_SEED, N_BOOT, bootstrap_ci, wilson_ci
from .inputs import bucket_key, slot_texts

def item_accuracy(passes: dict[int, dict]) -> float:
    """Two-order accuracy of one item: the mean official score over its passes."""
    return sum(float(p["score"]) for p in passes.values()) / len(passes)


def length_curve(preds: Sequence[dict], n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """Accuracy per bucket (two-order, with bootstrap 95% intervals over items) and the slope.

    The slope is the least-squares fit of per-item accuracy on log2(bucket tokens), in accuracy
    points (0-100) per doubling of the context, with a bootstrap interval resampling items.
    Buckets without a token size (unknown labels) are reported but left out of the fit.
    """
    import numpy as np

    items = list(group_items(preds).values())
    groups: dict[str, list[float]] = {}
    for ps in items:
        b = str(next(iter(ps.values())).get("ctx_length_for_length"))
        groups.setdefault(b, []).append(item_accuracy(ps))
    buckets = {b: {"n_items": len(v), "acc": sum(v) / len(v), "ci95": bootstrap_ci(v, n_boot, seed) if n_boot else None}
               for b, v in sorted(groups.items(), key=lambda kv: bucket_key(kv[0]))}
    xs = [(math.log2(BUCKET_TOKENS[b]), a) for b, v in groups.items() if b in BUCKET_TOKENS for a in v]
    out: dict[str, Any] = {"by_bucket": buckets, "slope_per_doubling": None, "slope_ci95": None,
                           "n_fit_items": len(xs)}
    if len({x for x, _ in xs}) >= 2:
        x = np.array([a for a, _ in xs])
        y = 100 * np.array([b for _, b in xs])

        def fit(ix):
            xx, yy = x[ix], y[ix]
            if np.ptp(xx) == 0:
                return math.nan
            return float(np.polyfit(xx, yy, 1)[0])

        out["slope_per_doubling"] = round(fit(np.arange(len(x))), 4)
        if n_boot:
            rng = np.random.default_rng(seed)
            s = np.array([fit(rng.integers(0, len(x), len(x))) for _ in range(n_boot)])
            s = s[~np.isnan(s)]
            out["slope_ci95"] = [round(float(q), 4) for q in np.quantile(s, [0.025, 0.975])] if s.size else None
    return out


def length_bias(preds: Sequence[dict], bench: dict[tuple[str, str], dict]) -> dict[str, Any]:
    """How often the longest response (in characters) is picked first, split by whether it is the best.

    Counted over parsed lines whose longest response is unique. ``picked_when_worse`` is the share
    of lines whose longest response is NOT the best in which the judge still put it first; an
    unbiased judge that can't tell the answers apart sits at ``chance`` (the mean of 1/N). Lines
    whose item is missing from ``bench`` are counted in ``missing_records``, never dropped silently.
    """
    worse = [0, 0]
    better = [0, 0]
    ties = missing = unparsed = 0
    chance = []
    for p in preds:
        if p.get("ranking") is None:
            unparsed += 1
            continue
        texts = slot_texts(p, bench)
        if texts is None:
            missing += 1
            continue
        lens = [len(t) for t in texts]
        L = max(range(len(lens)), key=lambda j: lens[j])
        if lens.count(lens[L]) > 1:
            ties += 1
            continue
        picked = winner_slot(p) == L
        if p["order"][L] == 0:
            better[0] += picked
            better[1] += 1
        else:
            worse[0] += picked
            worse[1] += 1
            chance.append(1 / len(lens))
    return {"picked_when_worse": worse[0] / worse[1] if worse[1] else None, "n_worse": worse[1],
            "picked_when_worse_ci95": wilson_ci(*worse), "chance": sum(chance) / len(chance) if chance else None,
            "picked_when_better": better[0] / better[1] if better[1] else None, "n_better": better[1],
            "length_ties": ties, "unparsed": unparsed, "missing_records": missing}

