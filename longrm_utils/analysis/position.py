"""Position bias: does the verdict follow the slot an answer is shown in, rather than the answer?

The first-slot rate and the bias rate are the ones in a judge folder's ``metrics.json`` (computed
by :func:`longrm_utils.judge.score.group_metrics`, so the two always agree); this module adds
their intervals and the position-preference matrix.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..contracts import group_items, is_pairwise, winner_slot
from ..judge.score import group_metrics
from ..stats import BOOT_SEED, N_BOOT, bootstrap_ci


def position_bias(preds: Sequence[dict], n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """First-slot rate and bias rate (as in ``metrics.json``) with 95% bootstrap intervals.

    ``first_slot_rate``: share of parsed pairwise lines that pick slot A. ``bias_rate``: among
    pairwise items parsed in both passes, the share where the same slot letter won both times.
    """
    items = list(group_items([p for p in preds if is_pairwise(p)]).values())
    g = group_metrics(items, n_boot=0)
    per_item = [float(ps[0]["ranking"][0] == ps[1]["ranking"][0]) for ps in items
                if 0 in ps and 1 in ps and ps[0].get("ranking") is not None and ps[1].get("ranking") is not None]
    firsts = [float(p["ranking"][0] == 0) for ps in items for p in ps.values() if p.get("ranking") is not None]
    return {"first_slot_rate": g["first_slot_rate"],
            "first_slot_ci95": bootstrap_ci(firsts, n_boot, seed) if n_boot else None,
            "n_parsed_lines": len(firsts), "bias_rate": g["bias_rate"],
            "bias_ci95": bootstrap_ci(per_item, n_boot, seed) if n_boot else None,
            "n_pairs_parsed_both": g["n_bias_pairs"]}


def position_matrix(preds: Sequence[dict], n: int = 2) -> list[list[int]]:
    """Counts ``m[r][c]``: the best answer was shown in slot ``r`` and the judge picked slot ``c``.

    An ideal judge fills the diagonal; a judge that always picks A fills column 0 whatever the row.
    """
    m = [[0] * n for _ in range(n)]
    for p in preds:
        if len(p["order"]) != n or p.get("ranking") is None:
            continue
        m[p["order"].index(0)][winner_slot(p)] += 1
    return m
