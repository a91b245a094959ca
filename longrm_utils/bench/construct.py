"""Candidates, perturbations, labels and assembly of a Long-RewardBench-format benchmark.

From a generated triplet (``sources.generate``) this module builds the answers a judge must rank:

* **Candidates.** The scripted policy "models" ``script-concise`` and ``script-narrative`` write
  fluent answers in two phrasings. A *perturbation* (the paper's recipe for the task, see
  :data:`RECIPES`) replaces some answer slots with wrong values that occur in the context, so the
  answers of an item are length-matched and overlap-matched: a judge has to read the context.
  Optionally a real policy model (SmolLM2 on short items) adds its own responses.
* **Labels.** Every answer is scored with the task metric (``metrics.score``); its *ratio* is that
  score over the score of the golden answer in the same phrasing. Pairwise: chosen must beat
  rejected by ``margin`` (relative, the paper's 40-80 %). BestOfN: the answers fall in distinct
  paper tiers (>90 %, 60-85 %, 25-50 %, <15 % of the golden answer's score), stored best first.
* **Assembly.** Cells of (task × format × bucket), each with ``items_per_cell`` items; formats are
  ``same`` / ``cross`` pairs and ``bon2`` / ``bon3`` / ``bon4``. Deduplicated, deterministic for a seed.
  ``paper_layout=True`` reproduces the paper's counts (1,900 items) at scale.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..constants import (BUCKET_TOKENS, BUCKETS, PAPER_BON_ITEMS_PER_SIZE, PAPER_PAIRWISE_ITEMS, PAPER_TASK_COUNTS,
                         SHORT_BUCKET, TASKS)
from . import metrics as M
from .schema import CONTEXT_CLOSE, CONTEXT_OPEN, META_KEY, answers, validate_record, write_jsonl
from .sources import STYLES, ContextTooShort, TokenCounter, Triplet, generate, item_rng

FORMATS = ("same", "cross", "bon2", "bon3", "bon4")
"""Format cells: intra-model pair, cross-model pair, BestOfN with 2, 3, 4 candidates."""
CROSS_SUBTYPE = "cross"
"""Our value of ``subtype`` for cross-model pairs (the official rule: anything but ``same``)."""
GEN_VERSION = "1"

RECIPES = {
    "LongQA": "drop-clue-docs",          # clue documents dropped with p = 0.5 before answering
    "Summ": "truncate-source",           # source truncated by 0 / 20 / 50 %
    "ICL": "remove-exemplars",           # the exemplars of some queries removed
    "Cite": "wrong-citations",           # wrong citations injected
    "Math": "corrupt-steps",             # intermediate steps corrupted
    "Safety": "misaligned-compliance",   # generated under a misaligned condition
    "Code": "corrupt-trace",             # execution traced with wrong intermediate values
}
"""The paper's perturbation per task (App. A); an intra-model (``same``) pair also records the
context perturbation it stands for (added distractors or truncation)."""
SAME_CONTEXT_PERTURBATIONS = ("add-distractors", "truncate-context")

CONTEXT_FRACTION = 0.875
"""The context fills this share of a bucket; the rest is left for the instruction and the answers."""


def model_name(style: str) -> str:
    return f"script-{style}"


def target_tokens(bucket: str, short_range: tuple[int, int] = (256, 512)) -> int | tuple[int, int]:
    """Context length for a bucket: 87.5 % of its nominal size; the short set draws from 256-512."""
    if bucket == SHORT_BUCKET:
        return tuple(short_range)
    if bucket not in BUCKET_TOKENS:
        raise ValueError(f"unknown bucket {bucket!r}; buckets are {BUCKETS} and {SHORT_BUCKET!r}")
    return int(BUCKET_TOKENS[bucket] * CONTEXT_FRACTION)


def words_bucket(words: int) -> str:
    """``ctx_length_for_words``: the smallest bucket whose nominal size holds ``words`` × 4/3 tokens."""
    for b in BUCKETS:
        if words * 4 / 3 <= BUCKET_TOKENS[b]:
            return b
    return BUCKETS[-1]


# --- candidates ----------------------------------------------------------------------------------------

@dataclass
class Candidate:
    text: str
    model: str
    score: float
    """Raw task metric."""
    ratio: float
    """Score over the golden answer's score in the same phrasing."""
    wrong: tuple[int, ...]
    """Indices of the slots that were replaced by wrong values."""
    perturbation: str


def render_candidate(trip: Triplet, style: str, wrong: Sequence[int], rng: random.Random,
                     perturbation: str | None = None) -> Candidate:
    values = [rng.choice(trip.alts[i]) if i in wrong else s for i, s in enumerate(trip.slots)]
    text = trip.render(values, style)
    gold = M.score(trip.task, trip.render(list(trip.slots), style), trip.reference)
    sc = M.score(trip.task, text, trip.reference)
    ratio = sc / gold if gold > 0 else 0.0
    pert = "none" if not wrong else (perturbation or RECIPES[trip.task])
    if wrong:
        pert += ":" + ",".join(trip.slot_names[i] for i in sorted(wrong))
    return Candidate(text, model_name(style), round(sc, 4), round(min(ratio, 1.0), 4), tuple(sorted(wrong)), pert)


