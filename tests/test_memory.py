"""The memory planner: its arithmetic, its CLI, and its predictions against measured CPU peaks."""
import json
import sys
from dataclasses import replace

import pytest
import yaml

from longrm_utils import store
from longrm_utils.judge.vllm import vllm_args
from longrm_utils.train import memory as M
from longrm_utils.train import memory_measure

TOLERANCE = 0.15
"""Stated tolerance: prediction within 15% of the measured step peak (sdpa, >= 2k tokens, tiny model)."""


@pytest.fixture(scope="module")
def tiny_shape():
    return M.ModelShape.from_config(store.build_tiny(0), name="tiny")


def test_presets_derive_known_mlp_widths():
    # The published intermediate_size of each model, derived here from params_b alone.
    assert M.ModelShape.from_preset("qwen3-8b").intermediate == 12288
    assert M.ModelShape.from_preset("llama-3.1-8b-instruct").intermediate == 14336
    assert M.ModelShape.from_preset("con-j-qwen2-7b").intermediate == 18944
    assert M.ModelShape.from_preset("smollm2-135m-instruct").intermediate == 1536
    assert M.ModelShape.from_preset("skywork-reward-v2-llama-3.1-8b").intermediate == 14336


def test_from_config_counts_tiny_params_exactly(tiny_shape):
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(store.build_tiny(0))
    assert tiny_shape.params == sum(p.numel() for p in m.parameters())


def test_static_terms_follow_the_method():
    s = M.ModelShape.from_preset("qwen3-8b")
    full = M.predict(s, M.PlanConfig(method="full", seq_len=1024))
    assert full.weights == pytest.approx(s.params * 2)
    assert full.optimizer == pytest.approx(s.params * 12)  # fp32 master + two moments
    lora = M.predict(s, M.PlanConfig(method="lora", seq_len=1024))
    qlora = M.predict(s, M.PlanConfig(method="qlora", seq_len=1024))
    assert qlora.weights < 0.4 * lora.weights
    assert lora.grads == pytest.approx(s.lora_params(16) * 4)
    z3 = M.predict(s, M.PlanConfig(method="full", seq_len=1024, n_gpus=8, sharding="zero3"))
    z2 = M.predict(s, M.PlanConfig(method="full", seq_len=1024, n_gpus=8, sharding="zero2"))
    assert z3.weights == pytest.approx(full.weights / 8) and z2.weights == pytest.approx(full.weights)
    assert z2.optimizer == pytest.approx(full.optimizer / 8)


