"""Training: Stage I synthesis and SFT (:mod:`.synth`, :mod:`.sft`), Stage II alignment (:mod:`.align`).

``python -m longrm_utils train <sft|align-gen|align-scalar> ...`` dispatches here.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
from dataclasses import MISSING, fields
from pathlib import Path

SUBCOMMANDS = {
    "sft": "Stage I: short-to-long synthesis + SFT of a generative judge",
    "align-gen": "Stage II: multi-reject alignment of a generative judge (train/align.py)",
    "align-scalar": "Stage II: Bradley-Terry alignment of a scalar RM (train/align.py)",
}


def field_docs(cls) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    out = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(getattr(b, "value", None), ast.Constant) and isinstance(b.value.value, str):
            out[a.target.id] = " ".join(b.value.value.split()).replace("%", "%%")  # argparse formats help
    return out


def add_dataclass_args(p: argparse.ArgumentParser, cls) -> None:
    """One ``--field`` option per dataclass field; help from its docstring; default None (= preset's)."""
    docs = field_docs(cls)
    for f in fields(cls):
        kind = {int: int, float: float, "int": int, "float": float}.get(f.type, None)
        t = str(f.type)
        if kind is None:
            kind = int if t.startswith("int") else float if t.startswith("float") else str
        if t == "bool" or f.type is bool:
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                           type=lambda s: s.lower() in ("1", "true", "yes", "on"), help=docs.get(f.name, ""))
        else:
            default = f.default if f.default is not MISSING else None
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, type=kind,
                           help=f"{docs.get(f.name, '')} (default: {default})")


def sft_cli(argv: list[str]) -> int:
    from . import sft, synth

    p = argparse.ArgumentParser(prog="longrm_utils train sft", description=SUBCOMMANDS["sft"])
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
    loaded = sft.load_for_training(cfg, a.device)
    examples = []
    if a.bench:
        from ..bench import schema

        recs = schema.read_jsonl(a.bench)
        teacher = synth.RuleTeacher(loaded.tokenizer, a.max_judgement_tokens)
        ex, rep, _ = synth.synthesize_stage1(recs, loaded.tokenizer, target_tokens=a.target_tokens, teacher=teacher,
                                             formats=a.formats.split(","), seed=cfg.seed, where=a.bench)
        print("synthesis:", json.dumps(rep.as_dict()))
        examples += ex
    if a.official_sft:
        ex, rep = synth.load_official_sft(a.official_sft, tokenizer=loaded.tokenizer, max_length=cfg.max_length)
        print("official SFT import:", json.dumps(rep))
        examples += ex
    res = sft.train_sft(cfg, examples, Path(a.out), device=a.device, loaded=loaded)
    print(json.dumps(res.summary(), indent=2))
    return 0


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m longrm_utils train <subcommand> [options]\n\nsubcommands:")
        for k, h in SUBCOMMANDS.items():
            print(f"  {k:13s} {h}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    sub, rest = argv[0], argv[1:]
    if sub == "sft":
        return sft_cli(rest)
    from . import align  # written by Stage II; imported only when asked for

    return int((align.cli_generative if sub == "align-gen" else align.cli_scalar)(rest) or 0)
