"""Judge backends: heuristics, scalar RMs with shared-prefix scoring, HF generate, optional vLLM.

Every backend answers one question, :meth:`judge_item`: given an item and its display orders
(pass 0, and pass 1 = reversed), return one :class:`PassResult` per order. Working per item lets a
backend share work across orders and candidates:

* **Scalar RMs** score each *answer* once (a score does not depend on where it is displayed), and
  with ``shared_prefix=True`` encode the common token prefix of all candidates (chat header, task
  prompt and long context) once, then run each candidate's suffix on that KV cache, cropping the
  cache back after each one. The pooled token is the last non-pad token, exactly as
  ``AutoModelForSequenceClassification`` pools. Scores equal full-sequence scoring within
  :data:`SHARED_PREFIX_RTOL` (float32 on CPU; tested on tiny and SmolLM2).
* **Generative judges** prefill the longest common token prefix of the two orders' prompts once
  (the context comes before the responses in our templates) and generate each order from it. With
  ``batch_size > 1`` (the harness's default for HF judges), short items are judged several at a
  time instead, every order of each in one left-padded batch, with the same texts and verdict
  log-probabilities (tested; speed in benchmarks/RESULTS.md); long prompts stay one item at a time.
* **Pointwise judges** generate one ``[Score: N]`` per answer from the shared context prefix and
  reuse those scores for both orders.

Each pairwise line also carries ``pref_prob``, the judge's probability that slot A holds the better
answer, for the ranking and calibration metrics: sigma(r_A - r_B) for scalar RMs, and for HF
generative judges the teacher-forced softmax over log P(``[[A]]``) and log P(``[[B]]``) as the first
tokens of the reply (those two log-probabilities are the line's ``slot_scores``). Heuristics and
text-only backends leave it empty.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import models
from ..bench import cues
from ..runtime import get_logger
from . import parse, prompts

log = get_logger("judge")

SHARED_PREFIX_RTOL = 1e-4
"""Stated tolerance: |shared - full| <= SHARED_PREFIX_ATOL + SHARED_PREFIX_RTOL * |full| (float32)."""
SHARED_PREFIX_ATOL = 1e-4

GEN_BATCH_TOKENS = 8192
"""Most padded prompt tokens in one batched generation (rows x longest prompt): long prompts are
judged one item at a time, where the two orders share their prefix instead."""


@dataclass
class ItemView:
    """What a backend needs from a benchmark record."""

    rec: dict
    answers: list[str]
    """Responses best first (``bench.schema.answers``)."""
    messages: list[dict]
    """The record's ``prompt_template``."""
    context: str
    """The long context alone (for the overlap heuristic)."""

    @property
    def pairwise(self) -> bool:
        return self.rec.get("tasktype") == "PairWise"

    @property
    def n(self) -> int:
        return len(self.answers)


@dataclass
class PassResult:
    raw: Any
    ranking: list[int] | None
    parse_error: str | None = None
    strict_error: str | None = None
    slot_scores: list[float] | None = None
    tie: bool = False
    truncated: bool = False
    prompt_tokens: int = 0
    timing: dict = field(default_factory=dict)
    pref_prob: float | None = None
    """P(slot A is better) on a pairwise line: sigma of the slot-score difference; None elsewhere."""


def order_messages(templates: prompts.Templates, item: ItemView, order: list[int]) -> list[dict]:
    """The judging chat of one display order: the item's answers in slots ``order``."""
    return prompts.judge_messages(templates, item.messages, [item.answers[o] for o in order], pairwise=item.pairwise)


def verdict_result(text: str, item: ItemView, **kw: Any) -> PassResult:
    """A generated judgement parsed by the official rules (and the strict ones, for ``strict_error``);
    ``kw`` fills the other :class:`PassResult` fields."""
    off = parse.parse_verdict(text, item.n, pairwise=item.pairwise, mode=parse.OFFICIAL)
    strict = parse.parse_verdict(text, item.n, pairwise=item.pairwise, mode=parse.STRICT)
    return PassResult(text, off.ranking, off.error, strict.error, **kw)


