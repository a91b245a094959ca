"""Stage II training data (notebooks 05/06): preference items ``contracts.PrefItem`` (a prompt with
its long context, one chosen response, up to V rejects).

Three routes:

* :func:`consistency_vote`, the paper's §4.3: each pair is split into pointwise scoring tasks
  (:func:`pointwise_tasks`); several judges score and explain each response (:func:`collect_votes`);
  the scores are clustered by agreement (:func:`vote`); the highest-consensus explanation is
  *chosen* and low-consistency explanations are *rejects* (up to V); items without consensus are
  dropped. Judges are anything with ``name``, ``rank`` and ``judge(task) -> raw text``:
  :class:`ModelJudge` (a registry model, greedy or sampled at a temperature) and :class:`RuleJudge`
  (label- or metric-based). GPU profiles use registry models; the CPU route uses the Stage I model
  at several temperatures plus rule judges.
* :func:`pairwise_preferences`, the CPU default's documented departure: the pairwise judge prompt
  in BOTH display orders, chosen = the label-correct rule judgement, rejects = a fluent judgement
  that argues for the worse response, and one whose verdict contradicts its own analysis (the
  paper's §2.2 failure pattern). It attacks position bias directly.
* :func:`record_preferences` for scalar RMs: the benchmark's own labels (best answer chosen);
  :func:`splice_preferences`, the grounding probe's training items (notebook 06 on the CPU default).

:func:`pad_records` applies Stage I's short-to-long padding to whole records, so Stage II can
train at long length. The official LongRM SimPO layout is imported by :mod:`.official`.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from .. import models
from ..bench import metrics, schema
from ..bench.candidates import render_candidate, user_prompt_for
from ..bench.build import target_tokens
from ..bench.generators import FOUNDERS_SUBTASK, FOUNDERS_TOKENS, generate, item_rng, lengthen_founders
from ..constants import SLOT_LETTERS
from ..contracts import PrefItem
from ..judge import parse, prompts
from .evidence import (SynthError, item_critical, item_golden, item_scores, record_parts, skip_reason,
                       split_chunks)
from .stage1_data import filler_pool, short_to_long
from .teachers import Focus, fit_judgement, rule_judgement


@dataclass(frozen=True)
class PointTask:
    """One response of one benchmark item, to be scored on its own (pointwise)."""

    key: str
    """``task/id/r<true rank>``: unique across tasks (official ids are unique only within a task)."""
    record_id: str
    task: str
    true_rank: int
    """0 = the item's best response."""
    response: str
    messages: list
    """The pointwise judge prompt (``judge.prompts.pointwise_messages``) with the full long context."""
    focus: Any = None
    """The labelled short view (:class:`~.teachers.Focus`, one slot) for rule judges; None when labels are missing."""


def pointwise_tasks(records: Sequence[dict], *, templates=None, where: str = "<records>") -> tuple[list[PointTask], Counter]:
    """Step 1: split every Pairwise/BestOfN record into one pointwise task per response.

    Returns ``(tasks, skipped)``; a record without the fields the prompt needs raises
    :class:`SynthError` naming it. Rule judges need the golden answer and evidence from ``meta``;
    records without them still yield tasks (``focus=None``) and are counted under
    ``skipped['no_labels_for_rule_judges']``.
    """
    templates = templates or prompts.load_templates()
    tasks: list[PointTask] = []
    skipped: Counter = Counter()
    for rec in records:
        rid = rec.get("id")
        if "prompt_template" not in rec or "tasktype" not in rec:
            raise SynthError(f"{where}: record {rid!r} needs 'prompt_template' and 'tasktype'")
        try:
            answers = schema.answers(rec)
        except KeyError as e:
            raise SynthError(f"{where}: record {rid!r} has no field {e.args[0]!r}") from None
        try:
            _, ctx, _ = record_parts(rec, where)
            golden = item_golden(rec, where)
            chunks = split_chunks(ctx)
            crit, _ = item_critical(rec, chunks, str(rec.get("question", "")), golden)
            scores = item_scores(rec)
            evidence = [chunks[i] for i in crit]
        except SynthError:
            golden, evidence, scores = None, [], [None] * len(answers)
            skipped["no_labels_for_rule_judges"] += 1
        for r, resp in enumerate(answers):
            focus = None if golden is None else Focus(str(rid), str(rec.get("task")), str(rec.get("question", "")),
                                                      golden, evidence, [resp], [r], [scores[r]])
            tasks.append(PointTask(f"{rec.get('task')}/{rid}/r{r}", str(rid), str(rec.get("task")), r, resp,
                                   prompts.pointwise_messages(templates, rec["prompt_template"], resp), focus))
    return tasks, skipped


