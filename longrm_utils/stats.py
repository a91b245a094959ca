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
