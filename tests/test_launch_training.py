"""Training through `accelerate launch` (GPU-paths defects 2 and 3) and Stage II's Accelerator loop.

The launched path is what `gpu-full-80gb` runs on several GPUs; here it runs as 2 CPU processes over
gloo (configs/accelerate/ddp_cpu2.yaml). The CPU smoke of that profile (tests/test_course.py) trains
Stage I, generative Stage II and the scalar RM through the same launcher.
"""
import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from longrm_utils import contracts, models, runtime, store
from longrm_utils.train import align as A
from longrm_utils.train import launch
from longrm_utils.train import resume as R

SKYWORK = "skywork-reward-v2-llama-3.1-8b@mini"


def _items(n=4):
    out = []
    for i in range(n):
        ctx = f"Record {i}: the ferry leaves at {7 + i} o'clock from the north pier. " * 3
        out.append({"id": f"x{i}", "prompt": [{"role": "user", "content": ctx + "When does the ferry leave?"}],
                    "chosen": f"It leaves at {7 + i} o'clock.", "rejects": [f"It leaves at {20 + i} o'clock.", "Noon."]})
    return contracts.pref_items_from_records(out)


def _cfg(**kw):
    return A.AlignConfig(**{**dict(learning_rate=1e-2, max_steps=2, items_per_step=2, warmup_ratio=0.0,
                                   max_length=512, report_to="none"), **kw})


def test_launched_stage2_is_two_processes_and_equals_one(tmp_path):
    """Defects 2 and 3: the notebook call with `launch=` runs under `accelerate launch` with 2 processes
    (model loaded after the distributed state, each rank scoring half of every step), and the trained
    adapter equals the one-process run's: the ranks' gradients are summed, not lost or doubled."""
    items, cfg = _items(), _cfg()
    two = A.train_alignment(SKYWORK, items, cfg, tmp_path / "two" / "models" / "m", kind="scalar", lora_dropout=0.0,
                            launch="configs/accelerate/ddp_cpu2.yaml", progress=False, eval_items=items[:2])
    s = two.summary
    assert s["world_size"] == 2 and s["distributed_type"] == "MULTI_CPU" and s["ranks_agree"] is True
    assert s["distributed_before_load"] is True
    assert (tmp_path / "two" / "launch" / "m" / "spec.json").exists() and two.before["n"] == 2
    assert models.is_scalar(two.loaded.model) and hasattr(two.loaded.model, "peft_config")  # loaded back
    one = A.train_alignment(SKYWORK, items, cfg, tmp_path / "one" / "models" / "m", kind="scalar", lora_dropout=0.0,
                            progress=False)
    assert one.summary["world_size"] == 1 and one.summary["distributed_before_load"] is False
    assert [r["loss"] for r in s["log"]] == pytest.approx([r["loss"] for r in one.summary["log"]], rel=1e-5)
    a = load_file(str(tmp_path / "two" / "models" / "m" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "one" / "models" / "m" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)


def test_a_failed_launch_raises_with_its_last_lines(tmp_path):
    spec = {"verb": "nonsense"}
    with pytest.raises(RuntimeError, match=r"accelerate launch exited with [0-9]+ \(ddp_cpu2.yaml[^)]*\); the ranks' errors:\n[^\n]*unknown verb 'nonsense'"):
        launch.accelerate_train("ddp_cpu2", spec, tmp_path)


def test_stage2_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, monkeypatch):
    """Stage II saves resumable checkpoints (weights, Adam, schedule, RNG); a run that dies after step 2
    and is started again ends where an uninterrupted run ends."""
    items, cfg = _items(), _cfg(max_steps=4, save_steps=2)
    loaded = models.add_lora(models.load(SKYWORK, device="cpu", trainable=True), r=4, dropout=0.0)
    whole = A.train_loop(loaded, items, cfg, kind="scalar", out_dir=tmp_path / "a" / "models" / "m", progress=False)
    ref = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if p.requires_grad}

    real_step, calls = A._step, []

    def dies_at_three(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_step(*a, **k)

    out = tmp_path / "b" / "models" / "m"
    loaded = models.add_lora(models.load(SKYWORK, device="cpu", trainable=True), r=4, dropout=0.0)
    monkeypatch.setattr(A, "_step", dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        A.train_loop(loaded, items, cfg, kind="scalar", out_dir=out, progress=False)
    monkeypatch.setattr(A, "_step", real_step)
    assert [p.name for p in R.checkpoint_dirs(out)] == ["step-2"]
    loaded = models.add_lora(models.load(SKYWORK, device="cpu", trainable=True), r=4, dropout=0.0)
    with torch.no_grad():  # the checkpoint, not the fresh adapter, must decide the weights
        for p in loaded.model.parameters():
            if p.requires_grad:
                p.add_(0.1)
    resumed = A.train_loop(loaded, items, cfg, kind="scalar", out_dir=out, progress=False)
    assert resumed["resumed_from_step"] == 2 and len(resumed["log"]) == 4
    assert [r["loss"] for r in resumed["log"]] == pytest.approx([r["loss"] for r in whole["log"]], rel=1e-6)
    for n, p in loaded.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), ref[n])
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4
    with pytest.raises(ValueError, match=r"differs in items_per_step\); resume with the same settings"):
        A.train_loop(loaded, items, _cfg(max_steps=4, save_steps=2, items_per_step=4), kind="scalar", out_dir=out,
                     progress=False)
    with pytest.raises(ValueError, match=r"differs in items\)"):  # other data, same settings
        A.train_loop(loaded, items[:3], cfg, kind="scalar", out_dir=out, progress=False)
    # A fresh start (resume=False) removes the old run's checkpoints, so its rotation cannot keep them.
    A.train_loop(loaded, items, _cfg(max_steps=2, save_steps=2), kind="scalar", out_dir=out, progress=False,
                 resume=False)
    assert [p.name for p in R.checkpoint_dirs(out)] == ["step-2"]
    assert json.loads((R.checkpoint_dirs(out)[0] / "trainer_state.json").read_text())["config"]["max_steps"] == 2


