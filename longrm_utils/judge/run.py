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

import contextlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .. import io, models
from ..runtime import get_logger, progress_enabled
from ..bench import cues, schema
from ..cli import ArgumentParser, add_flag, positive_int
from ..constants import (CPU_MAX_NEW_TOKENS, OFFICIAL_MAX_INPUT_TOKENS, OFFICIAL_MAX_NEW_TOKENS, OFFICIAL_ORDER_SEED,
                         TASKS)
from ..contracts import (BENCH_COPY, METRICS, PRED_FIELDS, PREDICTIONS, RESULTS, RUN_CONFIG, TIMINGS, item_key,
                         item_score)
from ..io import InputError, dumps_line, read_json, write_json
from ..stats import N_BOOT
from . import backends, prompts, score, served, vllm

KINDS = ("generative", "pointwise", "scalar", "heuristic")
log = get_logger("judge")
# --- inputs ---------------------------------------------------------------------------------------

def _where(bench: Any) -> str:
    return "<records>" if isinstance(bench, (list, tuple)) else str(bench)


def load_bench(bench: Any, tasks: Sequence[str] | None = None, limit: int | None = None) -> list[dict]:
    """A benchmark file (JSONL), a folder or hub id of the official release, or a list of records.

    An empty benchmark, a task that is unknown or has no item, and a ``limit`` below 1 are errors.
    Near-duplicate pairs (chosen equal to rejected after whitespace normalisation) are counted and
    reported on stderr, not refused: the official release may hold some.
    """
    unknown = sorted(set(tasks or ()) - set(TASKS))
    if unknown:
        raise InputError(f"--tasks: unknown task(s) {', '.join(unknown)}; tasks are {', '.join(TASKS)}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if isinstance(bench, (list, tuple)):
        recs = [dict(r) for r in bench]
        for i, r in enumerate(recs, 1):
            schema.validate_record(r, file="<records>", line=i, allow_unknown=True)
        io.unique_rows(enumerate(recs, 1), lambda r: (str(r["task"]), str(r["id"])), file="<records>",
                       field="id", what="(task, id)")
    elif Path(bench).is_file():
        recs = schema.read_jsonl(bench)
    else:
        recs = schema.load_official(str(bench), tasks=tasks)
    if not recs:
        raise InputError("holds no items", file=_where(bench))
    if tasks:
        missing = sorted(set(tasks) - {r["task"] for r in recs})
        if missing:
            raise InputError(f"--tasks: no item of task(s) {', '.join(missing)}; it holds "
                             f"{', '.join(sorted({r['task'] for r in recs}))}", file=_where(bench))
        recs = [r for r in recs if r["task"] in set(tasks)]
    near = sum(1 for r in recs if r["tasktype"] == "PairWise" and " ".join(r["chosen"].split()) == " ".join(r["rejected"].split()))
    if near:
        log.warning(f"{_where(bench)}: {near} pair(s) whose chosen and rejected answers differ only in "
                    "whitespace; they are judged and scored as any other pair")
    return recs[:limit] if limit is not None else recs


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
            log.info(f"CPU: max_new_tokens {requested} capped at {CPU_MAX_NEW_TOKENS}")
        n = CPU_MAX_NEW_TOKENS
    return n


# --- resume ---------------------------------------------------------------------------------------

def _recover(path: Path, passes: int, *, retry_errors: bool = False) -> set[tuple[str, str]]:
    """Finished (task, id) keys in ``path``; rewrites it without a torn last line or partial item
    (and, with ``retry_errors``, without the items whose judging raised, so they are judged again)."""
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
                raise InputError("corrupt line that is not the last one; remove the folder or fix the file by hand",
                                 file=path, line=i + 1) from None
    counts: dict[tuple[str, str], int] = {}
    for p in good:
        counts[item_key(p)] = counts.get(item_key(p), 0) + 1
    errored = {item_key(p) for p in good if p.get("error")} if retry_errors else set()
    done = {k for k, c in counts.items() if c == passes} - errored
    keep = [r for p, r in zip(good, good_raw) if item_key(p) in done]
    new = b"".join(r + b"\n" for r in keep)
    if new != raw:
        dropped = len(good) - len(keep)
        log.info(f"resume: dropped {dropped} line(s) of unfinished"
              + (f" or errored ({len(errored)} item(s) to retry)" if errored else "") + " items"
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
                    pref_prob=None, score=0.0, truncated=False, prompt_tokens=None, error=error)
    else:
        vals.update(raw=r.raw, ranking=r.ranking, parse_error=r.parse_error, strict_error=r.strict_error,
                    slot_scores=r.slot_scores, tie=r.tie, pref_prob=r.pref_prob, score=item_score(r.ranking, order),
                    truncated=r.truncated, prompt_tokens=r.prompt_tokens, error=None)
    return {f: vals[f] for f in PRED_FIELDS}


def input_limit(spec: models.ModelSpec, max_new: int) -> int:
    """The default input cut (longer inputs keep their first and last halves).

    A model whose rope scaling reaches the official 131,072 tokens (Qwen3 with YaRN) is cut there, as
    the official evaluation does, and generates past it; any other model keeps its native window,
    less the tokens it will generate.
    """
    if spec.yarn_context:
        return min(spec.yarn_context, OFFICIAL_MAX_INPUT_TOKENS)
    return min(spec.max_context, OFFICIAL_MAX_INPUT_TOKENS) - max_new


def _spec_or_none(judge: str) -> models.ModelSpec | None:
    try:
        return models.get_spec(judge)
    except KeyError:  # a raw hub id: its window is read from its config when loaded
        return None


BACKENDS = ("hf", "vllm", "openai")

GEN_BATCH_ITEMS = 8
"""Items per batched generation of an HF generative judge unless ``batch_size`` says otherwise
(the padded batch is also capped at ``backends.GEN_BATCH_TOKENS`` tokens)."""


def make_backend(judge: str, kind: str, *, loaded=None, device="auto", quantization=None, attn="auto",
                 templates=None, max_new_tokens=None, max_input_tokens=None, order_seed=OFFICIAL_ORDER_SEED,
                 backend="hf", shared_prefix=True, batch_size=None, seed=0, served_args: dict | None = None):
    """Build the backend for ``kind``; returns (backend, resolved settings for run_config).

    ``batch_size``: for a scalar RM without the shared prefix, sequences per forward; for a
    generative judge, items per batched generation (:meth:`.backends.HFGenerativeJudge.judge_items`).
    None: :data:`GEN_BATCH_ITEMS` for generative judges, 1 otherwise.

    ``served_args`` (backend ``openai``): ``base_url``, and optionally ``api_key_env``,
    ``concurrency``, ``timeout_s``, ``retries`` of :class:`.served.OpenAIChatJudge`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "heuristic":
        return backends.HeuristicJudge(judge, order_seed), {}
    if backend == "openai":
        if kind != "generative":
            raise InputError(f"--backend openai judges with kind generative, got {kind!r}")
        sa = dict(served_args or {})
        if not sa.get("base_url"):
            raise InputError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
        max_new = max_new_tokens or OFFICIAL_MAX_NEW_TOKENS
        b = served.OpenAIChatJudge(judge, templates=templates, max_new_tokens=max_new, **sa)
        return b, {"backend": "openai", "max_new_tokens": max_new, "max_input_tokens": None,
                   "base_url": sa["base_url"], "concurrency": b.concurrency}
    mkind = models.SCALAR if kind == "scalar" else models.GENERATIVE
    if batch_size is None:
        batch_size = GEN_BATCH_ITEMS if kind == "generative" else 1
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
        spec = _spec_or_none(judge)
        if spec is not None and max_input_tokens is None:  # load with the rope scaling the default cut needs
            new = 0 if kind == "scalar" else resolve_max_new_tokens(max_new_tokens, models.pick_device(device))
            max_input_tokens = input_limit(spec, new)
        loaded = models.load(judge, kind=mkind, device=device, attn=attn, quantization=quantization, seed=seed,
                             max_context=max_input_tokens)
    is_scalar = models.is_scalar(loaded.model)
    if is_scalar != (kind == "scalar"):
        raise ValueError(f"judge {judge!r} is loaded as a {'scalar' if is_scalar else 'generative'} model, "
                         f"but kind={kind!r}")
    max_new = 0 if kind == "scalar" else resolve_max_new_tokens(max_new_tokens, loaded.device)
    limit = max_input_tokens or input_limit(loaded.spec, max_new)
    window = loaded.spec.yarn_context or loaded.spec.max_context
    if limit > window or (not loaded.spec.yarn_context and limit + max_new > window):
        raise InputError(f"--max-input-tokens {limit}" + (f" plus {max_new} new tokens" if max_new else "")
                         + f" exceeds the window of {loaded.spec.name}: {window} tokens"
                         + (" with its rope scaling" if loaded.spec.yarn_context else ""))
    import torch

    # float sums depend on the thread count: byte-identical reruns need the same device and threads
    settings: dict[str, Any] = {"device": loaded.device, "attn": loaded.attn, "backend": "hf",
                                "torch_threads": torch.get_num_threads(), "model_info": models.model_info(loaded)}
    if kind == "scalar":
        settings.update(max_input_tokens=limit, shared_prefix=shared_prefix, batch_size=batch_size)
        return backends.ScalarJudge(loaded, max_input_tokens=limit, shared_prefix=shared_prefix,
                                    batch_size=batch_size), settings
    settings.update(max_new_tokens=max_new, max_input_tokens=limit, batch_size=batch_size)
    cls = backends.PointwiseJudge if kind == "pointwise" else backends.HFGenerativeJudge
    return cls(loaded, templates=templates, max_new_tokens=max_new, max_input_tokens=limit,
               batch_size=batch_size), settings


RERUN_SETTINGS = ("device", "attn", "backend", "torch_threads", "max_new_tokens", "max_input_tokens",
                  "shared_prefix", "batch_size", "base_url")
"""Resolved settings that change a prediction: a resume under other values is refused."""


def _check_args(orders, kind, judge, max_new_tokens, max_input_tokens, batch_size) -> None:
    """Refuse arguments that would turn every item into an error or silently change the protocol."""
    if orders not in (1, 2):
        raise InputError(f"orders must be 1 or 2, got {orders}")
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "heuristic" and judge not in cues.HEURISTICS:
        raise InputError(f"a heuristic judge is one of {', '.join(cues.HEURISTICS)}, got {judge!r}")
    for name, v in (("max_new_tokens", max_new_tokens), ("max_input_tokens", max_input_tokens),
                    ("batch_size", batch_size)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise InputError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {v!r}")


def _differences(old: dict, new: dict, keys) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _start_folder(out: Path, config: dict, *, overwrite: bool) -> dict:
    """The previous run_config of ``out`` (empty for a new folder); other settings are refused, or
    with ``overwrite`` the earlier outputs are removed."""
    cfg_path, pred_path = out / RUN_CONFIG, out / PREDICTIONS
    if not (cfg_path.exists() and pred_path.exists()):
        return {}
    old = read_json(cfg_path)
    diff = _differences(old.get("args", {}), config, config)
    if diff and all(d.startswith("weights:") for d in diff):
        # an in-memory model retrained since: its old predictions are stale by construction
        log.info(f"{out}: the model's weights changed since its predictions were made; judging again")
        overwrite = True
    if diff and not overwrite:
        raise InputError(f"holds predictions made with other settings ({'; '.join(diff)}); rerun with "
                         "--overwrite to replace them, or write to another folder", file=out)
    if diff:
        for name in (PREDICTIONS, TIMINGS, RESULTS, METRICS, RUN_CONFIG):
            (out / name).unlink(missing_ok=True)
        log.info(f"--overwrite: removed the predictions of other settings in {out}")
        return {}
    return old


def _judge_config(judge, kind, bench, recs, templates, **args) -> dict:
    """Every argument that can change a prediction, as recorded in ``run_config.json``."""
    gen = kind in ("generative", "pointwise")
    return {"judge": str(judge), "judge_id": args["judge_id"], "kind": kind, "orders": args["orders"],
            "order_seed": args["order_seed"], "bench": bench if isinstance(bench, str) else
            str(bench) if isinstance(bench, os.PathLike) else "<records>",
            "items": models.fingerprint(recs), "n_items": len(recs),  # content: a rebuilt bench is new
            "tasks": list(args["tasks"]) if args["tasks"] else None, "limit": args["limit"],
            "quantization": args["quantization"], "prompts": templates.source if gen else None,
            "prompt_hash": models.fingerprint(templates.system, templates.pairwise, templates.ranking,
                                              templates.pointwise) if gen else None,
            "requested_max_new_tokens": args["max_new_tokens"], "requested_max_input_tokens": args["max_input_tokens"],
            "backend": args["backend"] if kind != "heuristic" else None, "seed": args["seed"],
            "base_url": args["base_url"] if args["backend"] == "openai" else None,
            "device": args["device"], "attn": args["attn"] if kind != "heuristic" else None,
            "shared_prefix": args["shared_prefix"] if kind == "scalar" else None,
            "batch_size": args["batch_size"] if kind in ("scalar", "generative") else None,
            "weights": args.get("weights")}


def run_judge(judge: str, *, kind: str, bench: Any, out_dir: str | os.PathLike, orders: int = 2,
              limit: int | None = None, tasks: Sequence[str] | None = None, max_new_tokens: int | None = None,
              device: str = "auto", quantization: str | None = None, attn: str = "auto",
              prompt_file: str | os.PathLike | None = None, order_seed: int = OFFICIAL_ORDER_SEED,
              judge_id: str | None = None, loaded: Any = None, max_input_tokens: int | None = None,
              backend: str = "hf", shared_prefix: bool = True, batch_size: int | None = None, seed: int = 0,
              progress: bool = True, n_boot: int = N_BOOT, overwrite: bool = False,
              retry_errors: bool = False, served_args: dict | None = None) -> dict:
    """Judge ``bench`` with ``judge`` and write the judge folder ``out_dir``; returns the metrics.

    ``judge`` is a preset, a model folder or hub id, or (``kind='heuristic'``) one of
    ``random``/``longer``/``overlap``. ``loaded`` is an already loaded ``models.Loaded`` (a model
    trained in the same notebook); it is used instead of loading ``judge``. A rerun with the same
    settings resumes; other settings are refused unless ``overwrite``. A ``loaded`` model is known by
    its weights (:func:`.models.weights_fingerprint`): retrained since, its old predictions are stale
    and are judged again. ``retry_errors`` judges again
    the items whose judging raised. ``backend="openai"`` judges through an OpenAI-compatible server
    (``served_args``: ``base_url`` and the options of :class:`.served.OpenAIChatJudge`).
    """
    _check_args(orders, kind, judge, max_new_tokens, max_input_tokens, batch_size)
    recs = load_bench(bench, tasks, limit)
    templates = prompts.load_templates(prompt_file)
    judge_id = judge_id or default_judge_id(judge, kind)
    config = _judge_config(judge, kind, bench, recs, templates, judge_id=judge_id, orders=orders,
                           order_seed=order_seed, tasks=tasks, limit=limit, quantization=quantization,
                           max_new_tokens=max_new_tokens, max_input_tokens=max_input_tokens, backend=backend,
                           seed=seed, device=device, attn=attn, shared_prefix=shared_prefix, batch_size=batch_size,
                           base_url=(served_args or {}).get("base_url"),
                           weights=None if loaded is None else models.weights_fingerprint(loaded.model))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = _start_folder(out, config, overwrite=overwrite)
    if not isinstance(bench, (str, os.PathLike)):
        # Records given in memory (a spread subset, an ablation): keep a copy beside the predictions, so
        # the folder is self-contained and can be analysed elsewhere (length bias, ablation, gallery).
        config["bench_file"] = BENCH_COPY
        schema.write_jsonl(recs, out / BENCH_COPY, validate=False)
    done = _recover(out / PREDICTIONS, orders, retry_errors=retry_errors)
    _filter_timings(out / TIMINGS, done)
    todo = [r for r in recs if item_key(r) not in done]
    settings = old.get("resolved", {})
    bk = None
    if todo:
        bk, settings = make_backend(judge, kind, loaded=loaded, device=device, quantization=quantization, attn=attn,
                                    templates=templates, max_new_tokens=max_new_tokens,
                                    max_input_tokens=max_input_tokens, order_seed=order_seed, backend=backend,
                                    shared_prefix=shared_prefix, batch_size=batch_size, seed=seed,
                                    served_args=served_args)
        diff = _differences(old.get("resolved", {}), settings, RERUN_SETTINGS) if done else []
        if diff:
            raise InputError(f"its predictions were made with other resolved settings ({'; '.join(diff)}); "
                             "rerun with --overwrite to replace them, or write to another folder", file=out)
    write_json(out / RUN_CONFIG, {"args": config, "resolved": settings})
    if done:
        log.info(f"{judge_id}: resuming, {len(done)} of {len(recs)} items already done")
    model = getattr(getattr(bk, "loaded", None), "model", None)
    with models.adapters_merged(model) if model is not None else contextlib.nullcontext():
        _judge_items(bk, todo, out, orders, order_seed, judge_id, progress)
    return score.score_file(out / PREDICTIONS, out, n_boot=n_boot)


def _judge_items(bk, todo: list[dict], out: Path, orders: int, order_seed: int, judge_id: str,
                 progress: bool) -> None:
    """Judge ``todo`` in order, appending timings then predictions per item (resumable)."""
    if not todo:
        return
    from tqdm.auto import tqdm

    with open(out / PREDICTIONS, "a", encoding="utf-8") as fp, open(out / TIMINGS, "a", encoding="utf-8") as ft:
        bar = tqdm(todo, desc=f"judge {judge_id}", unit="item", disable=not progress_enabled(progress),
                   file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 10.0)
        for rec, (res, err, wall) in zip(bar, _results(bk, todo, orders, order_seed)):
            ords = schema.display_orders(rec, len(schema.answers(rec)), order_seed, orders)
            # timings first: a kill between the two writes leaves timings of an unfinished item,
            # which the resume drops, never a finished item without timings
            tl = [{"task": rec["task"], "id": rec["id"], "pass": k,
                   **({"total_s": round(wall, 6)} if r is None else {x: (round(v, 6) if isinstance(v, float) else v)
                                                                     for x, v in r.timing.items()})}
                  for k, r in enumerate(res)]
            ft.write("".join(dumps_line(t) for t in tl))
            ft.flush()
            fp.write("".join(dumps_line(_prediction(rec, k, o, r, err)) for k, (o, r) in enumerate(zip(ords, res))))
            fp.flush()
            os.fsync(fp.fileno())
    del bk
    import gc

    gc.collect()
    _free_memory()


def _results(bk, todo: list[dict], orders: int, order_seed: int):
    """(results, error, wall seconds) of each record of ``todo``, in order. A backend with
    ``judge_items`` (a served model) keeps several items in flight; the others judge one at a time.
    An item that raises is recorded with its error, and the run goes on."""
    def view(rec: dict):
        v = item_view(rec)
        return v, schema.display_orders(rec, v.n, order_seed, orders)

    views = (view(r) for r in todo)
    if hasattr(bk, "judge_items"):
        t0 = time.perf_counter()
        for rec, res in zip(todo, bk.judge_items(views)):
            now = time.perf_counter()
            yield _checked(rec, res, now - t0, orders)
            t0 = now
        return
    for rec, v in zip(todo, views):
        t0 = time.perf_counter()
        try:
            res = bk.judge_item(*v)
        except Exception as e:  # noqa: BLE001 - recorded per item; the run goes on
            res = e
        yield _checked(rec, res, time.perf_counter() - t0, orders)


def _checked(rec: dict, res, wall: float, orders: int):
    if not isinstance(res, Exception) and len(res) != orders:
        res = RuntimeError(f"backend returned {len(res)} results for {orders} orders")
    if isinstance(res, Exception):
        err = f"{type(res).__name__}: {res}"[:2000]
        _free_memory()
        log.warning(f"item ({rec['task']}, {rec['id']}) failed: {err[:200]}")
        return [None] * orders, err, wall
    return res, None, wall


def _free_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def cli(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="longrm_utils judge", description="Judge a Long-RewardBench file in both display orders, resumably.")
    p.add_argument("--model", required=True, help="preset, model folder, hub id, or heuristic name "
                   f"({', '.join(cues.HEURISTICS)}) with --kind heuristic")
    p.add_argument("--kind", required=True, choices=KINDS, help="how the model judges")
    p.add_argument("--bench", required=True, help="benchmark JSONL, official folder, or hub id LCM-Lab/LongRewardBench")
    p.add_argument("--out", required=True, help="output folder (predictions.jsonl, results.csv, metrics.json, ...)")
    p.add_argument("--orders", type=int, default=2, choices=(1, 2), help="1: official order only; 2: also reversed")
    p.add_argument("--limit", type=positive_int, default=None, help="judge only the first N items (after --tasks)")
    p.add_argument("--tasks", nargs="+", default=None, help="only these tasks, e.g. LongQA Summ")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="default 2048; capped at 64 on CPU")
    p.add_argument("--max-input-tokens", type=positive_int, default=None,
                   help="truncate longer inputs keeping first and last halves (default: the model's window, ≤131072)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--quantization", default=None, choices=("4bit", "8bit"), help="bitsandbytes loading")
    p.add_argument("--attn", default="auto", help="auto, sdpa, eager, flash_attention_2")
    p.add_argument("--prompt-file", default=None, help="YAML/JSON with system/pairwise/ranking/pointwise templates")
    p.add_argument("--order-seed", type=int, default=OFFICIAL_ORDER_SEED, help="display-order seed (official: 42)")
    p.add_argument("--judge-id", default=None, help="name for this judge in tables (default from --model)")
    p.add_argument("--backend", default="hf", choices=BACKENDS,
                   help="hf: transformers in this process; vllm: vLLM in this process (CUDA); openai: a served "
                        "model at --base-url (vLLM, SGLang, llama.cpp, a hosted API, or `longrm serve`)")
    p.add_argument("--base-url", default=None, help="openai backend: the API root, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: environment variable that holds the key (never recorded)")
    p.add_argument("--concurrency", type=positive_int, default=4, help="openai backend: requests in flight")
    p.add_argument("--request-timeout", type=float, default=600.0, help="openai backend: seconds per request")
    p.add_argument("--retries", type=int, default=4,
                   help="openai backend: retries with exponential backoff on timeouts, 429 and 5xx")
    add_flag(p, "shared-prefix", default=True, help="scalar: encode the shared context once per item "
             "(--no-shared-prefix scores every full sequence, slower)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"generative: items per batched generation (default {GEN_BATCH_ITEMS}); "
                        "scalar without shared prefix: sequences per forward (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for building/initialising models (not the order)")
    add_flag(p, "overwrite", default=False,
             help="replace predictions that --out holds from other settings (default: refuse)")
    add_flag(p, "retry-errors", default=False,
             help="judge again the items whose judging raised (an out-of-memory error, say)")
    a = p.parse_args(argv)
    m = run_judge(a.model, kind=a.kind, bench=a.bench, out_dir=a.out, orders=a.orders, limit=a.limit, tasks=a.tasks,
                  max_new_tokens=a.max_new_tokens, device=a.device, quantization=a.quantization, attn=a.attn,
                  prompt_file=a.prompt_file, order_seed=a.order_seed, judge_id=a.judge_id,
                  max_input_tokens=a.max_input_tokens, backend=a.backend, shared_prefix=a.shared_prefix,
                  batch_size=a.batch_size, seed=a.seed, progress=True, overwrite=a.overwrite,
                  retry_errors=a.retry_errors,
                  served_args={"base_url": a.base_url, "api_key_env": a.api_key_env, "concurrency": a.concurrency,
                               "timeout_s": a.request_timeout, "retries": a.retries} if a.backend == "openai" else None)
    o = m["overall"]
    print(f"wrote {a.out}/predictions.jsonl, results.csv, metrics.json ({m['n_items']} items, {m['n_lines']} lines)")
    print(score.format_row(m["results"]))
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    print(f"official {fmt(o['acc_official'])}  two-order {fmt(o['acc_two_order'])}  consistent "
          f"{fmt(o['acc_consistent'])}  bias {fmt(o['bias_rate'])}  parse-fail {fmt(o['parse_failure_rate'])}  "
          f"truncated {o['truncated_items']}  errors {o['error_items']}")
    if o["error_items"]:
        print(f"longrm judge: {o['error_items']} item(s) raised while judging and score 0 (see 'error' in "
              f"{a.out}/predictions.jsonl); rerun with --retry-errors to judge them again", file=sys.stderr)
        return 1
    return 0
