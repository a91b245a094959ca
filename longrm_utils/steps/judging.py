"""Judge into a run: one verb for every notebook that judges (02, 04, 05, 06, 07).

:func:`judge_into_run` judges records into ``RUN/judges/<id>`` and registers the folder.
:func:`metrics_for` gives the metrics of a judge on some records, re-scored from an earlier
judging of those items when one covers them (notebook 02 judged the base models; 04-06 reuse
that), and judged now otherwise. A rerun of a notebook resumes from the predictions on disk.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import models
from ..contracts import PREDICTIONS
from ..evaluate.progress import metrics_on
from ..judge import backends
from ..judge.run import default_judge_id, item_view, run_judge
from ..rundir import register_artifact


def summary_line(jid: str, metrics: dict) -> str:
    """One printed line per judge: official and two-order accuracy, parse failures, truncations."""
    o = metrics["overall"]
    return (f"{jid:38s} official {100 * o['acc_official']:5.1f}  two-order {100 * o['acc_two_order']:5.1f}  "
            f"parse-fail {100 * o['parse_failure_rate']:5.1f}%  truncated {o['truncated_items']}")


def judge_into_run(rd: str | os.PathLike, judge: str, *, kind: str, records: Any, judge_id: str | None = None,
                   suffix: str = "", verbose: bool = True, **run_kwargs: Any) -> dict:
    """Judge ``records`` with ``judge`` into ``rd/judges/<id>``, register it, return its metrics.

    ``judge_id`` defaults to :func:`~longrm_utils.judge.run.default_judge_id` plus ``suffix``;
    ``run_kwargs`` go to :func:`~longrm_utils.judge.run.run_judge` (orders, device, loaded, ...).
    """
    jid = judge_id or default_judge_id(judge, kind) + suffix
    out = Path(rd) / "judges" / jid
    metrics = run_judge(judge, kind=kind, bench=records, out_dir=out, judge_id=jid, **run_kwargs)
    register_artifact(rd, f"judges/{jid}", out)
    if verbose:
        print(summary_line(jid, metrics))
    return metrics


def judge_all(rd: str | os.PathLike, specs: Iterable[tuple[str, str]], records: Any, *, suffix: str = "",
              **run_kwargs: Any) -> dict[str, dict]:
    """:func:`judge_into_run` for every ``(model, kind)`` in ``specs``; returns ``{judge id: metrics}``."""
    out = {}
    for model, kind in specs:
        jid = default_judge_id(model, kind) + suffix
        out[jid] = judge_into_run(rd, model, kind=kind, records=records, judge_id=jid, **run_kwargs)
    return out


def metrics_for(rd: str | os.PathLike, judge: str, records: Sequence[dict], *, kind: str = "generative",
                judge_id: str, reuse: Sequence[str] = (), judge_missing: bool = True,
                **run_kwargs: Any) -> dict | None:
    """Metrics of ``judge`` on ``records``.

    The judge folders named in ``reuse`` (ids under ``rd/judges``) are tried first: the first whose
    predictions cover every record is re-scored on exactly those records. Otherwise the records are
    judged into ``judges/<judge_id>`` (when ``judge_missing``), or None is returned.
    """
    for rid in reuse:
        m = metrics_on(Path(rd) / "judges" / rid / PREDICTIONS, records)
        if m is not None:
            return m
    if not judge_missing:
        return None
    return judge_into_run(rd, judge, kind=kind, records=list(records), judge_id=judge_id, verbose=False,
                          **run_kwargs)


def headline(metrics: dict[str, dict], *, bias: bool = True) -> dict[str, Any]:
    """Headline numbers of several judges for ``summary.md``: AVG. (percent) and, for model judges, bias."""
    out: dict[str, Any] = {}
    for jid, m in metrics.items():
        avg = (m.get("results") or {}).get("AVG.")
        out[f"{jid} AVG."] = None if avg is None else round(avg, 1)
        b = m["overall"].get("bias_rate")
        if bias and b is not None and not jid.startswith("heuristic"):
            out[f"{jid} bias"] = round(100 * b, 1)
    return out


def shared_prefix_demo(model: str, records: Sequence[dict], *, device: str = "auto", seed: int = 0,
                       max_input_tokens: int | None = None, quantization: str | None = None,
                       attn: str = "auto") -> dict[str, Any]:
    """Score the largest Best-of-N item of ``records`` (at most 16k) both ways, full and shared-prefix.

    Returns N (answers), C (shared prefix tokens), r (mean answer tokens), both wall times, the
    measured and the theoretical speed-up N(C+r)/(C+Nr), and the largest score difference.
    """
    rm = models.load(model, kind=models.SCALAR, device=device, quantization=quantization, attn=attn, seed=seed)
    sj = backends.ScalarJudge(rm, max_input_tokens=max_input_tokens or rm.spec.max_context)
    fits = [r for r in records if r["tasktype"] == "BestOfN" and r["ctx_length_for_length"] in ("4k", "8k", "16k")]
    big = max(fits, key=lambda r: (int(r["subtype"]), r["length"]), default=records[0])
    seqs, _ = sj.candidate_ids(item_view(big))
    t0 = time.perf_counter()
    full = backends.score_full(rm, seqs)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    shared, c = backends.score_shared_prefix(rm, seqs)
    t_shared = time.perf_counter() - t0
    n, r = len(seqs), sum(len(s) - c for s in seqs) / len(seqs)
    return {"N": n, "C": c, "r": round(r, 1), "full_s": round(t_full, 3), "shared_s": round(t_shared, 3),
            "speedup": round(t_full / t_shared, 2), "theory": round(n * (c + r) / (c + n * r), 2),
            "max_abs_diff": max(abs(a - b) for a, b in zip(full, shared))}