def test_activations_linear_except_eager_and_cp_divides():
    s = M.ModelShape.from_preset("qwen3-8b")
    a = [M.predict(s, M.PlanConfig(seq_len=n, attn="flash")).activations for n in (8192, 16384, 32768)]
    assert a[1] / a[0] == pytest.approx(2.0) and a[2] / a[1] == pytest.approx(2.0)
    e = [M.predict(s, M.PlanConfig(seq_len=n, attn="eager")).activations for n in (8192, 16384)]
    assert e[1] / e[0] > 3.0  # seq² probabilities dominate
    cp = M.predict(s, M.PlanConfig(seq_len=65536, n_gpus=4, cp_size=4))
    one = M.predict(s, M.PlanConfig(seq_len=65536 // 4))
    assert cp.activations == pytest.approx(one.activations)


def test_checkpointing_and_loss_tokens_reduce_the_peak():
    s = M.ModelShape.from_preset("qwen3-8b")
    base = M.PlanConfig(seq_len=16384, grad_ckpt=False)
    no = M.predict(s, base).total
    ck = M.predict(s, M.PlanConfig(seq_len=16384, grad_ckpt=True)).total
    resp = M.predict(s, M.PlanConfig(seq_len=16384, grad_ckpt=True, loss_tokens=1024)).total
    assert ck < no / 3 and resp < ck


def test_max_context_is_the_boundary():
    s = M.ModelShape.from_preset("qwen3-8b")
    cfg = M.PlanConfig(method="qlora", loss_tokens=2048)
    n = M.max_context(s, cfg, 24)
    assert n > 0
    budget = 24 * M.GiB * 0.9
    assert M.predict(s, M.PlanConfig(method="qlora", loss_tokens=2048, seq_len=n)).total <= budget
    assert M.predict(s, M.PlanConfig(method="qlora", loss_tokens=2048, seq_len=n + 1024)).total > budget
    assert M.max_context(s, cfg, 80) > 2 * n
    assert M.max_context(s, M.PlanConfig(method="full"), 24) == 0  # 8B full fine-tuning never fits 24 GB


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="PlanConfig.method"):
        M.PlanConfig(method="adapter")
    with pytest.raises(ValueError, match="cp_size"):
        M.PlanConfig(cp_size=4, n_gpus=2)
    with pytest.raises(KeyError, match="unknown preset"):
        M.ModelShape.from_preset("gpt-17")


def test_cli_json(capsys):
    from longrm_utils.__main__ import main

    assert main(["plan", "--model", "qwen3-8b", "--method", "qlora", "--seq-len", "8192", "--gpu-mem", "24",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["seq_len"] == 8192 and out["max_context"] > 0
    assert set(out["predicted_gib"]) == {*M.Breakdown.TERMS, "total", "host_ram"}
    with pytest.raises(SystemExit):
        main(["plan", "--params-b", "1.0", "--layers", "4"])  # missing numbers are named


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures /proc/self peak RSS")
@pytest.mark.parametrize("kw", [dict(kind="generative"), dict(kind="scalar", grad_ckpt=True)],
                         ids=["sft-full", "rm-ckpt"])
def test_prediction_matches_measured_cpu_peak(tiny_shape, kw):
    rows = memory_measure.validate("tiny", (2048, 8192), shape=tiny_shape, **kw)
    for r in rows:
        assert abs(r["ratio"] - 1) <= TOLERANCE, r
    # Measured memory grows linearly with length (sdpa keeps O(seq) state): 4x tokens -> ~4x bytes.
    growth = rows[1]["measured_bytes"] / rows[0]["measured_bytes"]
    assert 3.2 < growth < 4.6, growth


def test_vllm_args_turn_on_yarn_beyond_the_native_window():
    short = vllm_args("qwen3-8b", max_context=16384)
    assert "hf_overrides" not in short and short["enable_prefix_caching"]
    long = vllm_args("qwen3-8b", max_context=131072 - 2048, tensor_parallel_size=2)
    assert long["hf_overrides"]["rope_scaling"]["rope_type"] == "yarn"
    assert long["hf_overrides"]["rope_scaling"]["factor"] == pytest.approx(4.0)
    assert long["max_model_len"] == 131072 and long["tensor_parallel_size"] == 2
    assert "hf_overrides" not in vllm_args("llama-3.1-8b-instruct", max_context=120000)  # natively 128k
    with pytest.raises(ValueError, match="exceeds"):
        vllm_args("qwen3-8b", max_context=262144)


def test_plan_profile_reads_the_shipped_configuration(capsys, tmp_path, monkeypatch):
    """`plan --profile` plans the three training steps from the profile's own parameters: changing a
    parameter the notebooks read changes the plan."""
    from longrm_utils.__main__ import main
    from longrm_utils.train import plan as PL

    assert main(["plan", "--profile", "gpu-qlora-24gb", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"sft", "align", "scalar"} <= set(out) and out["gpu_mem_gib"] == 24
    assert all(isinstance(out[k], int) and out[k] > 0 for k in ("sft", "align", "scalar"))
    hw, plans = PL.profile_plans("gpu-qlora-24gb")
    raw = yaml.safe_load((PL.PROFILE_DIR / "gpu-qlora-24gb.yaml").read_text())
    assert plans["sft"][2] == raw["04_stage1_long_sft"]["long_run"]["max_length"]
    assert plans["align"][1].responses == 1 + raw["05_stage2_align_generative_rm"]["V"]
    assert plans["align"][1].shared_prefix == raw["05_stage2_align_generative_rm"]["shared_prefix"]
    # the same profile without offloading and tiling in Stage I trains shorter, and needs no host RAM
    raw["04_stage1_long_sft"]["long_run"].update(offload_checkpoints=False, mlp_tile_tokens=0)
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(PL, "PROFILE_DIR", tmp_path)
    plain = PL.profile_limits("plain")
    assert plain["sft"] < out["sft"] and plain["shipped"]["sft"]["host_ram_gib"] == 0
    assert out["shipped"]["sft"]["host_ram_gib"] > 0
    with pytest.raises(SystemExit, match="no profile"):
        PL.profile_limits("nope")


@pytest.mark.parametrize("profile", ["gpu-qlora-24gb", "gpu-qlora-80gb"])
def test_single_gpu_profiles_ship_lengths_their_plan_fits(profile):
    """Every training step of a one-GPU profile runs at a length the planner says fits (on 24 GB, the
    longest), and Stage I reaches its target: 64k on 24 GB, 256k on 80 GB."""
    from longrm_utils.train import plan as PL

    out = PL.profile_limits(profile)
    for step in ("sft", "align", "scalar"):
        shipped = out["shipped"][step]
        assert shipped["fits"], (profile, step, shipped)
        if profile.endswith("24gb"):
            assert shipped["max_length"] == out[step], (step, out[step], shipped["max_length"])
    assert out["sft"] >= (65536 if profile.endswith("24gb") else 262144)


def test_each_technique_lowers_the_predicted_peak():
    s = M.ModelShape.from_preset("qwen3-8b")
    base = M.PlanConfig(method="qlora", seq_len=32768, grad_ckpt=True, loss_tokens=512, lora_dropout=0.0)
    off = M.predict(s, replace(base, offload=True))
    tiled = M.predict(s, replace(base, mlp_tile_tokens=4096))
    plain = M.predict(s, base)
    assert off.total < plain.total and off.host > 0 and plain.host == 0
    assert tiled.total < plain.total
    align = replace(base, responses=3, response_tokens=512)
    assert M.predict(s, align).total < M.predict(s, replace(align, shared_prefix=False)).total
    chunked = M.predict(s, replace(align, loss_chunk=512, loss_tokens=None)).total
    assert chunked <= M.predict(s, replace(align, loss_tokens=None)).total
    with pytest.raises(ValueError, match="offload needs grad_ckpt"):
        M.PlanConfig(grad_ckpt=False, offload=True)


def test_planner_validation_rows_hold_for_the_current_planner():
    """benchmarks/results/planner_validation.json: the shipped steps measured at real width. The
    current planner, recomputed on each row's configuration, is within 15% of every measurement."""
    import importlib.util

    from longrm_utils.constants import REPO_ROOT

    spec = importlib.util.spec_from_file_location("planner_validation", REPO_ROOT / "benchmarks" / "planner_validation.py")
    pv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pv)
    doc = json.loads((REPO_ROOT / "benchmarks" / "results" / "planner_validation.json").read_text())
    rows = doc["rows"]
    assert 12 <= len(rows) <= 20
    for r in rows:
        assert {"model", "hidden_size", "layers", "method", "techniques", "tokens", "measured_mib", "predicted_mib",
                "command"} <= set(r)
        pred = pv.predicted_mib(r["spec"])
        assert abs(pred / r["measured_mib"] - 1) <= 0.15, (r["command"], r["measured_mib"], pred)
    real = [r for r in rows if r["hidden_size"] == 4096]
    assert {r["tokens"] for r in real} == {1024, 2048} and {r["method"] for r in real} == {"lora", "qlora"}
    assert {t for r in real for t in r["techniques"]} == {"grad_ckpt", "tiled_mlp", "shared_prefix", "chunked_loss"}
    assert {r["step"] for r in real} == {"sft", "align", "scalar"}
    assert any("offload" in t for t in doc["gpu_only_terms"])
