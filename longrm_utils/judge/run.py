"""Ordered, resumable judging of a Long-RewardBench file: ``run_judge`` and the ``judge`` CLI.

For every item (in file order) the display order of its answers is shuffled with a per-item
generator seeded by ``order_seed`` (42, as the official scorer; the shuffle is keyed by
``(order_seed, task, id)`` so that ``--limit`` and ``--tasks`` never change an item's order).
Pass 0 uses that order; pass 1 (``orders=2``, the default) shows the same answers reversed.

Output (the judge-folder contract of docs/contracts.md) in ``out_dir``:

* ``predictions.jsonl`` -- one line per (item, pass), appended item by item, no timings; the same
  command and seed give a byte-identical file on the same CPU with the same torch thread count
  (float sums, hence near-tied scalar scores, change with the thread count);
* ``timings.jsonl`` -- per (task, id, pass) wall times and token counts;
* ``run_config.json`` -- the arguments; a rerun with other arguments into the same folder is refused;
* ``results.csv`` and ``metrics.json`` -- recomputed from predictions alone by :mod:`.score`.

A run that is killed and restarted with the same arguments skips finished items: a partial last
line or an item with missing passes is dropped and redone, so nothing is duplicated or lost. An
item that raises (an out-of-memory error, say) is recorded with its error and scores 0; the run
goes on.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..bench import cues, schema
from ..constants import CPU_MAX_NEW_TOKENS, OFFICIAL_MAX_INPUT_TOKENS, OFFICIAL_MAX_NEW_TOKENS, OFFICIAL_ORDER_SEED
from ..contracts import (BENCH_COPY, PRED_FIELDS, PREDICTIONS, RUN_CONFIG, TIMINGS, item_key, item_score)
from ..io import dumps_line, read_json, write_json
from ..stats import N_BOOT
from . import backends, prompts, score, vllm

KINDS = ("generative", "pointwise", "scalar", "heuristic")
# --- inputs ---------------------------------------------------------------------------------------

def load_bench(bench: Any, tasks: Sequence[str] | None = None, limit: int | None = None) -> list[dict]:
    """A benchmark file (JSONL), a folder or hub id of the official release, or a list of records."""
    if isinstance(bench, (list, tuple)):
        recs = [dict(r) for r in bench]
        for i, r in enumerate(recs, 1):
            schema.validate_record(r, file="<records>", line=i, allow_unknown=True)
    else:
        p = Path(bench)
        if p.is_file():
            recs = schema.read_jsonl(p)
        else:
            recs = schema.load_official(str(bench), tasks=tasks)
    if tasks:
        recs = [r for r in recs if r["task"] in set(tasks)]
    if limit is not None:
        recs = recs[:limit]
    seen = set()
    for r in recs:
        k = (str(r["task"]), str(r["id"]))
        if k in seen:
            raise ValueError(f"benchmark {bench if not isinstance(bench, list) else '<records>'}: duplicate "
                             f"(task, id) {k}")
        seen.add(k)
    return recs


def spread(recs: Sequence[dict], n: int | None) -> list[dict]:
    """``n`` records spread evenly over the file (every task and bucket keeps a share), in file order."""
    recs = list(recs)
    if n is None or n >= len(recs):
        return recs
    return [recs[i] for i in sorted({(i * len(recs)) // n for i in range(n)})]


def item_view(rec: dict) -> backends.ItemView:
    return backends.ItemView(rec, schema.answers(rec), list(rec["prompt_template"]), schema.context_parts(rec)[1])


def default_judge_id(judge: str, kind: str) -> str:
    name = judge if kind != "heuristic" else f"heuristic-{judge}"
    base = Path(str(name).rstrip("/")).name if os.sep in str(name) else str(name)
    suffix = "" if kind == "heuristic" else f"-{kind}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base) + suffix


def resolve_max_new_tokens(requested: int | None, device: str) -> int:
    """Official 2048 by default; CPU runs are capped at ``constants.CPU_MAX_NEW_TOKENS`` (64)."""
    n = requested or OFFICIAL_MAX_NEW_TOKENS
    if device == "cpu" and n > CPU_MAX_NEW_TOKENS:
        if requested:
            print(f"[judge] CPU: max_new_tokens {requested} capped at {CPU_MAX_NEW_TOKENS}")
        n = CPU_MAX_NEW_TOKENS
    return n


# --- resume ---------------------------------------------------------------------------------------

def _recover(path: Path, passes: int) -> set[tuple[str, str]]:
    """Finished (task, id) keys in ``path``; rewrites it without a torn last line or partial item."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    good: list[dict] = []
    good_raw: list[bytes] = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            good.append(json.loads(ln))
            good_raw.append(ln)
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                raise ValueError(f"{path}: line {i + 1} is corrupt and not the last line; remove the folder "
                                 "or fix the file by hand") from None
    counts: dict[tuple[str, str], int] = {}
    for p in good:
        counts[item_key(p)] = counts.get(item_key(p), 0) + 1
    done = {k for k, c in counts.items() if c == passes}
    keep = [r for p, r in zip(good, good_raw) if item_key(p) in done]
    new = b"".join(r + b"\n" for r in keep)
    if new != raw:
        dropped = len(good) - len(keep)
        print(f"[judge] resume: dropped {dropped} line(s) of unfinished items"
              + (" and a torn last line" if raw and not raw.endswith(b"\n") else ""))
        path.write_bytes(new)
    return done


