"""Every accelerate config parses as `accelerate launch` would; a 2-process CPU DDP step runs."""
import pytest

from longrm_utils.train import launch

CONFIGS = launch.accelerate_configs()


def test_the_documented_configs_exist():
    assert {"ddp", "fsdp2", "zero2", "zero3", "cp4_fsdp2", "ulysses4_zero3", "ddp_cpu2"} <= set(CONFIGS)


@pytest.mark.parametrize("stem", sorted(CONFIGS))
def test_config_parses_like_accelerate_launch(stem):
    plan = launch.launch_plan(CONFIGS[stem])
    expected = {"ddp": ("MULTI_GPU", None, None), "fsdp2": ("FSDP", None, 2), "zero2": ("DEEPSPEED", 2, None),
                "zero3": ("DEEPSPEED", 3, None), "cp4_fsdp2": ("FSDP", None, 2),
                "ulysses4_zero3": ("DEEPSPEED", 3, None), "ddp_cpu2": ("MULTI_GPU", None, None)}[stem]
    assert (plan["distributed_type"], plan["zero_stage"], plan["fsdp_version"]) == expected
    assert plan["num_processes"] == (2 if stem == "ddp_cpu2" else 8)
    if stem == "cp4_fsdp2":
        assert plan["parallelism"]["cp"] == 4 and plan["parallelism"]["total"] == 8
        assert plan["env"]["PARALLELISM_CONFIG_CP_SIZE"] == "4"
    if stem == "ulysses4_zero3":
        assert plan["parallelism"]["sp"] == 4 and plan["env"]["PARALLELISM_CONFIG_SP_BACKEND"] == "deepspeed"


def test_readme_documents_every_config():
    from longrm_utils.constants import REPO_ROOT

    text = (REPO_ROOT / "configs" / "accelerate" / "README.md").read_text()
    for stem in CONFIGS:
        assert f"{stem}.yaml" in text, stem


def test_a_broken_config_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS["cp4_fsdp2"]).read_text().replace("parallelism_config_cp_size: 4",
                                                             "parallelism_config_cp_size: 3"))
    with pytest.raises(ValueError, match="bad.yaml"):
        launch.launch_plan(bad)


def test_two_process_cpu_ddp_step():
    rep = launch.run_ddp_smoke(nproc=2, seq_len=128, timeout=150)
    assert rep["distributed_type"] == "MULTI_CPU" and rep["world_size"] == 2 and rep["backend"] == "gloo"
    assert rep["losses"][0] != rep["losses"][1]  # each rank saw its own data
    a, b = rep["param_checksums"]
    assert a == pytest.approx(b, rel=0, abs=1e-6)  # ... yet the all-reduced update left the replicas equal


def test_context_parallel_runs_pad_to_a_multiple_of_two_cp(monkeypatch, tmp_path):
    """Defect 10c: under the cp4 launch environment, SFT pads every sequence to a multiple of 2 x 4, so
    torch's load balancer keeps its 8 chunks; without CP nothing is padded."""
    from longrm_utils.train import sft

    cfg = sft.SFTRun(base="tiny", method="full", max_steps=1, max_length=512)
    assert sft.sft_config(cfg, tmp_path, "cpu", packing=False).pad_to_multiple_of is None
    for k, v in launch.launch_plan(CONFIGS["cp4_fsdp2"])["env"].items():
        if k.startswith(("PARALLELISM_CONFIG", "ACCELERATE_USE_PARALLELISM")):
            monkeypatch.setenv(k, v)
    assert sft.context_parallel_size() == 4
    assert sft.sft_config(cfg, tmp_path, "cpu", packing=False).pad_to_multiple_of == 8