def _masks(k: int) -> list[tuple[int, ...]]:
    return [m for r in range(k + 1) for m in itertools.combinations(range(k), r)]


def candidate_for_tier(trip: Triplet, style: str, want: int, rng: random.Random, tries: int = 3) -> Candidate | None:
    """A candidate whose ratio falls in paper tier ``want`` (0 best), or ``None`` if none can."""
    masks = _masks(len(trip.slots))
    rng.shuffle(masks)
    masks.sort(key=lambda m: len(m))
    if want > 0:
        masks = [m for m in masks if m] if want < 3 else sorted([m for m in masks if m], key=len, reverse=True)
    for m in masks:
        for _ in range(tries):
            c = render_candidate(trip, style, m, rng)
            if M.tier(c.ratio) == want:
                return c
    return None


def candidate_pair(trip: Triplet, chosen_style: str, rejected_style: str, rng: random.Random, margin: float,
                   max_margin: float = 1.0) -> tuple[Candidate, Candidate] | None:
    """(chosen, rejected): chosen is the golden content (or one slot off), rejected loses ≥ ``margin``."""
    chosen = render_candidate(trip, chosen_style, (), rng)
    masks = [m for m in _masks(len(trip.slots)) if m]
    rng.shuffle(masks)
    for m in masks:
        rej = render_candidate(trip, rejected_style, m, rng)
        if rej.text != chosen.text and margin <= M.pair_margin(chosen.ratio, rej.ratio) <= max_margin:
            return chosen, rej
    return None


# --- records --------------------------------------------------------------------------------------------

def user_prompt_for(trip: Triplet) -> tuple[str, list[int]]:
    head = f"{trip.instruction}\n\n{CONTEXT_OPEN}\n"
    text = f"{head}{trip.context}\n{CONTEXT_CLOSE}\n\nQuestion: {trip.question}"
    return text, [len(head), len(head) + len(trip.context)]


def make_record(trip: Triplet, fmt: str, cands: Sequence[Candidate], *, rec_id: str, bucket: str,
                count: TokenCounter, seed: int, extra_meta: dict | None = None) -> dict:
    """A validated Long-RewardBench record (answers best first) with our extras under ``meta``."""
    user, span = user_prompt_for(trip)
    rec: dict[str, Any] = {
        "id": rec_id,
        "prompt_template": [{"role": "user", "content": user}],
        "question": trip.question,
        "source": trip.source,
        "task": trip.task,
        "subtask": trip.subtask,
    }
    if fmt in ("same", "cross"):
        c, r = cands
        rec.update(tasktype="PairWise", subtype="same" if fmt == "same" else CROSS_SUBTYPE, chosen=c.text,
                   rejected=r.text, chosen_model=c.model, rejected_model=r.model)
    else:
        rec.update(tasktype="BestOfN", subtype=str(len(cands)), candidates=[c.text for c in cands],
                   candidates_model=[c.model for c in cands], candidates_score=[c.ratio for c in cands])
    words = len(user.split())
    rec.update(ctx_length_for_length=bucket, ctx_length_for_words=words_bucket(words) if bucket != SHORT_BUCKET
               else SHORT_BUCKET, length=count(user), words_count=words)
    rec[META_KEY] = {
        "generator": f"longrm-gen v{GEN_VERSION}", "seed": seed, "item_seed": list(trip.seed),
        "tokenizer": count.name, "context_tokens": trip.context_tokens, "context_span": span,
        "evidence_spans": [list(s) for s in trip.evidence_spans],
        "confuser_spans": [list(s) for s in trip.extra.get("confuser_spans", [])],
        "slot_evidence": trip.slot_evidence, "golden": trip.golden("concise"), "golden_slots": trip.slots,
        "slot_names": trip.slot_names, "metric": M.METRIC_OF_TASK[trip.task], "reference": trip.reference,
        "scores": [c.ratio for c in cands], "raw_scores": [c.score for c in cands],
        "wrong_slots": [list(c.wrong) for c in cands], "perturbations": [c.perturbation for c in cands],
        **{k: v for k, v in trip.extra.items() if k != "confuser_spans"},
        **(extra_meta or {}),
    }
    return validate_record(rec)


def _overlap(text: str, ctx_tokens: set[str]) -> float:
    toks = M.tokens(text)
    return sum(t in ctx_tokens for t in toks) / max(1, len(toks))


def _cue_scores(cands: Sequence[Candidate], ctx_tokens: set[str]) -> tuple[float, float]:
    """The per-item scores the prefer-longer and prefer-overlap judges would get on these answers."""
    lens = [float(len(c.text)) for c in cands]
    ovl = [_overlap(c.text, ctx_tokens) for c in cands]
    return rank_match(lens), rank_match(ovl)


