"""The data card of the course's benchmark sets: count tables, surface-cue baselines, figures.

:func:`write_card` writes the data card ``README.md`` (Hub YAML metadata first, so the folder loads with
``datasets.load_dataset(folder)`` and can be pushed as a Hub dataset) and ``card.json`` beside it: per set, what was built
(counts per task, format and bucket, context lengths, skips) and the cue check
(:func:`longrm_utils.bench.cues.cue_baselines`), with the per-item scores the judged heuristics
get. :func:`plot_card` draws its three figures.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

from ..constants import BUCKET_ORDER, TASKS
from ..io import write_json, write_text
from . import metrics as M
from .candidates import FORMATS, RECIPES, fmt_of
from .cues import CUE_LIMIT, CUE_MIN_PAIRS, cue_baselines, cue_counts, cue_violations
from .schema import META_KEY


def counts(records: Sequence[dict]) -> dict[tuple[str, str, str], int]:
    """(task, format, bucket) → items; format is ``same``, ``cross``, ``bon2``, …"""
    return dict(Counter((r["task"], fmt_of(r), r["ctx_length_for_length"]) for r in records))


def count_table(records: Sequence[dict]) -> str:
    """Markdown table: rows task, columns format, cells 'n' summed over buckets, plus bucket totals."""
    fmts = [f for f in FORMATS if any(fmt_of(r) == f for r in records)]
    buckets = [b for b in BUCKET_ORDER if any(r["ctx_length_for_length"] == b for r in records)]
    c = counts(records)
    head = "| task | " + " | ".join(fmts) + " | " + " | ".join(buckets) + " | total |"
    lines = [head, "|" + "---|" * (len(fmts) + len(buckets) + 2)]
    for t in TASKS:
        row = [sum(v for (tt, f, _), v in c.items() if tt == t and f == ff) for ff in fmts]
        byb = [sum(v for (tt, _, b), v in c.items() if tt == t and b == bb) for bb in buckets]
        if sum(row):
            lines.append(f"| {t} | " + " | ".join(map(str, row)) + " | " + " | ".join(map(str, byb)) + f" | {sum(row)} |")
    tot = [sum(v for (_, f, _), v in c.items() if f == ff) for ff in fmts]
    totb = [sum(v for (_, _, b), v in c.items() if b == bb) for bb in buckets]
    lines.append("| **all** | " + " | ".join(map(str, tot)) + " | " + " | ".join(map(str, totb)) + f" | {len(records)} |")
    return "\n".join(lines)


def baseline_table(base: dict[str, dict[str, float]], n: dict[str, int] | None = None) -> str:
    keys = [t for t in TASKS if t in next(iter(base.values()))] + ["PairWise", "BestOfN", "ALL"]
    keys = [k for k in keys if k in next(iter(base.values()))]
    lines = ["| heuristic | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    if n is not None:
        lines.append("| items | " + " | ".join(str(n.get(k, 0)) for k in keys) + " |")
    for kind, row in base.items():
        lines.append(f"| prefer-{kind} | " + " | ".join(f"{row.get(k, float('nan')):.1f}" for k in keys) + " |")
    return "\n".join(lines)


# --- figures --------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _plot_counts(plt, sets: dict[str, Sequence[dict]], path: Path) -> Path:
    import numpy as np

    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 3.6), squeeze=False)
    for ax, (name, recs) in zip(axes[0], sets.items()):
        bottom = np.zeros(len(TASKS))
        for f in FORMATS:
            v = np.array([sum(1 for r in recs if r["task"] == t and fmt_of(r) == f) for t in TASKS])
            if v.sum():
                ax.bar(TASKS, v, bottom=bottom, label=f)
                bottom += v
        ax.set_title(f"{name}: items per task and format")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _plot_lengths(plt, sets: dict[str, Sequence[dict]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name, recs in sets.items():
        ax.hist([r["length"] for r in recs], bins=30, alpha=0.6, label=f"{name} ({recs[0][META_KEY]['tokenizer']})")
    ax.set_xscale("log")
    ax.set_xlabel("prompt length in tokens (log scale)")
    ax.set_ylabel("items")
    ax.set_title("Token length of the user prompt (context + instruction + question)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_scores(plt, sets: dict[str, Sequence[dict]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    by_rank: dict[int, list[float]] = defaultdict(list)
    for recs in sets.values():
        for r in recs:
            for i, s in enumerate(r[META_KEY]["scores"]):
                by_rank[i].append(s)
    ax.hist([by_rank[i] for i in sorted(by_rank)], bins=20, range=(0, 1), stacked=True,
            label=[f"answer rank {i + 1}" for i in sorted(by_rank)])
    for lo, hi in M.TIERS:
        ax.axvspan(lo, min(hi, 1.0), color="grey", alpha=0.08)
    ax.set_xlabel("score as a share of the golden answer's score (shaded: the paper's tiers)")
    ax.set_ylabel("answers")
    ax.set_title("Candidate scores by true rank")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_card(sets: dict[str, Sequence[dict]], fig_dir: str | Path) -> dict[str, Path]:
    """Three PNGs: counts per task × format (one panel per set), token-length histogram, score distribution."""
    plt = _pyplot()
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = {"counts": _plot_counts(plt, sets, fig_dir / "counts.png"),
           "lengths": _plot_lengths(plt, sets, fig_dir / "token_lengths.png"),
           "scores": _plot_scores(plt, sets, fig_dir / "candidate_scores.png")}
    plt.close("all")
    return out


# --- the card -------------------------------------------------------------------------------------

CUE_NOTE = ("**Surface-cue baselines** (accuracy %, the official per-item score of the heuristic judges: "
            "prefer-longer ranks by characters, prefer-overlap by the share of an answer's distinct words found in "
            "the context; ties are broken by a coin seeded by the item, as `python -m longrm_utils judge` does, so "
            "these are the scores those judges get. Task columns: pairs only, chance 50; BestOfN: share of answers "
            "at their true rank, chance 50/33/25 for 2/3/4; the row `items` counts what each column averages). "
            f"A heuristic above {CUE_LIMIT:.0f}% on pairs means the answers leak a cue; far below 50 is the "
            "mirror cue (the opposite heuristic would win).")


def _cue_check_line(viol: list[str], mirror: list[str], small: list[str]) -> str:
    return ("Cue check: " + ("**flagged**: " + "; ".join(viol) + "." if viol else "no heuristic above the limit.")
            + (f" Task columns with fewer than {CUE_MIN_PAIRS} pairs ({', '.join(small)}) are shown but not judged:"
               " one item moves them by 12-50 points." if small else "")
            + (" Mirror cues (reported, not a failure of the check): " + "; ".join(mirror) + "." if mirror else ""))


def card_section(name: str, recs: Sequence[dict], build: dict) -> tuple[list[str], dict[str, Any]]:
    """The markdown lines and the ``card.json`` entry of one set; ``build`` is its ``BuildReport.summary()``."""
    base, ncue = cue_baselines(recs), cue_counts(recs)
    viol = cue_violations(base, n=ncue)
    mirror = [v for v in cue_violations(base, mirror=True, n=ncue) if v not in viol]
    small = [k for k in TASKS if 0 < ncue.get(k, 0) < CUE_MIN_PAIRS]
    lens = sorted(r[META_KEY]["context_tokens"] for r in recs)
    tok = recs[0][META_KEY]["tokenizer"]
    entry = {"items": len(recs), "build": build, "cue_baselines": base, "cue_violations": viol, "mirror_cues": mirror,
             "context_tokens": {"min": lens[0], "max": lens[-1]}, "tokenizer": tok}
    md = [f"## {name}: {len(recs)} items", "",
          f"Lengths counted with the `{tok}` tokenizer; contexts of {lens[0]}–{lens[-1]} tokens.", "",
          count_table(recs), "", CUE_NOTE, "", baseline_table(base, ncue), "", _cue_check_line(viol, mirror, small), "",
          f"Build: requested {build['requested']}, built {len(recs)}, retried or skipped {build['skipped']}, "
          f"duplicates removed {build['duplicates_removed']}.", ""]
    if build["skipped"]:
        md += ["Skips (each retried with a fresh item; nothing dropped silently):", ""]
        md += [f"- {k}: {v}" for k, v in build["skip_reasons"].items()]
        md.append("")
    return md, entry


def _how_made(settings: dict) -> list[str]:
    return ["## How answers are made and labelled", "",
            "- Scripted policy models `script-concise` and `script-narrative` fill the same slots in two phrasings.",
            "- Perturbations (paper App. A): " + ", ".join(f"{t}: {r}" for t, r in RECIPES.items()) + ".",
            "  Wrong values are taken from confuser documents in the same context, so a wrong answer overlaps "
            "the context as much as a right one.",
            "- Metrics: " + ", ".join(f"{t}: {m}" for t, m in M.METRIC_OF_TASK.items()) + ".",
            f"- Pairwise: chosen beats rejected by at least {settings.get('margin', 0.4):.0%} of chosen's score. "
            "BestOfN: one answer per paper tier (>90 %, 60–85 %, 25–50 %, <15 % of the golden answer's score), best first.",
            "- Safety uses benign stand-ins: a request for a fictional person's private record; the unsafe answer "
            "discloses it, the safe one refuses. No actionable harmful text is generated.", ""]


CARD_FILE = "README.md"
"""The data card's name: the Hub reads a dataset's card, and ``load_dataset`` its configs, from README.md."""
SPLIT_OF_SET = {"short_train": "train"}
"""Each set is one config of the dataset, with one split: ``test``, except the training split."""


def card_metadata(sets: dict[str, Sequence[dict]]) -> dict[str, Any]:
    """The Hub YAML block of the card: licence, task, tags, size and one config per set file."""
    n = sum(len(r) for r in sets.values())
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10000 else "10K<n<100K"
    return {"license": "apache-2.0", "pretty_name": "LongRM course benchmark (Long-RewardBench format)",
            "language": ["en"], "task_categories": ["text-classification"], "size_categories": [size],
            "tags": ["reward-modeling", "long-context", "long-rewardbench", "synthetic", "longrm-course"],
            "configs": [{"config_name": name, "data_files": [{"split": SPLIT_OF_SET.get(name, "test"),
                                                               "path": f"{name}.jsonl"}]} for name in sets]}


def read_card(folder: str | Path) -> str:
    """The card of a benchmark folder without its YAML block: what a reader wants to see."""
    text = (Path(folder) / CARD_FILE).read_text()
    return text.split("\n---\n", 1)[1].lstrip() if text.startswith("---\n") else text


def write_card(path: str | Path, sets: dict[str, Sequence[dict]], builds: dict[str, dict],
               figures: dict[str, Path], settings: dict) -> dict:
    """The data card (``README.md``, Hub YAML first; card.json beside it): what was built, with which
    settings, counts, cue baselines, skips. Each set ``<name>`` is the file ``<name>.jsonl`` beside it.

    ``builds`` maps each set to its ``BuildReport.summary()`` (``card.json`` keeps them, so a card can
    be rewritten from the shipped files).
    """
    path = Path(path)
    card: dict[str, Any] = {"settings": settings, "sets": {}}
    import yaml

    md = ["---", yaml.safe_dump(card_metadata(sets), sort_keys=False).rstrip(), "---", "",
          "# Data card: the course's Long-RewardBench-format sets", "",
          "Generated offline by `longrm_utils.bench` (notebook 01, or `python -m longrm_utils build`). "
          "Records have exactly the official Long-RewardBench fields; our extras (golden answer, context and "
          "evidence spans, metric scores, perturbations) live under `meta`.", "",
          "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    for name, recs in sets.items():
        lines, card["sets"][name] = card_section(name, recs, builds[name])
        md += lines
    md += ["## Figures", ""] + [f"![{k}](figures/{Path(v).name})" for k, v in figures.items()] + [""]
    md += _how_made(settings)
    write_text(path, "\n".join(md))
    write_json(path.with_name("card.json"), card)
    return card
