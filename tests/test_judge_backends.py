"""Shared-prefix scoring equals full scoring; batch size and padding side don't change scores;
the generative KV-cache reuse across orders gives the same text; truncation is flagged."""
import pytest
import torch

from longrm_utils import models, store
from longrm_utils.bench import cues
from longrm_utils.judge import backends, prompts, toy_records
from longrm_utils.bench.schema import display_orders
from longrm_utils.judge.run import item_view

TOL = dict(rel=backends.SHARED_PREFIX_RTOL, abs=backends.SHARED_PREFIX_ATOL)


@pytest.fixture(scope="module")
def tiny_gen(tiny):
    return tiny  # the session fixture of conftest.py


def reference_scores(loaded, seqs):
    """What a user would do: the model's own forward on each unpadded sequence."""
    with torch.no_grad():
        return [float(loaded.model(input_ids=torch.tensor([s])).logits[0, 0]) for s in seqs]


def candidate_seqs(loaded, rec):
    judge = backends.ScalarJudge(loaded, max_input_tokens=10**6)
    return judge.candidate_ids(item_view(rec))[0]


@pytest.mark.parametrize("k", [0, 4, 6])  # a pair, BoN-2 and BoN-4
def test_shared_prefix_equals_full_tiny(tiny_rm, k):
    rec = toy_records(4, 3, context_words=400)[k]
    seqs = candidate_seqs(tiny_rm, rec)
    shared, P = backends.score_shared_prefix(tiny_rm, seqs)
    assert P > 0.8 * min(len(s) for s in seqs)  # the context really is shared
    ref = reference_scores(tiny_rm, seqs)
    assert shared == pytest.approx(ref, **TOL)
    assert backends.score_full(tiny_rm, seqs) == pytest.approx(ref, **TOL)
    # scores differ between candidates, so equality is not trivial
    assert len({round(x, 6) for x in ref}) == len(ref)


def test_shared_prefix_pools_last_non_pad_token(tiny_rm):
    """A sequence ending in pad tokens (pad == end-of-turn in some tokenizers) pools before them."""
    pad = tiny_rm.model.config.pad_token_id
    seqs = [list(range(10, 60)) + [70, 71, pad, pad], list(range(10, 60)) + [80, pad]]
    shared, _ = backends.score_shared_prefix(tiny_rm, seqs)
    assert shared == pytest.approx(reference_scores(tiny_rm, seqs), **TOL)


@pytest.mark.parametrize("batch_size", [1, 2, 4])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_size_and_padding_side_invariance(tiny_rm, batch_size, side):
    recs = toy_records(2, 3, context_words=120)
    seqs = [s for r in recs for s in candidate_seqs(tiny_rm, r)]
    assert len({len(s) for s in seqs}) > 1  # padding is really exercised
    ref = backends.score_full(tiny_rm, seqs, batch_size=1)
    got = backends.score_full(tiny_rm, seqs, batch_size=batch_size, padding_side=side)
    assert got == pytest.approx(ref, **TOL)


def test_shared_prefix_equals_full_smollm2():
    if store.smollm2_wheel_dir() is None and not (store.cache_root() / "smollm2-135m-instruct").exists():
        pytest.skip("SmolLM2 not installed (python -m longrm_utils setup)")
    rm = models.load("smollm2-135m-rm", device="cpu")
    tok = rm.tokenizer
    assert tok.pad_token != "<|im_end|>"  # pad = end of turn would make the head skip the last token
    rec = toy_records(0, 3, context_words=150)[2]  # BoN-4
    seqs = candidate_seqs(rm, rec)
    assert seqs[0][-2] == tok.convert_tokens_to_ids("<|im_end|>")  # the turn end is scored, not skipped
    shared, P = backends.score_shared_prefix(rm, seqs)
    assert P > 100
    assert shared == pytest.approx(reference_scores(rm, seqs), **TOL)
    assert backends.score_full(rm, seqs, batch_size=4, padding_side="left") == pytest.approx(shared, **TOL)


def test_generative_cache_reuse_matches_plain_generation(tiny_gen):
    t = prompts.load_templates()
    judge = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=12, max_input_tokens=10**6)
    plain = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=12, max_input_tokens=10**6,
                                       reuse_cache=False)
    for rec in toy_records(1, 2, context_words=300)[:3]:
        item = item_view(rec)
        ords = display_orders(rec, item.n)
        a, b = judge.judge_item(item, ords), plain.judge_item(item, ords)
        assert [r.raw for r in a] == [r.raw for r in b]
        assert a[0].timing["prefix_tokens"] > 300 and b[0].timing["prefix_tokens"] == 0