def sigmoid_diff(a: float, b: float) -> float:
    """sigma(a - b), the Bradley-Terry probability that the item scored ``a`` wins, without overflow."""
    d = a - b
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))


def lcp(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs[1:]):
            return i
    return n


def _ranked(slot_scores: list[float | None], raw: Any, *, strict_error: str | None = None,
            truncated: bool = False, prompt_tokens: int = 0, timing: dict | None = None) -> PassResult:
    if any(s is None for s in slot_scores):
        return PassResult(raw, None, "no_score", strict_error or "no_score", slot_scores, False, truncated,
                          prompt_tokens, timing or {})
    return PassResult(raw, parse.rank_by_scores(slot_scores), None, strict_error, slot_scores,
                      parse.has_tie(slot_scores), truncated, prompt_tokens, timing or {})


# --- heuristics -----------------------------------------------------------------------------------

class HeuristicJudge:
    """Reference baselines from :mod:`longrm_utils.bench.cues`: ``random``, ``longer`` and
    ``overlap``. The answers are ranked once per item (ties broken by the item's seeded coin), and
    each display order shows that ranking, so no heuristic prefers a slot."""

    kind = "heuristic"

    def __init__(self, name: str, seed: int = cues.TIE_SEED):
        if name not in cues.HEURISTICS:
            raise ValueError(f"unknown heuristic {name!r}; have {cues.HEURISTICS}")
        self.name, self.seed = name, seed

    def judge_item(self, item: ItemView, orders: list[list[int]]) -> list[PassResult]:
        t0 = time.perf_counter()
        ranks = cues.heuristic_ranking(item.rec, self.name, self.seed)
        scores = None if self.name == "random" else cues.heuristic_scores(item.rec, self.name)
        out = [PassResult(None if scores is None else [scores[o] for o in order], [ranks[o] for o in order],
                          slot_scores=None if scores is None else [scores[o] for o in order],
                          tie=scores is not None and parse.has_tie(scores))
               for order in orders]
        dt = time.perf_counter() - t0
        for r in out:
            r.timing = {"total_s": dt / len(out)}
        return out


# --- scalar RMs -----------------------------------------------------------------------------------

def _parts(model):
    """(backbone, score head) of a sequence-classification model, through a PEFT wrapper if any."""
    m = models.unwrap(model)
    if not hasattr(m, "score"):
        raise TypeError(f"{type(m).__name__} has no `score` head; load the judge with kind='scalar'")
    return getattr(m, m.base_model_prefix), m.score


def pool_index(ids: Sequence[int], pad_id: int | None) -> int:
    """Index of the token a sequence-classification head pools: the last one that is not padding."""
    if pad_id is None:
        return len(ids) - 1
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] != pad_id:
            return i
    return len(ids) - 1


def _pad_id(loaded: models.Loaded) -> int | None:
    m = models.unwrap(loaded.model)
    pid = m.config.get_text_config().pad_token_id if hasattr(m.config, "get_text_config") else m.config.pad_token_id
    return pid


