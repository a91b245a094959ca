"""Miniatures of the GPU presets (``<preset>@mini``) and the defects they catch on CPU.

A miniature keeps the real architecture class, rope, head and template, so each test below fails
the way the real model would: YaRN loading beyond 32k (transformers 5 drops ``rope_theta`` when
``rope_scaling`` is set), full-vocabulary logits in a prefill, an adapter reloaded without the rope
it was trained with, a 4-bit compute dtype that ignores the model's dtype.
"""
import json

import pytest
import torch

from longrm_utils import miniature, models
from longrm_utils.judge import run as jrun
from longrm_utils.judge.backends import HFGenerativeJudge
from longrm_utils.judge.prompts import load_templates
from longrm_utils.train.losses import completion_logps

REAL = {"qwen3-8b": ("Qwen3ForCausalLM", "qwen3"), "llama-3.1-8b-instruct": ("LlamaForCausalLM", "llama"),
        "con-j-qwen2-7b": ("Qwen2ForCausalLM", "qwen2"),
        "skywork-reward-v2-llama-3.1-8b": ("LlamaForSequenceClassification", "llama")}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_hub_preset_with_a_family_has_a_miniature():
    hub = [s for s in models.REGISTRY.values() if s.route == "hub"]
    assert all(s.family for s in hub), [s.name for s in hub if not s.family]
    for s in hub:
        mini = models.get_spec(s.name + miniature.MINI_SUFFIX)
        assert (mini.route, mini.kind, mini.max_context, mini.rope_scaling, mini.chat_template_kwargs) == \
               ("mini", s.kind, s.max_context, s.rope_scaling, s.chat_template_kwargs)


@pytest.mark.parametrize("preset", sorted(REAL))
def test_miniature_keeps_architecture_head_and_rope(preset):
    loaded = models.load(preset + "@mini")
    info = models.model_info(loaded)
    assert (info["architecture"], info["model_type"]) == REAL[preset] and info["miniature"]
    cfg = loaded.model.config
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size == 64 and cfg.num_attention_heads == 4 * cfg.num_key_value_heads
    fam = miniature.FAMILIES[models.REGISTRY[preset].family]
    assert info["rope_parameters"]["rope_theta"] == fam.rope_theta
    assert info["max_position_embeddings"] == fam.max_position_embeddings
    if fam.model_type == "llama":
        assert info["rope_parameters"]["rope_type"] == "llama3" and info["rope_parameters"]["factor"] == 8.0


def test_templates_behave_like_the_real_ones():
    q = models.load("qwen3-8b@mini")
    ids = models.chat_ids(q.tokenizer, [{"role": "user", "content": "hi"}], q.spec)
    assert q.tokenizer.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # thinking off
    # Qwen3 renders the reply to the last user turn with its (empty) thinking block, so the thinking-off
    # prompt is a prefix of the finished conversation (Stage II's shared prefix, trl's completion mask);
    # earlier replies carry none.
    done = models.chat_ids(q.tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "[[A]]"}],
                           q.spec, add_generation_prompt=False)
    assert done[:len(ids)] == ids and q.tokenizer.decode(done[len(ids):]) == "[[A]]<|im_end|>\n"
    older = q.tokenizer.decode(models.chat_ids(q.tokenizer, [{"role": "user", "content": "a"}, {"role": "assistant",
                               "content": "b"}, {"role": "user", "content": "c"}], q.spec, add_generation_prompt=False))
    assert "<think>" not in older
    c = models.load("con-j-qwen2-7b@mini")  # Qwen2 adds a default system turn, Qwen3 does not
    assert c.tokenizer.decode(models.chat_ids(c.tokenizer, [{"role": "user", "content": "hi"}], c.spec)).startswith(
        "<|im_start|>system\n")
    assert not q.tokenizer.decode(ids).startswith("<|im_start|>system")
    r = models.load("skywork-reward-v2-llama-3.1-8b@mini")
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    text = r.tokenizer.decode(models.chat_ids(r.tokenizer, conv, r.spec, add_generation_prompt=False))
    assert text.startswith("<|begin_of_text|><|start_header_id|>user") and text.endswith("a<|eot_id|>")
    # the RM pools the last non-pad token, so its pad must not be the end-of-turn token
    assert r.tokenizer.pad_token_id != r.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert r.model.config.pad_token_id == r.tokenizer.pad_token_id


