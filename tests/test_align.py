"""Stage II losses and the shared-prefix encoding (train/losses.py, train/align.py, train/mechanics.py)."""
import json
import math
from types import SimpleNamespace

import pytest
import torch

from longrm_utils import constants, contracts, models, store
from longrm_utils.train import align as A
from longrm_utils.train import losses as L
from longrm_utils.train import mechanics


def _logsig(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


# --- losses against direct computation ---------------------------------------------------------

def test_multi_reject_loss_matches_direct_formula():
    torch.manual_seed(0)
    cw = torch.tensor([-12.0, -30.5])
    lw = torch.tensor([6.0, 15.0])
    rl = torch.tensor([[-20.0, -9.0, -40.0], [-33.0, -50.0, -1.0]])
    ll = torch.tensor([[5.0, 3.0, 11.0], [12.0, 20.0, 1.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])  # item 2 has V=2
    for beta, gamma, nll in [(0.5, 2.5, 0.0), (2.5, 0.5, 0.05), (1.0, 0.0, 0.3)]:
        losses, cr, rr = L.multi_reject_simpo_loss(cw, lw, rl, ll, beta=beta, gamma=gamma, nll_weight=nll,
                                                   reject_mask=mask)
        for b in range(2):
            js = [j for j in range(3) if mask[b, j]]
            V = len(js)
            z = beta / float(lw[b]) * float(cw[b]) - beta / V * sum(float(rl[b, j]) / float(ll[b, j]) for j in js) - gamma
            want = -_logsig(z) + nll * (-float(cw[b]) / float(lw[b]))
            assert float(losses[b]) == pytest.approx(want, rel=1e-5, abs=1e-6)
    # the masked-out reject must not matter
    rl2 = rl.clone()
    rl2[1, 2] = -999.0
    assert torch.allclose(L.multi_reject_simpo_loss(cw, lw, rl2, ll, beta=1, gamma=0, reject_mask=mask)[0],
                          L.multi_reject_simpo_loss(cw, lw, rl, ll, beta=1, gamma=0, reject_mask=mask)[0])


def test_multi_reject_loss_with_one_reject_is_trl_simpo():
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    cw, rl = torch.tensor([-1.2, -0.4, -2.0]), torch.tensor([-1.5, -0.3, -3.0])  # average log-probs
    for beta, gamma in [(2.5, 0.5), (0.5, 2.5)]:
        fake = SimpleNamespace(alpha=0.0, accelerator=SimpleNamespace(device="cpu"), loss_type="simpo",
                               simpo_gamma=gamma, beta=beta, label_smoothing=0.0)
        trl_losses, _, _ = CPOTrainer.cpo_loss(fake, cw, rl)
        # our loss takes sums and lengths: give it length-1 responses, whose sum is the average
        ours, _, _ = L.multi_reject_simpo_loss(cw, torch.ones(3), rl[:, None], torch.ones(3, 1), beta=beta, gamma=gamma)
        assert torch.allclose(ours, trl_losses, atol=1e-6)


def test_bradley_terry_matches_direct_formula():
    rc = torch.tensor([0.3, -1.0])
    rr = torch.tensor([[0.1, 0.9, -2.0], [0.5, 0.0, 4.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    losses, margins = L.bradley_terry_loss(rc, rr, mask)
    want0 = -_logsig(0.3 - (0.1 + 0.9 - 2.0) / 3)
    want1 = -_logsig(-1.0 - 0.5)
    assert float(losses[0]) == pytest.approx(want0, rel=1e-6)
    assert float(losses[1]) == pytest.approx(want1, rel=1e-6)
    assert float(margins[1]) == pytest.approx(-1.5)


def test_losses_refuse_items_without_rejects():
    with pytest.raises(ValueError, match="at least one reject"):
        L.bradley_terry_loss(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B, V\]"):
        L.multi_reject_simpo_loss(torch.zeros(1), torch.ones(1), torch.zeros(2), torch.ones(2), beta=1, gamma=0)


def test_paper_settings_are_the_constants():
    assert A.AlignConfig.paper("main_text").gamma == constants.ALIGN_MAIN_TEXT["gamma"] == 2.5
    t5 = A.AlignConfig.paper("table5", learning_rate=1e-3)
    assert (t5.beta, t5.gamma, t5.nll_weight, t5.V, t5.learning_rate) == (2.5, 0.5, 0.05, 2, 1e-3)
    with pytest.raises(ValueError, match="unknown paper setting"):
        A.AlignConfig.paper("appendix")


# --- shared prefix equals separate encoding ----------------------------------------------------

PROMPT = [{"role": "system", "content": "You judge answers."},
          {"role": "user", "content": "Context: " + "the river station is north of the market. " * 25 + "Question: where?"}]
RESPONSES = ["The station is north of the market. [[A]]", "It is south. [[B]]", "no"]


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _check_logps(loaded):
    p, rs = A.encode_prompt_responses(loaded.tokenizer, PROMPT, RESPONSES, loaded.spec)
    pad = loaded.tokenizer.pad_token_id
    out = {}
    for shared in (True, False):
        loaded.model.zero_grad(set_to_none=True)
        lp, lens = L.completion_logps(loaded.model, p, rs, pad, shared_prefix=shared)
        loss = L.multi_reject_simpo_loss(lp[:1], lens[:1], lp[None, 1:], lens[None, 1:], beta=2.5, gamma=0.5)[0].sum()
        loss.backward()
        out[shared] = (lp.detach(), _grads(loaded.model).clone())
    loaded.model.zero_grad(set_to_none=True)
    assert torch.allclose(out[True][0], out[False][0], atol=1e-4, rtol=1e-5)
    assert torch.allclose(out[True][1], out[False][1], atol=1e-5, rtol=1e-3)


def _check_scores(loaded):
    p, rs = A.encode_prompt_responses(loaded.tokenizer, PROMPT, RESPONSES, loaded.spec)
    pad = loaded.tokenizer.pad_token_id
    out = {}
    for shared in (True, False):
        loaded.model.zero_grad(set_to_none=True)
        s = L.scalar_scores(loaded.model, p, rs, pad, shared_prefix=shared)
        L.bradley_terry_loss(s[:1], s[None, 1:])[0].sum().backward()
        out[shared] = (s.detach(), _grads(loaded.model).clone())
    loaded.model.zero_grad(set_to_none=True)
    assert torch.allclose(out[True][0], out[False][0], atol=1e-4)
    assert torch.allclose(out[True][1], out[False][1], atol=1e-5, rtol=1e-3)
    # and both equal scoring each sequence alone through the model's own pooling
    for k, r in enumerate(rs):
        with torch.no_grad():
            alone = loaded.model(torch.tensor([p + r])).logits.squeeze()
        assert float(alone) == pytest.approx(float(out[True][0][k]), abs=1e-4)


def test_shared_prefix_equals_separate_tiny(tiny, tiny_rm):
    _check_logps(tiny)
    _check_scores(tiny_rm)


needs_smollm2 = pytest.mark.skipif(store.smollm2_wheel_dir() is None and
                                   not (store.cache_root() / "smollm2-135m-instruct" / "model.safetensors").exists(),
                                   reason="SmolLM2 is not installed (python -m longrm_utils setup)")


@needs_smollm2
def test_shared_prefix_equals_separate_smollm2():
    rm = models.load("smollm2-135m-rm", device="cpu")
    # SmolLM2's end of turn is <|im_end|>; padding must be a different token for last-token pooling
    assert rm.tokenizer.pad_token_id != rm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    _check_scores(rm)
    gen = models.load("smollm2-135m-instruct", device="cpu")
    _check_logps(gen)


def test_response_ending_in_pad_is_refused(tiny_rm):
    p, rs = A.encode_prompt_responses(tiny_rm.tokenizer, PROMPT, RESPONSES[:2], tiny_rm.spec)
    pad = tiny_rm.tokenizer.pad_token_id
    with pytest.raises(ValueError, match="pad token"):
        L.scalar_scores(tiny_rm.model, p, [rs[0], rs[1] + [pad]], pad)


# --- items, training, baseline, CLI ------------------------------------------------------------

def _items(n=6, ctx=20):
    out = []
    for i in range(n):
        ctx_text = f"Fact {i}: the museum is in the east. " * ctx
        out.append({"id": f"x{i}", "prompt": [{"role": "user", "content": ctx_text + "Which answer is right?"}],
                    "chosen": "The answer is grounded in the context. [[A]]",
                    "rejects": ["The answer is wrong. [[B]]", "I cannot tell."]})
    return out


def test_item_validation_names_record_and_field():
    recs = _items(2)
    recs[1] = dict(recs[1], rejects=[])
    with pytest.raises(ValueError, match=r"f\.jsonl.*line 2.*'x1'.*'rejects'"):
        contracts.pref_items_from_records(recs, file="f.jsonl")
    with pytest.raises(ValueError, match="'chosen'.*missing field"):
        contracts.pref_items_from_records([{"prompt": [{"role": "user", "content": "q"}], "rejects": ["r"]}])


def test_too_long_items_are_skipped_and_counted(tiny):
    items = contracts.pref_items_from_records(_items(3, ctx=5) + [dict(_items(1, ctx=300)[0], id="long")])
    enc, counts = A.encode_items(tiny.tokenizer, items, V=2, max_length=400, spec=tiny.spec)
    assert counts["skipped_too_long"] == 1 and counts["kept"] == 3 and counts["skipped_ids"] == ["long"]
    assert all(e.longest <= 400 and len(e.reject_ids) == 2 for e in enc)


@pytest.mark.parametrize("kind", ["generative", "scalar"])
def test_train_loop_learns_a_separable_preference(kind, tmp_path):
    loaded = models.add_lora(models.load("tiny" if kind == "generative" else "tiny-rm", device="cpu", trainable=True), r=8)
    items = contracts.pref_items_from_records(_items(4, ctx=3))
    cfg = A.AlignConfig(learning_rate=2e-2, max_steps=12, items_per_step=2, warmup_ratio=0.0, max_length=512)
    before = A.pair_accuracy(loaded, items, kind=kind, cfg=cfg)
    out = tmp_path / "models" / "m"
    res = A.train_loop(loaded, items, cfg, kind=kind, out_dir=out, progress=False)
    after = A.pair_accuracy(loaded, items, kind=kind, cfg=cfg)
    assert res["last_loss"] < res["first_loss"]
    assert after["accuracy"] == 1.0 and after["n"] == 4
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 12
    assert before["n"] == 4
    # report_to="tensorboard" (the default): the step scalars, beside the model folder, readable by TensorBoard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(str(tmp_path / "tensorboard" / "m"))
    ev.Reload()
    losses = [e.value for e in ev.Scalars(f"align-{kind}/loss")]
    assert len(losses) == 12 and losses[0] == pytest.approx(res["first_loss"], rel=1e-5)


def test_reward_trainer_baseline_counts_drops(tmp_path):
    loaded = models.add_lora(models.load("tiny-rm", device="cpu", trainable=True), r=8)
    items = contracts.pref_items_from_records(_items(4, ctx=3) + [dict(_items(1, ctx=300)[0], id="long")])
    cfg = A.AlignConfig(learning_rate=1e-2, max_steps=3, items_per_step=2, max_length=512)
    res = mechanics.train_reward_baseline(loaded, items, cfg, tmp_path)
    assert res["data"]["skipped_too_long"] == 1 and res["data"]["kept"] == 4
    assert len(res["losses"]) == 3 and all(math.isfinite(x) for x in res["losses"])


def test_cli_generative_saves_a_loadable_adapter(tmp_path):
    data = tmp_path / "pref.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _items(3, ctx=3)))
    rc = A.cli_generative(["--model", "tiny", "--data", str(data), "--out", str(tmp_path / "m"), "--max-steps", "2",
                           "--items-per-step", "1", "--paper", "main_text", "--device", "cpu"])
    assert rc == 0
    meta = json.loads((tmp_path / "m" / "longrm.json").read_text())
    assert meta["base"] == "tiny" and meta["stage2"]["gamma"] == 2.5 and meta["stage2"]["max_steps"] == 2
    back = models.load(str(tmp_path / "m"), device="cpu")
    assert hasattr(back.model, "peft_config")


@pytest.mark.parametrize("name,kind", [("qwen3-8b@mini", "generative"),
                                       ("skywork-reward-v2-llama-3.1-8b@mini", "scalar")])
def test_memory_techniques_keep_outputs_and_gradients(name, kind):
    """Checkpointing with the shared prefix, and tiled MLPs, change memory, not numbers: the outputs and
    every LoRA gradient equal the plain, separately encoded step's."""
    from longrm_utils.train import longctx

    loaded = models.add_lora(models.load(name, kind=kind, device="cpu", trainable=True), r=4, dropout=0.0)
    torch.manual_seed(0)
    for n, p in loaded.model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)  # a fresh adapter's B is zero: give the gradients something to pass through
    loaded.model.train()
    tok, pad = loaded.tokenizer, loaded.tokenizer.pad_token_id
    prompt = tok("Context: the sky is green and the grass is blue. " * 12)["input_ids"]
    responses = [tok(r)["input_ids"] for r in ("[[A]] as the context says.", "[[B]]", "I think [[A]] here")]
    weights = torch.tensor([1.0, -0.5, 0.3])

    def step(shared):
        loaded.model.zero_grad()
        out = (L.completion_logps(loaded.model, prompt, responses, pad, shared_prefix=shared)[0]
               if kind == "generative" else L.scalar_scores(loaded.model, prompt, responses, pad, shared_prefix=shared))
        (out * weights).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in loaded.model.named_parameters() if p.grad is not None}

    ref, gref = step(False)
    assert len(gref) > 8
    longctx.enable_checkpointing(loaded.model, offload=True)  # offload is a no-op on CPU, and must not fail
    assert longctx.tile_mlp(loaded.model, 7) == 2
    with pytest.raises(ValueError, match="already tiled"):
        longctx.tile_mlp(loaded.model, 7)
    for shared in (True, False):
        out, grads = step(shared)
        assert torch.allclose(out, ref, atol=1e-4)
        assert set(grads) == set(gref)
        for n in gref:
            assert torch.allclose(grads[n], gref[n], rtol=1e-3, atol=1e-6 * float(gref[n].abs().max())), n


def test_tiled_mlp_refuses_dropout():
    from longrm_utils.train import longctx

    loaded = models.add_lora(models.load("tiny", device="cpu", trainable=True), r=4, dropout=0.1)
    with pytest.raises(ValueError, match="lora_dropout=0"):
        longctx.tile_mlp(loaded.model, 16)


def test_synthetic_item_and_measured_step_show_the_shared_prefix_saving(tiny_rm):
    it = mechanics.synthetic_long_item(tiny_rm.tokenizer, 1024, n_responses=4, seed=1)
    enc, _ = A.encode_items(tiny_rm.tokenizer, [it], V=3, max_length=2048, spec=tiny_rm.spec)
    e = enc[0]
    assert 1000 <= len(e.prompt_ids) <= 1024 and len(e.reject_ids) == 3
    tiny_rm.model.train()
    sep = mechanics.measure_step(tiny_rm, e, kind="scalar", shared_prefix=False)
    sh = mechanics.measure_step(tiny_rm, e, kind="scalar", shared_prefix=True)
    tiny_rm.model.eval()
    assert sep["loss"] == pytest.approx(sh["loss"], abs=1e-5)
    assert sep["tokens_encoded"] - sh["tokens_encoded"] == 3 * len(e.prompt_ids)
    # activations kept for backward scale with the tokens encoded: about 4x for 4 responses
    assert sh["saved_mib"] > 0 and sep["saved_mib"] / sh["saved_mib"] > 2.5