def test_stage2_precision_is_bf16_or_none():
    with pytest.raises(ValueError, match="fp16 would need a loss scaler"):
        A.make_accelerator(A.AlignConfig(mixed_precision="fp16"), "cpu")
    assert A.make_accelerator(A.AlignConfig(), "cpu").mixed_precision == "no"


def test_items_per_step_must_split_over_the_processes(monkeypatch):
    acc = A.make_accelerator(A.AlignConfig(), "cpu")
    monkeypatch.setattr(type(acc), "num_processes", property(lambda self: 2))
    loaded = models.add_lora(models.load("tiny-rm", device="cpu", trainable=True), r=4)
    with pytest.raises(ValueError, match="items_per_step=3 must be a multiple of the 2 processes"):
        A.train_loop(loaded, _items(), _cfg(items_per_step=3), kind="scalar", accelerator=acc, progress=False)


def test_a_concurrent_build_keeps_the_folder_another_process_published(tmp_path):
    """Two ranks building the same miniature: the second must not delete the first one's folder while
    that rank reads it (the race the first 2-process launch hit)."""
    out, tmp = tmp_path / "m", tmp_path / "m.tmp1"
    out.mkdir()
    (out / store.META_FILE).write_text(json.dumps({"who": "first"}))
    tmp.mkdir()
    (tmp / store.META_FILE).write_text(json.dumps({"who": "second"}))
    assert store.publish(tmp, out) == out
    assert json.loads((out / store.META_FILE).read_text()) == {"who": "first"} and not tmp.exists()
    tmp.mkdir()
    (tmp / store.META_FILE).write_text(json.dumps({"who": "forced"}))
    store.publish(tmp, out, force=True)
    assert json.loads((out / store.META_FILE).read_text()) == {"who": "forced"}


def test_a_launched_rank_picks_its_own_gpu(monkeypatch):
    """Defect 2: under `accelerate launch` every rank loaded on cuda:0. The device of `auto` (and of a
    bare `cuda`) is now the rank's own, from the distributed state started before any model loads."""
    monkeypatch.setattr(runtime, "distributed_state", lambda: SimpleNamespace(device=torch.device("cuda", 3)))
    assert runtime.pick_device("auto") == "cuda:3" and runtime.pick_device("cuda") == "cuda:3"
    assert runtime.pick_device("cpu") == "cpu"
    monkeypatch.setattr(runtime, "distributed_state", lambda: None)
    assert runtime.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_full_fine_tuning_under_bf16_keeps_fp32_master_weights(tmp_path, monkeypatch):
    """bf16 autocast for the matmuls, fp32 for the weights Adam updates: a full fine-tune loads its
    model in fp32 whatever the preset's dtype (pure-bf16 AdamW at lr 2e-6 rounds most updates away)."""
    from accelerate.state import AcceleratorState

    asked = []
    real_load = models.load
    monkeypatch.setattr(models, "load", lambda *a, **k: asked.append(k.get("dtype")) or real_load(*a, **k))
    try:  # accelerate keeps one precision per process; make_accelerator resets an earlier "no" state itself
        res = A.train_alignment("tiny-rm", _items(2), _cfg(max_steps=1, mixed_precision="bf16"), tmp_path / "m",
                                kind="scalar", method="full", device="cpu", progress=False)
        assert asked == ["float32"] and res.summary["mixed_precision"] == "bf16"
        assert all(p.dtype == torch.float32 for p in res.loaded.model.parameters())
        assert all(r["loss"] == r["loss"] for r in res.summary["log"])  # not NaN under CPU bf16 autocast
        asked.clear()
        A.train_alignment("tiny-rm", _items(2), _cfg(max_steps=1, mixed_precision="bf16"), tmp_path / "l",
                          kind="scalar", device="cpu", progress=False)
        assert asked == [None]  # LoRA: the frozen base keeps the preset's dtype; the adapters are fp32 already
    finally:
        AcceleratorState._reset_state()
