"""load_rm and export on the tiny model and on a LoRA-adapted SmolLM2."""
import json

import pytest
import yaml

from longrm_utils import load_rm, models, store
from longrm_utils.rm import GenerativeRM, ScalarRM, export

PROMPT = [{"role": "user", "content": "The museum opened in 1932. When did the museum open?"}]
RESPONSES = ["It opened in 1932.", "It opened in 1990.", "It opened in 1955."]


def _adapter(tmp_path, preset, kind):
    loaded = models.add_lora(models.load(preset, device="cpu", kind=kind), r=4)
    for n, p in loaded.model.named_parameters():  # make the adapter non-trivial, deterministically
        if "lora_B" in n:
            p.data.fill_(0.01)
    return models.save_model(loaded, tmp_path / f"{preset}-lora", stage="test")


@pytest.mark.parametrize("preset", ["tiny-rm"] + (["smollm2-135m-rm"] if store.smollm2_wheel_dir() else []))
def test_scalar_adapter_load_and_export(tmp_path, preset):
    ad = _adapter(tmp_path, preset, models.SCALAR)
    rm = load_rm(str(ad), device="cpu")
    assert isinstance(rm, ScalarRM)
    s1 = rm.score(PROMPT, RESPONSES)
    assert len(s1) == 3 and rm.best_of_n(PROMPT, RESPONSES) == max(range(3), key=s1.__getitem__)
    hub_id = models.REGISTRY[preset].hf_id or preset
    # Hub-ready: the adapter names its base by hub id, and the card carries Hub YAML metadata
    assert json.loads((ad / "adapter_config.json").read_text())["base_model_name_or_path"] == hub_id
    metrics = {"overall": {"acc_official": 0.625, "acc_two_order": 0.5, "auc": None},
               "run": {"args": {"bench": "runs/cpu/bench/short.jsonl"}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    merged = export(ad, tmp_path / "merged", tmp_path / "metrics.json")
    card = (merged / "README.md").read_text()
    head = yaml.safe_load(card.split("---\n")[1])
    assert head["base_model"] == hub_id and head["license"] == "apache-2.0" and "reward-model" in head["tags"]
    assert head["library_name"] == "transformers" and head["pipeline_tag"] == "text-classification"
    res = head["model-index"][0]["results"][0]
    assert res["dataset"]["name"] == "short.jsonl"
    assert [(m["type"], m["value"]) for m in res["metrics"]] == [("acc_official", 62.5), ("acc_two_order", 50.0)]
    assert f"base model: `{hub_id}`" in card and str(tmp_path) not in card
    assert not (merged / "adapter_config.json").exists()
    s2 = load_rm(str(merged), device="cpu").score(PROMPT, RESPONSES)
    assert s2 == pytest.approx(s1, abs=1e-4)


def test_generative_tiny_judge(tmp_path):
    ad = _adapter(tmp_path, "tiny", models.GENERATIVE)
    judge = load_rm(str(ad), device="cpu", max_new_tokens=8)
    assert isinstance(judge, GenerativeRM)
    r = judge.judge(PROMPT, RESPONSES[:2])
    assert r is None or sorted(r) == [0, 1]
    assert isinstance(judge.last_raw, str)
    with pytest.raises(ValueError):
        judge.judge(PROMPT, RESPONSES[:1])
    merged = export(ad, tmp_path / "merged-gen", device="cpu")
    assert isinstance(load_rm(str(merged), device="cpu"), GenerativeRM)


def test_export_merges_in_the_requested_dtype_not_fp32(tmp_path):
    """Defect 10b: the merge runs in the preset's dtype (bf16 for the 8B models); here bf16 is asked for
    explicitly on the tiny scalar RM, whose scores must survive the merge within bf16 rounding."""
    import torch
    from safetensors import safe_open

    ad = _adapter(tmp_path, "tiny-rm", models.SCALAR)
    s1 = load_rm(str(ad), device="cpu").score(PROMPT, RESPONSES)
    merged = export(ad, tmp_path / "merged-bf16", device="cpu", dtype="bfloat16")
    with safe_open(str(next(merged.glob("*.safetensors"))), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.bfloat16}
    s2 = load_rm(str(merged), device="cpu").score(PROMPT, RESPONSES)
    assert s2 == pytest.approx(s1, abs=0.05)
