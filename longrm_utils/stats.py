"""Intervals used everywhere: Wilson for a proportion, bootstrap for a mean and for a difference.

Every interval in ``metrics.json``, the analysis report and ``lessons.json`` comes from here, with
the same number of resamples and the same seed, so the same data give the same interval anywhere.
"""
from __future__ import annotations

import math
from typing import Sequence

N_BOOT = 1000
BOOT_SEED = 0


def wilson_ci(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of ``k`` successes in ``n``; None when n is 0."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                 alpha: float = 0.05) -> list[float] | None:
    """Percentile interval of the mean, resampling the given per-item values with replacement."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 6), round(float(hi), 6)]


def bootstrap_diff_ci(before: Sequence[float], after: Sequence[float], *, paired: bool,
                      n_boot: int = N_BOOT, seed: int = BOOT_SEED, alpha: float = 0.05) -> list[float] | None:
    """Percentile interval of mean(after) - mean(before).

    ``paired``: the two lists hold the same items in the same order, and items are resampled
    together; otherwise each side is resampled on its own (two buckets, two item sets).
    """
    import numpy as np

    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if b.size == 0 or a.size == 0:
        return None
    rng = np.random.default_rng(seed)
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired difference needs equal item counts, got {b.size} and {a.size}")
        idx = rng.integers(0, a.size, size=(n_boot, a.size))
        diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    else:
        diffs = (a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
                 - b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1))
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 6), round(float(hi), 6)]


# --- ranking quality and calibration (design of metrics.json: docs/contracts.md) ------------------

ECE_BINS = 10


def _line_arrays(scores, labels, items):
    import numpy as np

    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} and {y.size}")
    g = np.unique(np.asarray(items), return_inverse=True)[1] if items is not None else np.arange(s.size)
    return s, y, g


def _resample_weights(groups, n_boot: int, seed: int):
    """Line weights ``[n_boot, n_lines]``: how often each line's item is drawn when items are resampled."""
    import numpy as np

    k = int(groups.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    counts = np.stack([np.bincount(d, minlength=k) for d in draws])
    return counts[:, groups].astype(float)


def _interval(values, alpha: float = 0.05) -> list[float] | None:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return [round(float(lo), 6), round(float(hi), 6)]


def auc(scores: Sequence[float], labels: Sequence[int], *, items: Sequence | None = None, n_boot: int = 0,
        seed: int = BOOT_SEED) -> tuple[float | None, list[float] | None]:
    """ROC AUC of ``scores`` against binary ``labels`` (ties count one half), and, with ``n_boot``, the
    percentile interval from resampling ``items`` (the item each line belongs to; default: each line
    its own item). (None, None) when a class is empty.

    With ``items``, a positive line is compared only with negative lines of *other* items: the two
    lines of one item (its two display orders, or its chosen and rejected answers) are not
    independent, and counting them would make the resampled AUC weigh them by the square of the
    item's draws, so that the interval could miss its own estimate."""
    import numpy as np

    s, y, g = _line_arrays(scores, labels, items)
    pos, neg = y == 1, y == 0
    valid = (g[pos][:, None] != g[neg][None, :]).astype(float)
    if not pos.any() or not neg.any() or not valid.any():
        return None, None
    cmp = ((s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])) * valid
    value = float(cmp.sum() / valid.sum())
    if not n_boot:
        return value, None
    w = _resample_weights(g, n_boot, seed)
    wp, wn = w[:, pos], w[:, neg]
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = ((wp @ cmp) * wn).sum(1) / ((wp @ valid) * wn).sum(1)
    return value, _interval(boots)


def ece(probs: Sequence[float], labels: Sequence[int], *, items: Sequence | None = None, n_boot: int = 0,
        seed: int = BOOT_SEED, bins: int = ECE_BINS) -> tuple[float | None, list[float] | None]:
    """Expected calibration error of the probabilities ``probs`` for the event ``labels == 1``: in
    ``bins`` equal-width bins, |mean label - mean probability|, weighted by the bin's share of lines.
    The interval resamples ``items`` as :func:`auc` does. (None, None) without lines."""
    import numpy as np

    p, y, g = _line_arrays(probs, labels, items)
    if p.size == 0:
        return None, None
    onehot = np.eye(bins)[np.clip((p * bins).astype(int), 0, bins - 1)]
    value = float(np.abs((y - p) @ onehot).sum() / p.size)
    if not n_boot:
        return value, None
    w = _resample_weights(g, n_boot, seed)
    boots = np.abs((w * (y - p)) @ onehot).sum(1) / w.sum(1)
    return value, _interval(boots)


def reliability(probs: Sequence[float], labels: Sequence[int], bins: int = ECE_BINS) -> list[dict]:
    """Rows of a reliability diagram: per non-empty bin, its range, line count, mean probability and
    observed frequency with a Wilson interval."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = [(p, y) for p, y in zip(probs, labels) if min(int(p * bins), bins - 1) == b]
        if sel:
            k = sum(int(y) for _, y in sel)
            rows.append({"lo": lo, "hi": hi, "n": len(sel), "mean_prob": sum(p for p, _ in sel) / len(sel),
                         "frequency": k / len(sel), "ci95": wilson_ci(k, len(sel))})
    return rows
