"""Where you are and where things go: capabilities, seeding, run directories and artifacts.

The run-directory contract (design section 2)::

    runs/<name>/
      manifest.json      git commit, versions, profile, merged parameters, seed, device
      summary.json/.md   per notebook: status, wall time, budget, headline metrics (written by course.py)
      artifacts.json     logical name -> path relative to the run directory
      headlines/NN.json  the headline metrics each notebook reports (read by course.py)

Artifacts are addressed by logical names such as ``bench/mini``, ``judges/<id>`` or ``models/<id>``.
A notebook run alone falls back to what ``data/`` ships where a fallback exists, and otherwise
names the notebook that produces the missing input.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import platform
import random
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .constants import DATA_DIR, REPO_ROOT

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "trl",
            "bitsandbytes", "gguf", "papermill", "matplotlib", "numpy", "pandas")

OPTIONAL_WHAT_IT_DISABLES = {
    "cuda": "GPU profiles (gpu-qlora-24gb, gpu-full-80gb); CPU profiles are unaffected",
    "bf16": "bf16 mixed precision; fp32 is used instead",
    "flash_attn": "flash_attention_2 and padding-free packing; sdpa is used instead",
    "bitsandbytes": "4-bit QLoRA loading",
    "vllm": "the vLLM judging backend; the HF generate backend is used instead",
    "deepspeed": "DeepSpeed ZeRO-2/3 and Ulysses sequence-parallel configs",
    "smollm2": "the SmolLM2-135M-Instruct preset offline (run `python -m longrm_utils setup`)",
}


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


@dataclass
class Capabilities:
    python: str
    platform: str
    versions: dict[str, str | None]
    device: str
    cuda: bool
    gpu_name: str | None
    gpu_count: int
    gpu_mem_gib: float | None
    mps: bool
    bf16: bool
    flash_attn: bool
    bitsandbytes: bool
    bitsandbytes_backend: str | None
    vllm: bool
    deepspeed: bool
    smollm2: bool
    hf_offline: bool
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, str]]:
        """(item, status, what a missing item disables) rows for display."""
        out = [(f"package {k}", v or "MISSING", "" if v else "required") for k, v in self.versions.items()]
        for key in ("cuda", "bf16", "flash_attn", "bitsandbytes", "vllm", "deepspeed", "smollm2"):
            ok = bool(getattr(self, key))
            detail = {"cuda": self.gpu_name, "bitsandbytes": self.bitsandbytes_backend}.get(key)
            out.append((key, ("OK" + (f" ({detail})" if detail else "")) if ok else "missing",
                        "" if ok else OPTIONAL_WHAT_IT_DISABLES[key]))
        out.append(("device in use", self.device, ""))
        out.append(("HF_HUB_OFFLINE", "1" if self.hf_offline else "0", ""))
        return out

    def to_markdown(self) -> str:
        lines = ["| item | status | a missing item disables |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows()]
        return "\n".join(lines)


def pick_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then Apple's mps, then cpu. An explicit choice is checked."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for, but torch sees no CUDA device")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device='mps' was asked for, but this machine has no usable MPS backend")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def capabilities(device: str = "auto") -> Capabilities:
    """A report of what this machine can run, without importing any optional GPU package."""
    import torch

    cuda = torch.cuda.is_available()
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    gpu_mem = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    bnb_backend = None
    if has_module("bitsandbytes"):
        bnb_backend = "cuda" if cuda else "cpu"
    from .models import smollm2_wheel_dir

    return Capabilities(
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.machine()}",
        versions={p: _version(p) for p in PACKAGES},
        device=pick_device(device),
        cuda=cuda,
        gpu_name=gpu_name,
        gpu_count=torch.cuda.device_count() if cuda else 0,
        gpu_mem_gib=gpu_mem,
        mps=mps,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        flash_attn=bool(cuda and has_module("flash_attn")),
        bitsandbytes=bnb_backend is not None,
        bitsandbytes_backend=bnb_backend,
        vllm=has_module("vllm"),
        deepspeed=has_module("deepspeed"),
        smollm2=smollm2_wheel_dir() is not None,
        hf_offline=os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"),
    )


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Use all cores by default (2 on the course machines); returns the count in use."""
    import torch

    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


# --- run directories ----------------------------------------------------------------------------

def run_dir(path: str | os.PathLike | None = None, *, default_name: str = "interactive") -> Path:
    """Resolve (and create) a run directory. ``None`` means ``runs/<default_name>`` in the repo."""
    p = Path(path) if path else REPO_ROOT / "runs" / default_name
    if not p.is_absolute():
        p = (REPO_ROOT / p) if not p.exists() else p.resolve()
    p.mkdir(parents=True, exist_ok=True)
    return p


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except Exception:
        return None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_manifest(rd: Path, *, profile: str | None, parameters: dict, seed: int | None,
                   device: str | None = None) -> Path:
    return write_json(Path(rd) / "manifest.json", {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": {p: _version(p) for p in PACKAGES},
        "profile": profile,
        "parameters": parameters,
        "seed": seed,
        "device": device,
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    })