def test_truncation_keeps_ends_and_is_flagged(tiny_gen):
    t = prompts.load_templates()
    judge = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=4, max_input_tokens=200)
    rec = toy_records(1, 0, context_words=400)[0]
    item = item_view(rec)
    res = judge.judge_item(item, display_orders(rec, 2))
    assert all(r.truncated and r.prompt_tokens == 200 for r in res)
    full = models.chat_ids(tiny_gen.tokenizer, prompts.judge_messages(t, item.messages, item.answers,
                                                                      pairwise=True), tiny_gen.spec)
    kept, flag = models.keep_ends(full, 200)
    assert flag and kept[:100] == full[:100] and kept[100:] == full[-100:]


def test_heuristics():
    rec = toy_records(1, 0)[0]
    item = item_view(rec)
    longer = backends.HeuristicJudge("longer").judge_item(item, [[0, 1], [1, 0]])
    # the rejected toy answer is longer, so 'longer' ranks it first in both orders
    assert longer[0].ranking == [1, 0] and longer[1].ranking == [0, 1]
    assert cues.overlap_score("river station xyzzy", "the river and the station") == pytest.approx(2 / 3)
    r1 = backends.HeuristicJudge("random", seed=1).judge_item(item, [[0, 1]])
    r2 = backends.HeuristicJudge("random", seed=1).judge_item(item, [[0, 1]])
    assert r1[0].ranking == r2[0].ranking
    with pytest.raises(ValueError):
        backends.HeuristicJudge("shortest")


def test_heuristic_ties_follow_the_answer_not_the_slot():
    """A tie is broken by the item's coin, per answer: the same answer wins in both display orders,
    and over many tied items slot A wins about half the time (never always)."""
    first_slot = 0
    for i, rec in enumerate(toy_records(40, 0)):
        rec = dict(rec, rejected=rec["chosen"][::-1], id=f"tie-{i}")  # same length: 'longer' ties
        res = backends.HeuristicJudge("longer").judge_item(item_view(rec), [[0, 1], [1, 0]])
        assert res[0].tie and res[1].tie
        assert res[0].ranking == res[1].ranking[::-1]  # the same answer wins in both orders
        first_slot += res[0].ranking[0] == 0
        assert res[0].ranking == [cues.heuristic_ranking(rec, "longer")[o] for o in (0, 1)]
    assert 10 <= first_slot <= 30


def test_lcp():
    assert backends.lcp([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert backends.lcp([[1], [2]]) == 0 and backends.lcp([]) == 0


def test_verdict_probabilities_are_teacher_forced_and_leave_generation_unchanged(tiny_gen):
    """pref_prob = softmax over log P([[A]]), log P([[B]]) as the reply's first tokens, measured from
    the same cache as generation: the generated text equals the text without the measurement, and
    the log-probabilities equal a plain full forward over prompt + verdict."""
    t = prompts.load_templates()
    on = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=8, max_input_tokens=10**6)
    off = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=8, max_input_tokens=10**6,
                                     verdict_probs=False)
    recs = toy_records(1, 1, context_words=200)
    pair, bon = recs[0], recs[1]
    item = item_view(pair)
    ords = display_orders(pair, item.n)
    a, b = on.judge_item(item, ords), off.judge_item(item, ords)
    assert [r.raw for r in a] == [r.raw for r in b]
    assert all(r.pref_prob is None and r.slot_scores is None for r in b)
    verdicts = on.verdict_ids()
    for r, order in zip(a, ords):
        msgs = prompts.judge_messages(t, item.messages, [item.answers[o] for o in order], pairwise=True)
        ids = models.chat_ids(tiny_gen.tokenizer, msgs, tiny_gen.spec)
        ref = []
        for v in verdicts:
            with torch.no_grad():
                lp = torch.log_softmax(tiny_gen.model(input_ids=torch.tensor([ids + v])).logits[0].float(), -1)
            ref.append(float(sum(lp[len(ids) - 1 + i, tok] for i, tok in enumerate(v))))
        assert r.slot_scores == pytest.approx(ref, abs=1e-3)
        assert r.pref_prob == pytest.approx(1 / (1 + torch.exp(torch.tensor(ref[1] - ref[0])).item()), abs=1e-4)
    assert all(r.pref_prob is None for r in on.judge_item(item_view(bon), display_orders(bon, item_view(bon).n)))


def test_scalar_pref_prob_is_bradley_terry(tiny_rm):
    rec = toy_records(1, 0, context_words=100)[0]
    item = item_view(rec)
    res = backends.ScalarJudge(tiny_rm, max_input_tokens=10**6).judge_item(item, display_orders(rec, 2))
    for r in res:
        a, b = r.slot_scores
        assert r.pref_prob == pytest.approx(1 / (1 + torch.exp(torch.tensor(b - a)).item()), rel=1e-5)
    assert res[0].pref_prob == pytest.approx(1 - res[1].pref_prob, abs=1e-6)  # the same pair, slots swapped
    assert backends.sigmoid_diff(1000.0, 0.0) == 1.0 and backends.sigmoid_diff(-1000.0, 0.0) == 0.0