def build_item(task: str, bucket: str, fmt: str, count: TokenCounter, *, seed: int, index: int,
               margin: float = 0.4, namespace: str = "eval", subtask: str | None = None,
               short_range: tuple[int, int] = (256, 512), variants: int = 12,
               balance: list[float] | None = None) -> dict:
    """One record of a cell. Raises ``ContextTooShort`` / ``LookupError`` (the caller counts skips).

    Surface-cue guard: ``variants`` answer sets are drawn (styles, wrong slots, wrong values) and
    the one kept brings the running scores of the prefer-longer and prefer-overlap judges closest to
    chance. ``balance`` is ``[sum_longer, sum_overlap, n]`` over the items built so far in the same
    (task, format kind); :func:`build` keeps it, and this function updates it.
    """
    rng = item_rng(seed, namespace, task, bucket, fmt, index)
    trip = generate(task, target_tokens(bucket, short_range), count, seed=seed,
                    index=f"{namespace}-{bucket}-{fmt}-{index}", subtask=subtask)
    ctx_tokens = set(M.tokens(trip.context))
    pool: list[tuple[list[Candidate], dict]] = []
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
    if not pool:
        raise LookupError(f"{task}/{bucket}/{fmt}: no answer set meets the margin {margin} or the tiers {M.TIERS}")
    bal = balance if balance is not None else [0.0, 0.0, 0]
    chance = 1.0 / len(pool[0][0])
    cues = [_cue_scores(c, ctx_tokens) for c, _ in pool]

    def cost(i):
        n = bal[2] + 1
        return 2 * abs((bal[0] + cues[i][0]) / n - chance) + abs((bal[1] + cues[i][1]) / n - chance) + 1e-3 * i

    best = min(range(len(pool)), key=cost)
    bal[0] += cues[best][0]
    bal[1] += cues[best][1]
    bal[2] += 1
    cands, extra = pool[best]
    rid = f"{namespace}-{task}-{bucket}-{fmt}-{index:03d}"
    return make_record(trip, fmt, cands, rec_id=rid, bucket=bucket, count=count, seed=seed, extra_meta=extra)