def score_full(loaded: models.Loaded, seqs: Sequence[Sequence[int]], *, batch_size: int = 1,
               padding_side: str = "right") -> list[float]:
    """Score each full sequence independently (batched with padding, mask and explicit positions)."""
    import torch

    body, head = _parts(loaded.model)
    pad = _pad_id(loaded)
    pad_fill = pad if pad is not None else 0
    out: list[float] = []
    for b in range(0, len(seqs), batch_size):
        chunk = [list(s) for s in seqs[b:b + batch_size]]
        L = max(len(s) for s in chunk)
        ids, mask, pidx = [], [], []
        for s in chunk:
            k = L - len(s)
            if padding_side == "left":
                ids.append([pad_fill] * k + s), mask.append([0] * k + [1] * len(s))
                pidx.append(k + pool_index(s, pad))
            else:
                ids.append(s + [pad_fill] * k), mask.append([1] * len(s) + [0] * k)
                pidx.append(pool_index(s, pad))
        ids_t = torch.tensor(ids, device=loaded.device)
        mask_t = torch.tensor(mask, device=loaded.device)
        pos = (mask_t.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            h = body(input_ids=ids_t, attention_mask=mask_t if len(chunk) > 1 else None,
                     position_ids=pos, use_cache=False).last_hidden_state
            sel = h[torch.arange(len(chunk), device=h.device), torch.tensor(pidx, device=h.device)]
            out += [float(x) for x in head(sel).float()[:, 0].cpu()]
    return out


def score_shared_prefix(loaded: models.Loaded, seqs: Sequence[Sequence[int]], *,
                        prefix_len: int | None = None) -> tuple[list[float], int]:
    """Encode the common prefix once, score each candidate's suffix from its KV cache.

    Returns (scores, prefix tokens reused). The prefix stops before every pooled token, so each
    candidate's suffix is non-empty and holds the token the head reads.
    """
    import torch

    pad = _pad_id(loaded)
    pidx = [pool_index(s, pad) for s in seqs]
    P = lcp(seqs) if prefix_len is None else prefix_len
    P = min(P, min(pidx))
    if P <= 0 or len(seqs) < 2:
        return score_full(loaded, seqs), 0
    body, head = _parts(loaded.model)
    scores = []
    with torch.no_grad():
        cache = body(input_ids=torch.tensor([list(seqs[0][:P])], device=loaded.device), use_cache=True).cache
        for s, pi in zip(seqs, pidx):
            o = body(input_ids=torch.tensor([list(s[P:])], device=loaded.device), cache=cache, use_cache=True)
            scores.append(float(head(o.last_hidden_state[0, pi - P]).float()[0]))
            cache.crop(P - cache.get_seq_length())
    return scores, P


class ScalarJudge:
    kind = "scalar"

    def __init__(self, loaded: models.Loaded, *, max_input_tokens: int, shared_prefix: bool = True,
                 batch_size: int = 1):
        _parts(loaded.model)
        self.loaded, self.limit, self.shared, self.batch_size = loaded, max_input_tokens, shared_prefix, batch_size

    def candidate_ids(self, item: ItemView) -> tuple[list[list[int]], list[bool]]:
        """Each answer's chat as token ids, and whether it was cut to the input limit.

        A cut shortens the shared part (the context) once, keeping its first and last halves, and
        leaves every answer whole: the candidates still share one prefix, encoded once. Only when
        the answers alone exceed the limit is each sequence cut on its own.
        """
        seqs = [models.chat_ids(self.loaded.tokenizer, prompts.scalar_messages(item.messages, a), self.loaded.spec,
                                add_generation_prompt=False) for a in item.answers]
        if max(map(len, seqs)) <= self.limit:
            return seqs, [False] * len(seqs)
        P = min(lcp(seqs), min(map(len, seqs)) - 1) if len(seqs) > 1 else len(seqs[0]) - 1
        budget = self.limit - max(len(s) - P for s in seqs)
        if P > 0 and budget > 0:
            head, _ = models.keep_ends(list(seqs[0][:P]), budget)
            return [head + list(s[P:]) for s in seqs], [True] * len(seqs)
        cut = [models.keep_ends(s, self.limit) for s in seqs]
        return [c[0] for c in cut], [c[1] for c in cut]

    def judge_item(self, item: ItemView, orders: list[list[int]]) -> list[PassResult]:
        t0 = time.perf_counter()
        seqs, trunc = self.candidate_ids(item)
        if self.shared:
            scores, P = score_shared_prefix(self.loaded, seqs)
        else:
            scores, P = score_full(self.loaded, seqs, batch_size=self.batch_size), 0
        dt = time.perf_counter() - t0
        out = []
        for k, order in enumerate(orders):
            slot = [scores[o] for o in order]
            r = _ranked(slot, slot, truncated=any(trunc), prompt_tokens=max(len(s) for s in seqs),
                        timing={"total_s": dt if k == 0 else 0.0, "prefix_tokens": P,
                                "tokens": sum(len(s) for s in seqs),
                                "encoded_tokens": P + sum(len(s) - P for s in seqs)})
            if item.pairwise and r.ranking is not None:
                r.pref_prob = sigmoid_diff(slot[0], slot[1])
            out.append(r)
        return out


# --- generative judges ----------------------------------------------------------------------------

class HFGenerativeJudge:
    """Greedy HF ``generate``; the common prefix of the prompts is prefilled once and reused."""

    kind = "generative"

    def __init__(self, loaded: models.Loaded, *, templates: prompts.Templates, max_new_tokens: int,
                 max_input_tokens: int, reuse_cache: bool = True, verdict_probs: bool = True, batch_size: int = 1):
        self.loaded, self.t, self.max_new = loaded, templates, max_new_tokens
        self.limit, self.reuse, self.verdict_probs = max_input_tokens, reuse_cache, verdict_probs
        self.batch_size = batch_size

    def prompt_ids(self, messages: list[dict]) -> tuple[list[int], bool]:
        ids = models.chat_ids(self.loaded.tokenizer, messages, self.loaded.spec)
        return models.keep_ends(ids, self.limit)

    def verdict_ids(self) -> list[list[int]]:
        """Token ids of the pairwise verdicts ``[[A]]`` and ``[[B]]`` as a reply would start."""
        return [self.loaded.tokenizer.encode(f"[[{c}]]", add_special_tokens=False) for c in "AB"]

    def _verdict_logps(self, s: list[int], cache, verdicts: list[list[int]]):
        """Teacher-forced log P(verdict | prompt ``s``) for each verdict. ``cache`` (None, or holding a
        prefix of ``s``) is extended to ``len(s) - 1`` tokens and left there, so that ``generate`` then
        reads only the last prompt token: the verdicts cost a few tokens, not a second prefill."""
        import torch

        model, dev = self.loaded.model, self.loaded.device
        start = 0 if cache is None else cache.get_seq_length()
        with torch.no_grad():
            if start < len(s) - 1:
                o = model(input_ids=torch.tensor([s[start:-1]], device=dev), cache=cache, use_cache=True,
                          logits_to_keep=1)
                cache = o.cache
            out = []
            for v in verdicts:
                logits = model(input_ids=torch.tensor([[s[-1]] + v[:-1]], device=dev), cache=cache,
                               use_cache=True).logits[0].float()
                lp = torch.log_softmax(logits, -1)
                out.append(float(lp[torch.arange(len(v)), torch.tensor(v, device=lp.device)].sum()))
                cache.crop(len(s) - 1 - cache.get_seq_length())
        return cache, out

    def generate_many(self, seqs: list[list[int]], verdicts: list[list[int]] | None = None
                      ) -> tuple[list[tuple[str, int]], dict]:
        """Generate for each prompt; returns [(text, new tokens)] and timings (prefill, per prompt).

        With ``verdicts`` (token ids of ``[[A]]`` and ``[[B]]``), each prompt's teacher-forced verdict
        log-probabilities are measured first, from the same cache, into ``timing["verdict_logps"]``.
        """
        import torch

        P = min(lcp(seqs), min(len(s) for s in seqs) - 1) if len(seqs) > 1 and self.reuse else 0
        timing: dict[str, Any] = {"prefill_s": 0.0, "prefix_tokens": max(P, 0), "gen_s": [], "verdict_s": [],
                                  "verdict_logps": []}
        cache = None
        if P > 0:
            t0 = time.perf_counter()
            with torch.no_grad():
                # logits_to_keep=1: the prefill needs the cache, not [P x vocab] logits (40 GB at 128k)
                cache = self.loaded.model(input_ids=torch.tensor([seqs[0][:P]], device=self.loaded.device),
                                          use_cache=True, logits_to_keep=1).cache
            timing["prefill_s"] = time.perf_counter() - t0
        outs = []
        for s in seqs:
            t0 = time.perf_counter()
            run_cache = cache
            if verdicts and len(s) > 1:
                run_cache, lps = self._verdict_logps(s, cache, verdicts)
                timing["verdict_logps"].append(lps)
            timing["verdict_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text, new = models.generate(self.loaded, s, self.max_new, cache=run_cache)
            if cache is not None:
                cache.crop(P - cache.get_seq_length())
            timing["gen_s"].append(time.perf_counter() - t0)
            outs.append((text, len(new)))
        return outs, timing

    def judge_item(self, item: ItemView, orders: list[list[int]]) -> list[PassResult]:
        seqs, trunc = [], []
        for order in orders:
            ids, t = self.prompt_ids(order_messages(self.t, item, order))
            seqs.append(ids), trunc.append(t)
        verdicts = self.verdict_ids() if item.pairwise and self.verdict_probs else None
        outs, tm = self.generate_many(seqs, verdicts)
        res = []
        for k, ((text, n_new), ids, t) in enumerate(zip(outs, seqs, trunc)):
            pre = tm["prefill_s"] if k == 0 else 0.0
            lps = tm["verdict_logps"][k] if len(tm.get("verdict_logps", ())) > k else None
            vs = tm["verdict_s"][k] if tm.get("verdict_s") else 0.0
            res.append(verdict_result(text, item, slot_scores=lps, truncated=t, prompt_tokens=len(ids),
                                      timing={"total_s": pre + vs + tm["gen_s"][k], "prefill_s": pre, "verdict_s": vs,
                                              "gen_s": tm["gen_s"][k], "new_tokens": n_new,
                                              "prefix_tokens": tm["prefix_tokens"]},
                                      pref_prob=None if lps is None else sigmoid_diff(lps[0], lps[1])))
        return res

    # --- several items at once ---------------------------------------------------------------------

    def judge_items(self, items) -> Any:
        """Judge ``(item, orders)`` pairs, yielding each item's results (or its exception) in order.

        Up to ``batch_size`` consecutive items go into one batch (:meth:`generate_batch`), every order
        of each, with each item's common prefix prefilled once, while the padded batch stays within
        :data:`GEN_BATCH_TOKENS`; an item that fits no batch with another is judged alone
        (:meth:`judge_item`, which shares its orders' prefix too). A batch decodes all its rows in one
        step per token (measured in benchmarks/RESULTS.md). A batch that raises is judged again item
        by item, so that an error lands on its own item only.
        """
        cls = type(self)  # pointwise and vLLM judges keep their own per-item paths
        batching = (getattr(self, "batch_size", 1) > 1 and cls.judge_item is HFGenerativeJudge.judge_item
                    and cls.generate_many is HFGenerativeJudge.generate_many)
        group: list = []
        for item, orders in items:
            if not batching:
                yield from self._alone(item, orders)
                continue
            try:
                seqs = [self.prompt_ids(order_messages(self.t, item, o)) for o in orders]
            except Exception as e:  # noqa: BLE001 - this item's error, after the items before it
                yield from self._judge_group(group)
                group = []
                yield e
                continue
            new = group + [(item, orders, seqs)]
            rows, longest = sum(len(g[2]) for g in new), max(len(ids) for g in new for ids, _ in g[2])
            if group and rows * longest > GEN_BATCH_TOKENS:
                yield from self._judge_group(group)
                new = [(item, orders, seqs)]
            group = new
            if len(group) >= self.batch_size:
                yield from self._judge_group(group)
                group = []
        yield from self._judge_group(group)

    def _alone(self, item: ItemView, orders: list[list[int]]):
        try:
            yield self.judge_item(item, orders)
        except Exception as e:  # noqa: BLE001 - recorded per item by the run loop
            yield e

    def _judge_group(self, group: list):
        if len(group) == 1:
            yield from self._alone(*group[0][:2])
        elif group:
            try:
                results = self._judge_batch(group)
            except Exception as e:  # noqa: BLE001 - judged again one by one: the error lands on its own item
                log.warning(f"a batch of {len(group)} items failed ({type(e).__name__}: {str(e)[:200]}); "
                            "judging them one at a time")
                for item, orders, _ in group:
                    yield from self._alone(item, orders)
                return
            yield from results

    def _judge_batch(self, group: list) -> list[list[PassResult]]:
        t0 = time.perf_counter()
        prepared = [pair for _, _, seqs in group for pair in seqs]
        seqs = [ids for ids, _ in prepared]
        pairwise = self.verdict_probs and any(item.pairwise for item, _, _ in group)
        outs, lps, prefix = self.generate_batch(seqs, self.verdict_ids() if pairwise else None,
                                                groups=[len(g_seqs) for _, _, g_seqs in group])
        share = (time.perf_counter() - t0) / len(seqs)
        results, k = [], 0
        for item, orders, _ in group:
            res = []
            for _ in orders:
                (text, n_new), lp = outs[k], (lps[k] if lps and item.pairwise else None)
                res.append(verdict_result(text, item, slot_scores=lp, truncated=prepared[k][1],
                                          prompt_tokens=len(seqs[k]),
                                          timing={"total_s": share, "new_tokens": n_new, "batch_rows": len(seqs),
                                                  "prefix_tokens": prefix[k]},
                                          pref_prob=None if lp is None else sigmoid_diff(lp[0], lp[1])))
                k += 1
            results.append(res)
        return results

    def generate_batch(self, seqs: list[list[int]], verdicts: list[list[int]] | None = None,
                       groups: list[int] | None = None
                       ) -> tuple[list[tuple[str, int]], list[list[float]] | None, list[int]]:
        """Greedy generation for all ``seqs`` in one batch; returns [(text, new tokens)], with
        ``verdicts`` each prompt's teacher-forced log P(verdict) (as :meth:`_verdict_logps`, read from
        the same prefill, so they cost a few tokens per row), and each row's shared prefix length.

        ``groups`` counts consecutive rows that belong together (the display orders of one item). A
        group's common prefix is prefilled once, in a batch with one row per group, and its cache is
        copied to the group's rows; then each row's own suffix follows. A row is laid out as
        ``[pad | prefix | pad | suffix]``, with the attention mask and the positions skipping the pads.
        """
        import torch

        model, dev, tok = self.loaded.model, self.loaded.device, self.loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        groups = groups or [1] * len(seqs)
        if sum(groups) != len(seqs):
            raise ValueError(f"groups count {sum(groups)} rows for {len(seqs)} prompts")
        owner = [g for g, n in enumerate(groups) for _ in range(n)]
        first = [sum(groups[:g]) for g in range(len(groups))]
        prefix = []
        for g, n in enumerate(groups):
            rows = seqs[first[g]:first[g] + n]
            prefix.append(min(lcp(rows) if n > 1 else len(rows[0]), min(len(r) for r in rows) - 1))
        Mp = max(prefix)
        Ms = max(len(s) - prefix[g] for s, g in zip(seqs, owner))
        M = Mp + Ms
        ids, mask = [], []
        for s, g in zip(seqs, owner):
            P, k = prefix[g], len(s) - prefix[g]
            ids.append([pad] * (Mp - P) + list(s[:P]) + [pad] * (Ms - k) + list(s[P:]))
            mask.append([0] * (Mp - P) + [1] * P + [0] * (Ms - k) + [1] * k)
        ids, mask = torch.tensor(ids, device=dev), torch.tensor(mask, device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        lps = None
        with torch.no_grad():
            cache = None
            if Mp > 0:
                heads = torch.tensor(first, device=dev)
                cache = model(input_ids=ids[heads, :Mp], attention_mask=mask[heads, :Mp],
                              position_ids=pos[heads, :Mp], use_cache=True, logits_to_keep=1).cache
                cache.batch_select_indices(torch.tensor(owner, device=dev))
            if M - 1 > Mp:
                cache = model(input_ids=ids[:, Mp:M - 1], attention_mask=mask[:, :M - 1],
                              position_ids=pos[:, Mp:M - 1], cache=cache, use_cache=True, logits_to_keep=1).cache
            if verdicts:
                cols = []
                for v in verdicts:
                    x = torch.cat([ids[:, -1:], torch.tensor([v[:-1]] * len(seqs), device=dev, dtype=ids.dtype)], 1)
                    m = torch.cat([mask, torch.ones(len(seqs), len(v) - 1, device=dev, dtype=mask.dtype)], 1)
                    p = pos[:, -1:] + torch.arange(len(v), device=dev)
                    lp = torch.log_softmax(model(input_ids=x, attention_mask=m, position_ids=p, cache=cache,
                                                 use_cache=True).logits.float(), -1)
                    cols.append(lp[:, torch.arange(len(v)), torch.tensor(v, device=dev)].sum(-1).tolist())
                    cache.crop(M - 1 - cache.get_seq_length())
                lps = [list(r) for r in zip(*cols)]
            out = model.generate(ids, attention_mask=mask, cache=cache, max_new_tokens=self.max_new, do_sample=False,
                                 pad_token_id=pad)
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        texts = []
        for row in out[:, M:].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            texts.append((tok.decode(row[:end], skip_special_tokens=True), end))
        return texts, lps, [prefix[g] for g in owner]


class PointwiseJudge(HFGenerativeJudge):
    """``[Analysis] ... [Score: N]`` for each answer from the shared context; ranks by score."""

    kind = "pointwise"

    def judge_item(self, item: ItemView, orders: list[list[int]]) -> list[PassResult]:
        seqs, trunc = [], []
        for a in item.answers:
            ids, t = self.prompt_ids(prompts.pointwise_messages(self.t, item.messages, a))
            seqs.append(ids), trunc.append(t)
        outs, tm = self.generate_many(seqs)
        texts = [o[0] for o in outs]
        parsed = [parse.parse_score(x, parse.OFFICIAL) for x in texts]
        strict = [parse.parse_score(x, parse.STRICT) for x in texts]
        strict_err = next((e for _, e in strict if e), None)
        scores = [s for s, _ in parsed]
        total = tm["prefill_s"] + sum(tm["gen_s"])
        res = []
        for k, order in enumerate(orders):
            res.append(_ranked([scores[o] for o in order], [texts[o] for o in order], strict_error=strict_err,
                               truncated=any(trunc), prompt_tokens=max(len(s) for s in seqs),
                               timing={"total_s": total if k == 0 else 0.0, "prefill_s": tm["prefill_s"] if k == 0
                                       else 0.0, "new_tokens": sum(o[1] for o in outs) if k == 0 else 0,
                                       "prefix_tokens": tm["prefix_tokens"]}))
        return res


class VLLMGenerativeJudge(HFGenerativeJudge):
    """vLLM with automatic prefix caching (the context's KV blocks are reused across orders).

    Imported only when ``vllm`` is importable (CUDA only). No vLLM release resolves with this
    course's pins (torch 2.13, transformers 5.24), so the recommended route is a vLLM server in its
    own environment, judged with ``--backend openai`` (docs/serving.md). Prompts are
    built with the HF tokenizer's chat template, exactly as for the HF backend.
    """

    def __init__(self, llm_args: dict, tokenizer, spec: models.ModelSpec, *, templates: prompts.Templates,
                 max_new_tokens: int, max_input_tokens: int):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError("backend='vllm' needs vllm importable in this environment (CUDA only); it does not "
                              "resolve with this course's pins, so serve the model with vLLM in its own environment "
                              "and judge with --backend openai --base-url ... (docs/serving.md)") from e
        self.llm = LLM(**llm_args)  # built by judge.vllm.vllm_args: rope scaling, prefix caching, dtype
        self.sp = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.loaded = models.Loaded(None, tokenizer, spec, "cuda", "vllm")
        self.t, self.max_new, self.limit, self.reuse = templates, max_new_tokens, max_input_tokens, True
        self.verdict_probs = False

    def generate_many(self, seqs: list[list[int]], verdicts: list[list[int]] | None = None
                      ) -> tuple[list[tuple[str, int]], dict]:
        t0 = time.perf_counter()  # text only: no teacher-forced verdicts, so no pref_prob
        res = self.llm.generate([{"prompt_token_ids": s} for s in seqs], self.sp, use_tqdm=False)
        dt = time.perf_counter() - t0
        outs = [(r.outputs[0].text, len(r.outputs[0].token_ids)) for r in res]
        return outs, {"prefill_s": 0.0, "prefix_tokens": lcp(seqs), "gen_s": [dt / len(seqs)] * len(seqs)}
