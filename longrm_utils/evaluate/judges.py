"""Saved judges of a run: load them, name their benchmark and role, chain them into lineages.

A *role* says what a judge is: its kind, its training stage (``heuristic``, ``base``, ``sft``,
``aligned``), the model it judged with and the notebook that produces it. A *lineage* is one
trained model's chain base -> Stage I SFT -> aligned, each stage named by the judge that scored it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..bench.generators import FOUNDERS_SUBTASK, GENERATOR_SOURCE
from ..bench.schema import REWARDBENCH_SOURCE
from ..constants import SHORT_BUCKET, STAGE_NOTEBOOK
from ..contracts import METRICS, PREDICTIONS, item_key, judge_args, read_predictions
from ..io import read_json

BENCH_LABELS = {"long": "long benchmark (generated)", "official": "Long-RewardBench (official)",
                "short": "short set (generated)", "rewardbench": "RewardBench (short)",
                "grounding": "grounding probe (generated)",
                "grounding-long": "grounding probe at longer contexts (generated)",
                "long+official": "long benchmark (generated + official items)", "mixed": "mixed short + long items"}
"""What :func:`judge_bench` returns -> how tables name it."""

STAGE_TITLES = {"base": "Base", "sft": "After SFT", "aligned": "After alignment"}
"""Lineage stage -> column title (the paper's Table 1 wording)."""

PAPER_MODEL_OF = {
    "qwen3-8b": ("Qwen3-8B", "base"), "longreward-qwen3-8b": ("Qwen3-8B", "aligned"),
    "con-j-qwen2-7b": ("Con-J-Qwen2-7B", "base"), "longreward-con-j-qwen2-7b": ("Con-J-Qwen2-7B", "aligned"),
    "llama-3.1-8b-instruct": ("Llama-3.1-8B-Instruct", "base"),
    "skywork-reward-v2-llama-3.1-8b": ("Skywork-Reward-V2-Llama-3.1-8B", "base"),
    "longreward-skywork-reward-v2-llama-3.1-8b": ("Skywork-Reward-V2-Llama-3.1-8B", "aligned"),
}
"""Registry preset -> (row of data/reference/paper_headline_avg.csv, stage). The LongReward_* presets are
the released checkpoints after the paper's alignment."""

EVAL_SUFFIXES = ("-eval", "-rewardbench")
"""Judge-id suffixes of the judges notebook 07 runs itself (``evaluate_models``, the short check)."""

ModelMeta = dict[str, tuple[Path, dict]]
"""Model id -> (model folder, its ``longrm.json``)."""


# --- one judge folder -----------------------------------------------------------------------------

def judge_bench(preds: Sequence[dict], config: dict | None = None) -> str:
    """Which benchmark a judge ran on (a key of :data:`BENCH_LABELS`), from its prediction lines.

    RewardBench items carry ``source = reward-bench/...``; the generated sets ``longrm-gen/...``
    (the grounding probe of notebook 06 only ``longrm-gen/founders``, at the short bucket or lengthened);
    a line whose bucket is ``short`` is a short item. Other sources (or a run_config ``bench``
    naming LongRewardBench) are the official release.
    """
    if not preds:
        raise ValueError("judge_bench: no prediction lines")
    sources = {str(p.get("source") or "") for p in preds}
    if all(s.startswith(REWARDBENCH_SOURCE + "/") for s in sources):
        return "rewardbench"
    buckets = {p.get("ctx_length_for_length") for p in preds}
    if sources == {f"{GENERATOR_SOURCE}/{FOUNDERS_SUBTASK}"}:
        return "grounding" if buckets == {SHORT_BUCKET} else "grounding-long"
    if buckets == {SHORT_BUCKET}:
        return "short"
    if SHORT_BUCKET in buckets:
        return "mixed"
    generated = [s.startswith("longrm-gen") for s in sources]
    if all(generated) and "longrewardbench" not in str((config or {}).get("bench") or "").lower():
        return "long"
    return "official" if not any(generated) or all(generated) else "long+official"


def load_judge(folder: str | os.PathLike, judge_id: str | None = None) -> dict[str, Any]:
    """One saved judge: ``{id, folder, metrics, preds, config, bench}`` (config = run_config args)."""
    folder = Path(folder)
    for f in (METRICS, PREDICTIONS):
        if not (folder / f).is_file():
            raise FileNotFoundError(f"judge folder {folder}: no {f} (run_judge writes it; rerun the judge or "
                                    f"`python -m longrm_utils score --predictions {folder / PREDICTIONS}`)")
    metrics = read_json(folder / METRICS)
    preds = read_predictions(folder / PREDICTIONS)
    if not preds:
        raise ValueError(f"{folder / PREDICTIONS}: no prediction lines")
    config = judge_args(folder)
    return {"id": judge_id or folder.name, "folder": folder, "metrics": metrics, "preds": preds,
            "config": config, "bench": judge_bench(preds, config)}


def unlisted_judges(index: dict[str, Path], judges_dir: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """What an artifact index holds under ``judges/`` besides judge folders, and what it misses.

    Returns ``(skipped, unregistered)``: ``skipped`` maps each ``judges/...`` entry that is not a
    folder with ``predictions.jsonl`` (a CSV table, a missing path) to the reason; ``unregistered``
    maps folder names under ``judges_dir`` holding predictions but absent from the index to the folder.
    """
    skipped, listed = {}, set()
    for name, path in index.items():
        if not name.startswith("judges/"):
            continue
        p = Path(path)
        if not p.exists():
            skipped[name] = f"path {p} does not exist"
        elif not p.is_dir():
            skipped[name] = f"not a judge folder ({p.suffix or 'file'})"
        elif not (p / PREDICTIONS).is_file():
            skipped[name] = f"folder without {PREDICTIONS}"
        else:
            listed.add(p.resolve())
    unregistered = {}
    if judges_dir is not None and Path(judges_dir).is_dir():
        for d in sorted(Path(judges_dir).iterdir()):
            if not d.is_dir() or not (d / PREDICTIONS).is_file() or d.resolve() in listed:
                continue
            if (d / METRICS).is_file():
                unregistered[d.name] = d
            else:
                skipped[f"{Path(judges_dir).name}/{d.name} (not registered)"] = \
                    f"{PREDICTIONS} without {METRICS}: an unfinished judging run"
    return skipped, unregistered


def item_keys(preds: Iterable[dict]) -> set[tuple[str, str]]:
    """The (task, id) of every item the lines judge."""
    return {item_key(p) for p in preds}


def restrict(preds: Iterable[dict], keys: set[tuple[str, str]]) -> list[dict]:
    """The prediction lines of the items in ``keys`` (by task and id)."""
    return [p for p in preds if item_key(p) in keys]


# --- roles ----------------------------------------------------------------------------------------

def model_stage(meta: dict) -> str:
    """``sft``, ``aligned`` or ``trained`` from a model folder's ``longrm.json`` (``stage``/``method``)."""
    st, method = str(meta.get("stage") or "").lower(), str(meta.get("method") or "").lower()
    if st.startswith("stage2") or method.startswith("stage2") or st == "aligned":
        return "aligned"
    if st.startswith("stage1") or "sft" in st or st == "sft":
        return "sft"
    return "trained"


def _same_path(a: Any, b: Path) -> bool:
    try:
        return bool(a) and Path(str(a)).exists() and Path(str(a)).resolve() == Path(b).resolve()
    except OSError:
        return False


def _stage_notebook(stage: str, kind: str, default: str = "?") -> str:
    return STAGE_NOTEBOOK.get((stage, kind)) or STAGE_NOTEBOOK.get(stage, default)


def judge_roles(judges: dict[str, dict], model_meta: ModelMeta) -> dict[str, dict]:
    """For each judge: ``{kind, stage, model, base, notebook, released}``.

    ``model_meta`` maps model id -> (folder, longrm.json dict). A judge belongs to a saved model when
    its id or its run_config ``judge`` is the model id, or ``judge`` is that folder. Other judges are
    heuristics or presets: stage ``base``, except the released LongReward checkpoints
    (:data:`PAPER_MODEL_OF`), stage ``aligned``.
    """
    roles = {}
    for jid, j in judges.items():
        cfg = j["config"]
        kind, judge = cfg.get("kind") or "?", str(cfg.get("judge") or "")
        model = next((mid for mid, (folder, _) in model_meta.items()
                      if jid == mid or judge == mid or _same_path(judge, folder)), None)
        if model is not None:
            meta = model_meta[model][1]
            stage, base = model_stage(meta), meta.get("base")
            kind = meta.get("kind") or kind
        elif kind == "heuristic":
            stage, base = "heuristic", None
        else:
            stage, base = PAPER_MODEL_OF.get(judge, (None, "base"))[1], judge
        released = model is None and stage == "aligned"
        nb = "07_evaluate_longrms" if released else _stage_notebook(stage, kind)
        owner = next((mid for mid in model_meta if model is None and jid.startswith(mid + "-")), None)
        if owner is not None:  # e.g. notebook 04's '<model>-base': the base judged on that model's items
            st, kd = model_stage(model_meta[owner][1]), model_meta[owner][1].get("kind") or kind
            nb = _stage_notebook(st, kd, nb)
        if jid.endswith(EVAL_SUFFIXES):
            nb = "07_evaluate_longrms"
        roles[jid] = {"kind": kind, "stage": stage, "model": model or judge, "base": base, "notebook": nb,
                      "released": released}
    return roles


# --- lineages: base -> Stage I SFT -> aligned -----------------------------------------------------

def _model_of_path(value: Any, model_meta: ModelMeta) -> str | None:
    if not value:
        return None
    if str(value) in model_meta:
        return str(value)
    return next((mid for mid, (folder, _) in model_meta.items() if _same_path(value, folder)
                 or Path(str(value)).name == Path(folder).name == mid), None)


def _model_parents(model_meta: ModelMeta, stage_of: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(model -> the model it was trained from, model -> a note where that parent was inferred)."""
    parent, notes = {}, {}
    for mid, (_, meta) in model_meta.items():
        p = _model_of_path(meta.get("init"), model_meta)
        if p is None and stage_of[mid] == "aligned" and meta.get("kind") == "generative":
            sfts = [m for m, (_, mm) in model_meta.items()
                    if stage_of[m] == "sft" and mm.get("base") == meta.get("base")]
            if len(sfts) == 1:
                p = sfts[0]
                notes[mid] = (f"{mid} has no 'init' in longrm.json; attached to {p} "
                              f"(the only SFT model of {meta.get('base')})")
        if p is not None and p != mid:
            parent[mid] = p
    return parent, notes


def _lineage_on_bench(jend: str, chain: list[str], kind: str, base: str, judges: dict[str, dict],
                      roles: dict[str, dict], judges_of: dict[str, list[str]], stage_of: dict[str, str],
                      notes: list[str]) -> dict:
    """The lineage of the model chain ``chain`` (end model first) on the benchmark its judge ``jend`` ran on."""
    bench = judges[jend]["bench"]
    stages: dict[str, str | None] = {"base": None, "sft": None, "aligned": None}
    for mid in chain:
        st = stage_of[mid]
        if st not in stages:
            notes.append(f"{mid}: longrm.json names no stage I/II training (stage/method); left out")
            continue
        cands = [j for j in judges_of.get(mid, []) if judges[j]["bench"] == bench]
        if cands:
            stages[st] = max(cands, key=lambda j: (len(item_keys(judges[j]["preds"])
                                                       & item_keys(judges[jend]["preds"])), j))
    want = item_keys(judges[jend]["preds"])
    bases = [j for j, r in roles.items() if r["stage"] == "base" and r["model"] == base
             and r["kind"] == kind and judges[j]["bench"] == bench]
    if bases:
        stages["base"] = max(bases, key=lambda j: (len(item_keys(judges[j]["preds"]) & want),
                                                   len(judges[j]["preds"]), j))
    else:
        notes.append(f"no judge of the base {base} ({kind}) on the {BENCH_LABELS.get(bench, bench)}: "
                     "notebook 02 produces it")
    return {"name": f"{base} ({kind}, {bench})", "kind": kind, "bench": bench,
            "base_model": base, "models": chain[::-1], "stages": stages, "notes": notes}


def discover_lineages(judges: dict[str, dict], roles: dict[str, dict], model_meta: ModelMeta) -> list[dict]:
    """Chains base -> Stage I SFT -> aligned found in a run, one per trained end model and benchmark.

    A trained model's parent is its ``longrm.json`` ``init`` (the folder it started from). An aligned
    generative model without ``init`` is attached to the one SFT model of the same base preset, if
    exactly one exists (noted as inferred). Each stage's judge is the one on the end model's benchmark;
    the base judge is the judge of the base preset (same kind, same benchmark) sharing the most items
    with the end model's judge. Returns ``[{name, kind, bench, stages: {stage: judge id or None}, notes}]``.
    """
    stage_of = {mid: model_stage(meta) for mid, (_, meta) in model_meta.items()}
    parent, notes = _model_parents(model_meta, stage_of)
    ends = [m for m in model_meta if m not in parent.values()]
    judges_of: dict[str, list[str]] = {}
    for jid, r in roles.items():
        if r["model"] in model_meta:
            judges_of.setdefault(r["model"], []).append(jid)
    out = []
    for end in sorted(ends):
        chain = [end]
        while chain[-1] in parent and parent[chain[-1]] not in chain:
            chain.append(parent[chain[-1]])
        kind = model_meta[end][1].get("kind") or "generative"
        base = model_meta[chain[-1]][1].get("base")
        if not judges_of.get(end):
            out.append({"name": f"{base} ({kind}, not judged)", "kind": kind, "bench": None, "base_model": base,
                        "models": chain[::-1], "stages": {"base": None, "sft": None, "aligned": None},
                        "notes": [f"model {end} has no saved judge: its notebook registers judges/{end} after "
                                  "judging it"]})
        for jend in sorted(judges_of.get(end, [])):
            out.append(_lineage_on_bench(jend, chain, kind, base, judges, roles, judges_of, stage_of,
                                         [notes[m] for m in chain if m in notes]))
    return out


def explicit_lineages(specs: Sequence[dict], judges: dict[str, dict], roles: dict[str, dict]) -> list[dict]:
    """Lineages given by hand (``[{"name"?, "stages": {"base"?, "sft"?, "aligned"?: judge id}}]``), checked
    and completed like :func:`discover_lineages`' output (kind, benchmark, base model, trained models)."""
    out = []
    for k, spec in enumerate(specs, 1):
        stages = dict(spec.get("stages") or {})
        bad = sorted(set(stages) - set(STAGE_TITLES))
        if bad or not any(stages.values()):
            raise ValueError(f"lineage {k}: 'stages' maps {sorted(STAGE_TITLES)} to judge ids, got {spec.get('stages')!r}")
        missing = [j for j in stages.values() if j and j not in judges]
        if missing:
            raise KeyError(f"lineage {k}: judge(s) {missing} are not saved in this run; saved: {sorted(judges)}")
        ids = [stages[s] for s in STAGE_TITLES if stages.get(s)]
        benches = {judges[j]["bench"] for j in ids}
        last = ids[-1]
        base = roles[stages["base"]]["model"] if stages.get("base") else roles[last]["base"]
        out.append({"name": spec.get("name") or f"{base} ({roles[last]['kind']}, {judges[last]['bench']})",
                    "kind": roles[last]["kind"], "bench": judges[last]["bench"], "base_model": base,
                    "models": [roles[j]["model"] for j in ids if roles[j]["stage"] in ("sft", "aligned")],
                    "stages": {s: stages.get(s) for s in STAGE_TITLES},
                    "notes": [] if len(benches) == 1 else [f"its judges ran on different benchmarks: {sorted(benches)}"]})
    return out