# --- layouts and balancing -------------------------------------------------------------------------------

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
          progress: bool = False) -> BuildReport:
    """Build every cell; a failed item is retried with the next index, then counted as a skip.

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
    balances: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for t, b, f, i in todo:
        ok = False
        bal = balances[(t, "pair" if f in ("same", "cross") else f)]
        for r in range(retries):
            idx = i + 1000 * r
            try:
                rec = build_item(t, b, f, count, seed=seed, index=idx, margin=margin, namespace=namespace,
                                 short_range=short_range, balance=bal)
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


def counts(records: Sequence[dict]) -> dict[tuple[str, str, str], int]:
    """(task, format, bucket) → items; format is ``same``, ``cross``, ``bon2``, …"""
    c: Counter = Counter()
    for r in records:
        fmt = ("same" if r["subtype"] == "same" else "cross") if r["tasktype"] == "PairWise" else f"bon{r['subtype']}"
        c[(r["task"], fmt, r["ctx_length_for_length"])] += 1
    return dict(c)


def check_balance(records: Sequence[dict], cells: Sequence[tuple[str, str, str, int]]) -> list[str]:
    """Cells whose built count differs from the request, as messages (empty when balanced)."""
    got = counts(records)
    return [f"{t}/{f}/{b}: wanted {n}, built {got.get((t, f, b), 0)}" for t, b, f, n in cells
            if got.get((t, f, b), 0) != n]


# --- surface-cue baselines ---------------------------------------------------------------------------------

def heuristic_scores(rec: dict, kind: str) -> list[float]:
    """Per-answer scores of a surface heuristic (``answers(rec)`` order): ``longer`` (characters) or
    ``overlap`` (share of the answer's normalised tokens that occur in the context)."""
    ans = answers(rec)
    if kind == "longer":
        return [float(len(a)) for a in ans]
    if kind == "overlap":
        from .schema import context_parts

        ctx = set(M.tokens(context_parts(rec)[1]))
        return [sum(t in ctx for t in M.tokens(a)) / max(1, len(M.tokens(a))) for a in ans]
    raise ValueError(f"unknown heuristic {kind!r}: longer or overlap")


def rank_match(s: Sequence[float]) -> float:
    """Official per-item score of a judge that ranks answers (true order: best first) by ``s``:
    the share of slots whose predicted rank is the true rank. Ties are split: a pair tie scores 0.5,
    a BoN tie is averaged over the tied answers' possible orders (so a constant judge sits at chance)."""
    n = len(s)
    if n == 2:
        return 1.0 if s[0] > s[1] else 0.5 if s[0] == s[1] else 0.0
    total = 0.0
    for i in range(n):
        above = sum(1 for j in range(n) if s[j] > s[i])
        ties = sum(1 for j in range(n) if s[j] == s[i])
        total += (1.0 / ties) if above <= i < above + ties else 0.0
    return total / n


def heuristic_item_score(rec: dict, kind: str) -> float:
    """The official per-item score a heuristic judge (``longer`` / ``overlap``) gets on ``rec``."""
    return rank_match(heuristic_scores(rec, kind))


def cue_baselines(records: Sequence[dict], kinds: Sequence[str] = ("longer", "overlap")) -> dict[str, dict[str, float]]:
    """Accuracy (%) of each heuristic judge: per task on PairWise items (chance 50), then over all
    PairWise items, all BestOfN items (rank-match ratio) and all items (``ALL``)."""
    out: dict[str, dict[str, float]] = {}
    for kind in kinds:
        by: dict[str, list[float]] = defaultdict(list)
        for r in records:
            sc = heuristic_item_score(r, kind)
            keys = ("ALL", r["tasktype"]) + ((r["task"],) if r["tasktype"] == "PairWise" else ())
            for key in keys:
                by[key].append(sc)
        out[kind] = {k: round(100 * sum(v) / len(v), 1) for k, v in by.items()}
    return out


CUE_LIMIT = 65.0
"""A heuristic above this pairwise accuracy means the answers leak a surface cue (issue #3)."""


CUE_MIN_PAIRS = 8
"""Per-task cue checks need this many pairs; below it one item moves the rate by more than 12 points."""


def cue_counts(records: Sequence[dict]) -> dict[str, int]:
    """How many items stand behind each column of :func:`cue_baselines`."""
    c: Counter = Counter()
    for r in records:
        for key in ("ALL", r["tasktype"]) + ((r["task"],) if r["tasktype"] == "PairWise" else ()):
            c[key] += 1
    return dict(c)


def cue_violations(baselines: dict[str, dict[str, float]], limit: float = CUE_LIMIT, *,
                   mirror: bool = False, n: dict[str, int] | None = None, min_pairs: int = CUE_MIN_PAIRS) -> list[str]:
    """Pairwise columns where a heuristic beats ``limit`` (with ``mirror``: where its opposite would).

    With ``n`` (from :func:`cue_counts`), task columns with fewer than ``min_pairs`` pairs are not judged.
    """
    out = []
    for kind, row in baselines.items():
        for k, v in row.items():
            if k in ("BestOfN", "ALL") or (n is not None and n.get(k, 0) < min_pairs):
                continue
            if v > limit:
                out.append(f"prefer-{kind} scores {v:.1f}% on {k} pairs")
            elif mirror and 100 - v > limit:
                out.append(f"the opposite of prefer-{kind} would score {100 - v:.1f}% on {k} pairs")
    return out


# --- splits ---------------------------------------------------------------------------------------------------

def fingerprints(records: Sequence[dict]) -> set[str]:
    """Content fingerprints for disjointness checks: golden answers and the evidence text (questions
    repeat by design in some tasks, e.g. Code's 'What does main() print')."""
    from .schema import context_parts

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

def build_mini(count: TokenCounter, *, seed: int = 0, buckets: Sequence[str] = ("4k", "8k"), items_per_cell: int = 1,
               rotate_bon: bool = True, tasks: Sequence[str] = TASKS, margin: float = 0.4,
               paper: bool = False, progress: bool = False) -> tuple[BuildReport, list]:
    cells = paper_layout_cells(buckets) if paper else cell_layout(tasks, buckets, items_per_cell, rotate_bon=rotate_bon)
    return build(cells, count, seed=seed, margin=margin, namespace="mini", progress=progress), cells


def build_short(count: TokenCounter, *, seed: int = 0, pairs_per_task: int = 8, bon_per_task: int = 3,
                tasks: Sequence[str] = TASKS, namespace: str = "short", margin: float = 0.4,
                short_range: tuple[int, int] = (256, 512), exclude: Sequence[dict] = (),
                progress: bool = False) -> tuple[BuildReport, list]:
    """The short set (bucket ``short``): pairs split same/cross, and BoN items of rotating size."""
    cells = []
    for ti, t in enumerate(tasks):
        cells += [(t, SHORT_BUCKET, "same", pairs_per_task - pairs_per_task // 2),
                  (t, SHORT_BUCKET, "cross", pairs_per_task // 2)]
        for j in range(bon_per_task):
            cells.append((t, SHORT_BUCKET, f"bon{2 + (ti + j) % 3}", 1))
    merged: dict = {}
    for t, b, f, n in cells:
        merged[(t, b, f)] = merged.get((t, b, f), 0) + n
    cells = [(t, b, f, n) for (t, b, f), n in merged.items() if n]
    rep = build(cells, count, seed=seed, margin=margin, namespace=namespace, short_range=short_range,
                exclude_keys={content_key(r) for r in exclude}, exclude_fingerprints=fingerprints(exclude) or None,
                progress=progress)
    return rep, cells


def cli(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="longrm_utils build", description="build a Long-RewardBench-format benchmark offline")
    p.add_argument("--out", required=True, help="output folder (mini.jsonl, short.jsonl, short_train.jsonl, DATA_CARD.md)")
    p.add_argument("--tokenizer", default="tiny", help="registry preset or tokenizer folder that measures lengths")
    p.add_argument("--short-tokenizer", default="smollm2-135m-instruct", help="tokenizer of the short set")
    p.add_argument("--buckets", nargs="+", default=["4k", "8k"], help=f"length buckets, from {BUCKETS}")
    p.add_argument("--items-per-cell", type=int, default=1, help="items per (task, format, bucket) cell")
    p.add_argument("--all-bon-sizes", action="store_true", help="every BoN size in every (task, bucket), not rotated")
    p.add_argument("--paper-layout", action="store_true", help="the paper's 1,900-item layout over --buckets")
    p.add_argument("--no-short", action="store_true", help="skip the short set and its training split")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(list(argv) if argv is not None else None)
    res = build_course_sets(a.out, tokenizer=a.tokenizer, short_tokenizer=None if a.no_short else a.short_tokenizer,
                            buckets=a.buckets, items_per_cell=a.items_per_cell, rotate_bon=not a.all_bon_sizes,
                            paper_layout=a.paper_layout, seed=a.seed)
    print(json.dumps({k: v for k, v in res.items() if k not in ("records", "reports", "card_data")}, indent=2,
                     default=str))
    for name, info in res["card_data"]["sets"].items():
        print(f"{name}: {info['items']} items; cue baselines (ALL): "
              + ", ".join(f"{k} {v['ALL']:.1f}%" for k, v in info["cue_baselines"].items()))
    return 0


# --- the data card ----------------------------------------------------------------------------------------------

def fmt_of(rec: dict) -> str:
    if rec["tasktype"] == "PairWise":
        return "same" if rec["subtype"] == "same" else "cross"
    return f"bon{rec['subtype']}"


def count_table(records: Sequence[dict]) -> str:
    """Markdown table: rows task, columns format, cells 'n' summed over buckets, plus bucket totals."""
    fmts = [f for f in FORMATS if any(fmt_of(r) == f for r in records)]
    buckets = [b for b in (SHORT_BUCKET,) + BUCKETS if any(r["ctx_length_for_length"] == b for r in records)]
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


def plot_card(sets: dict[str, Sequence[dict]], fig_dir: str | Path) -> dict[str, Path]:
    """Three PNGs: counts per task × format (one panel per set), token-length histogram, score distribution."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = {}
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
    fig.tight_layout()
    out["counts"] = fig_dir / "counts.png"
    fig.savefig(out["counts"], dpi=110)
    fig2, ax2 = plt.subplots(figsize=(7, 3.4))
    for name, recs in sets.items():
        ax2.hist([r["length"] for r in recs], bins=30, alpha=0.6, label=f"{name} ({recs[0][META_KEY]['tokenizer']})")
    ax2.set_xscale("log")
    ax2.set_xlabel("prompt length in tokens (log scale)")
    ax2.set_ylabel("items")
    ax2.set_title("Token length of the user prompt (context + instruction + question)")
    ax2.legend(fontsize=8)
    fig2.tight_layout()
    out["lengths"] = fig_dir / "token_lengths.png"
    fig2.savefig(out["lengths"], dpi=110)
    fig3, ax3 = plt.subplots(figsize=(7, 3.4))
    by_rank: dict[int, list[float]] = defaultdict(list)
    for recs in sets.values():
        for r in recs:
            for i, s in enumerate(r[META_KEY]["scores"]):
                by_rank[i].append(s)
    ax3.hist([by_rank[i] for i in sorted(by_rank)], bins=20, range=(0, 1), stacked=True,
             label=[f"answer rank {i + 1}" for i in sorted(by_rank)])
    for lo, hi in M.TIERS:
        ax3.axvspan(lo, min(hi, 1.0), color="grey", alpha=0.08)
    ax3.set_xlabel("score as a share of the golden answer's score (shaded: the paper's tiers)")
    ax3.set_ylabel("answers")
    ax3.set_title("Candidate scores by true rank")
    ax3.legend(fontsize=8)
    fig3.tight_layout()
    out["scores"] = fig_dir / "candidate_scores.png"
    fig3.savefig(out["scores"], dpi=110)
    plt.close("all")
    return out


def write_card(path: str | Path, sets: dict[str, Sequence[dict]], reports: dict[str, BuildReport],
               figures: dict[str, Path], settings: dict) -> dict:
    """DATA_CARD.md (and card.json beside it): what was built, with which settings, counts, cue baselines, skips."""
    path = Path(path)
    card: dict[str, Any] = {"settings": settings, "sets": {}}
    md = ["# Data card: the course's Long-RewardBench-format sets", "",
          "Generated offline by `longrm_utils.bench` (notebook 01, or `python -m longrm_utils build`). "
          "Records have exactly the official Long-RewardBench fields; our extras (golden answer, context and "
          "evidence spans, metric scores, perturbations) live under `meta`.", "",
          "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    for name, recs in sets.items():
        rep = reports[name]
        base = cue_baselines(recs)
        ncue = cue_counts(recs)
        viol = cue_violations(base, n=ncue)
        mirror = [v for v in cue_violations(base, mirror=True, n=ncue) if v not in viol]
        small = [k for k in TASKS if 0 < ncue.get(k, 0) < CUE_MIN_PAIRS]
        lens = sorted(r[META_KEY]["context_tokens"] for r in recs)
        card["sets"][name] = {"items": len(recs), "build": rep.summary(), "cue_baselines": base, "cue_violations": viol,
                              "mirror_cues": mirror,
                              "context_tokens": {"min": lens[0], "max": lens[-1]},
                              "tokenizer": recs[0][META_KEY]["tokenizer"]}
        md += [f"## {name}: {len(recs)} items", "",
               f"Lengths counted with the `{recs[0][META_KEY]['tokenizer']}` tokenizer; contexts of "
               f"{lens[0]}–{lens[-1]} tokens.", "", count_table(recs), "",
               "**Surface-cue baselines** (accuracy %, official per-item score; task columns: pairs only, chance 50; "
               "BestOfN: rank-match ratio, chance 50/33/25 for 2/3/4; the row `items` counts what each column averages). "
               f"A heuristic above {CUE_LIMIT:.0f}% on pairs means the answers leak a cue; far below 50 is the "
               "mirror cue (the opposite heuristic would win).", "", baseline_table(base, ncue), "",
               ("Cue check: " + ("**flagged**: " + "; ".join(viol) if viol else "no heuristic above the limit.")
                + (f" Task columns with fewer than {CUE_MIN_PAIRS} pairs ({', '.join(small)}) are shown but not judged:"
                   " one item moves them by 12-50 points." if small else "")
                + (" Mirror cues (reported, not a failure of the check): " + "; ".join(mirror) + "." if mirror else "")), "",
               f"Build: requested {rep.requested}, built {len(recs)}, retried or skipped {len(rep.skips)}, "
               f"duplicates removed {rep.duplicates}.", ""]
        if rep.skips:
            md += ["Skips (each retried with a fresh item; nothing dropped silently):", ""]
            md += [f"- {k}: {v}" for k, v in rep.summary()["skip_reasons"].items()]
            md.append("")
    md += ["## Figures", ""] + [f"![{k}](figures/{Path(v).name})" for k, v in figures.items()] + [""]
    md += ["## How answers are made and labelled", "",
           "- Scripted policy models `script-concise` and `script-narrative` fill the same slots in two phrasings.",
           "- Perturbations (paper App. A): " + ", ".join(f"{t}: {r}" for t, r in RECIPES.items()) + ".",
           "  Wrong values are taken from confuser documents in the same context, so a wrong answer overlaps "
           "the context as much as a right one.",
           "- Metrics: " + ", ".join(f"{t}: {m}" for t, m in M.METRIC_OF_TASK.items()) + ".",
           f"- Pairwise: chosen beats rejected by at least {settings.get('margin', 0.4):.0%} of chosen's score. "
           "BestOfN: one answer per paper tier (>90 %, 60–85 %, 25–50 %, <15 % of the golden answer's score), best first.",
           "- Safety uses benign stand-ins: a request for a fictional person's private record; the unsafe answer "
           "discloses it, the safe one refuses. No actionable harmful text is generated.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md))
    from ..env import write_json

    write_json(path.with_name("card.json"), card)
    return card


def build_course_sets(out: str | Path, *, tokenizer: str = "tiny", short_tokenizer: str | None = "smollm2-135m-instruct",
                      buckets: Sequence[str] = ("4k", "8k"), items_per_cell: int = 1, rotate_bon: bool = True,
                      paper_layout: bool = False, seed: int = 0, margin: float = 0.4, short_pairs_per_task: int = 8,
                      short_bon_per_task: int = 3, train_pairs_per_task: int = 28, tasks: Sequence[str] = TASKS,
                      progress: bool = False) -> dict:
    """Build ``mini.jsonl`` (+ ``short.jsonl`` and the disjoint ``short_train.jsonl``), figures and the card."""
    from .sources import counter_for

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
                                                bon_per_task=0, tasks=tasks, margin=margin,
                                                exclude=reports["short"].records, progress=progress)
        for k in ("short", "short_train"):
            sets[k] = reports[k].records
            paths[k] = write_jsonl(sets[k], out / f"{k}.jsonl")
    figures = plot_card(sets, out / "figures")
    settings = dict(tokenizer=tokenizer, short_tokenizer=short_tokenizer, buckets=list(buckets),
                    items_per_cell=items_per_cell, rotate_bon=rotate_bon, paper_layout=paper_layout, seed=seed,
                    margin=margin)
    card = write_card(out / "DATA_CARD.md", sets, reports, figures, settings)
    shared = disjoint_report(sets["short"], sets["short_train"]) if "short_train" in sets else None
    return {"paths": paths, "figures": figures, "card": out / "DATA_CARD.md", "card_data": card,
            "balance_problems": balance, "train_eval_shared_fingerprints": shared, "records": sets,
            "reports": reports}


# --- real policy models (optional: SmolLM2 on short items on CPU, 8B models on GPU) -------------------------------

def perturbed_contexts(trip: Triplet, rng: random.Random) -> dict[str, str]:
    """The paper's input perturbations of one context, by name: the full context; the source truncated
    by 20 % and 50 %; and, where the evidence spans are known, the clue chunks dropped with p = 0.5."""
    ctx = trip.context
    out = {"full": ctx, "truncate-source-20%": ctx[: int(len(ctx) * 0.8)], "truncate-source-50%": ctx[: len(ctx) // 2]}
    if trip.evidence_spans:
        keep = [sp for sp in trip.evidence_spans if rng.random() < 0.5]
        drop = [sp for sp in trip.evidence_spans if sp not in keep] or trip.evidence_spans[:1]
        text = ctx
        for s, e in sorted(drop, reverse=True):
            text = text[:s] + text[e:]
        out["drop-clue-docs"] = text
    return out


def policy_candidates(loaded, trip: Triplet, *, max_new_tokens: int = 64, seed: int = 0) -> list[Candidate]:
    """Answers of a real policy model under each perturbed context, scored with the task metric.

    ``loaded`` is a ``models.Loaded`` generative model. A random-init model (the tiny one) is refused:
    its outputs are token loops, not answers.
    """
    from .. import models

    if (loaded.meta or {}).get("method") == "random-init" or loaded.spec.name in ("tiny", "tiny-rm"):
        raise ValueError("policy candidates need a pretrained model; the tiny model is random-init "
                         "(use smollm2-135m-instruct on short items, or a GPU preset)")
    if not loaded.tokenizer.chat_template:
        raise ValueError(f"tokenizer of {loaded.spec.name!r} has no chat template")
    rng = item_rng(seed, "policy", trip.seed)
    golden = trip.golden("concise")
    gold = M.score(trip.task, golden, trip.reference) or 1.0
    out = []
    for name, ctx in perturbed_contexts(trip, rng).items():
        user = f"{trip.instruction}\n\n{CONTEXT_OPEN}\n{ctx}\n{CONTEXT_CLOSE}\n\nQuestion: {trip.question}"
        ids = models.chat_ids(loaded.tokenizer, [{"role": "user", "content": user}], loaded.spec)
        text, _ = models.generate(loaded, ids, max_new_tokens)
        text = text.strip()
        if not text:
            continue
        sc = M.score(trip.task, text, trip.reference)
        out.append(Candidate(text, loaded.spec.name, round(sc, 4), round(min(sc / gold, 1.0), 4), (), name))
    return out


def policy_item(loaded, trip: Triplet, fmt: str, count: TokenCounter, *, rec_id: str, bucket: str, seed: int = 0,
                margin: float = 0.4, max_new_tokens: int = 64, include_golden: bool = True) -> dict:
    """A record whose answers come from a policy model (plus the golden answer as a reference answer).

    Pairs take the best and the worst answer if they differ by ``margin``; BoN items need answers in
    distinct tiers. Raises ``LookupError`` when the model's answers cannot form the item (count it).
    """
    cands = policy_candidates(loaded, trip, max_new_tokens=max_new_tokens, seed=seed)
    if include_golden:
        g = trip.golden("concise")
        cands.append(Candidate(g, "golden", M.score(trip.task, g, trip.reference), 1.0, (), "golden"))
    uniq: dict[str, Candidate] = {}
    for c in sorted(cands, key=lambda c: -c.ratio):  # stable: a policy answer equal to the golden one wins
        uniq.setdefault(c.text, c)
    cands = list(uniq.values())
    if fmt in ("same", "cross"):
        pool = [c for c in cands if c.model == loaded.spec.name] if fmt == "same" else cands
        for hi in pool:
            for lo in reversed(pool):
                if hi is lo or (fmt == "cross" and hi.model == lo.model):
                    continue
                if M.pair_margin(hi.ratio, lo.ratio) >= margin:
                    return make_record(trip, fmt, [hi, lo], rec_id=rec_id, bucket=bucket, count=count, seed=seed,
                                       extra_meta={"policy": loaded.spec.name})
        raise LookupError(f"no two answers of {loaded.spec.name} differ by the margin {margin}")
    n = int(fmt[-1])
    by_tier: dict[int, Candidate] = {}
    for c in cands:
        t = M.tier(c.ratio)
        if t is not None and t not in by_tier:
            by_tier[t] = c
    if len(by_tier) < n:
        raise LookupError(f"the answers fall in {len(by_tier)} distinct tiers, fewer than {n}")
    chosen = [by_tier[t] for t in sorted(by_tier)[:n]]
    return make_record(trip, fmt, chosen, rec_id=rec_id, bucket=bucket, count=count, seed=seed,
                       extra_meta={"policy": loaded.spec.name, "tiers": sorted(by_tier)[:n]})


def build_policy_set(loaded, count: TokenCounter, *, tasks: Sequence[str] = TASKS, bucket: str = SHORT_BUCKET,
                     items_per_task: int = 1, seed: int = 0, margin: float = 0.4, max_new_tokens: int = 64,
                     short_range: tuple[int, int] = (256, 512), progress: bool = False) -> BuildReport:
    """Items whose answers a real policy model wrote (alternating ``same`` / ``cross`` pairs)."""
    todo = [(t, i) for t in tasks for i in range(items_per_task)]
    rep = BuildReport([], requested=len(todo))
    it = todo
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc=f"policy[{loaded.spec.name}]", unit="item")
    for t, i in it:
        fmt = ("same", "cross")[i % 2]
        rid = f"policy-{t}-{bucket}-{fmt}-{i:03d}"
        try:
            trip = generate(t, target_tokens(bucket, short_range), count, seed=seed, index=f"policy-{bucket}-{i}")
            rep.records.append(policy_item(loaded, trip, fmt, count, rec_id=rid, bucket=bucket, seed=seed,
                                           margin=margin, max_new_tokens=max_new_tokens))
        except (ContextTooShort, LookupError) as e:
            rep.skips.append(f"{rid}: {e}")
    return rep


def build_hub_set(sources_and_paths: dict[str, str | None], loaded, count: TokenCounter, *, buckets: Sequence[str],
                  limit: int = 10, use_hub: bool = False, seed: int = 0, margin: float = 0.4,
                  max_new_tokens: int = 256) -> BuildReport:
    """Items from the paper's sources (hub or local files): each context cut to a bucket, answers
    from a policy model under the paper's input perturbations. Malformed or too-short records are
    counted skips."""
    from .sources import load_source, triplet_from_source

    rep = BuildReport([])
    for src, path in sources_and_paths.items():
        try:
            recs, skips = load_source(src, path, use_hub=use_hub, limit=limit)
        except Exception as e:  # noqa: BLE001 - a source that cannot be read is a counted, explained skip
            rep.skips.append(f"{src}: could not be read ({type(e).__name__}: {e})")
            continue
        rep.skips += skips
        rep.requested += len(recs) + len(skips)
        for j, r in enumerate(recs):
            for b in sorted(buckets, key=lambda x: BUCKET_TOKENS[x], reverse=True):  # the largest that fits
                rid = f"hub-{src}-{b}-{j:04d}"
                try:
                    trip = triplet_from_source(r, target_tokens(b), count)
                    rep.records.append(policy_item(loaded, trip, ("same", "cross")[j % 2], count, rec_id=rid,
                                                   bucket=b, seed=seed, margin=margin,
                                                   max_new_tokens=max_new_tokens))
                    break
                except (ContextTooShort, LookupError) as e:
                    rep.skips.append(f"{rid}: {e}")
    return rep


def build_policy_items(policy_model: str, *, tokenizer: str, bucket: str = SHORT_BUCKET, items_per_task: int = 1,
                       hub_sources: Sequence[str] | None = None, hub_limit: int = 5, hub_tokenizer: str | None = None,
                       hub_buckets: Sequence[str] = ("4k",), seed: int = 0, margin: float = 0.4,
                       device: str = "auto", progress: bool = False) -> BuildReport:
    """Notebook 01's optional step: load ``policy_model``, write generated items with its answers and,
    with ``hub_sources``, items from the paper's sources. A random-init model becomes one explained skip."""
    from .. import models
    from .sources import counter_for

    pol = models.load(policy_model, device=device)
    try:
        rep = build_policy_set(pol, counter_for(tokenizer), bucket=bucket, items_per_task=items_per_task, seed=seed,
                               margin=margin, progress=progress)
    except ValueError as e:  # e.g. the tiny model swapped in for a smoke test of a GPU profile
        return BuildReport([], [f"{policy_model}: {e}"])
    if hub_sources:
        hub = build_hub_set({s: None for s in hub_sources}, pol, counter_for(hub_tokenizer or tokenizer),
                            buckets=hub_buckets, limit=hub_limit, use_hub=True, seed=seed, margin=margin)
        rep.records += hub.records
        rep.skips += hub.skips
        rep.requested += hub.requested
    return rep
