"""Serving a judge with vLLM at long context: the arguments of ``vllm.LLM`` for a registry preset.

vLLM is optional and CUDA-only; nothing here imports it. Notebook 08 prints and saves these
arguments (``vllm_args.json``) so a GPU machine can start the same judge.
"""
from __future__ import annotations

from typing import Any

from ..models import REGISTRY, ModelSpec, base_folder


def vllm_args(preset: str | ModelSpec, *, model: str | None = None, max_context: int | None = None,
              tensor_parallel_size: int = 1, max_new_tokens: int = 2048, quantization: str | None = None) -> dict:
    """Keyword arguments for ``vllm.LLM`` to judge with a registry preset at ``max_context`` tokens.

    ``preset`` is a registry name or a spec; ``model`` overrides where the weights are (a folder).

    Beyond the native window the registry's rope scaling is applied with its one factor (YaRN 4.0
    for Qwen3-8B and Con-J, the model card's recipe; :func:`longrm_utils.models.rope_parameters` does
    the same for transformers); vLLM takes it through ``hf_overrides``. Prefix caching reuses the long
    context's KV blocks across the two display orders and across candidates.
    """
    s = REGISTRY[preset] if isinstance(preset, str) else preset
    # vLLM loads hub ids or folders: hub presets by id, the offline ones (tiny, SmolLM2) from their cache folder.
    model = model or (s.hf_id if s.route == "hub" else base_folder(s))
    ctx = max_context or s.max_context
    limit = s.yarn_context or s.max_context
    if ctx > limit:
        raise ValueError(f"{s.name}: max_context {ctx} exceeds what the registry allows ({limit})")
    kw: dict[str, Any] = {"model": model, "tensor_parallel_size": tensor_parallel_size, "dtype": "bfloat16",
                          "enable_prefix_caching": True, "max_model_len": ctx + max_new_tokens}
    if ctx + max_new_tokens > s.max_context:
        if not s.rope_scaling:
            raise ValueError(f"{s.name}: {ctx + max_new_tokens} tokens exceed the native {s.max_context} and the "
                             "registry has no rope scaling for it")
        kw["hf_overrides"] = {"rope_scaling": dict(s.rope_scaling)}
    if quantization == "4bit":
        kw["quantization"] = "bitsandbytes"
    return kw