def test_yarn_at_131072_keeps_rope_theta_and_one_factor():
    """Defect 1 (TypeError when rope_scaling replaced rope_parameters) and 8 (factor = context / 32768)."""
    loaded = models.load("qwen3-8b@mini", max_context=131072)
    rope = loaded.model.config.rope_parameters
    assert rope["rope_type"] == "yarn" and rope["factor"] == 4.0 and rope["rope_theta"] == 1_000_000.0
    for ctx in (40_000, 65_536):  # one factor, the model card's, whatever the requested context up to 131,072
        assert models.load("qwen3-8b@mini", max_context=ctx).model.config.rope_parameters["factor"] == 4.0
    # past what 4.0 covers, the factor doubles (the 256k training of gpu-qlora-80gb)
    assert models.load("qwen3-8b@mini", max_context=262_144).model.config.rope_parameters["factor"] == 8.0
    with torch.no_grad():  # a forward past the native window runs
        out = loaded.model(torch.randint(0, 100, (1, 8)), position_ids=torch.arange(40_000, 40_008)[None])
    assert torch.isfinite(out.logits).all()


def test_adapter_reloads_with_the_rope_it_was_trained_with(tmp_path):
    loaded = models.add_lora(models.load("qwen3-8b@mini", max_context=131072, trainable=True), r=4)
    models.save_model(loaded, tmp_path / "m", method="test")
    meta = json.loads((tmp_path / "m" / "longrm.json").read_text())
    assert meta["rope_parameters"]["factor"] == 4.0 and meta["model_info"]["model_type"] == "qwen3"
    again = models.load(str(tmp_path / "m"))
    assert again.model.config.rope_parameters["rope_type"] == "yarn"
    # a model trained with YaRN 8.0 is judged with it, also at shorter inputs
    long = models.add_lora(models.load("qwen3-8b@mini", max_context=262_144, trainable=True), r=4)
    models.save_model(long, tmp_path / "l", method="test")
    for ctx in (None, 131_072):
        assert models.load(str(tmp_path / "l"), max_context=ctx).model.config.rope_parameters["factor"] == 8.0


def _lm_head_shapes(model):
    shapes = []
    handle = models.unwrap(model).lm_head.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    return shapes, handle


def test_judge_prefill_keeps_one_position_of_logits():
    """Defect 4: the shared prefill of the two display orders built [prefix x vocab] logits."""
    loaded = models.load("qwen3-8b@mini")
    judge = HFGenerativeJudge(loaded, templates=load_templates(), max_new_tokens=2, max_input_tokens=4096)
    seqs = [list(range(10, 300)) + [5, 6], list(range(10, 300)) + [7, 8]]
    shapes, handle = _lm_head_shapes(loaded.model)
    judge.generate_many(seqs)
    handle.remove()
    assert shapes and max(s[1] for s in shapes) == 1, shapes


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_alignment_logits_cover_the_judgements_only(shared_prefix):
    """Defect 6: generative alignment built [N x (prompt + judgement) x vocab] logits."""
    loaded = models.load("qwen3-8b@mini")
    prompt, comps = list(range(10, 410)), [[11, 12, 13], [14, 15], [16, 17, 18, 19]]
    shapes, handle = _lm_head_shapes(loaded.model)
    with torch.no_grad():
        lp, _ = completion_logps(loaded.model, prompt, comps, loaded.tokenizer.pad_token_id,
                                 shared_prefix=shared_prefix)
    handle.remove()
    # the head sees flattened [positions, vocab] chunks: only the judgements' positions (padded to the
    # longest), never the prompt's
    assert all(len(s) == 2 for s in shapes), shapes
    assert sum(s[0] for s in shapes) <= len(comps) * (max(map(len, comps)) + 1), shapes
    with torch.no_grad():  # the same numbers as the full-logits reference
        ref = []
        for c in comps:
            logits = loaded.model(torch.tensor([prompt + c])).logits[0, len(prompt) - 1:-1].log_softmax(-1)
            ref.append(logits.gather(1, torch.tensor(c)[:, None]).sum())
    assert torch.allclose(lp, torch.stack(ref), atol=1e-4)


def test_4bit_compute_dtype_follows_the_model_dtype():
    """Defect 10: bnb's compute dtype was bf16 even where the model's dtype fell back to fp16."""
    pytest.importorskip("bitsandbytes")
    assert models.quant_config("4bit", "cuda", torch.float16).bnb_4bit_compute_dtype == torch.float16
    assert models.quant_config("4bit", "cpu").bnb_4bit_compute_dtype == torch.float32


def test_judge_cli_on_miniatures_records_model_info(tmp_path):
    """`judge --model qwen3-8b@mini --max-input-tokens 131072` and the Skywork-shaped scalar RM run."""
    from longrm_utils.constants import DATA_DIR

    bench = str(DATA_DIR / "mini" / "short.jsonl")
    assert jrun.cli(["--model", "qwen3-8b@mini", "--kind", "generative", "--bench", bench, "--limit", "1",
                     "--out", str(tmp_path / "g"), "--max-input-tokens", "131072", "--max-new-tokens", "4"]) == 0
    assert jrun.cli(["--model", "skywork-reward-v2-llama-3.1-8b@mini", "--kind", "scalar", "--bench", bench,
                     "--limit", "2", "--out", str(tmp_path / "s")]) == 0
    for sub, arch, rope in (("g", "Qwen3ForCausalLM", "yarn"), ("s", "LlamaForSequenceClassification", "llama3")):
        info = json.loads((tmp_path / sub / "run_config.json").read_text())["resolved"]["model_info"]
        assert info["architecture"] == arch and info["rope_parameters"]["rope_type"] == rope and info["miniature"]


