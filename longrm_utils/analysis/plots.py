"""The failure report's figures: accuracy against length, outcome stacks per bucket, position matrices.

Each plot reads the report dict that :func:`longrm_utils.analysis.report.analyze` builds, so the
figures always show the numbers in ``failure_report.json``. matplotlib is imported on first use.
"""
from __future__ import annotations

from pathlib import Path

from ..constants import SLOT_LETTERS
from .inputs import bucket_key
from .outcomes import OUTCOMES


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_length(report: dict, path: str | Path) -> Path:
    """Two-order accuracy per bucket for each judge, with 95% intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    buckets = sorted({b for r in report["judges"].values() for b in r["length"]["by_bucket"]}, key=bucket_key)
    xpos = {b: i for i, b in enumerate(buckets)}
    for j, r in report["judges"].items():
        bb = r["length"]["by_bucket"]
        xs = [xpos[b] for b in bb]
        ys = [100 * v["acc"] for v in bb.values()]
        err = [[100 * (v["acc"] - v["ci95"][0]) if v["ci95"] else 0 for v in bb.values()],
               [100 * (v["ci95"][1] - v["acc"]) if v["ci95"] else 0 for v in bb.values()]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=j)
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("context length bucket")
    ax.set_ylabel("two-order accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7)
    ax.set_title("Accuracy against context length")
    return _save(fig, path)


OUTCOME_COLORS = {"correct": "#4c9a2a", "partial": "#a6d96a", "wrong": "#bdbdbd", "position_bound": "#fdae61",
                  "contradiction": "#d7191c", "format": "#2b83ba", "run_error": "#000000"}


MAX_COLUMNS = 4
"""Panels per row of a multi-judge figure: at notebook width (about 1,000 px) each panel stays legible."""


def _grid(plt, n: int, panel: tuple[float, float], **kw):
    """A grid of ``n`` panels, at most :data:`MAX_COLUMNS` per row; unused panels are hidden."""
    cols = max(1, min(MAX_COLUMNS, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False, **kw)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], axes


def plot_failure_stacks(report: dict, path: str | Path) -> Path:
    """One panel per judge (four per row): stacked shares of each outcome per bucket, with the line
    count under each bar and one legend for the figure."""
    plt = _plt()
    judges = list(report["judges"])
    fig, flat, axes = _grid(plt, len(judges), (3.1, 3.0), sharey=True)
    for ax, j in zip(flat, judges):
        tab = report["judges"][j]["outcomes_by_bucket"]
        groups = [g for g in tab if g != "all"]
        bottom = [0.0] * len(groups)
        for o in OUTCOMES:
            vals = [100 * tab[g][o] for g in groups]
            ax.bar(groups, vals, bottom=bottom, color=OUTCOME_COLORS[o], label=o)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(j, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylim(0, 100)
    for row in axes:
        row[0].set_ylabel("share of lines (%)", fontsize=8)
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("What each judge's lines came to, per length bucket", fontsize=10)
    return _save(fig, path)


def plot_position_matrix(report: dict, path: str | Path, n: int = 2) -> Path:
    """Per judge: row = slot holding the best answer, column = slot picked (row-normalised)."""
    plt = _plt()
    judges = [j for j, r in report["judges"].items() if str(n) in r["position_matrix"]]
    fig, flat, axes = _grid(plt, max(1, len(judges)), (2.6, 2.6))
    for ax, j in zip(flat, judges):
        m = report["judges"][j]["position_matrix"][str(n)]
        norm = [[x / sum(row) if sum(row) else 0 for x in row] for row in m]
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for r_ in range(n):
            for c_ in range(n):
                ax.text(c_, r_, f"{100 * norm[r_][c_]:.0f}%\n({m[r_][c_]})", ha="center", va="center", fontsize=7,
                        color="white" if norm[r_][c_] > 0.6 else "black")
        ax.set_xticks(range(n), list(SLOT_LETTERS[:n]))
        ax.set_yticks(range(n), list(SLOT_LETTERS[:n]))
        ax.set_xlabel("slot picked", fontsize=7)
        ax.set_title(j, fontsize=8)
        ax.set_ylabel("best answer in slot", fontsize=7)
    fig.suptitle("Which slot each judge picks, by where the best answer was (row shares; counts in brackets)",
                 fontsize=9)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path

