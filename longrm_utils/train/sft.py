"""Stage I: long-context supervised fine-tuning of a generative judge on trl's ``SFTTrainer``.

The training examples are conversational *prompt/completion* pairs (made by :mod:`.stage1_data`
or imported by :mod:`.official`): the prompt is the judge prompt with its long context, the
completion is the judgement. trl then puts the loss on the completion's tokens only
(``completion_only_loss``), whatever the chat template, which is why we do not rely on
``{% generation %}`` markers (SmolLM2 and Qwen3 templates have none). :func:`supervised_text`
shows, from the real label tensor, what is trained.

Methods: ``full`` fine-tuning, ``lora``, or ``qlora`` (4-bit nf4 base + LoRA, via bitsandbytes,
which also runs on CPU). Attention is FlashAttention-2 when it is installed and a GPU is used,
sdpa otherwise (:func:`longrm_utils.models.resolve_attn`); packing and padding-free batching are
switched on only with FlashAttention-2, the one backend that keeps packed sequences apart.

A run resumes from the last checkpoint in :func:`checkpoint_dir` (beside the model folder, never in it,
so the folder holds only what is published) and saves the adapter or weights,
the tokenizer, ``longrm.json``, ``sft_run.json`` and ``train_log.jsonl`` into ``<out>``
(``RUN/models/<model_id>`` in the course).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..constants import STAGE1_TABLE4
from ..io import read_jsonl, write_json, write_jsonl
from ..runtime import launched_world_size, pick_device, progress_enabled, quiet, seed_everything
from . import launch as launching, longctx
from .tracking import DEFAULT_REPORT_TO, beside, integrations, trainer_logging

METHODS = ("full", "lora", "qlora")


@dataclass
class SFTRun:
    """One Stage I SFT run. Every field is a parameter a profile may set (``runs: [{...}]``)."""

    model_id: str = "stage1-sft"
    """Folder name under ``RUN/models/``; also the judge id of its evaluation."""
    base: str = "tiny"
    """Registry preset (``tiny``, ``smollm2-135m-instruct``, ``qwen3-8b`` ...) or a model folder."""
    method: str = "lora"
    """``full``, ``lora`` or ``qlora`` (4-bit nf4 base, LoRA on top)."""
    lora_r: int = 16
    """LoRA rank (ignored for ``full``)."""
    lora_alpha: int | None = None
    """LoRA alpha; ``None`` means ``2 * lora_r``."""
    lora_dropout: float = 0.05
    learning_rate: float = STAGE1_TABLE4["learning_rate"]
    """Peak learning rate. Table 4: 2e-6 for full fine-tuning of an 8B model; LoRA and the tiny
    random-init model need far larger rates (see :data:`PRESETS`)."""
    max_steps: int = 40
    """Optimizer steps (not epochs): CPU budgets are set in steps."""
    per_device_batch_size: int = 1
    grad_accum: int = 1
    """Global batch = per_device_batch_size x grad_accum x GPUs. Table 4 uses 32."""
    warmup_ratio: float = STAGE1_TABLE4["warmup_ratio"]
    adam_beta1: float = STAGE1_TABLE4["adam_beta1"]
    adam_beta2: float = STAGE1_TABLE4["adam_beta2"]
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    max_length: int = STAGE1_TABLE4["max_length"]
    """Longest prompt+judgement in tokens. Longer examples are skipped and counted, never truncated."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% more time."""
    offload_checkpoints: bool = False
    """With checkpointing, keep each layer's saved input in pinned host RAM (GPU only; :mod:`.longctx`)."""
    mlp_tile_tokens: int = 0
    """Run each decoder MLP over token tiles of this many positions (0: off). Needs ``lora_dropout=0``."""
    packing: str = "auto"
    """``auto`` (on with FlashAttention-2 only), ``on`` or ``off``. Packing with sdpa would let
    packed examples attend to each other, so ``on`` without FlashAttention-2 is refused."""
    attn: str = "auto"
    """``auto``, ``flash_attention_2``, ``sdpa`` or ``eager``."""
    report_to: str = DEFAULT_REPORT_TO
    """Tracking integrations, comma-separated (``tensorboard``, ``trackio``, ``wandb`` ...) or ``none``;
    TensorBoard logs go to ``RUN/tensorboard/<model_id>`` (:mod:`.tracking`)."""
    dtype: str | None = None
    """Weights dtype; ``None`` uses the registry's (bf16 on GPU, fp32 on CPU)."""
    save_steps: int = 0
    """Checkpoint every N steps (0: only at the end). Checkpoints make a killed run resumable."""
    logging_steps: int = 5
    seed: int = 0
    expected_memory: str = ""
    """What this run is expected to need (documentation; the planner of notebook 08 computes it)."""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"SFTRun.method must be one of {METHODS}, got {self.method!r}")
        if self.packing not in ("auto", "on", "off"):
            raise ValueError(f"SFTRun.packing must be auto, on or off, got {self.packing!r}")
        if self.max_steps < 1:
            raise ValueError(f"SFTRun.max_steps must be >= 1, got {self.max_steps}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, preset: str | None = None) -> "SFTRun":
        """Build from a profile mapping; an unknown key is an error that names it."""
        known = {f.name for f in fields(cls)}
        d = dict(d)
        preset = d.pop("preset", preset)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SFTRun field(s) {unknown}; known: {sorted(known)}")
        if preset and preset not in PRESETS:
            raise ValueError(f"unknown SFT preset {preset!r}; have {sorted(PRESETS)}")
        base = asdict(PRESETS[preset]) if preset else {}
        base.update(d)
        return cls(**base)


PRESETS: dict[str, SFTRun] = {
    "cpu-tiny": SFTRun(
        model_id="stage1-tiny", base="tiny", method="full", learning_rate=3e-3, max_steps=120,
        warmup_ratio=0.05, max_length=8192 + 1024, logging_steps=10,
        expected_memory="<1.5 GB RAM at 8k tokens (385k-parameter model, sdpa, fp32); measured 0.85 GiB at 9.1k"),
    "cpu-smollm2-lora": SFTRun(
        model_id="stage1-smollm2", base="smollm2-135m-instruct", method="lora", lora_r=16,
        learning_rate=5e-4, max_steps=40, warmup_ratio=0.05, max_length=2048,
        expected_memory="about 4 GB RAM at ~900 tokens (135M fp32 base, LoRA r=16); measured 3.9 GiB process RSS"),
    "gpu-qlora-24gb": SFTRun(
        model_id="stage1-qwen3-8b-qlora", base="qwen3-8b", method="qlora", lora_r=64, lora_dropout=0.0,
        learning_rate=1e-4, max_steps=400, per_device_batch_size=1, grad_accum=32, max_length=65536,
        gradient_checkpointing=True, offload_checkpoints=True, mlp_tile_tokens=4096, save_steps=50, logging_steps=5,
        expected_memory="about 21.5 GiB on one 24 GB GPU at 64k tokens (python -m longrm_utils plan --profile "
                        "gpu-qlora-24gb): 5.7 GiB 4-bit weights, 2.6 GiB LoRA and AdamW, one layer's working set "
                        "with MLP tiles of 4k; the checkpointed inputs (18 GiB at 64k) wait in host RAM"),
    "gpu-qlora-80gb": SFTRun(
        model_id="stage1-qwen3-8b-qlora", base="qwen3-8b", method="qlora", lora_r=64, lora_dropout=0.0,
        learning_rate=1e-4, max_steps=400, per_device_batch_size=1, grad_accum=32, max_length=262144,
        gradient_checkpointing=True, offload_checkpoints=True, mlp_tile_tokens=4096, save_steps=50, logging_steps=5,
        expected_memory="about 54.5 GiB on one 80 GB GPU at 256k tokens (python -m longrm_utils plan --profile "
                        "gpu-qlora-80gb); the checkpointed inputs (72 GiB at 256k) wait in host RAM"),
    "gpu-full-80gb": SFTRun(
        model_id="stage1-qwen3-8b-full", base="qwen3-8b", method="full", learning_rate=2e-6, max_steps=300,
        per_device_batch_size=1, grad_accum=4, max_length=65536, gradient_checkpointing=True, attn="auto",
        save_steps=50, logging_steps=5,
        expected_memory="full 8B in bf16 needs ~16 GB weights + ~64 GB fp32 Adam states + grads: "
                        "sharded (FSDP/ZeRO-3) over >=4 x 80 GB GPUs; activations at 64k with FA2 + checkpointing"),
}
"""Table 4 scaled: full fine-tuning keeps lr 2e-6; LoRA uses 1e-4 (CPU 5e-4 for 40 steps); the
random-init tiny model needs 3e-3 to move at all within a CPU budget. Global batch 32 on the GPU
profiles (8 GPUs x 4 for full; accumulation 32 on one GPU); 1 on CPU."""


@dataclass
class SFTResult:
    out_dir: Path
    loaded: Any
    """The trained :class:`~longrm_utils.models.Loaded` (eval mode), ready for ``run_judge(loaded=...)``."""
    log: list[dict]
    n_examples: int
    skipped: dict[str, int]
    token_lengths: list[int]
    wall_s: float
    peak_mem_gib: float
    resumed_from: str | None
    attn: str
    packing: bool
    trained_params: int
    total_params: int
    world_size: int = 1
    """Processes that trained it (``accelerate launch``); 1 in the notebook's own kernel."""
    distributed_before_load: bool = False
    """Whether torch.distributed was up before the model loaded (it must be, under a launch)."""

    def summary(self) -> dict[str, Any]:
        losses = [r["loss"] for r in self.log if "loss" in r]
        return {"out_dir": str(self.out_dir), "examples": self.n_examples, "skipped": self.skipped,
                "tokens_min": min(self.token_lengths) if self.token_lengths else 0,
                "tokens_max": max(self.token_lengths) if self.token_lengths else 0,
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                "wall_s": round(self.wall_s, 1), "peak_mem_gib": round(self.peak_mem_gib, 2),
                "resumed_from": self.resumed_from, "attn": self.attn, "packing": self.packing,
                "trained_params": self.trained_params, "total_params": self.total_params,
                "world_size": self.world_size}


def example_length(tokenizer, ex: dict, spec: models.ModelSpec | None = None) -> int:
    """Tokens of prompt + completion under the model's chat template (what the trainer will see)."""
    return len(models.chat_ids(tokenizer, list(ex["prompt"]) + list(ex["completion"]), spec,
                               add_generation_prompt=False))


def check_examples(examples: Sequence[dict]) -> None:
    """Each example is ``{"prompt": [messages], "completion": [{"role": "assistant", ...}]}``."""
    for i, ex in enumerate(examples):
        for key in ("prompt", "completion"):
            if not isinstance(ex.get(key), list) or not ex[key]:
                raise ValueError(f"SFT example {i} (id={ex.get('id')!r}): field {key!r} must be a non-empty list of "
                                 "{role, content} messages")
        if ex["completion"][-1].get("role") != "assistant":
            raise ValueError(f"SFT example {i} (id={ex.get('id')!r}): the completion must end with an assistant turn")


def filter_by_length(tokenizer, examples: Sequence[dict], max_length: int,
                     spec: models.ModelSpec | None = None) -> tuple[list[dict], list[int], dict[str, int]]:
    """Keep examples that fit ``max_length``; returns (kept, their lengths, skip counts by reason)."""
    kept, lengths, skipped = [], [], {}
    for ex in examples:
        n = example_length(tokenizer, ex, spec)
        if n > max_length:
            skipped["longer_than_max_length"] = skipped.get("longer_than_max_length", 0) + 1
            continue
        kept.append(ex)
        lengths.append(n)
    return kept, lengths, skipped


def _to_dataset(examples: Sequence[dict], spec: models.ModelSpec):
    from datasets import Dataset

    rows = []
    for ex in examples:
        row = {"prompt": list(ex["prompt"]), "completion": list(ex["completion"])}
        if spec.chat_template_kwargs:
            row["chat_template_kwargs"] = dict(spec.chat_template_kwargs)
        rows.append(row)
    return Dataset.from_list(rows)


def use_packing(cfg: SFTRun, attn: str) -> bool:
    if cfg.packing == "on" and attn != "flash_attention_2":
        raise ValueError(f"SFTRun {cfg.model_id!r}: packing='on' needs flash_attention_2 (attention is {attn!r}); "
                         "with sdpa, packed examples would attend to each other. Use packing='auto' or 'off'.")
    return cfg.packing == "on" or (cfg.packing == "auto" and attn == "flash_attention_2")


def load_for_training(cfg: SFTRun, device: str = "auto") -> models.Loaded:
    """Load the base (4-bit for QLoRA) and add a fresh LoRA adapter unless ``method == 'full'``."""
    loaded = models.load(cfg.base, device=device, attn=cfg.attn, dtype=cfg.dtype,
                         quantization="4bit" if cfg.method == "qlora" else None, seed=cfg.seed, trainable=True,
                         max_context=cfg.max_length)
    if cfg.method in ("lora", "qlora"):
        loaded = models.add_lora(loaded, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                 gradient_checkpointing=cfg.gradient_checkpointing)
    longctx.tile_mlp(loaded.model, cfg.mlp_tile_tokens)
    loaded.model.train()
    return loaded


def context_parallel_size() -> int:
    """The context-parallel degree ``accelerate launch`` gives this process (1 without CP): the launcher
    exports ``PARALLELISM_CONFIG_CP_SIZE`` from the config's ``parallelism_config``."""
    if os.environ.get("ACCELERATE_USE_PARALLELISM_CONFIG") != "true":
        return 1
    return max(1, int(os.environ.get("PARALLELISM_CONFIG_CP_SIZE", "1") or 1))


def sft_config(cfg: SFTRun, out_dir: Path, device: str, packing: bool):
    """The trl ``SFTConfig`` for a run (bf16 only on a CUDA device that supports it).

    Under context parallelism every sequence is padded to a multiple of ``2 * cp``: torch's load
    balancer splits it into ``2 * cp`` chunks and silently turns itself off when the length does not
    divide (GPU-paths defect 10c)."""
    import torch
    from trl import SFTConfig

    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return SFTConfig(
        output_dir=str(checkpoint_dir(out_dir)),
        logging_first_step=True,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps or cfg.max_steps,
        save_total_limit=2,
        bf16=bool(bf16),
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False,
                                         "offload": cfg.offload_checkpoints and device.startswith("cuda")},
        max_length=cfg.max_length,
        packing=packing,
        padding_free=packing,
        pad_to_multiple_of=2 * context_parallel_size() if context_parallel_size() > 1 else None,
        completion_only_loss=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=integrations(cfg.report_to),
        dataloader_num_workers=0,
        disable_tqdm=not progress_enabled(),
    )


