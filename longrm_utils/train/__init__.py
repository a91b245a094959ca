"""Training: Stage I data and SFT (:mod:`.stage1_data`, :mod:`.sft`), Stage II data and alignment
(:mod:`.stage2_data`, :mod:`.align`), the memory planner (:mod:`.memory`) and best-of-N sampling
(:mod:`.bon`).

``python -m longrm_utils train <sft|align-gen|align-scalar> ...`` dispatches here.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from .. import models
from ..cli import ArgumentParser
from ..bench import schema
from . import align, sft
from .official import load_official_sft
from .options import add_dataclass_args
from .stage1_data import synthesize_stage1
from .teachers import RuleTeacher

SUBCOMMANDS = {
    "sft": "Stage I: short-to-long synthesis + SFT of a generative judge",
    "align-gen": "Stage II: multi-reject alignment of a generative judge (train/align.py)",
    "align-scalar": "Stage II: Bradley-Terry alignment of a scalar RM (train/align.py)",
    "launched": "run a spec file written by train/launch.py's accelerate_train, on every rank",
}


def sft_cli(argv: list[str]) -> int:
    p = ArgumentParser(prog="longrm_utils train sft", description=SUBCOMMANDS["sft"])
    p.add_argument("--bench", help="training records in the benchmark format (e.g. data/mini/short_train.jsonl)")
    p.add_argument("--official-sft", default=None, help="official LongRM SFT data (a datasets.save_to_disk folder)")
    p.add_argument("--out", required=True, help="output folder for the model (RUN/models/<model_id>)")
    p.add_argument("--preset", default=None, help=f"start from a preset: {', '.join(sft.PRESETS)}")
    p.add_argument("--target-tokens", type=int, default=None,
                   help="pad each context to this many tokens (short-to-long); default keeps each item's length")
    p.add_argument("--formats", default="pairwise,ranking", help="judgement formats: pairwise,ranking,pointwise")
    p.add_argument("--max-judgement-tokens", type=int, default=None, help="cap on the teacher's judgement length")
    p.add_argument("--device", default="auto")
    add_dataclass_args(p, sft.SFTRun)
    a = p.parse_args(argv)
    if not a.bench and not a.official_sft:
        p.error("give --bench and/or --official-sft")
    overrides = {f.name: getattr(a, f.name) for f in fields(sft.SFTRun) if getattr(a, f.name) is not None}
    cfg = sft.SFTRun.from_dict(overrides, preset=a.preset)
    # The tokenizer only: train_sft loads the weights after the trainer's arguments exist (ZeRO-3 init).
    tok = models.tokenizer(cfg.base)
    examples = []
    if a.bench:
        recs = schema.read_jsonl(a.bench)
        teacher = RuleTeacher(tok, a.max_judgement_tokens)
        ex, rep, _ = synthesize_stage1(recs, tok, target_tokens=a.target_tokens, teacher=teacher,
                                       formats=a.formats.split(","), seed=cfg.seed, where=a.bench)
        print("synthesis:", json.dumps(rep.as_dict()))
        examples += ex
    if a.official_sft:
        ex, rep = load_official_sft(a.official_sft, tokenizer=tok, max_length=cfg.max_length,
                                    splits=["train"])
        print("official SFT import:", json.dumps(rep))
        examples += ex
    res = sft.train_sft(cfg, examples, Path(a.out), device=a.device)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(res.summary(), indent=2))
    return 0


def launched_cli(argv: list[str]) -> int:
    """``train launched SPEC``: the call a spec file describes (:func:`.launch.accelerate_train`), on every rank."""
    if len(argv) != 1:
        print("usage: longrm train launched SPEC.json  (written by accelerate_train)", file=sys.stderr)
        return 2
    path = Path(argv[0])
    spec = json.loads(path.read_text())
    run = {"align": align.launched, "stages": sft.launched}.get(spec.get("verb"))
    if run is None:
        raise ValueError(f"{path}: unknown verb {spec.get('verb')!r}; expected 'align' or 'stages'")
    run(spec, path.parent)
    return 0


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m longrm_utils train <subcommand> [options]\n\nsubcommands:")
        for k, h in SUBCOMMANDS.items():
            print(f"  {k:13s} {h}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    sub, rest = argv[0], argv[1:]
    run = {"sft": sft_cli, "align-gen": align.cli_generative, "align-scalar": align.cli_scalar,
           "launched": launched_cli}[sub]
    return run(rest)