# --- judges ----------------------------------------------------------------------------------------------

class RuleJudge:
    """A judge written from labels. ``mode``:

    * ``label``: the task metric stored with the item (``Focus.scores``), else the true rank;
    * ``rank``: only the true rank (best 9, worst 2, linear between) — agrees on order, not on level;
    * ``overlap``: token F1 of the response against the golden answer (``bench.metrics.token_f1``) —
      a weaker judge that is fooled by wording.
    """

    def __init__(self, name: str, rank: int, mode: str = "label", n_responses: int = 2, quote_words: int = 12):
        if mode not in ("label", "rank", "overlap"):
            raise ValueError(f"unknown rule judge mode {mode!r}; use label, rank or overlap")
        self.name, self.rank, self.mode, self.n, self.quote_words = name, rank, mode, n_responses, quote_words

    def score(self, t: PointTask) -> float:
        f = t.focus
        if self.mode == "label" and f.scores[0] is not None:
            return float(f.scores[0])
        if self.mode in ("label", "rank"):
            return 0.9 - 0.7 * t.true_rank / max(1, self.n - 1)
        return float(metrics.token_f1(t.response, f.golden))

    def judge(self, t: PointTask) -> str | None:
        if t.focus is None:
            return None
        return rule_judgement(replace(t.focus, scores=[self.score(t)]), "pointwise", quote_words=self.quote_words, slot=0)


class ModelJudge:
    """A registry model scoring the pointwise prompt; ``temperature > 0`` samples (seeded per task)."""

    def __init__(self, loaded, name: str, rank: int, *, temperature: float = 0.0, max_new_tokens: int = 256,
                 seed: int = 0, max_input_tokens: int | None = None):
        self.loaded, self.name, self.rank = loaded, name, rank
        self.temperature, self.max_new_tokens, self.seed = temperature, max_new_tokens, seed
        self.max_input_tokens = max_input_tokens

    def judge(self, t: PointTask) -> str | None:
        ids = models.chat_ids(self.loaded.tokenizer, t.messages, self.loaded.spec)
        if self.max_input_tokens:
            ids, _ = models.keep_ends(ids, self.max_input_tokens)
        seed = int(hashlib.sha256(f"{self.seed}:{self.name}:{t.key}".encode()).hexdigest()[:8], 16)
        text, _ = models.generate(self.loaded, ids, self.max_new_tokens, temperature=self.temperature, seed=seed)
        return text.strip()


# --- voting ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vote:
    judge: str
    rank: int
    """Judge rank: 0 = the most trusted judge; breaks ties."""
    score: float | None
    """Parsed ``[Score: N]`` (0..10), None when the output did not parse."""
    text: str


@dataclass
class VoteResult:
    status: str
    """``ok``, ``no_consensus``, ``no_reject`` (everyone agreed) or ``too_few_votes``."""
    chosen: Vote | None = None
    rejects: list = field(default_factory=list)
    consensus: list = field(default_factory=list)
    """The votes in the winning agreement cluster."""
    center: float | None = None
    conf: float = 0.0
    """Share of parsed votes in the winning cluster."""


