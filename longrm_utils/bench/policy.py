"""Items whose answers a real policy model writes (SmolLM2 on short items on CPU, 8B models on GPU).

As in the paper, a policy model answers each question under perturbed inputs (the full context,
the source truncated, the clue documents dropped: :func:`perturbed_contexts`); its answers are
scored with the task metric and paired (margin) or tiered (BestOfN) like the scripted candidates.
:func:`build_hub_set` does the same on the paper's hub sources (:mod:`longrm_utils.bench.hub`).
"""
from __future__ import annotations

import random
from typing import Sequence

from .. import models
from ..constants import BUCKET_TOKENS, SHORT_BUCKET, TASKS
from . import metrics as M
from .build import BuildReport, target_tokens
from .candidates import Candidate, make_record, user_prompt_for
from .generators import Triplet, generate, item_rng
from .hub import load_source, triplet_from_source
from .text import ContextTooShort, TokenCounter, counter_for


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
        user, _ = user_prompt_for(trip, ctx)
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
