"""Stage I as steps (notebook 04): the short-to-long walkthrough on one item, the training sets and
their leakage check, the long run (pilot, curriculum stages, long stage), the short run, and the
comparison before and after training in both display orders.

The data itself is made by :mod:`longrm_utils.train.stage1_data` and trained by
:mod:`longrm_utils.train.sft`; this module prints what the notebook shows and decides where each
output goes in the run directory:

* ``models/<model_id>`` of each run, registered as an artifact (the curriculum's earlier stages
  under ``models/<model_id>/stages/<name>``); the pilot's throw-away run under ``scratch/04_pilot``;
* ``judges/<model_id>`` (the trained judge on the held-out items), registered; when no earlier
  judging of the base model covers those items, ``judges/<model_id>-base`` too;
* ``models/figures/tiny_loss.png`` and ``models/figures/stage1_by_bucket.png``.

The notebook writes ``models/stage1_table.csv`` (:func:`before_after_table`) and
``models/stage1_summary.json`` (:func:`headline` and the leakage report).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import models
from ..bench.schema import answers, context_parts, display_orders
from ..judge.run import default_judge_id, spread
from ..rundir import register_artifact
from ..train.evidence import item_critical, item_golden, item_scores, n_tokens, retrieve_critical, split_chunks
from ..train.official import load_official_sft
from ..train.sft import SFTResult, SFTRun, losses, train_stages
from ..train.stage1_data import (Synthesised, example_content, filler_pool, leakage_report, short_to_long,
                                 synthesize_stage1)
from ..train.teachers import Focus, ModelTeacher, RuleTeacher, fit_judgement
from .judging import metrics_for

PILOT_DIR = "scratch/04_pilot"
"""Where the pilot's timed steps train (relative to the run directory; not registered)."""


# --- the walkthrough on one item ------------------------------------------------------------------

def show_critical(rec: dict) -> tuple[list[str], list[int]]:
    """Step 1 on one record: split its context into chunks and print the critical ones, how they were
    found, the question, the golden answer, and what retrieval alone would pick.

    Returns ``(chunks, critical chunk indices)``.
    """
    _, ctx, _ = context_parts(rec)
    chunks = split_chunks(ctx)
    golden = item_golden(rec)
    crit, how = item_critical(rec, chunks, rec["question"], golden)
    print(f"{rec['task']} {rec['tasktype']}: {len(chunks)} chunks, critical {crit} (found by {how})")
    print("question:", rec["question"], "\ngolden:  ", golden)
    print("critical chunk:", chunks[crit[0]][:300])
    print("retrieval would pick:", retrieve_critical(chunks, rec["question"], golden, k=len(crit)))
    return chunks, crit


def show_judgements(rec: dict, tokenizer, chunks: Sequence[str], crit: Sequence[int], *, order_seed: int,
                    max_tokens: int | None, fmt: str = "pairwise") -> None:
    """Step 2 on one record: print the rule teacher's judgement of the focused context in both
    display orders (:func:`~longrm_utils.bench.schema.display_orders` with ``order_seed``)."""
    ans, scores = answers(rec), item_scores(rec)
    evidence = [chunks[i] for i in crit]
    for order in display_orders(rec, 2, order_seed):
        f = Focus(rec["id"], rec["task"], rec["question"], item_golden(rec), evidence,
                  [ans[o] for o in order], order, [scores[o] for o in order])
        print(f"order {order} ->", fit_judgement(tokenizer, f, fmt, max_tokens), "\n")


def show_padding(rec: dict, tokenizer, pool_records: Sequence[dict], target: int, *, seed: int) -> Synthesised:
    """Step 3 on one record: pad its context to ``target`` tokens with filler chunks of ``pool_records``;
    print both lengths and where each critical chunk went (and that it is intact)."""
    s = short_to_long(rec, tokenizer, target, filler_pool(pool_records, seed), seed=seed)
    print(f"short context: {n_tokens(tokenizer, s.short_context)} tokens -> long context: "
          f"{n_tokens(tokenizer, s.long_context)} tokens (target {target})")
    first = s.chunks[s.critical[0]]
    for (a, b) in s.layout.required_spans:
        print(f"critical chunk at characters {a}-{b} of {len(s.long_context)} "
              f"(depth {a / len(s.long_context):.2f}), intact: {s.long_context[a:b] == first}")
    return s


# --- the training sets ----------------------------------------------------------------------------