def _filter_timings(path: Path, done: set[tuple[str, str]]) -> None:
    if not path.exists():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            r = json.loads(ln)
        except json.JSONDecodeError:
            continue
        if item_key(r) in done:
            keep.append(ln)
    path.write_text("".join(x + "\n" for x in keep))


# --- the run ----------------------------------------------------------------------------------------

def _prediction(rec: dict, k: int, order: list[int], r: backends.PassResult | None, error: str | None) -> dict:
    vals = {
        "task": rec["task"], "id": rec["id"], "tasktype": rec["tasktype"], "subtype": rec.get("subtype"),
        "ctx_length_for_length": rec.get("ctx_length_for_length"), "source": rec.get("source"),
        "pass": k, "order": order,
    }
    if r is None:
        vals.update(raw=None, ranking=None, parse_error=None, strict_error=None, slot_scores=None, tie=False,
                    score=0.0, truncated=False, prompt_tokens=None, error=error)
    else:
        vals.update(raw=r.raw, ranking=r.ranking, parse_error=r.parse_error, strict_error=r.strict_error,
                    slot_scores=r.slot_scores, tie=r.tie, score=item_score(r.ranking, order),
                    truncated=r.truncated, prompt_tokens=r.prompt_tokens, error=None)
    return {f: vals[f] for f in PRED_FIELDS}