def vote(votes: Sequence[Vote], *, tolerance: float = 1.0, min_agreement: float = 0.5, V: int = 2,
         min_votes: int = 2) -> VoteResult:
    """Cluster parsed scores by agreement and pick chosen/rejects (a pure function).

    * A cluster is centred on one observed score and holds every vote within ``tolerance`` of it.
      The winning cluster has the most votes; ties go to the cluster holding the best-ranked judge,
      then the higher centre.
    * No consensus (the winner holds no more than ``min_agreement`` of the parsed votes, or fewer than
      2 votes) drops the item. With fewer than ``min_votes`` parsed votes it is ``too_few_votes``.
    * Chosen: the consensus vote closest to the cluster's mean score, ties to the best-ranked judge.
    * Rejects: votes outside the cluster, the furthest from the centre first (ties by judge rank),
      up to ``V``; unparsed outputs come after them (a format failure is the least consistent).
      Everyone agreeing leaves no reject: ``no_reject``.
    """
    parsed = [v for v in votes if v.score is not None]
    if len(parsed) < min_votes:
        return VoteResult("too_few_votes")
    centres = sorted({v.score for v in parsed})
    best = None
    for c in centres:
        members = [v for v in parsed if abs(v.score - c) <= tolerance]
        key = (len(members), -min(v.rank for v in members), c)
        if best is None or key > best[0]:
            best = (key, c, members)
    _, centre, members = best
    conf = len(members) / len(parsed)
    if len(members) < 2 or conf <= min_agreement:
        return VoteResult("no_consensus", center=centre, conf=conf, consensus=members)
    mean = sum(v.score for v in members) / len(members)
    chosen = min(members, key=lambda v: (abs(v.score - mean), v.rank))
    ids = {id(v) for v in members}
    outside = sorted((v for v in parsed if id(v) not in ids), key=lambda v: (-abs(v.score - centre), v.rank))
    unparsed = sorted((v for v in votes if v.score is None and v.text), key=lambda v: v.rank)
    rejects = (outside + unparsed)[:V]
    if not rejects:
        return VoteResult("no_reject", chosen=chosen, center=centre, conf=conf, consensus=members)
    return VoteResult("ok", chosen, rejects, members, centre, conf)


@dataclass
class VoteReport:
    tasks: int = 0
    items: int = 0
    status: Counter = field(default_factory=Counter)
    unparsed_votes: int = 0
    votes: int = 0
    rejects_per_item: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"tasks": self.tasks, "items": self.items, "status": dict(self.status), "votes": self.votes,
                "unparsed_votes": self.unparsed_votes, "rejects_per_item": dict(sorted(self.rejects_per_item.items())),
                "skipped": dict(self.skipped)}


def collect_votes(tasks: Sequence[PointTask], judges: Sequence[Any], *, progress: bool = False) -> dict[str, list[Vote]]:
    """Step 2: every judge scores and explains every task (``[Analysis] ... [Score: N]``)."""
    out: dict[str, list[Vote]] = {}
    it = tasks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(tasks, desc="pointwise votes")
    for t in it:
        vs = []
        for j in judges:
            text = j.judge(t)
            if text is None:
                continue
            s, err = parse.parse_score(text)
            vs.append(Vote(j.name, j.rank, None if err else s, text))
        out[t.key] = vs
    return out


def consistency_vote(tasks: Sequence[PointTask], votes: dict[str, list[Vote]], *, V: int = 2, tolerance: float = 1.0,
                     min_agreement: float = 0.5, min_votes: int = 2) -> tuple[list[PrefItem], VoteReport, dict[str, VoteResult]]:
    """Steps 3-4: cluster each task's votes; return (``PrefItem`` list, report, per-task results).

    Each kept item's prompt is the task's pointwise prompt (long context included), ``chosen`` the
    consensus explanation, ``rejects`` the low-consistency ones; ``meta`` keeps the scores, the
    consensus share (``conf``), judges and the true rank. Dropped tasks are counted by status.
    """
    rep = VoteReport(tasks=len(tasks))
    items, results = [], {}
    for t in tasks:
        vs = votes.get(t.key)
        if vs is None:
            rep.skipped["no_votes_collected"] += 1
            continue
        rep.votes += len(vs)
        rep.unparsed_votes += sum(v.score is None for v in vs)
        r = vote(vs, tolerance=tolerance, min_agreement=min_agreement, V=V, min_votes=min_votes)
        results[t.key] = r
        rep.status[r.status] += 1
        if r.status != "ok":
            continue
        rep.rejects_per_item[len(r.rejects)] += 1
        items.append(PrefItem(t.key, list(t.messages), r.chosen.text, [v.text for v in r.rejects], {
            "record_id": t.record_id, "task": t.task, "true_rank": t.true_rank, "conf": round(r.conf, 4),
            "consensus_score": r.center, "chosen_judge": r.chosen.judge, "chosen_score": r.chosen.score,
            "scores": [r.chosen.score] + [v.score for v in r.rejects],
            "reject_judges": [v.judge for v in r.rejects], "source": "consistency_vote"}))
    rep.items = len(items)
    return items, rep, results