def long_examples(records: Sequence[dict], tokenizer, *, n_items: int, targets: Sequence[int],
                  curriculum_targets: Sequence[int] = (), teacher: str = "rule", formats: Sequence[str],
                  max_tokens: int | None, device: str = "auto", seed: int = 0) -> tuple[list[dict], dict[int, list]]:
    """The long run's examples: ``n_items`` records (spread over tasks) padded to each of ``targets``,
    and, per curriculum target, the same records padded to that length. Fillers come from all of
    ``records``. ``teacher`` is ``"rule"`` or a registry preset / folder (a :class:`ModelTeacher`
    falling back to the rule teacher). Prints the synthesis report of the long set.

    Returns ``(long examples, {curriculum target: examples})``.
    """
    chosen = spread(records, n_items)
    rule = RuleTeacher(tokenizer, max_tokens)
    teach = rule if teacher == "rule" else ModelTeacher(models.load(teacher, device=device), fallback=rule)
    opts = {"teacher": teach, "formats": formats, "pool_records": records, "seed": seed}
    long_ex, rep, _ = synthesize_stage1(chosen, tokenizer, target_tokens=targets, **opts)
    stage_ex = {t: synthesize_stage1(chosen, tokenizer, target_tokens=t, **opts)[0] for t in curriculum_targets}
    print("long run:", json.dumps(rep.as_dict()))
    return long_ex, stage_ex


def short_examples(records: Sequence[dict], run: dict, *, n_items: int, formats: Sequence[str],
                   max_tokens: int | None, seed: int = 0, official_sft: str | os.PathLike | None = None,
                   fallback_tokenizer=None, both_orders: bool = True) -> list[dict]:
    """The short run's examples: ``n_items`` records at their own length, judged by the rule teacher
    with the tokenizer of the run's base model (none when ``run`` is empty), in both display orders
    unless ``both_orders`` is False; plus the official SFT data when ``official_sft`` is given
    (counted with the same tokenizer, else ``fallback_tokenizer``). Prints the synthesis and import
    reports."""
    tok = models.tokenizer(SFTRun.from_dict(run).base) if run else None
    out: list[dict] = []
    if run:
        out, rep, _ = synthesize_stage1(spread(records, n_items), tok, target_tokens=None,
                                        teacher=RuleTeacher(tok, max_tokens), formats=formats,
                                        both_orders=both_orders, seed=seed)
        print("short run:", json.dumps(rep.as_dict()))
    if official_sft:
        off, off_rep = load_official_sft(official_sft, tokenizer=tok or fallback_tokenizer, splits=["train"])
        print("official SFT import:", json.dumps(off_rep))
        out += off
    return out


def check_leakage(examples: Sequence[dict], eval_sets: dict[str, Sequence[dict]]) -> dict[str, Any]:
    """:func:`~longrm_utils.train.stage1_data.leakage_report` of the examples' content (grouped by
    record) against each evaluation set; prints one line per set and returns the report."""
    leak = leakage_report([example_content(e) for e in examples], eval_sets,
                          groups=[f"{e['task']}:{e['id']}" for e in examples])
    for name, r in leak["sets"].items():
        print(f"{name:8s} items {r['items']:3d}  leaked {r['leaked']}  max overlap {r['max_overlap']:.3f}  "
              f"mean {r['mean_overlap']:.4f}")
    return leak


# --- training -------------------------------------------------------------------------------------

def pilot(rd: str | os.PathLike, run: dict, examples: Sequence[dict], *, steps: int,
          device: str = "auto", launch: str | None = None) -> SFTResult:
    """Time ``steps`` steps of ``run`` on ``examples`` (logged every step) in ``rd/scratch/04_pilot``,
    from scratch; print the seconds per step and the peak memory (of the main process when launched)."""
    cfg = SFTRun.from_dict({**run, "max_steps": steps, "logging_steps": 1})
    res = train_stages(cfg, [("pilot", examples, steps)], Path(rd) / PILOT_DIR, device=device, resume=False,
                       launch=launch)[0]
    print(f"pilot at {max(res.token_lengths)} tokens: {res.wall_s / steps:.2f} s/step, "
          f"peak memory {res.peak_mem_gib:.2f} GiB")
    return res


def train_long(rd: str | os.PathLike, run: dict, long_ex: Sequence[dict], stage_ex: dict[int, list], *,
               long_targets: Sequence[int], long_steps: int, pilot_steps: int = 0,
               curriculum_targets: Sequence[int] = (), curriculum_steps: Sequence[int] = (),
               device: str = "auto", launch: str | None = None) -> dict[str, SFTResult]:
    """The long run: an optional :func:`pilot` at the longest target, then the curriculum stages
    (``ctx<target>``, ``curriculum_steps`` each) and the ``long`` stage, each continuing the previous
    weights, into ``rd/models/<model_id>`` (registered). Prints each stage's summary. ``launch``: an
    accelerate config; training then runs under ``accelerate launch`` (``train.sft.train_stages``).

    Returns ``{stage name: result}`` in training order; ``["long"]`` holds the trained model.
    """
    cfg = SFTRun.from_dict(run)
    if pilot_steps:
        pilot(rd, run, [e for e in long_ex if e["target_tokens"] == max(long_targets)], steps=pilot_steps,
              device=device, launch=launch)
    stages = [(f"ctx{t}", stage_ex[t], n) for t, n in zip(curriculum_targets, curriculum_steps)]
    stages.append(("long", long_ex, long_steps))
    out = Path(rd) / "models" / cfg.model_id
    results = train_stages(cfg, stages, out, device=device, launch=launch)
    register_artifact(rd, f"models/{cfg.model_id}", out)
    for (name, _, _), r in zip(stages, results):
        print(f"stage {name}: {json.dumps(r.summary())}")
    return {name: r for (name, _, _), r in zip(stages, results)}