def make_backend(judge: str, kind: str, *, loaded=None, device="auto", quantization=None, attn="auto",
                 templates=None, max_new_tokens=None, max_input_tokens=None, order_seed=OFFICIAL_ORDER_SEED,
                 backend="hf", shared_prefix=True, batch_size=1, seed=0):
    """Build the backend for ``kind``; returns (backend, resolved settings for run_config)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "heuristic":
        return backends.HeuristicJudge(judge, order_seed), {}
    mkind = models.SCALAR if kind == "scalar" else models.GENERATIVE
    if backend == "vllm":
        if kind == "scalar":
            raise ValueError("backend='vllm' is for generative and pointwise judges")
        spec = models.get_spec(judge)
        folder = models.base_folder(spec, seed) if judge in models.REGISTRY else judge
        tok = models.load_tokenizer(folder, spec)
        max_new = max_new_tokens or OFFICIAL_MAX_NEW_TOKENS
        limit = max_input_tokens or min(spec.yarn_context or spec.max_context, OFFICIAL_MAX_INPUT_TOKENS) - max_new
        llm_args = vllm.vllm_args(spec, model=folder, max_context=limit, max_new_tokens=max_new,
                                  quantization=quantization)
        b = backends.VLLMGenerativeJudge(llm_args, tok, spec, templates=templates, max_new_tokens=max_new,
                                         max_input_tokens=limit)
        return b, {"device": "cuda", "max_new_tokens": max_new, "max_input_tokens": limit, "backend": "vllm"}
    if loaded is None:
        loaded = models.load(judge, kind=mkind, device=device, attn=attn, quantization=quantization, seed=seed,
                             max_context=max_input_tokens)
    is_scalar = models.is_scalar(loaded.model)
    if is_scalar != (kind == "scalar"):
        raise ValueError(f"judge {judge!r} is loaded as a {'scalar' if is_scalar else 'generative'} model, "
                         f"but kind={kind!r}")
    ctx = loaded.spec.max_context
    import torch

    # float sums depend on the thread count: byte-identical reruns need the same device and threads
    settings: dict[str, Any] = {"device": loaded.device, "attn": loaded.attn, "backend": "hf",
                                "torch_threads": torch.get_num_threads()}
    if kind == "scalar":
        limit = max_input_tokens or min(ctx, OFFICIAL_MAX_INPUT_TOKENS)
        settings.update(max_input_tokens=limit, shared_prefix=shared_prefix, batch_size=batch_size)
        return backends.ScalarJudge(loaded, max_input_tokens=limit, shared_prefix=shared_prefix,
                                    batch_size=batch_size), settings
    max_new = resolve_max_new_tokens(max_new_tokens, loaded.device)
    limit = max_input_tokens or (min(ctx, OFFICIAL_MAX_INPUT_TOKENS) - max_new)
    settings.update(max_new_tokens=max_new, max_input_tokens=limit)
    cls = backends.PointwiseJudge if kind == "pointwise" else backends.HFGenerativeJudge
    return cls(loaded, templates=templates, max_new_tokens=max_new, max_input_tokens=limit), settings


def run_judge(judge: str, *, kind: str, bench: Any, out_dir: str | os.PathLike, orders: int = 2,
              limit: int | None = None, tasks: Sequence[str] | None = None, max_new_tokens: int | None = None,
              device: str = "auto", quantization: str | None = None, attn: str = "auto",
              prompt_file: str | os.PathLike | None = None, order_seed: int = OFFICIAL_ORDER_SEED,
              judge_id: str | None = None, loaded: Any = None, max_input_tokens: int | None = None,
              backend: str = "hf", shared_prefix: bool = True, batch_size: int = 1, seed: int = 0,
              progress: bool = True, n_boot: int = N_BOOT) -> dict:
    """Judge ``bench`` with ``judge`` and write the four output files into ``out_dir``; returns the metrics.

    ``judge`` is a preset, a model folder or hub id, or (``kind='heuristic'``) one of
    ``random``/``longer``/``overlap``. ``loaded`` is an already loaded ``models.Loaded`` (a model
    trained in the same notebook); it is used instead of loading ``judge``.
    """
    if orders not in (1, 2):
        raise ValueError(f"orders must be 1 or 2, got {orders}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "heuristic" and judge not in cues.HEURISTICS:
        raise ValueError(f"heuristic judge must be one of {cues.HEURISTICS}, got {judge!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recs = load_bench(bench, tasks, limit)
    templates = prompts.load_templates(prompt_file)
    judge_id = judge_id or default_judge_id(judge, kind)
    config = {
        "judge": str(judge), "judge_id": judge_id, "kind": kind, "orders": orders, "order_seed": order_seed,
        "bench": bench if isinstance(bench, str) else str(bench) if isinstance(bench, os.PathLike) else "<records>",
        "items": models.fingerprint(recs), "n_items": len(recs),  # content, not just ids: a rebuilt bench is new
        "tasks": list(tasks) if tasks else None, "limit": limit, "quantization": quantization,
        "prompts": templates.source if kind in ("generative", "pointwise") else None,
        "prompt_hash": models.fingerprint(templates.system, templates.pairwise, templates.ranking,
                                          templates.pointwise) if kind in ("generative", "pointwise") else None,
        "requested_max_new_tokens": max_new_tokens, "requested_max_input_tokens": max_input_tokens,
        "backend": backend if kind != "heuristic" else None, "seed": seed,
    }
    if not isinstance(bench, (str, os.PathLike)):
        # Records given in memory (a spread subset, an ablation): keep a copy beside the predictions, so
        # the folder is self-contained and can be analysed elsewhere (length bias, ablation, gallery).
        config["bench_file"] = BENCH_COPY
        schema.write_jsonl(recs, out / BENCH_COPY, validate=False)
    cfg_path = out / RUN_CONFIG
    pred_path, tim_path = out / PREDICTIONS, out / TIMINGS
    if cfg_path.exists() and pred_path.exists():
        old = read_json(cfg_path)
        diff = sorted(k for k in config if old.get("args", {}).get(k) != config[k])
        if diff:
            raise ValueError(f"{out} holds predictions of another configuration (differs in {diff}); "
                             "use another out_dir, or delete that folder to start over")
    done = _recover(pred_path, orders)
    _filter_timings(tim_path, done)
    todo = [r for r in recs if (str(r["task"]), str(r["id"])) not in done]
    settings: dict[str, Any] = {}
    if todo:
        bk, settings = make_backend(judge, kind, loaded=loaded, device=device, quantization=quantization, attn=attn,
                                    templates=templates, max_new_tokens=max_new_tokens,
                                    max_input_tokens=max_input_tokens, order_seed=order_seed, backend=backend,
                                    shared_prefix=shared_prefix, batch_size=batch_size, seed=seed)
    elif cfg_path.exists():
        settings = read_json(cfg_path).get("resolved", {})
    write_json(cfg_path, {"args": config, "resolved": settings})
    if len(done):
        print(f"[judge] {judge_id}: resuming, {len(done)} of {len(recs)} items already done")
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"judge {judge_id}", leave=False)
    with open(pred_path, "a", encoding="utf-8") as fp, open(tim_path, "a", encoding="utf-8") as ft:
        for rec in todo:
            item = item_view(rec)
            ords = schema.display_orders(rec, item.n, order_seed, orders)
            t0 = time.perf_counter()
            try:
                res, err = bk.judge_item(item, ords), None
                if len(res) != len(ords):
                    raise RuntimeError(f"backend returned {len(res)} results for {len(ords)} orders")
            except Exception as e:  # noqa: BLE001 - recorded per item; the run goes on
                res, err = [None] * len(ords), f"{type(e).__name__}: {e}"[:2000]
                _free_memory()
                print(f"[judge] item ({rec['task']}, {rec['id']}) failed: {err[:200]}", file=sys.stderr)
            wall = time.perf_counter() - t0
            # timings first: a kill between the two writes leaves timings of an unfinished item,
            # which the resume drops, never a finished item without timings
            tl = [{"task": rec["task"], "id": rec["id"], "pass": k,
                   **({"total_s": round(wall, 6)} if r is None else {x: (round(v, 6) if isinstance(v, float) else v)
                                                                     for x, v in r.timing.items()})}
                  for k, r in enumerate(res)]
            ft.write("".join(dumps_line(t) for t in tl))
            ft.flush()
            lines = [_prediction(rec, k, o, r, err) for k, (o, r) in enumerate(zip(ords, res))]
            fp.write("".join(dumps_line(p) for p in lines))
            fp.flush()
            os.fsync(fp.fileno())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if todo:
        del bk
        import gc

        gc.collect()
        _free_memory()
    return score.score_file(pred_path, out, n_boot=n_boot)


def _free_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="longrm_utils judge",
                                description="Judge a Long-RewardBench file in both display orders, resumably.")
    p.add_argument("--model", required=True, help="preset, model folder, hub id, or heuristic name "
                   f"({', '.join(cues.HEURISTICS)}) with --kind heuristic")
    p.add_argument("--kind", required=True, choices=KINDS, help="how the model judges")
    p.add_argument("--bench", required=True, help="benchmark JSONL, official folder, or hub id LCM-Lab/LongRewardBench")
    p.add_argument("--out", required=True, help="output folder (predictions.jsonl, results.csv, metrics.json, ...)")
    p.add_argument("--orders", type=int, default=2, choices=(1, 2), help="1: official order only; 2: also reversed")
    p.add_argument("--limit", type=int, default=None, help="judge only the first N items (after --tasks)")
    p.add_argument("--tasks", nargs="+", default=None, help="only these tasks, e.g. LongQA Summ")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 2048; capped at 64 on CPU")
    p.add_argument("--max-input-tokens", type=int, default=None,
                   help="truncate longer inputs keeping first and last halves (default: the model's window, ≤131072)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--quantization", default=None, choices=("4bit", "8bit"), help="bitsandbytes loading")
    p.add_argument("--attn", default="auto", help="auto, sdpa, eager, flash_attention_2")
    p.add_argument("--prompt-file", default=None, help="YAML/JSON with system/pairwise/ranking/pointwise templates")
    p.add_argument("--order-seed", type=int, default=OFFICIAL_ORDER_SEED, help="display-order seed (official: 42)")
    p.add_argument("--judge-id", default=None, help="name for this judge in tables (default from --model)")
    p.add_argument("--backend", default="hf", choices=("hf", "vllm"), help="generation backend")
    p.add_argument("--no-shared-prefix", action="store_true", help="scalar: score every full sequence (slower)")
    p.add_argument("--batch-size", type=int, default=1, help="scalar without shared prefix: sequences per batch")
    p.add_argument("--seed", type=int, default=0, help="seed for building/initialising models (not the order)")
    a = p.parse_args(argv)
    m = run_judge(a.model, kind=a.kind, bench=a.bench, out_dir=a.out, orders=a.orders, limit=a.limit, tasks=a.tasks,
                  max_new_tokens=a.max_new_tokens, device=a.device, quantization=a.quantization, attn=a.attn,
                  prompt_file=a.prompt_file, order_seed=a.order_seed, judge_id=a.judge_id,
                  max_input_tokens=a.max_input_tokens, backend=a.backend, shared_prefix=not a.no_shared_prefix,
                  batch_size=a.batch_size, seed=a.seed, progress=False)
    o = m["overall"]
    print(f"wrote {a.out}/predictions.jsonl, results.csv, metrics.json ({m['n_items']} items, {m['n_lines']} lines)")
    print(score.format_row(m["results"]))
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    print(f"official {fmt(o['acc_official'])}  two-order {fmt(o['acc_two_order'])}  consistent "
          f"{fmt(o['acc_consistent'])}  bias {fmt(o['bias_rate'])}  parse-fail {fmt(o['parse_failure_rate'])}  "
          f"truncated {o['truncated_items']}  errors {o['error_items']}")
    return 0