# --- the CPU route: pairwise preferences in both orders ------------------------------------------------

def flip_verdict(judgement: str) -> str:
    """The same analysis with the final pairwise verdict letter swapped (A<->B): a self-contradiction."""
    m = list(re.finditer(r"\[\[([AB])\]\]", judgement))
    if not m:
        raise SynthError(f"no [[A]]/[[B]] verdict to flip in {judgement[-60:]!r}")
    last = m[-1]
    other = "B" if last.group(1) == "A" else "A"
    return judgement[:last.start(1)] + other + judgement[last.end(1):]


def pairwise_preferences(records: Sequence[dict], *, tokenizer=None, max_tokens: int | None = None,
                         both_orders: bool = True, V: int = 2, seed: int = 0, templates=None,
                         where: str = "<records>") -> tuple[list[PrefItem], Counter]:
    """Preference items for the pairwise judge prompt, in both display orders (CPU route).

    For each PairWise record and each order: chosen = the label-correct rule judgement (fitted to
    ``max_tokens`` new tokens when a tokenizer is given); rejects, in this order and up to ``V``:
    (1) the same kind of judgement arguing for the worse response, (2) the chosen analysis with its
    verdict flipped. Only PairWise records are used; others are counted under ``not_pairwise``.
    """
    if V < 1:
        raise ValueError("V must be at least 1")
    templates = templates or prompts.load_templates()

    def write(f: Focus) -> str:
        return fit_judgement(tokenizer, f, "pairwise", max_tokens) if tokenizer else rule_judgement(f, "pairwise")

    items, counts = [], Counter()
    for rec in records:
        if rec.get("tasktype") != "PairWise":
            counts["not_pairwise"] += 1
            continue
        try:
            s = short_to_long(rec, tokenizer, None, [], seed=seed, where=where)
            golden = item_golden(rec, where)
        except SynthError as e:
            counts[skip_reason(e)] += 1
            continue
        answers, scores = schema.answers(rec), item_scores(rec)
        evidence = [s.chunks[i] for i in s.critical]
        key = f"{rec.get('task')}:{rec.get('id')}"
        for order in schema.display_orders(rec, 2, order_seed=seed, passes=2 if both_orders else 1):
            slots = [answers[r] for r in order]
            f = Focus(str(rec.get("id")), str(rec.get("task")), str(rec.get("question", "")), golden, evidence, slots,
                      list(order), [scores[r] for r in order])
            wrong = replace(f, true_rank=[1 - r for r in order], scores=f.scores[::-1])
            try:
                chosen, argued = write(f), write(wrong)
            except SynthError as e:
                counts[skip_reason(e)] += 1
                continue
            rejects = [argued, flip_verdict(chosen)][:V]
            best = SLOT_LETTERS[order.index(0)]
            items.append(PrefItem(f"{key}:{''.join(map(str, order))}",
                                  prompts.judge_messages(templates, rec["prompt_template"], slots, pairwise=True),
                                  chosen, rejects, {"record_id": str(rec.get("id")), "task": rec.get("task"),
                                                    "order": list(order), "best_slot": best,
                                                    "source": "pairwise_both_orders"}))
            counts["items"] += 1
            counts[f"best_slot_{best}"] += 1
    return items, counts


# --- long training prompts for Stage II ------------------------------------------------------------------

def pad_records(records: Sequence[dict], tokenizer, target_tokens: int | None, *, pool_records: Sequence[dict] | None = None,
                seed: int = 0, where: str = "<records>") -> tuple[list[dict], Counter]:
    """Stage I's short-to-long padding applied to whole records, so Stage II can train at long length.

    Each record's context is padded to exactly ``target_tokens`` with its own irrelevant chunks, then
    other training records' (``pool_records``); the critical chunks stay intact. ``None`` returns the
    records unchanged. Records that can't be padded are skipped and counted by reason.
    """
    if not target_tokens:
        return list(records), Counter()
    pool = filler_pool(pool_records if pool_records is not None else records, seed, where)
    out, skipped = [], Counter()
    for rec in records:
        try:
            out.append(short_to_long(rec, tokenizer, target_tokens, pool, seed=seed, where=where).long_record)
        except SynthError as e:
            skipped[skip_reason(e)] += 1
    return out, skipped