class MissingArtifact(FileNotFoundError):
    """An input from an earlier notebook is missing; the message names that notebook."""


def _index_path(rd: Path) -> Path:
    return Path(rd) / "artifacts.json"


def register_artifact(rd: str | os.PathLike, name: str, path: str | os.PathLike) -> Path:
    """Record ``name -> path`` in the run's artifacts.json (paths stored relative to the run dir)."""
    rd = Path(rd)
    path = Path(path)
    idx = read_json(_index_path(rd)) if _index_path(rd).exists() else {}
    try:
        rel = str(path.resolve().relative_to(rd.resolve()))
    except ValueError:
        rel = str(path.resolve())
    idx[name] = rel
    write_json(_index_path(rd), dict(sorted(idx.items())))
    return path


def artifacts(rd: str | os.PathLike) -> dict[str, Path]:
    rd = Path(rd)
    if not _index_path(rd).exists():
        return {}
    return {k: (rd / v) if not Path(v).is_absolute() else Path(v) for k, v in read_json(_index_path(rd)).items()}


# Logical name -> (notebook that produces it, shipped fallback under data/ or None)
PRODUCERS: dict[str, tuple[str, Path | None]] = {
    "bench/mini": ("01_build_long_rewardbench", DATA_DIR / "mini" / "mini.jsonl"),
    "bench/short": ("01_build_long_rewardbench", DATA_DIR / "mini" / "short.jsonl"),
    "bench/short_train": ("01_build_long_rewardbench", DATA_DIR / "mini" / "short_train.jsonl"),
}


def producer_of(name: str) -> str:
    if name in PRODUCERS:
        return PRODUCERS[name][0]
    prefix = name.split("/")[0]
    return {"judges": "02_baseline_judging (or the notebook that trained that model)",
            "models": "04_stage1_long_sft / 05_stage2_align_generative_rm / 06_stage2_align_scalar_rm",
            "analysis": "03_failure_analysis", "bench": "01_build_long_rewardbench"}.get(prefix, "an earlier notebook")


def find_artifact(rd: str | os.PathLike | None, name: str, *, fallback: bool = True, verbose: bool = True) -> Path:
    """Locate an artifact by logical name: the run's index first, then the shipped fallback.

    Raises :class:`MissingArtifact` naming the producing notebook when neither exists.
    """
    if rd is not None:
        idx = artifacts(rd)
        if name in idx and idx[name].exists():
            return idx[name]
    prod, shipped = PRODUCERS.get(name, (producer_of(name), None))
    if fallback and shipped is not None and shipped.exists():
        if verbose:
            print(f"[longrm] {name!r} is not in run dir {rd}; using the shipped copy {shipped.relative_to(REPO_ROOT)}")
        return shipped
    raise MissingArtifact(
        f"artifact {name!r} not found in run directory {rd!s}"
        + ("" if shipped is None else f" and no shipped copy at {shipped}")
        + f". It is produced by notebook {prod}: run that notebook first with the same run_dir.")


def record_headline(rd: str | os.PathLike, notebook: str, metrics: dict[str, Any]) -> Path:
    """Headline metrics a notebook wants in summary.json/summary.md (merged over earlier calls)."""
    p = Path(rd) / "headlines" / f"{notebook}.json"
    old = read_json(p) if p.exists() else {}
    old.update(metrics)
    return write_json(p, old)


def check_params(notebook: str, given: dict[str, Any], allowed: dict[str, Any]) -> None:
    """Used at the top of a notebook run interactively: unknown keys are an error naming them."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"notebook {notebook}: unknown parameter(s) {unknown}; known: {sorted(allowed)}")


def quiet() -> None:
    """Silence library chatter (load reports, advisory warnings) that buries the notebook's own output."""
    import warnings

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:
        pass
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    warnings.filterwarnings("ignore", category=FutureWarning)


def resolve_input(rd: str | os.PathLike | None, name: str | None, *, offline_fallback: str | None = None):
    """A benchmark parameter as notebooks take it: an artifact name (``bench/...``) through the run
    directory (or its shipped fallback), a path as given, or a hub id. With ``offline_fallback`` set,
    a hub id under ``HF_HUB_OFFLINE=1`` is replaced by that artifact, and the swap is printed."""
    if not name:
        return name
    if name.startswith("bench/"):
        return find_artifact(rd, name)
    looks_like_hub_id = not Path(name).exists() and name.count("/") == 1 and not name.endswith((".jsonl", ".json"))
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if offline_fallback and offline and looks_like_hub_id:
        print(f"[longrm] {name!r} is a hub id and HF_HUB_OFFLINE is set: using {offline_fallback!r} instead")
        return find_artifact(rd, offline_fallback)
    return name
