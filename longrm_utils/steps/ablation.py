"""Context ablation as a step: judge a saved judge's items again with their context removed or
replaced, and compare the verdicts. The pure parts (ablating the records, choosing the items,
comparing the verdicts) are in :mod:`longrm_utils.analysis.ablation`; the analysis never loads a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..analysis.ablation import ABLATION_MODES, ablate_records, compare_verdicts, select_subset
from ..analysis.inputs import bench_index, bench_of, saved_judges
from ..constants import OFFICIAL_ORDER_SEED
from ..contracts import PREDICTIONS, item_key, judge_args, read_predictions
from ..judge.run import run_judge


def run_ablation(judge: str, *, kind: str, records: Sequence[dict], original: Sequence[dict], out_dir: str | Path,
                 modes: Sequence[str] = ABLATION_MODES, k: int = 8, seed: int = 0,
                 loaded: Any = None, **run_kwargs: Any) -> dict[str, Any]:
    """Judge ``k`` items of ``original`` again with their context ablated; compare the verdicts.

    Works for every kind :func:`~longrm_utils.judge.run.run_judge` takes (generative, pointwise,
    scalar, heuristic): it only changes the records. Writes ``out_dir/<mode>/predictions.jsonl``
    (resumable) and returns ``{mode: compare_verdicts(...)}`` plus the chosen keys. Pass ``loaded``
    to judge with a model already in memory (otherwise it is loaded once for all modes).
    """
    idx = bench_index(records)
    chosen = select_subset(original, k)
    keys = [key for key in chosen if key in idx]
    missing = [key for key in chosen if key not in idx]
    if missing:
        raise ValueError(f"run_ablation: {len(missing)} item(s) of the predictions are not in the records "
                         f"(first: task={missing[0][0]!r}, id={missing[0][1]!r}); pass the benchmark they were judged on")
    subset = [idx[key] for key in keys]
    orig_sub = [p for p in original if item_key(p) in set(keys)]
    passes = len({int(p["pass"]) for p in orig_sub})
    if loaded is None and kind in ("generative", "pointwise", "scalar") and len(modes) > 1:
        loaded = models.load(judge, kind=models.SCALAR if kind == "scalar" else models.GENERATIVE,
                             device=run_kwargs.get("device", "auto"), quantization=run_kwargs.get("quantization"),
                             attn=run_kwargs.get("attn", "auto"), seed=run_kwargs.get("seed", 0),
                             max_context=run_kwargs.get("max_input_tokens"))
    out: dict[str, Any] = {"judge": judge, "kind": kind, "items": [list(x) for x in keys]}
    for mode in modes:
        d = Path(out_dir) / mode
        run_judge(judge, kind=kind, bench=ablate_records(subset, mode, seed), out_dir=d, orders=passes,
                  loaded=loaded, progress=False, n_boot=0, **run_kwargs)
        out[mode] = compare_verdicts(orig_sub, read_predictions(d / PREDICTIONS))
    return out


def ablate_saved_judge(rd: str | Path, judge_id: str, *, k: int = 8, modes: Sequence[str] = ABLATION_MODES,
                       seed: int = 0, device: str = "auto", loaded: Any = None) -> dict[str, Any]:
    """:func:`run_ablation` for a judge saved in a run: same model, kind, benchmark, prompts and limits as
    recorded in its ``run_config.json``; writes into ``RUN/analysis/ablation/<judge_id>/k<k>-seed<seed>/<mode>/``
    (so a rerun with the same ``k`` and ``seed`` resumes, and another ``k`` does not collide)."""
    folder = saved_judges(rd, [judge_id])[judge_id]
    cfg = judge_args(folder)
    if not cfg:
        raise ValueError(f"{folder}: no run_config.json, so the judge's model and benchmark are unknown")
    records = bench_of(folder)
    if records is None:
        raise ValueError(f"{folder}/run_config.json: field 'bench' ({cfg.get('bench')!r}) is not a JSONL file; "
                         "ablate with run_ablation(records=...) instead")
    prompt_file = cfg.get("prompts") if cfg.get("prompts") and Path(str(cfg["prompts"])).is_file() else None
    order_seed = cfg.get("order_seed", OFFICIAL_ORDER_SEED)
    extra = {"max_new_tokens": cfg.get("requested_max_new_tokens"), "max_input_tokens": cfg.get("requested_max_input_tokens"),
             "quantization": cfg.get("quantization"), "prompt_file": prompt_file, "order_seed": order_seed}
    if cfg["kind"] == "heuristic":
        extra = {"order_seed": order_seed}
    return run_ablation(cfg["judge"], kind=cfg["kind"], records=records, original=read_predictions(folder / PREDICTIONS),
                        out_dir=Path(rd) / "analysis" / "ablation" / judge_id / f"k{k}-seed{seed}", modes=modes, k=k,
                        seed=seed, loaded=loaded, device=device, judge_id=f"{judge_id}-ablated", **extra)
