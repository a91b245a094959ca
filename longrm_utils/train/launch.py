"""Multi-GPU launches: the configs, the training subprocess, and a multi-process smoke test.

* :func:`accelerate_configs` / :func:`launch_plan`: the course's ``configs/accelerate/*.yaml``,
  parsed exactly as ``accelerate launch --config_file`` parses them, with the environment each rank
  would get; no GPU and no deepspeed needed.
* :func:`accelerate_train`: how a notebook trains on several GPUs. A Jupyter kernel is one process,
  and on 8 GPUs it would give trl's Trainer 8 devices to DataParallel and load the model before any
  distributed state exists. So the call (Stage I's curriculum, or Stage II) is written to a spec
  file and run by ``accelerate launch --config_file <x> -m longrm_utils train launched <spec>`` in
  a subprocess; its output streams into the notebook, and the caller loads the saved model back.
* :func:`run_ddp_smoke`: one real DDP training step of the tiny model on CPU processes (torchrun,
  gloo), checking that the ranks end with identical parameters.
* :data:`CP_ON_CPU`: why context parallelism cannot be shown on CPU.

``python -m longrm_utils.train.launch ddp-smoke [seq_len]`` is the torchrun worker entry point.
"""
from __future__ import annotations

import codecs
import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from .. import models
from ..constants import REPO_ROOT
from ..runtime import quiet, set_threads

