"""One model's progress through training: the 'before' figure re-scored from an earlier judging of
the same items, and a stage-by-stage table (notebooks 04, 05 and 06)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..contracts import item_key, read_predictions
from ..judge.score import score_predictions


def metrics_on(predictions_path: str | os.PathLike, records: Sequence[dict]) -> dict | None:
    """Re-score saved predictions restricted to ``records`` (by task and id); None if some are missing.

    This reuses an earlier notebook's judging of the same items as the 'before' figure.
    """
    p = Path(predictions_path)
    if not p.is_file():
        return None
    want = {item_key(r) for r in records}
    preds = [x for x in read_predictions(p) if item_key(x) in want]
    if {item_key(x) for x in preds} != want:
        return None
    return score_predictions(preds)[1]


def _with_ci(m: dict, key: str) -> str:
    """``m[key]`` in percent with its 95% interval, e.g. ``62.5 [40.0, 85.0]``; ``-`` when undefined."""
    v, ci = m.get(key), m.get(key + "_ci95")
    if v is None:
        return "-"
    return f"{100 * v:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else f"{100 * v:.1f}"


def progress_table(rows: dict[str, dict], group: str = "overall"):
    """A Table-1-like frame from judge ``metrics.json`` dicts, one row per stage (label -> metrics).

    Columns (percent): the official AVG. (pass 0), two-order and consistent accuracy with bootstrap
    95% intervals, the position-bias rate, the first-slot rate and the parse-failure rate, plus n.
    ``group`` picks ``overall`` or a ``by_tasktype`` entry (``PairWise``/``BestOfN``).
    """
    import pandas as pd

    out = []
    for label, met in rows.items():
        m = met["overall"] if group == "overall" else met["by_tasktype"][group]
        pct = lambda k: None if m.get(k) is None else round(100 * m[k], 1)  # noqa: E731
        out.append({"stage": label, "AVG. (official)": (met.get("results") or {}).get("AVG."),
                    "two-order acc [95% CI]": _with_ci(m, "acc_two_order"),
                    "consistent acc [95% CI]": _with_ci(m, "acc_consistent"),
                    "bias rate": pct("bias_rate"), "first-slot rate": pct("first_slot_rate"),
                    "parse failures": pct("parse_failure_rate"), "n items": m.get("n_items")})
    return pd.DataFrame(out).set_index("stage")
