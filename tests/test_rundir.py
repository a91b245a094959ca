import pytest

from longrm_utils import io, rundir, runtime


def test_artifacts_resolve_through_the_run_then_the_shipped_copy(tmp_path):
    f = tmp_path / "bench" / "mini.jsonl"
    f.parent.mkdir()
    f.write_text("")
    rundir.register_artifact(tmp_path, "bench/mini", f)
    assert rundir.find_artifact(tmp_path, "bench/mini") == f
    other = tmp_path / "other"
    other.mkdir()
    assert rundir.find_artifact(other, "bench/mini").name == "mini.jsonl"  # the copy data/ ships
    with pytest.raises(rundir.MissingArtifact, match="04_stage1_long_sft"):
        rundir.find_artifact(other, "models/stage1-smollm2")


def test_resolve_input(tmp_path, monkeypatch):
    rundir.register_artifact(tmp_path, "bench/mini", tmp_path)
    assert rundir.resolve_input(tmp_path, "bench/mini") == tmp_path
    assert rundir.resolve_input(tmp_path, None) is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert rundir.resolve_input(tmp_path, "LCM-Lab/LongRewardBench", offline_fallback="bench/mini") == "LCM-Lab/LongRewardBench"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert rundir.resolve_input(tmp_path, "LCM-Lab/LongRewardBench", offline_fallback="bench/mini") == tmp_path
    assert rundir.resolve_input(tmp_path, "LCM-Lab/LongRewardBench") == "LCM-Lab/LongRewardBench"


def test_headlines_merge(tmp_path):
    rundir.record_headline(tmp_path, "02_x", {"a": 1})
    rundir.record_headline(tmp_path, "02_x", {"b": 2})
    assert io.read_json(tmp_path / "headlines" / "02_x.json") == {"a": 1, "b": 2}


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device"):
        runtime.pick_device("tpu")
    assert runtime.pick_device("cpu") == "cpu"