def build_trainer(cfg: SFTRun, examples: Sequence[dict], out_dir: str | Path, *, device: str = "auto",
                  loaded: models.Loaded | None = None, callbacks=None):
    """Load (unless given), filter by length, and build the ``SFTTrainer``.

    Returns ``(trainer, loaded, lengths, skipped, packing)``.
    """
    from trl import SFTTrainer

    quiet()
    import datasets

    datasets.disable_progress_bars()
    check_examples(examples)
    device = pick_device(device)  # under a launcher: this rank's device, torch.distributed initialised
    # The trainer's arguments exist before the model: under a DeepSpeed ZeRO-3 launch they hold the
    # config that makes from_pretrained load the weights already partitioned.
    args = sft_config(cfg, Path(out_dir), device, packing=False)
    loaded = loaded or load_for_training(cfg, device)
    kept, lengths, skipped = filter_by_length(loaded.tokenizer, examples, cfg.max_length, loaded.spec)
    if not kept:
        raise ValueError(f"SFTRun {cfg.model_id!r}: all {len(examples)} examples are longer than "
                         f"max_length={cfg.max_length} tokens; raise max_length or shorten the synthesis target")
    packing = use_packing(cfg, loaded.attn)
    args.packing = args.padding_free = packing
    with trainer_logging(cfg.report_to, out_dir):
        trainer = SFTTrainer(model=loaded.model, args=args,
                             train_dataset=_to_dataset(kept, loaded.spec), processing_class=loaded.tokenizer,
                             callbacks=callbacks)
    return trainer, loaded, lengths, skipped, packing


