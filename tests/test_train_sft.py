"""Stage I SFT: the loss mask is the judgement only, runs resume exactly, nothing is truncated silently."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from longrm_utils import models, store  # noqa: E402
from longrm_utils.train import sft  # noqa: E402


def _examples(n=8, long_words=0):
    pad = " ".join(["context"] * long_words)
    return [{"prompt": [{"role": "system", "content": "You judge."},
                        {"role": "user", "content": f"Item {i}. {pad} Which is right? [Response A] red [Response B] blue"}],
             "completion": [{"role": "assistant", "content": f"Response {'AB'[i % 2]} agrees.\n[[{'AB'[i % 2]}]]"}]}
            for i in range(n)]


def _tiny_cfg(**kw):
    d = dict(base="tiny", method="full", learning_rate=3e-3, max_steps=4, logging_steps=1, max_length=512)
    d.update(kw)
    return sft.SFTRun(**d)


def test_loss_only_on_the_judgement_tiny(tmp_path):
    ex = _examples(2)
    trainer, loaded, lengths, skipped, packing = sft.build_trainer(_tiny_cfg(), ex, tmp_path, device="cpu")
    on, off = sft.supervised_text(trainer, 0)
    assert on.startswith("Response A agrees.\n[[A]]") and "<|im_end|>" in on
    assert "Which is right" in off and "You judge" in off and "[[A]]" not in off
    assert lengths[0] == len(trainer.train_dataset[0]["input_ids"])
    assert packing is False and skipped == {}


@pytest.mark.skipif(store.smollm2_wheel_dir() is None and not (store.cache_root() / "smollm2-135m-instruct").exists(),
                    reason="SmolLM2 not installed (python -m longrm_utils setup)")
def test_loss_only_on_the_judgement_smollm2_template(tmp_path):
    """SmolLM2's chat template has no {% generation %} markers: prompt/completion data must still mask."""
    cfg = sft.SFTRun(base="smollm2-135m-instruct", method="lora", max_steps=1, max_length=512)
    assert "{% generation %}" not in models.load_tokenizer(models.base_folder(models.REGISTRY[cfg.base]),
                                                     models.REGISTRY[cfg.base]).chat_template
    trainer, *_ = sft.build_trainer(cfg, _examples(2), tmp_path, device="cpu")
    on, off = sft.supervised_text(trainer, 1)
    assert on.strip().startswith("Response B agrees.\n[[B]]") and on.count("<|im_end|>") == 1
    assert "Which is right" not in on and "[[B]]" not in off


def test_long_examples_are_skipped_and_counted(tmp_path):
    ex = _examples(3) + _examples(2, long_words=400)
    trainer, _, lengths, skipped, _ = sft.build_trainer(_tiny_cfg(max_length=200), ex, tmp_path, device="cpu")
    assert skipped == {"longer_than_max_length": 2}
    assert len(trainer.train_dataset) == 3 and max(lengths) <= 200
    with pytest.raises(ValueError, match="longer than max_length"):
        sft.build_trainer(_tiny_cfg(max_length=10), ex, tmp_path / "b", device="cpu")


def test_packing_needs_flash_attention():
    assert sft.use_packing(_tiny_cfg(), "sdpa") is False
    assert sft.use_packing(_tiny_cfg(), "flash_attention_2") is True
    with pytest.raises(ValueError, match="flash_attention_2"):
        sft.use_packing(_tiny_cfg(packing="on"), "sdpa")


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Crash(RuntimeError):
    pass


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    ex = _examples(8)
    cfg = _tiny_cfg(max_steps=4, save_steps=2)
    full = sft.train_sft(cfg, ex, tmp_path / "full", device="cpu")
    assert full.resumed_from is None
    # a run killed after its step-2 checkpoint: the trainer raises at the start of step 3
    from transformers import Trainer

    orig = Trainer.training_step
    calls = {"n": 0}

    def crashing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Crash("killed")
        return orig(self, *a, **k)

    monkeypatch.setattr(Trainer, "training_step", crashing)
    with pytest.raises(_Crash):
        sft.train_sft(cfg, ex, tmp_path / "killed", device="cpu")
    monkeypatch.setattr(Trainer, "training_step", orig)
    assert sft.last_checkpoint(tmp_path / "killed").endswith("checkpoint-2")
    # TensorBoard logs (report_to="tensorboard", the default) and checkpoints (optimizer state) live
    # beside the model folder, never in it
    assert any((tmp_path / "full-tensorboard").rglob("events.out.tfevents.*"))
    assert not any((tmp_path / "full").rglob("events.out.tfevents.*"))
    assert (tmp_path / "killed-checkpoints").is_dir() and not (tmp_path / "killed" / "checkpoints").exists()
    assert sft.checkpoint_dir(tmp_path / "run" / "models" / "m") == tmp_path / "run" / "checkpoints" / "m"
    again = sft.train_sft(cfg, ex, tmp_path / "killed", device="cpu")
    assert again.resumed_from.endswith("checkpoint-2")
    a, b = _weights(full.loaded.model), _weights(again.loaded.model)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max().item() < 1e-6, k
    # and the saved folder reloads as a course model
    meta = models.read_meta(tmp_path / "killed")
    assert meta["base"] == "tiny" and meta["method"] == "full" and meta["steps"] == 4


def test_lora_saves_an_adapter_that_reloads(tmp_path):
    cfg = _tiny_cfg(method="lora", lora_r=4, max_steps=2, learning_rate=1e-2)
    res = sft.train_sft(cfg, _examples(4), tmp_path, device="cpu")
    assert (tmp_path / "adapter_config.json").exists() and res.trained_params < res.total_params
    back = models.load(str(tmp_path), device="cpu")
    ids = models.chat_ids(back.tokenizer, _examples(1)[0]["prompt"], back.spec)
    import torch

    with torch.no_grad():
        l1 = back.model(torch.tensor([ids])).logits
        l2 = res.loaded.model(torch.tensor([ids])).logits
    assert torch.allclose(l1, l2, atol=1e-5)


@pytest.mark.skipif(not models.importlib.util.find_spec("bitsandbytes"), reason="bitsandbytes not installed")
def test_qlora_runs_on_cpu(tmp_path):
    cfg = _tiny_cfg(method="qlora", lora_r=4, max_steps=2, learning_rate=1e-2)
    res = sft.train_sft(cfg, _examples(2), tmp_path, device="cpu")
    assert getattr(res.loaded.model.base_model.model, "is_loaded_in_4bit", False)
    assert res.log and (tmp_path / "adapter_config.json").exists()


def test_presets_and_unknown_fields():
    for name, p in sft.PRESETS.items():
        assert p.expected_memory, name
    assert sft.PRESETS["gpu-full-80gb"].learning_rate == 2e-6  # Table 4 for full fine-tuning
    cfg = sft.SFTRun.from_dict({"max_steps": 3}, preset="cpu-smollm2-lora")
    assert cfg.max_steps == 3 and cfg.base == "smollm2-135m-instruct"
    with pytest.raises(ValueError, match="lr"):
        sft.SFTRun.from_dict({"lr": 1})
    with pytest.raises(ValueError, match="method"):
        sft.SFTRun(method="adapter")