# --- scalar RMs: the benchmark's own labels -----------------------------------------------------------

def record_preferences(records: Sequence[dict], *, V: int = 3, tasktypes: Sequence[str] = ("PairWise", "BestOfN"),
                       where: str = "<records>") -> tuple[list[PrefItem], Counter]:
    """Scalar-RM preference items straight from labelled records: prompt = the task prompt (long
    context included), chosen = the best answer, rejects = the others, best first, up to ``V``.

    A PairWise record gives one reject; a BestOfN-4 record up to three. Records of other tasktypes
    are counted under ``skipped_tasktype``; a record missing its answers raises naming it.
    """
    items, counts = [], Counter()
    for rec in records:
        if rec.get("tasktype") not in tasktypes:
            counts["skipped_tasktype"] += 1
            continue
        try:
            ans = schema.answers(rec)
        except KeyError as e:
            raise SynthError(f"{where}: record {rec.get('id')!r} has no field {e.args[0]!r}") from None
        if len(ans) < 2 or not all(isinstance(a, str) and a for a in ans):
            raise SynthError(f"{where}: record {rec.get('id')!r} needs at least two non-empty answers")
        items.append(PrefItem(f"{rec.get('task')}:{rec.get('id')}", list(rec["prompt_template"]), ans[0], ans[1:1 + V],
                              {"record_id": str(rec.get("id")), "task": rec.get("task"),
                               "tasktype": rec.get("tasktype"), "bucket": rec.get("ctx_length_for_length"),
                               "source": "benchmark_labels"}))
        counts[rec["tasktype"]] += 1
    return items, counts


def splice_preferences(n: int, count, *, seed: int = 0, token_range: tuple[int, int] = FOUNDERS_TOKENS,
                       exclude_golden: Sequence[str] = (), bucket: str | None = None,
                       first: int = 0) -> tuple[list[PrefItem], Counter]:
    """Training items of the grounding probe (notebook 06 on the CPU default): ``n`` questions of the
    LongQA ``founders`` subtask (:data:`~longrm_utils.bench.generators.FOUNDERS_SUBTASK`), each with the
    golden answer chosen and exactly two rejects in the concise phrasing, one with a wrong first name
    and one with a wrong surname, both spliced from names in the context.

    They are Best-of-3 *preference items* (the multi-reject loss with V = 2), not BestOfN records: both
    rejects fall in the same quality tier. Items whose golden answer is in ``exclude_golden`` (the
    held-out set's) are left out and counted under ``excluded_shared``. Measured in
    ``benchmarks/RESULTS.md``: these items teach SmolLM2-135M-RM the check in 40 steps (0.50 -> 0.95
    on held-out pairs), while the benchmark's own mixed pairs and tiers reached 0.66 in the same 40.

    ``bucket`` (e.g. ``"4k"``) rebuilds each context to that bucket's length around the same five
    founder documents, with founder facts about other institutions as filler
    (:func:`~longrm_utils.bench.generators.lengthen_founders`): the long half of short-to-long training.
    ``first`` is the index of the first question, so that a long set can use questions a short set did not.
    """
    exclude, items, counts = set(exclude_golden), [], Counter()
    for i in range(first, first + n):
        trip = generate("LongQA", token_range, count, seed=seed, index=f"splice-{i}", subtask=FOUNDERS_SUBTASK)
        rng = item_rng(seed, "splice", i)
        chosen, *rejects = [render_candidate(trip, "concise", wrong, rng).text for wrong in ((), (0,), (1,))]
        if trip.golden("concise") in exclude:
            counts["excluded_shared"] += 1
            continue
        context = None
        if bucket is not None:
            spans = sorted(trip.evidence_spans + [tuple(x) for x in trip.extra["confuser_spans"]])
            context = lengthen_founders(trip.context, spans, trip.question, target_tokens(bucket), count,
                                        item_rng(seed, "splice-long", i, bucket)).text
        user = user_prompt_for(trip, context)[0]
        items.append(PrefItem(f"LongQA:splice-{i}" + (f"-{bucket}" if bucket else ""), [{"role": "user", "content": user}],
                              chosen, rejects, {"task": "LongQA", "source": "grounding_splices", "bucket": bucket}))
        counts["splices"] += 1
    return items, counts