def supervised_text(trainer, index: int = 0) -> tuple[str, str]:
    """(the text the loss is computed on, the text it ignores) for one prepared training example."""
    row = trainer.train_dataset[index]
    tok = trainer.processing_class
    on = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100]
    off = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab == -100]
    return tok.decode(on), tok.decode(off)


class _MemoryCallback:
    """Samples peak memory at every step: CUDA allocator peak, or the process RSS on CPU."""

    def __init__(self, device: str):
        from transformers import TrainerCallback

        self.device = device
        self.peak = 0.0
        outer = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                outer.sample()

        self.callback = CB()

    def sample(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            self.peak = max(self.peak, torch.cuda.max_memory_allocated() / 2**30)
        else:
            import psutil

            self.peak = max(self.peak, psutil.Process().memory_info().rss / 2**30)


def checkpoint_dir(out_dir: str | Path) -> Path:
    """Where the trainer's checkpoints (optimizer state included) of the model folder ``out_dir`` go:
    ``RUN/checkpoints/<name>`` for ``RUN/models/<name>``, else ``<parent>/<name>-checkpoints``. Outside
    the model folder, so that folder can be pushed to the Hub as it is."""
    return beside(out_dir, "checkpoints")


def last_checkpoint(out_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ck = checkpoint_dir(out_dir)
    return get_last_checkpoint(str(ck)) if ck.is_dir() else None


def train_sft(cfg: SFTRun, examples: Sequence[dict], out_dir: str | Path, *, device: str = "auto",
              loaded: models.Loaded | None = None, resume: bool = True, extra_meta: dict | None = None) -> SFTResult:
    """Train one Stage I run and save it to ``out_dir`` (resuming from its last checkpoint)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    device = pick_device(device)  # under a launcher this starts the distributed state: before any model loads
    dist_at_load = torch.distributed.is_available() and torch.distributed.is_initialized()
    seed_everything(cfg.seed)
    mem = _MemoryCallback(device)
    t0 = time.time()
    trainer, loaded, lengths, skipped, packing = build_trainer(cfg, examples, out_dir, device=device, loaded=loaded,
                                                               callbacks=[mem.callback])
    resumed = last_checkpoint(out_dir) if resume else None
    trainer.train(resume_from_checkpoint=resumed)
    mem.sample()
    wall = time.time() - t0
    model = trainer.model
    model.eval()
    trained = replace(loaded, model=model)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    log = [dict(r) for r in trainer.state.log_history]
    res = SFTResult(out_dir, trained, log, len(lengths), skipped, lengths, wall, mem.peak, resumed, loaded.attn,
                    packing, n_train, n_total, trainer.accelerator.num_processes, dist_at_load)
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled  # ZeRO-3 or FSDP: gather on every rank
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    if trainer.accelerator.is_main_process:
        models.save_model(trained, out_dir, state_dict=state, base=_base_preset(cfg.base), method=cfg.method,
                          stage="stage1-sft", steps=trainer.state.global_step, **(extra_meta or {}))
        write_json(out_dir / "sft_run.json", asdict(cfg))
        write_jsonl(log, out_dir / "train_log.jsonl")
        write_json(out_dir / RESULT_FILE, {f.name: getattr(res, f.name) for f in fields(SFTResult)
                                           if f.name not in ("out_dir", "loaded", "log")})
    trainer.accelerator.wait_for_everyone()
    return res


RESULT_FILE = "sft_result.json"
"""What :func:`train_sft` measured (``SFTResult`` but the model and its log), beside the model."""


def read_result(out_dir: str | Path, loaded: models.Loaded | None) -> SFTResult:
    """The :class:`SFTResult` a (launched) :func:`train_sft` left in ``out_dir``, with ``loaded`` as its model."""
    out_dir = Path(out_dir)
    saved = json.loads((out_dir / RESULT_FILE).read_text())
    log = [json.loads(x) for x in (out_dir / "train_log.jsonl").read_text().splitlines() if x.strip()]
    return SFTResult(out_dir=out_dir, loaded=loaded, log=log, **saved)


def _base_preset(base: str) -> str:
    if base in models.REGISTRY:
        return base
    meta = models.read_meta(base)
    if meta and meta.get("base") in models.REGISTRY:
        return meta["base"]
    return base


def losses(log: Sequence[dict]) -> tuple[list[int], list[float]]:
    """(steps, training losses) from a trainer log."""
    pts = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _stage_dir(out_dir: Path, stages: Sequence, k: int) -> Path:
    return out_dir if k == len(stages) - 1 else checkpoint_dir(out_dir) / "stages" / stages[k][0]


def train_stages(cfg: SFTRun, stages: Sequence[tuple[str, Sequence[dict], int]], out_dir: str | Path, *,
                 device: str = "auto", resume: bool = True, launch: str | None = None) -> list[SFTResult]:
    """A short-to-long curriculum: ``stages`` are ``(name, examples, max_steps)``, each continuing the
    previous stage's weights. Earlier stages are saved beside the checkpoints
    (``checkpoint_dir(out_dir)/stages/<name>``), the last one in ``out_dir`` itself, so the model
    folder holds one model; each stage resumes from its own checkpoints (unless ``resume=False``).

    ``launch``: an accelerate config (``configs/accelerate/<x>.yaml``); the curriculum then runs under
    ``accelerate launch`` in a subprocess that streams its output here (:mod:`.launch`), and the
    last stage's model is loaded back (earlier stages' results carry ``loaded=None``)."""
    out_dir = Path(out_dir)
    if launch and launched_world_size() == 1:
        spec_dir = beside(out_dir, "launch")
        for k, (name, examples, _) in enumerate(stages):
            write_jsonl(examples, spec_dir / f"stage-{k}.jsonl")
        spec = {"verb": "stages", "cfg": asdict(replace(cfg, base=launching.absolute(cfg.base))),
                "out_dir": str(out_dir.resolve()), "device": device, "resume": resume,
                "stages": [{"name": n, "examples": f"stage-{k}.jsonl", "steps": st} for k, (n, _, st) in enumerate(stages)]}
        launching.accelerate_train(launch, spec, spec_dir)
        last = models.load(str(out_dir), device=device, attn=cfg.attn, dtype=cfg.dtype, max_context=cfg.max_length,
                           quantization="4bit" if cfg.method == "qlora" else None)
        return [read_result(_stage_dir(out_dir, stages, k), last if k == len(stages) - 1 else None)
                for k in range(len(stages))]
    results: list[SFTResult] = []
    loaded = None
    for k, (name, examples, steps) in enumerate(stages):
        res = train_sft(replace(cfg, max_steps=steps), examples, _stage_dir(out_dir, stages, k), device=device,
                        loaded=loaded, resume=resume, extra_meta={"curriculum_stage": name})
        loaded = res.loaded
        results.append(res)
    return results


def launched(spec: dict, folder: Path) -> None:
    """The launched side of :func:`train_stages` (``train launched``): the same call, on every rank."""
    stages = [(s["name"], list(read_jsonl(folder / s["examples"])), s["steps"]) for s in spec["stages"]]
    train_stages(SFTRun(**spec["cfg"]), stages, spec["out_dir"], device=spec["device"], resume=spec["resume"])
