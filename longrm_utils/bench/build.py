"""Assembling benchmark sets: items, cells, layouts, deduplication, splits, the course sets and the CLI.

* :func:`build_item` makes one record of a (task, bucket, format) cell: a generated triplet
  (:mod:`longrm_utils.bench.generators`), several candidate answer sets
  (:mod:`longrm_utils.bench.candidates`), and the *surface-cue guard* that picks the set which keeps
  the prefer-longer and prefer-overlap judges (:mod:`longrm_utils.bench.cues`) nearest chance.
* :func:`build` builds a list of cells (``items_per_cell`` items each); formats are ``same`` /
  ``cross`` pairs and ``bon2`` / ``bon3`` / ``bon4``. Deduplicated, deterministic for a seed; a
  failed item is retried, then counted as a skip. :func:`paper_layout_cells` reproduces the
  paper's counts (1,900 items) at scale.
* :func:`build_course_sets` writes the course's sets (``mini``, ``short``, and the training split
  ``short_train``, disjoint from ``short`` by content) and their data card (:mod:`longrm_utils.bench.card`);
  :func:`cli` is ``python -m longrm_utils build``.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..cli import ArgumentParser, add_flag, positive_int
from ..runtime import push_to_hub
from ..constants import (BUCKET_TOKENS, BUCKETS, PAPER_BON_ITEMS_PER_SIZE, PAPER_PAIRWISE_ITEMS, PAPER_TASK_COUNTS,
                         SHORT_BUCKET, TASKS)
from . import metrics as M
from .candidates import (FORMATS, SAME_CONTEXT_PERTURBATIONS, Candidate, candidate_for_tier, candidate_pair, make_record,
                         words_bucket)
from .card import CARD_FILE, counts, plot_card, write_card
from .cues import CUE_KINDS, cue_item_scores, words
from .generators import FOUNDERS_SUBTASK, FOUNDERS_TOKENS, STYLES, Triplet, generate, item_rng, lengthen_founders
from .schema import META_KEY, answers, context_parts, with_context, write_jsonl
from .text import ContextTooShort, TokenCounter, counter_for

CONTEXT_FRACTION = 0.875
"""The context fills this share of a bucket; the rest is left for the instruction and the answers."""


def target_tokens(bucket: str, short_range: tuple[int, int] = (256, 512)) -> int | tuple[int, int]:
    """Context length for a bucket: 87.5 % of its nominal size; the short set draws from 256-512."""
    if bucket == SHORT_BUCKET:
        return tuple(short_range)
    if bucket not in BUCKET_TOKENS:
        raise ValueError(f"unknown bucket {bucket!r}; buckets are {BUCKETS} and {SHORT_BUCKET!r}")
    return int(BUCKET_TOKENS[bucket] * CONTEXT_FRACTION)


# --- one item, and the surface-cue guard ---------------------------------------------------------------------

GUARD_WEIGHTS = {"longer": 2.0, "overlap": 1.0}
"""How much each heuristic weighs when the guard compares answer sets."""


@dataclass
class CueBalance:
    """Running sums of each heuristic's per-item score over the items built so far in one (task,
    format kind): ``score`` at the official tie coin (what the data card and the judged heuristic
    report) and ``expected``, its average over the coin (see :func:`~longrm_utils.bench.cues.cue_item_scores`)."""

    n: int = 0
    score: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CUE_KINDS, 0.0))
    expected: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CUE_KINDS, 0.0))

    def cost(self, cues: dict[str, tuple[float, float]], chance: float) -> float:
        """How far from chance the running means would be with one more item scored ``cues``."""
        n = self.n + 1
        return sum(w * (abs((self.score[k] + cues[k][0]) / n - chance)
                        + abs((self.expected[k] + cues[k][1]) / n - chance)) for k, w in GUARD_WEIGHTS.items())

    def add(self, cues: dict[str, tuple[float, float]]) -> None:
        self.n += 1
        for k in GUARD_WEIGHTS:
            self.score[k] += cues[k][0]
            self.expected[k] += cues[k][1]


def answer_sets(trip: Triplet, fmt: str, rng: random.Random, margin: float,
                variants: int) -> list[tuple[list[Candidate], dict[str, Any]]]:
    """Up to ``variants`` answer sets (styles, wrong slots, wrong values drawn) that meet the margin
    (pairs) or the tiers (BestOfN), each with the extras its record keeps under ``meta``."""
    pool: list[tuple[list[Candidate], dict[str, Any]]] = []
    for _ in range(variants):
        styles = list(STYLES)
        rng.shuffle(styles)
        extra: dict[str, Any] = {}
        if fmt in ("same", "cross"):
            pair = candidate_pair(trip, styles[0], styles[0] if fmt == "same" else styles[1], rng, margin)
            if pair is None:
                continue
            cands = list(pair)
            if fmt == "same":
                extra["context_perturbation"] = rng.choice(SAME_CONTEXT_PERTURBATIONS)
        else:
            n = int(fmt[-1])
            tiers = [0] + sorted(rng.sample([1, 2, 3], n - 1))
            cands = [candidate_for_tier(trip, rng.choice(styles), t, rng) for t in tiers]
            if any(c is None for c in cands) or len({c.text for c in cands}) < n:
                continue
            extra["tiers"] = tiers
        pool.append((cands, extra))
    return pool


def build_item(task: str, bucket: str, fmt: str, count: TokenCounter, *, seed: int, index: int,
               margin: float = 0.4, namespace: str = "eval", subtask: str | None = None,
               short_range: tuple[int, int] = (256, 512), variants: int = 12,
               balance: CueBalance | None = None) -> dict:
    """One record of a cell. Raises ``ContextTooShort`` / ``LookupError`` (the caller counts skips).

    Surface-cue guard: of ``variants`` answer sets (:func:`answer_sets`), the one kept brings the
    running scores of the prefer-longer and prefer-overlap judges closest to chance. Each set is
    scored with the functions of the data card and the judged heuristic
    (:func:`~longrm_utils.bench.cues.cue_item_scores`: the record id, which seeds the tie coin, is
    fixed before the choice). Both the score at the official coin and its expectation over the coin
    are balanced: the first is the number the card reports, the second keeps the guard from
    reaching chance by choosing lucky ties (any other tie seed would then see the cue).
    ``balance`` holds the running sums over the items built so far in the same (task, format kind);
    :func:`build` keeps it, and this function updates it.
    """
    rng = item_rng(seed, namespace, task, bucket, fmt, index)
    trip = generate(task, target_tokens(bucket, short_range), count, seed=seed,
                    index=f"{namespace}-{bucket}-{fmt}-{index}", subtask=subtask)
    pool = answer_sets(trip, fmt, rng, margin, variants)
    if not pool:
        raise LookupError(f"{task}/{bucket}/{fmt}: no answer set meets the margin {margin} or the tiers {M.TIERS}")
    rid = f"{namespace}-{task}-{bucket}-{fmt}-{index:03d}"
    bal = balance if balance is not None else CueBalance()
    ctx = words(trip.context)
    cues = [cue_item_scores([c.text for c in cands], ctx, task, rid) for cands, _ in pool]
    chance = 1.0 / len(pool[0][0])
    best = min(range(len(pool)), key=lambda i: bal.cost(cues[i], chance) + 1e-3 * i)
    bal.add(cues[best])
    cands, extra = pool[best]
    return make_record(trip, fmt, cands, rec_id=rid, bucket=bucket, count=count, seed=seed, extra_meta=extra)


# --- layouts ----------------------------------------------------------------------------------------------------

def cell_layout(tasks: Sequence[str] = TASKS, buckets: Sequence[str] = ("4k", "8k"), items_per_cell: int = 1,
                formats: Sequence[str] = FORMATS, rotate_bon: bool = False) -> list[tuple[str, str, str, int]]:
    """(task, bucket, format, count) cells. ``rotate_bon`` keeps one BestOfN cell per (task, bucket),
    its size rotating so that every size still appears (a smaller mini benchmark)."""
    cells = []
    for ti, t in enumerate(tasks):
        for bi, b in enumerate(buckets):
            fmts = list(formats)
            if rotate_bon:
                bons = [f for f in fmts if f.startswith("bon")]
                fmts = [f for f in fmts if not f.startswith("bon")] + ([bons[(ti + bi) % len(bons)]] if bons else [])
            cells += [(t, b, f, items_per_cell) for f in fmts]
    return cells


def _largest_remainder(total: int, weights: dict) -> dict:
    s = sum(weights.values())
    raw = {k: total * w / s for k, w in weights.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def paper_layout_cells(buckets: Sequence[str] = BUCKETS) -> list[tuple[str, str, str, int]]:
    """The paper's layout: 1,900 items, task totals of Table 3, 1,000 pairs and 300 BoN items per size.

    Per task, pairs and BoN sizes are shared in proportion (largest remainder, so totals are
    exact); pairs split evenly into same/cross; every cell spreads evenly over the buckets. The
    per-bucket counts of Table 3 are not in the release card, so the even spread is ours.
    """
    total = sum(PAPER_TASK_COUNTS.values())
    fmt_totals = {"pair": PAPER_PAIRWISE_ITEMS, "bon2": PAPER_BON_ITEMS_PER_SIZE, "bon3": PAPER_BON_ITEMS_PER_SIZE,
                  "bon4": PAPER_BON_ITEMS_PER_SIZE}
    # a transport-style allocation: task rows and format columns both exact
    grid = {t: _largest_remainder(n, {f: fmt_totals[f] for f in fmt_totals}) for t, n in PAPER_TASK_COUNTS.items()}
    for f in fmt_totals:  # fix column totals by moving single items between formats of the largest tasks
        diff = fmt_totals[f] - sum(grid[t][f] for t in grid)
        for t in sorted(grid, key=lambda t: -PAPER_TASK_COUNTS[t]):
            if diff == 0:
                break
            for g in fmt_totals:
                if g == f or diff == 0:
                    continue
                gdiff = fmt_totals[g] - sum(grid[x][g] for x in grid)
                if diff > 0 and gdiff < 0 and grid[t][g] > 0:
                    grid[t][g] -= 1
                    grid[t][f] += 1
                    diff -= 1
                elif diff < 0 and gdiff > 0 and grid[t][f] > 0:
                    grid[t][f] -= 1
                    grid[t][g] += 1
                    diff += 1
    assert sum(sum(r.values()) for r in grid.values()) == total
    cells, offset, nb = [], 0, len(buckets)
    for t in TASKS:
        row = dict(grid[t])
        pair = row.pop("pair")
        row = {"same": pair - pair // 2, "cross": pair // 2, **row}
        for f, n in row.items():
            # n // nb items per bucket; the remainder goes to the next buckets in a rotation shared by
            # all cells, so every bucket ends within one item of the others
            extra = {buckets[(offset + j) % nb] for j in range(n % nb)}
            offset = (offset + n % nb) % nb
            for b in buckets:
                k = n // nb + (b in extra)
                if k:
                    cells.append((t, b, f, k))
    return cells


# --- building cells ------------------------------------------------------------------------------------------

def content_key(rec: dict) -> str:
    """Hash of what makes two items the same: the user prompt and the answers."""
    h = hashlib.sha256()
    h.update(json.dumps([rec["prompt_template"], answers(rec)], sort_keys=True).encode())
    return h.hexdigest()[:20]


@dataclass
class BuildReport:
    records: list[dict]
    skips: list[str] = field(default_factory=list)
    duplicates: int = 0
    requested: int = 0

    def summary(self) -> dict:
        return {"requested": self.requested, "built": len(self.records), "skipped": len(self.skips),
                "duplicates_removed": self.duplicates, "skip_reasons": Counter(s.split(": ", 1)[-1].split(" (")[0]
                                                                                   for s in self.skips)}


def build(cells: Iterable[tuple[str, str, str, int]], count: TokenCounter, *, seed: int = 0, margin: float = 0.4,
          namespace: str = "eval", retries: int = 3, short_range: tuple[int, int] = (256, 512),
          exclude_keys: set[str] | None = None, exclude_fingerprints: set[str] | None = None,
          subtask: str | None = None, progress: bool = False) -> BuildReport:
    """Build every cell; a failed item is retried with the next index, then counted as a skip.
    ``subtask`` fixes the generator's subtask for every cell (None: each generator draws its own).

    An item equal to one already built (or in ``exclude_keys``), or sharing a golden answer or an
    evidence chunk with ``exclude_fingerprints`` (another split), counts as a duplicate and is retried.
    """
    cells = list(cells)
    rep = BuildReport([], requested=sum(c[3] for c in cells))
    seen = set(exclude_keys or ())
    todo = [(t, b, f, i) for t, b, f, n in cells for i in range(n)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"build[{namespace}]", unit="item")
    balances: dict[tuple[str, str], CueBalance] = defaultdict(CueBalance)
    for t, b, f, i in todo:
        ok = False
        bal = balances[(t, "pair" if f in ("same", "cross") else f)]
        for r in range(retries):
            idx = i + 1000 * r
            try:
                rec = build_item(t, b, f, count, seed=seed, index=idx, margin=margin, namespace=namespace,
                                 short_range=short_range, balance=bal, subtask=subtask)
            except (ContextTooShort, LookupError) as e:
                rep.skips.append(f"{namespace}-{t}-{b}-{f}-{idx}: {e}")
                continue
            k = content_key(rec)
            if k in seen or (exclude_fingerprints and fingerprints([rec]) & exclude_fingerprints):
                rep.duplicates += 1
                continue
            seen.add(k)
            rep.records.append(rec)
            ok = True
            break
        if not ok:
            rep.skips.append(f"{namespace}-{t}-{b}-{f}-{i}: gave up after {retries} tries")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rep


def check_balance(records: Sequence[dict], cells: Sequence[tuple[str, str, str, int]]) -> list[str]:
    """Cells whose built count differs from the request, as messages (empty when balanced)."""
    got = counts(records)
    return [f"{t}/{f}/{b}: wanted {n}, built {got.get((t, f, b), 0)}" for t, b, f, n in cells
            if got.get((t, f, b), 0) != n]


# --- splits ---------------------------------------------------------------------------------------------------

def fingerprints(records: Sequence[dict]) -> set[str]:
    """Content fingerprints for disjointness checks: golden answers and the evidence text (questions
    repeat by design in some tasks, e.g. Code's 'What does main() print')."""
    out = set()
    for r in records:
        m = r.get(META_KEY) or {}
        out.add("g:" + str(m.get("golden", "")))
        ctx = context_parts(r)[1]
        for s, e in m.get("evidence_spans", []):
            out.add("e:" + ctx[s:e])
    return out


def disjoint_report(a: Sequence[dict], b: Sequence[dict]) -> int:
    """How many fingerprints two sets share (0 = disjoint by content)."""
    return len(fingerprints(a) & fingerprints(b))


# --- the standard course sets ----------------------------------------------------------------------------------

def build_short(count: TokenCounter, *, seed: int = 0, pairs_per_task: int = 8, bon_per_task: int = 3,
                tasks: Sequence[str] = TASKS, namespace: str = "short", margin: float = 0.4,
                short_range: tuple[int, int] = (256, 512), exclude: Sequence[dict] = (),
                subtask: str | None = None, bon_sizes: Sequence[int] = (2, 3, 4),
                progress: bool = False) -> tuple[BuildReport, list]:
    """The short set (bucket ``short``): pairs split same/cross, and BoN items whose size rotates
    through ``bon_sizes``."""
    cells = []
    for ti, t in enumerate(tasks):
        cells += [(t, SHORT_BUCKET, "same", pairs_per_task - pairs_per_task // 2),
                  (t, SHORT_BUCKET, "cross", pairs_per_task // 2)]
        for j in range(bon_per_task):
            cells.append((t, SHORT_BUCKET, f"bon{bon_sizes[(ti + j) % len(bon_sizes)]}", 1))
    merged: dict = {}
    for t, b, f, n in cells:
        merged[(t, b, f)] = merged.get((t, b, f), 0) + n
    cells = [(t, b, f, n) for (t, b, f), n in merged.items() if n]
    rep = build(cells, count, seed=seed, margin=margin, namespace=namespace, short_range=short_range,
                exclude_keys={content_key(r) for r in exclude}, exclude_fingerprints=fingerprints(exclude) or None,
                subtask=subtask, progress=progress)
    return rep, cells


def build_grounding(count: TokenCounter, *, seed: int = 0, pairs: int = 64, bon: int = 12,
                    namespace: str = "grounding", token_range: tuple[int, int] = FOUNDERS_TOKENS,
                    exclude: Sequence[dict] = ()) -> BuildReport:
    """The grounding probe of notebook 06 (LongQA ``founders``): ``pairs`` pairs (same/cross) and
    ``bon`` Best-of-2/3 records (a wrong name has only two quality tiers, so no Best-of-4)."""
    rep, _ = build_short(count, seed=seed, tasks=["LongQA"], subtask=FOUNDERS_SUBTASK, namespace=namespace,
                         pairs_per_task=pairs, bon_per_task=bon, bon_sizes=(2, 3), short_range=token_range,
                         exclude=exclude)
    return rep


def lengthen(rec: dict, bucket: str, count: TokenCounter | None = None, *, seed: int = 0) -> dict:
    """The same grounding-probe record at a longer ``bucket``: its id, question, answers and five founder
    documents are kept, and the context around them is rebuilt to the bucket's length
    (:func:`target_tokens`) from founder facts about other institutions
    (:func:`~longrm_utils.bench.generators.lengthen_founders`: the longer context holds more
    distractor facts). Counted with ``count`` (default: the record's tokenizer). The id is kept, so a
    judge's scores pair item by item across lengths."""
    m = rec.get(META_KEY) or {}
    if rec.get("subtask") != FOUNDERS_SUBTASK or not m.get("evidence_spans"):
        raise ValueError(f"lengthen: record {rec.get('id')!r} is not a grounding-probe ({FOUNDERS_SUBTASK}) record "
                         "with evidence spans")
    count = count or counter_for(m["tokenizer"])
    evidence = {tuple(x) for x in m["evidence_spans"]}
    spans = sorted(evidence | {tuple(x) for x in m["confuser_spans"]})
    try:
        asm = lengthen_founders(context_parts(rec)[1], spans, rec["question"], target_tokens(bucket), count,
                                item_rng(seed, "lengthen", rec["id"], bucket))
    except ValueError as e:
        raise ValueError(f"lengthen: record {rec.get('id')!r}: {e}") from None
    new = with_context(rec, asm.text)
    user = new["prompt_template"][-1]["content"]
    n_words = len(user.split())
    new.update(ctx_length_for_length=bucket, ctx_length_for_words=words_bucket(n_words), length=count(user),
               words_count=n_words)
    new[META_KEY].update(context_tokens=asm.n_tokens, lengthened_from=m["context_tokens"],
                         evidence_spans=[list(sp) for sp, old in zip(asm.required_spans, spans) if old in evidence],
                         confuser_spans=[list(sp) for sp, old in zip(asm.required_spans, spans) if old not in evidence])
    return new

def build_course_sets(out: str | Path, *, tokenizer: str = "tiny", short_tokenizer: str | None = "smollm2-135m-instruct",
                      buckets: Sequence[str] = ("4k", "8k"), items_per_cell: int = 1, rotate_bon: bool = True,
                      paper_layout: bool = False, seed: int = 0, margin: float = 0.4, short_pairs_per_task: int = 11,
                      short_bon_per_task: int = 3, train_pairs_per_task: int = 28, train_bon_per_task: int = 12,
                      tasks: Sequence[str] = TASKS,
                      progress: bool = False) -> dict:
    """Build ``mini.jsonl`` (+ ``short.jsonl`` and the disjoint ``short_train.jsonl``), figures and the card."""
    out = Path(out)
    count = counter_for(tokenizer, seed=0)
    cells = paper_layout_cells(buckets) if paper_layout else cell_layout(tasks, buckets, items_per_cell,
                                                                          rotate_bon=rotate_bon)
    reports = {"mini": build(cells, count, seed=seed, margin=margin, namespace="mini", progress=progress)}
    sets = {"mini": reports["mini"].records}
    paths = {"mini": write_jsonl(sets["mini"], out / "mini.jsonl")}
    balance = check_balance(sets["mini"], cells)
    if short_tokenizer:
        sc = counter_for(short_tokenizer)
        reports["short"], _ = build_short(sc, seed=seed, pairs_per_task=short_pairs_per_task,
                                          bon_per_task=short_bon_per_task, tasks=tasks, margin=margin, progress=progress)
        reports["short_train"], _ = build_short(sc, seed=seed, namespace="train", pairs_per_task=train_pairs_per_task,
                                                bon_per_task=train_bon_per_task, tasks=tasks, margin=margin,
                                                exclude=reports["short"].records, progress=progress)
        for k in ("short", "short_train"):
            sets[k] = reports[k].records
            paths[k] = write_jsonl(sets[k], out / f"{k}.jsonl")
    figures = plot_card(sets, out / "figures")
    settings = dict(tokenizer=tokenizer, short_tokenizer=short_tokenizer, buckets=list(buckets),
                    items_per_cell=items_per_cell, rotate_bon=rotate_bon, paper_layout=paper_layout, seed=seed,
                    margin=margin)
    card = write_card(out / CARD_FILE, sets, {k: r.summary() for k, r in reports.items()}, figures, settings)
    shared = disjoint_report(sets["short"], sets["short_train"]) if "short_train" in sets else None
    return {"paths": paths, "figures": figures, "card": out / CARD_FILE, "card_data": card,
            "balance_problems": balance, "train_eval_shared_fingerprints": shared, "records": sets,
            "reports": reports}


def cli(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="longrm_utils build", description="build a Long-RewardBench-format benchmark offline")
    p.add_argument("--out", required=True, help="output folder (mini.jsonl, short.jsonl, short_train.jsonl, the card README.md)")
    p.add_argument("--tokenizer", default="tiny", help="registry preset or tokenizer folder that measures lengths")
    p.add_argument("--short-tokenizer", default="smollm2-135m-instruct", help="tokenizer of the short set")
    p.add_argument("--buckets", nargs="+", default=["4k", "8k"], help=f"length buckets, from {BUCKETS}")
    p.add_argument("--items-per-cell", type=positive_int, default=1, help="items per (task, format, bucket) cell")
    add_flag(p, "all-bon-sizes", default=False, help="every BoN size in every (task, bucket), not rotated")
    add_flag(p, "paper-layout", default=False, help="the paper's 1,900-item layout over --buckets")
    add_flag(p, "short", default=True, help="also build the short set and its training split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="upload the folder as a Hub dataset repo (needs a token; HF_HUB_OFFLINE must be unset)")
    add_flag(p, "private", default=True, help="with --push-to-hub: create the repo private")
    a = p.parse_args(list(argv) if argv is not None else None)
    res = build_course_sets(a.out, tokenizer=a.tokenizer, short_tokenizer=a.short_tokenizer if a.short else None,
                            buckets=a.buckets, items_per_cell=a.items_per_cell, rotate_bon=not a.all_bon_sizes,
                            paper_layout=a.paper_layout, seed=a.seed)
    print(json.dumps({k: v for k, v in res.items() if k not in ("records", "reports", "card_data")}, indent=2,
                     default=str))
    for name, info in res["card_data"]["sets"].items():
        print(f"{name}: {info['items']} items; cue baselines (ALL): "
              + ", ".join(f"{k} {v['ALL']:.1f}%" for k, v in info["cue_baselines"].items()))
    if a.push_to_hub:
        print(f"pushed: {push_to_hub(a.out, a.push_to_hub, repo_type='dataset', private=a.private)}")
    return 0