def test_truncated_scalar_item_shares_one_cut_context():
    """Defect 9: each candidate was cut on its own, so the shared prefix shrank to half the limit and
    the long remainder ran once per candidate. Now the context is cut once and shared."""
    from longrm_utils.bench import schema
    from longrm_utils.constants import DATA_DIR
    from longrm_utils.judge.backends import ScalarJudge

    loaded = models.load("skywork-reward-v2-llama-3.1-8b@mini")
    rec = next(r for r in schema.read_jsonl(DATA_DIR / "mini" / "short.jsonl") if r["subtype"] == "4")
    item = jrun.item_view(rec)
    full = ScalarJudge(loaded, max_input_tokens=100_000).candidate_ids(item)[0]
    limit = max(map(len, full)) - 200
    judge = ScalarJudge(loaded, max_input_tokens=limit)
    seqs, trunc = judge.candidate_ids(item)
    assert all(trunc) and max(map(len, seqs)) <= limit
    P0 = jrun.backends.lcp(full)
    assert [s[-(len(f) - P0):] for s, f in zip(seqs, full)] == [f[P0:] for f in full]  # every answer whole
    res = judge.judge_item(item, [[0, 1, 2, 3]])[0]
    P, encoded = res.timing["prefix_tokens"], res.timing["encoded_tokens"]
    assert P >= limit - max(len(f) - P0 for f in full) - 1  # the cut context is shared, not halved
    assert encoded == P + sum(len(s) - P for s in seqs) <= limit + sum(len(f) - P0 for f in full)


def test_qlora_keeps_the_model_dtype():
    """Defect 5: k-bit preparation upcast embeddings, norms and lm_head to fp32, so a bf16 QLoRA
    model computed its whole residual stream (and logits) in fp32."""
    pytest.importorskip("bitsandbytes")
    loaded = models.add_lora(models.load("qwen3-8b@mini", quantization="4bit", dtype="bfloat16", trainable=True),
                             r=4, gradient_checkpointing=True)
    frozen = {p.dtype for p in loaded.model.parameters() if not p.requires_grad}
    assert torch.float32 not in frozen, frozen  # 4-bit weights (uint8) and bf16 rest
    ids = torch.randint(0, 100, (1, 16))
    out = loaded.model(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    assert all(p.grad is not None for p in loaded.model.parameters() if p.requires_grad)


def test_gpu_check_runs_on_miniatures(tmp_path):
    """benchmarks/gpu_check.py (the script a lent GPU runs) exercises every step at miniature size."""
    import importlib.util

    from longrm_utils.constants import REPO_ROOT

    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    out = tmp_path / "gpu_check.json"
    assert gc.main(["--mini", "--device", "cpu", "--lengths", "128,256", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    steps = {(r["step"], r["tokens"]) for r in res["rows"] if r["status"] == "ok"}
    assert {("sft", 256), ("align_gen", 256), ("scalar_bo4", 256), ("prefill", 256)} <= steps
    assert all(r["predicted_gib"] > 0 for r in res["rows"] if r["step"] != "prefill")
    assert res["mini"] and res["command"].startswith("python benchmarks/gpu_check.py")


@pytest.mark.slow
def test_qlora_sft_cli_at_40k_on_the_qwen3_miniature(tmp_path):
    """`train sft --base qwen3-8b@mini --method qlora` past the native 32k window: YaRN on, 4-bit base,
    one step on a 40,960-token example, and the saved adapter remembers its rope."""
    pytest.importorskip("bitsandbytes")
    from longrm_utils.bench import schema
    from longrm_utils.constants import DATA_DIR
    from longrm_utils.train import cli

    recs = schema.read_jsonl(DATA_DIR / "mini" / "short_train.jsonl")[:100]  # enough filler chunks to pad each one to 40k
    bench = tmp_path / "train.jsonl"
    schema.write_jsonl(recs, bench)
    out = tmp_path / "sft"
    assert cli(["sft", "--bench", str(bench), "--out", str(out), "--base", "qwen3-8b@mini", "--method", "qlora",
                "--target-tokens", "40960", "--max-length", "41984", "--max-steps", "1", "--lora-r", "4",
                "--model-id", "sft-mini", "--device", "cpu"]) == 0
    meta = json.loads((out / "longrm.json").read_text())
    assert meta["model_info"]["model_type"] == "qwen3" and meta["model_info"]["quantization"] == "4bit"
    assert meta["rope_parameters"]["rope_type"] == "yarn" and meta["rope_parameters"]["factor"] == 4.0