def train_short(rd: str | os.PathLike, run: dict, examples: Sequence[dict], *, device: str = "auto",
                launch: str | None = None) -> SFTResult:
    """Train the short run into ``rd/models/<model_id>`` (registered; ``launch`` as in :func:`train_long`);
    print its summary."""
    cfg = SFTRun.from_dict(run)
    out = Path(rd) / "models" / cfg.model_id
    res = train_stages(cfg, [("short", examples, cfg.max_steps)], out, device=device, launch=launch)[0]
    register_artifact(rd, f"models/{cfg.model_id}", out)
    print(json.dumps(res.summary()))
    return res


# --- before and after -----------------------------------------------------------------------------

def before_after(rd: str | os.PathLike, run: dict, trained: models.Loaded, records: Sequence[dict],
                 **run_kwargs: Any) -> tuple[dict, dict]:
    """Metrics of the run's base model and of the trained model on ``records``, both display orders.

    "Before" re-scores notebook 02's judging of the base model (``judges/<base id>``, then
    ``judges/<base id>-short``) when it covers the records, else judges them into
    ``judges/<model_id>-base``. "After" judges the trained model into ``judges/<model_id>``.
    ``run_kwargs`` go to :func:`~longrm_utils.judge.run.run_judge` (max_new_tokens, device, seed, ...).
    """
    cfg = SFTRun.from_dict(run)
    base_id = default_judge_id(cfg.base, "generative")
    before = metrics_for(rd, cfg.base, records, judge_id=f"{cfg.model_id}-base", reuse=[base_id, base_id + "-short"],
                         **run_kwargs)
    after = metrics_for(rd, cfg.model_id, records, judge_id=cfg.model_id, loaded=trained, **run_kwargs)
    return before, after


def _stages(results: dict[str, tuple[dict, dict]]):
    """``(label, metrics)`` for every run and stage: ``"<model_id> before"``, ``"<model_id> after"``."""
    return [(f"{k} {w}", m) for k, (b, a) in results.items() for w, m in (("before", b), ("after", a))]


def row(m: dict) -> dict[str, Any]:
    """One row of the before/after table (percent): format failures, official accuracy and its 95%
    interval, two-order and consistent accuracy (with interval), bias and first-slot rates, items."""
    o = m["overall"]

    def ci(k: str) -> str:
        lo, hi = o.get(k + "_ci95") or [float("nan")] * 2
        return f"{100 * lo:.0f}-{100 * hi:.0f}"

    return {"format fail %": 100 * o["parse_failure_rate"], "official %": 100 * o["acc_official"],
            "official CI": ci("acc_official"), "two-order %": 100 * o["acc_two_order"],
            "consistent %": 100 * (o["acc_consistent"] or 0), "consistent CI": ci("acc_consistent"),
            "bias %": None if o["bias_rate"] is None else 100 * o["bias_rate"],
            "first-slot %": None if o["first_slot_rate"] is None else 100 * o["first_slot_rate"],
            "items": o["n_items"]}


def before_after_table(results: dict[str, tuple[dict, dict]]):
    """A DataFrame with one :func:`row` per run and stage (``results``: model id -> (before, after))."""
    import pandas as pd

    return pd.DataFrame({label: row(m) for label, m in _stages(results)}).T


def bucket_frame(results: dict[str, tuple[dict, dict]]):
    """Official score (%) per length bucket: one row per run and stage, one column per bucket."""
    import pandas as pd

    return pd.DataFrame({label: {bk: 100 * g["acc_official"] for bk, g in m["by_bucket"].items()}
                         for label, m in _stages(results)}).T


def headline(results: dict[str, tuple[dict, dict]]) -> dict[str, float]:
    """Headline numbers per run and stage (percent, one decimal): format failures, official and
    consistent accuracy, and the bias rate when the items have pairs."""
    out: dict[str, float] = {}
    for label, m in _stages(results):
        o = m["overall"]
        out[f"{label} format-fail %"] = round(100 * o["parse_failure_rate"], 1)
        out[f"{label} acc %"] = round(100 * o["acc_official"], 1)
        out[f"{label} consistent %"] = round(100 * (o["acc_consistent"] or 0), 1)
        if o["bias_rate"] is not None:
            out[f"{label} bias %"] = round(100 * o["bias_rate"], 1)
    return out


# --- plots ----------------------------------------------------------------------------------------

def plot_stage_losses(stages: dict[str, SFTResult], path: str | os.PathLike, *,
                      title: str = "tiny model, Stage I") -> Path:
    """The training loss (judgement tokens) of consecutive stages (:func:`train_long`'s answer) on one
    step axis; saved as PNG."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    off = 0
    for name, r in stages.items():
        xs, ys = losses(r.log)
        ax.plot([x + off for x in xs], ys, label=name)
        off += r.log[-1].get("step", 0) if r.log else 0
    ax.set_xlabel("step")
    ax.set_ylabel("loss (judgement tokens)")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
