"""Figures across judges. matplotlib is imported inside each function (CLI start-up time)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def plot_group_bars(frame, path: str | os.PathLike, *, title: str = "", ylabel: str = "official score (%)",
                    group_order: Sequence[str] | None = None, chance: float | None = None) -> Path:
    """Grouped bars (groups on x, one bar per judge) with asymmetric bootstrap 95% error bars; saved as PNG.

    ``frame`` has the columns of :func:`longrm_utils.evaluate.tables.group_frame`:
    ``group``, ``judge``, ``value``, ``lo``, ``hi`` (percent).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(group_order or dict.fromkeys(frame["group"]))
    groups = [g for g in groups if g in set(frame["group"])]
    judges = list(dict.fromkeys(frame["judge"]))
    w = 0.8 / max(1, len(judges))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 2), 4.2))
    for k, jid in enumerate(judges):
        sub = frame[frame["judge"] == jid].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + (k - (len(judges) - 1) / 2) * w
        err = np.vstack([(sub["value"] - sub["lo"]).clip(lower=0).fillna(0),
                         (sub["hi"] - sub["value"]).clip(lower=0).fillna(0)])
        bars = ax.bar(x, sub["value"], w, yerr=err, capsize=2, label=jid)
        for xi, v in zip(x, sub["value"]):  # a zero bar is invisible, a missing one too: say which
            if v != v:
                ax.text(xi, 1, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="gray")
            elif v == 0:
                ax.text(xi, 1, "0", ha="center", va="bottom", fontsize=7, color=bars.patches[0].get_facecolor())
    if chance is not None:
        ax.axhline(chance, ls=":", c="gray", lw=1)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    # legend below the axes, so long judge ids never squeeze the plot or clip the title
    ax.legend(fontsize=7, ncol=min(3, max(1, len(judges))), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_bucket_accuracy(acc, half, path: str | os.PathLike, *, chance: float | None = 50.0,
                         title: str = "Accuracy by length bucket") -> Path:
    """Bars of judges' official score per length bucket (``tables.bucket_table``) with 95% half-widths."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    acc.T.plot.bar(yerr=half.T, capsize=2, rot=0, ax=ax)
    if chance is not None:
        ax.axhline(chance, ls=":", c="gray", lw=1, label="chance (pairs)")
    ax.set_ylabel("official score (%)")
    ax.set_xlabel("length bucket")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return _save(fig, path)


def plot_stage_buckets(frame, path: str | os.PathLike, *, chance: float | None = 50.0,
                       title: str = "accuracy by length bucket") -> Path:
    """Bars of official score (%) per length bucket, grouped by judge and stage: ``frame`` has one row
    per judge and stage and one column per bucket (``steps.stage1.bucket_frame``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    frame.plot.bar(rot=0, ax=ax)
    if chance is not None:
        ax.axhline(chance, ls=":", c="gray")
    ax.set_ylabel("official score (%)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_ours_vs_paper(ours, reference, path: str | os.PathLike) -> Path:
    """Two panels of AVG. (%): this run's judges, and the paper's Table 1 rows (``tables.reference_table``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8),
                             gridspec_kw={"width_ratios": [len(ours) + 1, len(reference) + 1]})
    axes[0].barh(ours.index, ours.values, color="tab:blue")
    axes[0].set_title("this run: AVG. (%)")
    labels = reference["model"] + " (" + reference["stage"] + ")"
    colours = ["tab:green" if k == "scalar" else "tab:orange" for k in reference["kind"]]
    axes[1].barh(labels, reference["AVG."], color=colours)
    axes[1].set_title("paper Table 1: AVG. (%) (green: scalar, orange: generative)")
    for a in axes:
        a.set_xlim(0, 100)
        a.tick_params(axis="y", labelsize=7)
        a.invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


STAGE_BAR_KEYS = (("acc_consistent", "consistent acc"), ("bias_rate", "position bias"),
                  ("acc_official", "official acc"))
"""The ``overall`` metrics :func:`plot_stage_bars` shows, with their axis labels."""


def plot_stage_bars(rows: dict[str, dict], path: str | os.PathLike) -> Path:
    """Bars of consistent accuracy, position bias and official accuracy (%, missing = 0) per training
    stage; ``rows`` maps a stage label to a judge's ``metrics.json`` dict (notebook 05)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    for i, (label, met) in enumerate(rows.items()):
        o = met["overall"]
        vals = [100 * (o[k] or 0) for k, _ in STAGE_BAR_KEYS]
        ax.bar([j + 0.25 * i for j in range(len(STAGE_BAR_KEYS))], vals, width=0.25, label=label)
    ax.set_xticks([j + 0.25 for j in range(len(STAGE_BAR_KEYS))], [n for _, n in STAGE_BAR_KEYS])
    ax.set_ylabel("%")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_reliability(curves: dict[str, list[dict]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Reliability diagram: per judge, the observed frequency of "slot A holds the chosen answer" in
    each probability bin (rows of :func:`longrm_utils.stats.reliability`), with Wilson 95% error bars
    and marker area growing with the bin's line count; the diagonal is perfect calibration."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    ax.plot([0, 1], [0, 1], ls=":", c="gray", lw=1, label="perfect calibration")
    total = max(1, max((r["n"] for rows in curves.values() for r in rows), default=1))
    for jid, rows in curves.items():
        if not rows:
            continue
        x = [r["mean_prob"] for r in rows]
        y = [r["frequency"] for r in rows]
        err = [[r["frequency"] - r["ci95"][0] for r in rows], [r["ci95"][1] - r["frequency"] for r in rows]]
        line = ax.errorbar(x, y, yerr=err, fmt="-", lw=1, capsize=2, label=jid)
        ax.scatter(x, y, s=[15 + 150 * r["n"] / total for r in rows], color=line[0].get_color(), zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("judge's probability that slot A is better (bin mean)")
    ax.set_ylabel("share of lines where slot A holds the chosen answer")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return _save(fig, path)