def test_batched_generation_equals_one_item_at_a_time(tiny_gen):
    """judge_items in left-padded batches gives each item the text and teacher-forced verdict
    log-probabilities it gets alone, whatever the prompt lengths and formats in the batch."""
    t = prompts.load_templates()
    alone = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=10, max_input_tokens=10**6)
    batched = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=10, max_input_tokens=10**6,
                                         batch_size=4)
    recs = toy_records(2, 2, context_words=60) + toy_records(1, 1, context_words=140)
    views = [(item_view(r), display_orders(r, len(item_view(r).answers))) for r in recs]
    assert len({len(batched.prompt_ids(backends.order_messages(t, v, o[0]))[0]) for v, o in views}) > 2  # padding
    got = list(batched.judge_items(views))
    assert {r[0].timing.get("batch_rows") for r in got} >= {8}  # really batched: 4 items x 2 orders
    for res in got:  # each item's orders share their context: prefilled once, in a row of its own
        assert all(r.timing["prefix_tokens"] > 0.5 * r.prompt_tokens for r in res)
    for (v, o), res in zip(views, got):
        ref = alone.judge_item(v, o)
        assert [r.raw for r in res] == [r.raw for r in ref]
        assert [r.ranking for r in res] == [r.ranking for r in ref]
        for a, b in zip(res, ref):
            assert (a.slot_scores is None) == (b.slot_scores is None) == (not v.pairwise)
            if a.slot_scores is not None:
                assert a.slot_scores == pytest.approx(b.slot_scores, rel=1e-4, abs=1e-4)


def test_batched_generation_keeps_long_prompts_alone(tiny_gen):
    """Items whose padded batch would pass GEN_BATCH_TOKENS are judged one at a time (shared prefix)."""
    t = prompts.load_templates()
    judge = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=4, max_input_tokens=10**6,
                                       batch_size=8)
    recs = toy_records(2, 0, context_words=backends.GEN_BATCH_TOKENS // 2)
    views = [(item_view(r), display_orders(r, 2)) for r in recs]
    res = list(judge.judge_items(views))
    assert len(res) == 2 and all("prefix_tokens" in r[0].timing and "batch_rows" not in r[0].timing for r in res)


def test_batched_generation_isolates_a_failing_item(tiny_gen, monkeypatch):
    """An item whose prompt cannot be built gets its own error, in its place; a batch that raises is
    judged again one item at a time, so its other items still get results."""
    t = prompts.load_templates()
    judge = backends.HFGenerativeJudge(tiny_gen, templates=t, max_new_tokens=4, max_input_tokens=10**6, batch_size=4)
    recs = toy_records(4, 0, context_words=40)
    views = [(item_view(r), display_orders(r, 2)) for r in recs]
    bad = backends.ItemView(recs[1], views[1][0].answers, None, "")  # no messages: the prompt fails
    got = list(judge.judge_items([views[0], (bad, views[1][1]), views[2], views[3]]))
    assert [isinstance(g, Exception) for g in got] == [False, True, False, False]

    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(judge, "generate_batch", boom)
    again = list(judge.judge_items(views))
    assert all(isinstance(g, list) and len(g) == 2 for g in again)


def test_adapters_merged_gives_the_adapter_outputs_and_restores_it():
    """Judging with the LoRA folded into the weights gives the adapter's logits; afterwards the
    adapter is unfolded (the same logits again, still trainable) and the mode is restored."""
    lo = models.add_lora(models.load("tiny", device="cpu", trainable=True), r=4)
    torch.manual_seed(0)
    for n, p in lo.model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.05)  # a trained adapter: nonzero B
    x = torch.tensor([list(range(5, 45))])
    lo.model.eval()
    with torch.no_grad():
        ref = lo.model(input_ids=x).logits
    lo.model.train()
    with models.adapters_merged(lo.model) as merged, torch.no_grad():
        assert merged and not lo.model.training
        assert all(m.merged for m in lo.model.modules() if hasattr(m, "merged_adapters") and hasattr(m, "lora_A"))
        inside = lo.model(input_ids=x).logits
    assert lo.model.training
    lo.model.eval()
    with torch.no_grad():
        after = lo.model(input_ids=x).logits
    assert torch.allclose(inside, ref, atol=1e-4) and torch.allclose(after, ref, atol=1e-5)
    assert not any(m.merged for m in lo.model.modules() if hasattr(m, "merged_adapters") and hasattr(m, "lora_A"))
    with torch.no_grad():  # the adapter matters, so the comparison is not trivial
        with lo.model.disable_adapter():
            plain = lo.model(input_ids=x).logits
    assert (plain - ref).abs().max() > 1e-3