def accelerate_configs() -> dict[str, Path]:
    """The course's accelerate configs (``configs/accelerate/*.yaml``) by stem."""
    return {p.stem: p for p in sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml"))}


def launch_plan(path: str | os.PathLike) -> dict:
    """Parse an accelerate config exactly as ``accelerate launch --config_file`` does (accelerate 1.15),
    build the environment the launcher would give each rank, and instantiate the parallelism and
    FSDP settings from it. Raises ``ValueError`` naming the file when any step refuses it.

    Returns ``{file, distributed_type, num_processes, mixed_precision, zero_stage, fsdp_version,
    parallelism: {dp_shard, cp, sp, ...} or None, env}``. Needs no GPU and no deepspeed.
    """
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

    path = Path(path)
    try:
        args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
        args, defaults, mp_from_config = _validate_launch_command(args)
        dtype = str(defaults.distributed_type).split(".")[-1]
        if args.use_deepspeed:
            keys = list(defaults.deepspeed_config or {}) + (["mixed_precision"] if mp_from_config else [])
            args.deepspeed_fields_from_accelerate_config = ",".join(keys)
            _, env = prepare_deepspeed_cmd_env(args)
        elif args.use_fsdp or args.multi_gpu:
            env = prepare_multi_gpu_env(args)
        else:
            _, env = prepare_simple_launcher_cmd_env(args)
        with mock.patch.dict(os.environ, env):
            pc = ParallelismConfig() if env.get("ACCELERATE_USE_PARALLELISM_CONFIG") == "true" else None
            fsdp = FullyShardedDataParallelPlugin() if env.get("ACCELERATE_USE_FSDP") == "true" else None
    except Exception as e:  # accelerate raises ValueError, AssertionError, KeyError...
        raise ValueError(f"{path}: accelerate refuses this config: {type(e).__name__}: {e}") from e
    par = None
    if pc is not None:
        par = {"dp_replicate": pc.dp_replicate_size, "dp_shard": pc.dp_shard_size, "tp": pc.tp_size,
               "cp": pc.cp_size, "sp": pc.sp_size, "total": pc.total_size}
        world = int(args.num_processes) * int(args.num_machines or 1)
        if pc.sp_size == 1 and pc.total_size != world:
            raise ValueError(f"{path}: parallelism sizes multiply to {pc.total_size}, but num_processes is {world}")
        if pc.sp_size > 1 and world % pc.sp_size:
            raise ValueError(f"{path}: sp_size {pc.sp_size} does not divide num_processes {world}")
    zero = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    return {"file": str(path), "distributed_type": dtype, "num_processes": int(args.num_processes),
            "mixed_precision": args.mixed_precision, "zero_stage": int(zero) if zero else None,
            "fsdp_version": getattr(fsdp, "fsdp_version", None), "parallelism": par, "env": env}


def absolute(path: str | os.PathLike) -> str:
    """An existing path as the launched processes (started in the checkout) must see it; a preset name or
    hub id stays as it is."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def config_path(config: str | os.PathLike) -> Path:
    """An accelerate config by path, or relative to the checkout (``configs/accelerate/ddp.yaml``), or by stem."""
    for p in (Path(config), REPO_ROOT / config):
        if p.is_file():
            return p.resolve()
    if str(config) in accelerate_configs():
        return accelerate_configs()[str(config)]
    raise FileNotFoundError(f"accelerate config {config!r} not found; have {sorted(accelerate_configs())} "
                            "in configs/accelerate/")


def accelerate_train(config: str | os.PathLike, spec: dict, folder: str | os.PathLike) -> None:
    """Write ``spec`` to ``folder/spec.json`` and run ``accelerate launch --config_file <config> -m
    longrm_utils train launched <that file>``, streaming its output; raise with its last lines when it fails.

    The config is parsed first as the launcher would (:func:`launch_plan`). Without CUDA each process
    gets one thread (two torch jobs with two threads each on a 2-core machine crawl).
    """
    import torch

    path = config_path(config)
    launch_plan(path)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    if not torch.cuda.is_available():
        env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path),
           "-m", "longrm_utils", "train", "launched", str(folder / "spec.json")]
    print("$", shlex.join(["accelerate", "launch"] + cmd[3:]), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT),
                            start_new_session=True)
    tail: collections.deque = collections.deque(maxlen=12)
    errors: dict[str, None] = {}  # the ranks' own error lines, before torchrun's report buries them
    decode, pending = codecs.getincrementaldecoder("utf-8")(errors="replace").decode, ""
    try:
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            text = decode(chunk)
            sys.stdout.write(text)  # progress bars' carriage returns pass through
            sys.stdout.flush()
            *lines, pending = (pending + text).replace("\r", "\n").split("\n")
            for line in lines:
                if line.strip():
                    tail.append(line + "\n")
                if _ERROR_LINE.match(line) and len(errors) < 8:
                    errors[line + "\n"] = None
        rc = proc.wait()
    except BaseException:  # an interrupted cell stops every rank, not just the launcher
        stop(proc)
        raise
    if rc != 0:
        raise RuntimeError(f"accelerate launch exited with {rc} ({path.name}, {folder / 'spec.json'}); "
                           "the ranks' errors:\n" + "".join(errors) + "its last lines:\n" + "".join(tail))


def stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """Stop a launcher and its ranks. torchrun starts each rank in a session of its own, so killing the
    launcher's group would orphan them (holding GPUs and the rendezvous port): SIGTERM lets torchrun stop
    them; after ``grace`` seconds the launcher's group is killed."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
        return
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


_ERROR_LINE = re.compile(r"^(longrm\S* \w+: error:|[\w.]*(Error|Exception)\b(?!.*ChildFailedError))")


CP_ON_CPU = (
    "Context parallelism cannot run on CPU with accelerate 1.15 / torch 2.13: accelerate accepts a "
    "ParallelismConfig only under FSDP2, multi-GPU or DeepSpeed (Accelerator(cpu=True) makes the run "
    "MULTI_CPU, which ParallelismConfig._validate_accelerator refuses), and torch's ring attention "
    "(torch.distributed.tensor.experimental.context_parallel) only replaces the CUDA SDPA kernels "
    "(flash, mem-efficient, cuDNN), not the CPU one. DeepSpeed-Ulysses needs deepspeed and NCCL. "
    "configs/accelerate/README.md gives the GPU launch commands.")


def ddp_smoke_step(seq_len: int = 256) -> dict:
    """One DDP training step of the tiny model, run under ``torchrun --nproc_per_node 2`` on CPU (gloo).

    Each rank trains on different tokens; after the step the ranks' parameters must be identical
    (gradients were all-reduced). Rank 0 returns the report; every rank returns it.
    """
    import torch
    from accelerate import Accelerator

    quiet()
    set_threads(1)
    acc = Accelerator(cpu=True)
    loaded = models.load("tiny", device="cpu", attn="sdpa", trainable=True)
    model = loaded.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt = acc.prepare(model, opt)
    g = torch.Generator().manual_seed(1000 + acc.process_index)
    ids = torch.randint(4, model.module.config.vocab_size if hasattr(model, "module") else 4096, (1, seq_len), generator=g)
    out = model(input_ids=ids, labels=ids, use_cache=False)
    acc.backward(out.loss)
    opt.step()
    opt.zero_grad()
    flat = torch.cat([p.detach().reshape(-1) for p in acc.unwrap_model(model).parameters()])
    checksums = acc.gather(torch.tensor([float(flat.double().sum()), float(flat.double().abs().sum())]).unsqueeze(0))
    losses = acc.gather(out.loss.detach().reshape(1))
    return {"distributed_type": str(acc.distributed_type).split(".")[-1], "world_size": acc.num_processes,
            "backend": acc.state.backend, "rank": acc.process_index, "losses": losses.tolist(),
            "param_checksums": checksums.tolist()}


def run_ddp_smoke(nproc: int = 2, seq_len: int = 256, timeout: float = 180) -> dict:
    """Launch :func:`ddp_smoke_step` on ``nproc`` CPU processes with torchrun; return rank 0's report."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           "-m", "longrm_utils.train.launch", "ddp-smoke", str(seq_len)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(REPO_ROOT), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        proc.communicate()
        raise RuntimeError(f"torchrun DDP smoke test timed out after {timeout:.0f} s: {' '.join(cmd)}")
    lines = [ln for ln in out.splitlines() if ln.startswith("@@")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"torchrun DDP smoke test failed (exit {proc.returncode}):\n{err[-3000:]}")
    return {**json.loads(lines[0][2:]), "command": " ".join(cmd[2:])}


if __name__ == "__main__":
    if sys.argv[1:2] != ["ddp-smoke"]:
        sys.exit("usage: python -m longrm_utils.train.launch ddp-smoke [seq_len]  (run by torchrun, see run_ddp_smoke)")
    rep = ddp_smoke_step(int(sys.argv[2]) if len(sys.argv) > 2 else 256)
    if rep["rank"] == 0:
        print("@@" + json.dumps(rep), flush=True)
