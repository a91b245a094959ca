"""Stage II as steps (notebooks 05 and 06): data, voting, measurements, figures and the headline.

Training itself is one verb, :func:`longrm_utils.train.align.train_alignment` (load, add LoRA,
train, save); the notebooks call it and register the model. This module holds what surrounds it:

* both notebooks: the training and held-out records (:func:`stage2_records`), Stage I padding
  (:func:`pad_for_training`) and the training curves (:func:`plot_training`);
* notebook 05: the voting judges and consistency voting (:func:`voting_judges`,
  :func:`consistency_voting`), the preference data (:func:`generative_preferences`), the
  base -> SFT -> aligned rows (:func:`generative_rows`), :func:`delta_note` and
  :func:`finish_generative` (headline and ``summary.json``);
* notebook 06: the shared-prefix measurements (:func:`mechanics_table`,
  :func:`shared_prefix_speedup`), trl's ``RewardTrainer`` baseline (:func:`rewardtrainer_baseline`),
  the grounding probe's data and judges (:func:`grounding_probe`, :func:`scalar_probe_rows`), the probe
  at a longer bucket and short-to-long training (:func:`length_ladder`, :func:`long_splices`,
  :func:`judge_probe`), the
  harness rows on the short set (:func:`scalar_rows`) and :func:`finish_scalar`.

Judge folders follow ``docs/contracts.md`` §3; headlines and artifacts the run directory (§5).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..bench import schema
from ..bench.build import build_grounding, lengthen
from ..bench.text import counter_for
from ..contracts import PrefItem, write_pref_jsonl
from ..io import write_json
from ..judge.run import default_judge_id, load_bench, spread
from ..rundir import find_artifact, record_headline, register_artifact
from ..train import stage2_data
from ..train.align import AlignConfig, AlignResult, encode_items
from ..train.losses import scalar_scores
from ..train.mechanics import measure_step, synthetic_long_item, train_reward_baseline
from .judging import judge_into_run, metrics_for

GENERATIVE_NOTEBOOK = "05_stage2_align_generative_rm"
SCALAR_NOTEBOOK = "06_stage2_align_scalar_rm"
PROBE_SUFFIX = "-grounding"
"""Judge-id suffix of notebook 06's judges on the grounding probe (``bench/grounding``)."""


# --- both notebooks --------------------------------------------------------------------------------

def stage2_records(rd: str | os.PathLike, train_bench: str, eval_bench: str, n_train: int | None,
                   n_eval: int | None) -> tuple[list[dict], list[dict]]:
    """Training and held-out records, each ``n`` spread over its file (every task keeps a share).

    Both benches are artifact names of the run (``bench/short_train``, ``bench/short``); the held-out
    records are the items notebooks 02 and 04 judged when ``n_eval`` agrees with theirs.
    """
    train = spread(schema.read_jsonl(find_artifact(rd, train_bench)), n_train)
    held_out = spread(load_bench(find_artifact(rd, eval_bench)), n_eval)
    return train, held_out


def model_path(rd: str | os.PathLike, name: str) -> str:
    """A model parameter as notebooks take it: ``models/<id>`` through the run directory, else as given."""
    return str(find_artifact(rd, name)) if name.startswith("models/") else name


def preset_tokenizer(name: str):
    """The tokenizer of the preset (or model folder) ``name``, without loading the weights."""
    spec = models.get_spec(name)
    return models.load_tokenizer(models.base_folder(spec), spec)


def pad_for_training(records: Sequence[dict], tokenizer, target_tokens: int | None, *, seed: int = 0) -> list[dict]:
    """Stage I's short-to-long padding of whole records to ``target_tokens`` (None: unchanged).

    Prints how many records were padded and the skips by reason when it pads.
    """
    out, skips = stage2_data.pad_records(records, tokenizer, target_tokens, seed=seed)
    if target_tokens:
        print(f"padded {len(out)} training records to {target_tokens} tokens; skipped {dict(skips)}")
    return out


def plot_training(log: Sequence[dict], path: str | os.PathLike, *, kind: str) -> Path:
    """The training curves of :func:`~longrm_utils.train.align.train_loop`'s log, saved as PNG.

    Left: the loss per step. Right, ``generative``: the reward margin (chosen minus mean reject,
    β·log π/|J|); ``scalar``: the share of batch items whose chosen beats every reject (rolling 5).
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(list(log))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    if kind == "generative":
        ax[0].plot(df.step, df.loss)
        ax[0].set(xlabel="step", ylabel="loss", title="Stage II loss")
        ax[1].plot(df.step, df.margin)
        ax[1].set(xlabel="step", ylabel="reward margin", title="chosen − mean reject (β·log π/|J|)")
    else:
        ax[0].plot(df.step, df.loss)
        ax[0].set(xlabel="step", ylabel="BT loss", title="training loss")
        ax[1].plot(df.step, df.win_rate.rolling(5, min_periods=1).mean())
        ax[1].set(xlabel="step", ylabel="chosen beats all rejects", title="training batches (rolling 5)",
                  ylim=(0, 1.05))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# --- notebook 05: voting and preference data ------------------------------------------------------

def rule_judges() -> list[stage2_data.RuleJudge]:
    """The rule judges that always vote: by label, by rank only, by label with short quotes, and the
    weaker word-overlap judge (rank 9, the least trusted)."""
    return [stage2_data.RuleJudge("rule-label", 0, "label"), stage2_data.RuleJudge("rule-rank", 1, "rank"),
            stage2_data.RuleJudge("rule-label-short", 2, "label", quote_words=4),
            stage2_data.RuleJudge("rule-overlap", 9, "overlap")]


def voting_judges(rd: str | os.PathLike, presets: Sequence[str] = (), temperatures: Sequence[float] = (), *,
                  stage1_model: str, device: str = "auto", quantization: str | None = None, attn: str = "auto",
                  max_new_tokens: int = 64, seed: int = 0) -> list[Any]:
    """The voting panel: :func:`rule_judges`, the registry ``presets`` (greedy, ``4 * max_new_tokens``
    new tokens, ranks 3, 4, ...) and the Stage I model sampled at each of ``temperatures`` (ranks 10, ...)."""
    judges: list[Any] = rule_judges()
    for k, name in enumerate(presets):
        loaded = models.load(name, device=device, quantization=quantization, attn=attn)
        judges.append(stage2_data.ModelJudge(loaded, name, 3 + k, max_new_tokens=max_new_tokens * 4))
    if temperatures:
        s1 = models.load(model_path(rd, stage1_model), device=device)
        judges += [stage2_data.ModelJudge(s1, f"stage1@T={t}", 10 + k, temperature=t, max_new_tokens=max_new_tokens,
                                          seed=seed) for k, t in enumerate(temperatures)]
    return judges


@dataclass
class Voting:
    """One consistency vote: the pointwise tasks, the kept items, the report and per-task results."""

    records: int
    judges: int
    tasks: list
    items: list[PrefItem]
    report: stage2_data.VoteReport
    results: dict

    def text(self) -> str:
        """The report line and, when an item was kept, its consensus, chosen and first reject."""
        out = (f"{len(self.tasks)} pointwise tasks from {self.records} records, {self.judges} judges: "
               f"{self.report.as_dict()}")
        if self.items:
            it = self.items[0]
            out += (f"\n\nitem {it.id}: consensus {it.meta['consensus_score']} (conf {it.meta['conf']})\n"
                    f"  chosen ({it.meta['chosen_judge']}): {it.chosen[:160]}\n  reject: {it.rejects[0][:160]}")
        return out


def consistency_voting(records: Sequence[dict], judges: Sequence[Any], *, V: int = 2, tolerance: float = 1.0,
                       min_agreement: float = 0.5, progress: bool = True) -> Voting:
    """Split ``records`` into pointwise tasks, let every judge vote, cluster the votes (paper §4.3)."""
    tasks, _ = stage2_data.pointwise_tasks(records)
    votes = stage2_data.collect_votes(tasks, judges, progress=progress)
    items, report, results = stage2_data.consistency_vote(tasks, votes, V=V, tolerance=tolerance,
                                                          min_agreement=min_agreement)
    return Voting(len(records), len(judges), tasks, items, report, results)


def generative_preferences(records: Sequence[dict], judges: Sequence[Any], out: str | os.PathLike, *, source: str,
                           tokenizer, max_judgement_tokens: int | None, V: int = 2, tolerance: float = 1.0,
                           min_agreement: float = 0.5, seed: int = 0) -> tuple[list[PrefItem], dict]:
    """Preference items for the generative judge, written to ``out`` (JSONL); returns (items, counts).

    ``source="pairwise"``: :func:`~longrm_utils.train.stage2_data.pairwise_preferences` (both display
    orders, rule-written judgements fitted to ``max_judgement_tokens``); ``"pointwise"``: consistency
    voting of ``judges`` over every training record (counts are the vote report).
    """
    if source == "pairwise":
        prefs, counts = stage2_data.pairwise_preferences(records, tokenizer=tokenizer, max_tokens=max_judgement_tokens,
                                                         V=V, seed=seed)
    elif source == "pointwise":
        voting = consistency_voting(records, judges, V=V, tolerance=tolerance, min_agreement=min_agreement)
        prefs, counts = voting.items, voting.report.as_dict()
    else:
        raise ValueError(f"preference_source must be 'pairwise' or 'pointwise', got {source!r}")
    write_pref_jsonl(prefs, out)
    return prefs, dict(counts)


def preference_text(prefs: Sequence[PrefItem], counts: dict) -> str:
    """How many items, their counts, and the first item's chosen judgement and rejects."""
    ex = prefs[0]
    return (f"{len(prefs)} preference items: {dict(counts)}\n\nchosen  : {ex.chosen!r}\nreject 1: {ex.rejects[0]!r}"
            + (f"\nreject 2: {ex.rejects[1]!r}" if len(ex.rejects) > 1 else ""))


# --- notebook 05: base -> SFT -> aligned -----------------------------------------------------------

STAGES = ("base", "SFT (Stage I)", "aligned (Stage II)")


def generative_rows(rd: str | os.PathLike, records: Sequence[dict], aligned: AlignResult, aligned_id: str, *,
                    base_judge: str, sft_model: str, sft_id: str, judge_missing: bool = True,
                    **run_kwargs: Any) -> dict[str, dict]:
    """Metrics of the base, Stage I and aligned judges on ``records``, keyed by :data:`STAGES`.

    Base and SFT are re-scored from notebooks 02/04's judgings when they cover the records, else
    judged now (``judge_missing``) or left out; the aligned judge (``aligned.loaded``) is judged
    into ``judges/<aligned_id>``. ``run_kwargs`` go to the harness (device, seed, ...).
    """
    base_id = default_judge_id(base_judge, "generative")
    # notebook 02 judged the short set into <id>-short: reuse it rather than judging the base again
    rows = {STAGES[0]: metrics_for(rd, base_judge, records, judge_id=base_id, reuse=[base_id + "-short", base_id],
                                   judge_missing=judge_missing, **run_kwargs),
            STAGES[1]: metrics_for(rd, sft_model, records, judge_id=sft_id, reuse=[sft_id],
                                   judge_missing=judge_missing, **run_kwargs),
            STAGES[2]: judge_into_run(rd, str(aligned.out_dir), kind="generative", records=list(records),
                                      judge_id=aligned_id, loaded=aligned.loaded, verbose=False, **run_kwargs)}
    return {k: v for k, v in rows.items() if v is not None}


def delta_note(rows: dict[str, dict]) -> str:
    """SFT -> aligned: consistent accuracy, whether the 95% intervals overlap, and the bias rate."""
    if STAGES[1] not in rows or STAGES[2] not in rows:
        return "SFT row missing: run notebook 04 in this run directory to compare."
    a, b = rows[STAGES[1]]["overall"], rows[STAGES[2]]["overall"]
    lo_a, hi_a = a["acc_consistent_ci95"] or (0, 0)
    lo_b, hi_b = b["acc_consistent_ci95"] or (0, 0)
    sep = "the intervals do not overlap" if lo_b > hi_a or hi_b < lo_a else "the intervals overlap (not significant)"
    bias = ("n/a" if a["bias_rate"] is None or b["bias_rate"] is None
            else f"{100 * a['bias_rate']:.0f}% -> {100 * b['bias_rate']:.0f}%")
    return (f"consistent accuracy {100 * (a['acc_consistent'] or 0):.1f}% -> {100 * (b['acc_consistent'] or 0):.1f}% "
            f"({sep}); position bias {bias}")


def generative_headline(rows: dict[str, dict], summary: dict, report: stage2_data.VoteReport) -> dict[str, Any]:
    """Per stage (``base``, ``sft``, ``aligned``): consistent and official accuracy and bias (percent);
    then the Stage II loss, training seconds and the voting's kept/tasks."""
    head: dict[str, Any] = {}
    for label, met in rows.items():
        o, k = met["overall"], label.split()[0].lower()
        head[f"{k} consistent %"] = round(100 * (o["acc_consistent"] or 0), 1)
        head[f"{k} official acc %"] = round(100 * (o["acc_official"] or 0), 1)
        if o["bias_rate"] is not None:
            head[f"{k} bias %"] = round(100 * o["bias_rate"], 1)
    head.update({"stage2 loss first": summary["first_loss"], "stage2 loss last": summary["last_loss"],
                 "stage2 train s": summary["seconds"], "voting kept/tasks": f"{report.items}/{report.tasks}"})
    return head


def finish_generative(rd: str | os.PathLike, out: str | os.PathLike, rows: dict[str, dict], summary: dict,
                      voting: Voting, pref_counts: dict, note: str, t0: float) -> dict[str, Any]:
    """Record notebook 05's headline and write ``out/summary.json`` (headline, note, vote report,
    preference counts, training summary without its log, wall seconds since ``t0``); returns the headline."""
    head = generative_headline(rows, summary, voting.report)
    record_headline(rd, GENERATIVE_NOTEBOOK, head)
    write_json(Path(out) / "summary.json", {
        "headline": head, "note": note, "vote_report": voting.report.as_dict(), "preferences": dict(pref_counts),
        "train": {k: v for k, v in summary.items() if k != "log"}, "wall_s": round(time.time() - t0, 1)})
    return head


# --- notebook 06: long-context mechanics ----------------------------------------------------------

def mechanics_table(model: str, prompt_tokens: Sequence[int], *, device: str = "auto",
                    seed: int = 0) -> tuple[Any, list[dict]]:
    """One training step of a synthetic BestOfN-4 item per prompt length, separate and shared-prefix.

    Returns the loaded scalar ``model`` and one row per (length, route): the fields of
    :func:`~longrm_utils.train.mechanics.measure_step` plus ``max |score diff|``, the largest
    difference between the two routes' scores of the item.
    """
    import torch

    mech = models.load(model, kind=models.SCALAR, device=device, seed=seed, trainable=True)
    rows = []
    for n_tok in prompt_tokens:
        it = synthetic_long_item(mech.tokenizer, n_tok, n_responses=4, seed=seed)
        enc, _ = encode_items(mech.tokenizer, [it], V=3, max_length=n_tok + 512, spec=mech.spec)
        e, pad = enc[0], mech.tokenizer.pad_token_id
        with torch.no_grad():
            a = scalar_scores(mech.model, e.prompt_ids, [e.chosen_ids] + e.reject_ids, pad)
            b = scalar_scores(mech.model, e.prompt_ids, [e.chosen_ids] + e.reject_ids, pad, shared_prefix=False)
        for shared in (False, True):
            r = measure_step(mech, e, kind="scalar", shared_prefix=shared)
            rows.append({**r, "max |score diff|": float((a - b).abs().max())})
    return mech, rows


def shared_prefix_speedup(rows: Sequence[dict]) -> tuple[dict[int, float], Any]:
    """From :func:`mechanics_table`'s rows: the step-time ratio separate/shared per prompt length, and
    the ratio of tokens encoded (separate/shared, one value per length, rounded to 2 decimals)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    sep, shared = df[~df.shared_prefix], df[df.shared_prefix]
    seconds = lambda part, n: part[part.prompt_tokens == n].seconds.iloc[0]  # noqa: E731
    speed = {int(n): float(seconds(sep, n) / seconds(shared, n)) for n in df.prompt_tokens.unique()}
    return speed, (sep.tokens_encoded.values / shared.tokens_encoded.values).round(2)


def rewardtrainer_baseline(model: str, tokenizer, prompt_tokens: Sequence[int], out: str | os.PathLike, *,
                           steps: int, max_length: int, device: str = "auto", seed: int = 0) -> dict | None:
    """trl's ``RewardTrainer`` for ``steps`` steps on two synthetic pairs per length in ``prompt_tokens``
    (a fresh ``model`` + LoRA); pairs over ``max_length`` are dropped by trl and counted here.

    Prints the dropped pairs and the losses; returns the summary of
    :func:`~longrm_utils.train.mechanics.train_reward_baseline`, or None when ``steps`` is 0.
    """
    if not steps:
        return None
    items = [synthetic_long_item(tokenizer, n, n_responses=2, seed=seed + k)
             for k, n in enumerate(list(prompt_tokens) * 2)]
    bl = models.add_lora(models.load(model, kind=models.SCALAR, device=device, seed=seed, trainable=True))
    cfg = AlignConfig(max_steps=steps, items_per_step=1, learning_rate=1e-3, max_length=max_length)
    res = train_reward_baseline(bl, items, cfg, out)
    print(f"RewardTrainer: {res['data']['skipped_too_long']} of {res['data']['items']} pairs exceed "
          f"max_length={max_length} and were dropped (counted); trl kept the other {res['data']['kept']}; "
          f"losses {[round(x, 3) for x in res['losses']]}")
    return res


# --- notebook 06: evaluation and headline ---------------------------------------------------------

def scalar_rows(rd: str | os.PathLike, records: Sequence[dict], aligned: AlignResult, aligned_id: str, *,
                scalar_base: str, **run_kwargs: Any) -> tuple[dict[str, dict], dict]:
    """The aligned RM judged on ``records`` into ``judges/<aligned_id>``, and its notebook-02 base row.

    The base row is re-scored from notebook 02's ``judges/<base>-scalar-short`` when it covers the
    records, and left out otherwise. Returns (rows by label, the aligned RM's metrics).
    """
    metrics = judge_into_run(rd, str(aligned.out_dir), kind="scalar", records=list(records), judge_id=aligned_id,
                             loaded=aligned.loaded, verbose=False, **run_kwargs)
    base_id = f"{models.get_spec(scalar_base).name}-scalar"
    prior = metrics_for(rd, scalar_base, records, kind="scalar", judge_id=base_id, reuse=[base_id + "-short", base_id],
                        judge_missing=False)
    rows = {} if prior is None else {f"{scalar_base} (untrained head, notebook 02)": prior}
    rows[f"{aligned_id} (this notebook)"] = metrics
    return rows, metrics


def grounding_probe(rd: str | os.PathLike, out: str | os.PathLike, *, train_items: int, held_pairs: int = 64,
                    held_bon: int = 12, seed: int = 0, tokenizer: str = "smollm2-135m-instruct") -> tuple[list[PrefItem], list[dict], Counter]:
    """Notebook 06's grounding probe: ``held_pairs`` pairs and ``held_bon`` Best-of-2/3 records of the
    LongQA ``founders`` subtask, written to ``out/grounding.jsonl`` and registered as ``bench/grounding``,
    and ``train_items`` splice training items built apart from them
    (:func:`~longrm_utils.bench.build.build_grounding`, :func:`~longrm_utils.train.stage2_data.splice_preferences`).
    Context lengths are counted with ``tokenizer``. Returns (training items, held-out records, training counts)."""
    count = counter_for(tokenizer)
    rep = build_grounding(count, seed=seed, pairs=held_pairs, bon=held_bon)
    if rep.skips:
        print(f"grounding probe: {len(rep.skips)} held-out items skipped, e.g. {rep.skips[0]}")
    register_artifact(rd, "bench/grounding", schema.write_jsonl(rep.records, Path(out) / "grounding.jsonl"))
    items, counts = stage2_data.splice_preferences(train_items, count, seed=seed,
                                                   exclude_golden=[r["meta"]["golden"] for r in rep.records])
    return items, rep.records, counts


def scalar_probe_rows(rd: str | os.PathLike, records: Sequence[dict], aligned: AlignResult, aligned_id: str, *,
                      scalar_base: str, **run_kwargs: Any) -> dict[str, dict]:
    """The untrained base and the aligned RM judged on the grounding probe's records, into
    ``judges/<base>-scalar-grounding`` and ``judges/<aligned_id>-grounding``; rows by label."""
    base_id = f"{models.get_spec(scalar_base).name}-scalar{PROBE_SUFFIX}"
    base = judge_into_run(rd, scalar_base, kind="scalar", records=list(records), judge_id=base_id, verbose=False,
                          **run_kwargs)
    after = judge_into_run(rd, str(aligned.out_dir), kind="scalar", records=list(records),
                           judge_id=aligned_id + PROBE_SUFFIX, loaded=aligned.loaded, verbose=False, **run_kwargs)
    return {f"{scalar_base} (untrained head)": base, f"{aligned_id} (this notebook)": after}


def length_ladder(rd: str | os.PathLike, out: str | os.PathLike, records: Sequence[dict], *, bucket: str, pairs: int,
                  seed: int = 0) -> list[dict]:
    """Lesson ``length_decline``'s items: the first ``pairs`` held-out probe pairs rebuilt at ``bucket``
    (:func:`~longrm_utils.bench.build.lengthen`: same ids, questions, evidence and answers, with more
    founder facts about other institutions around them), written to ``out/grounding-<bucket>.jsonl``
    and registered as ``bench/grounding-<bucket>``."""
    held = [r for r in records if r.get("tasktype") == "PairWise"][:pairs]
    ladder = [lengthen(r, bucket, seed=seed) for r in held]
    register_artifact(rd, f"bench/grounding-{bucket}",
                      schema.write_jsonl(ladder, Path(out) / f"grounding-{bucket}.jsonl"))
    return ladder


def long_splices(records: Sequence[dict], *, n: int, bucket: str, first: int, seed: int = 0,
                 tokenizer: str = "smollm2-135m-instruct") -> tuple[list[PrefItem], Counter]:
    """``n`` splice training items at ``bucket`` (the long half of short-to-long training), from
    questions ``first`` onwards (so none repeats a short training item) and none sharing a golden
    answer with the held-out ``records``."""
    return stage2_data.splice_preferences(n, counter_for(tokenizer), seed=seed, bucket=bucket, first=first,
                                          exclude_golden=[r["meta"]["golden"] for r in records])


def judge_probe(rd: str | os.PathLike, records: Sequence[dict], result: AlignResult, judge_id: str,
                **run_kwargs: Any) -> dict:
    """An aligned RM judged on probe records (short or lengthened) into ``judges/<judge_id>``; its harness row."""
    return judge_into_run(rd, str(result.out_dir), kind="scalar", records=list(records), judge_id=judge_id,
                          loaded=result.loaded, verbose=False, **run_kwargs)


def finish_scalar(rd: str | os.PathLike, out: str | os.PathLike, aligned: AlignResult, metrics: dict,
                  mech_rows: Sequence[dict], speed: dict, baseline: dict | None) -> dict[str, Any]:
    """Record notebook 06's headline (held-out accuracy before/after, official AVG., loss, seconds,
    skipped items, shared-prefix speed-ups, pairs RewardTrainer dropped) and write ``out/summary.json``."""
    s, before, after = aligned.summary, aligned.before, aligned.after
    head = {"scalar_heldout_acc_before": round(before["accuracy"], 4),
            "scalar_heldout_acc_after": round(after["accuracy"], 4),
            "scalar_avg_official": (metrics.get("results") or {}).get("AVG."),
            "scalar_loss_first": s["first_loss"], "scalar_loss_last": s["last_loss"],
            "scalar_train_seconds": s["seconds"], "skipped_too_long": s["data"]["skipped_too_long"]}
    for n, v in speed.items():
        head[f"shared_prefix_step_speedup_{int(n)}"] = round(float(v), 2)
    if baseline:
        head["rewardtrainer_dropped_pairs"] = baseline["data"]["skipped_too_long"]
    record_headline(rd, SCALAR_NOTEBOOK, head)
    write_json(Path(out) / "summary.json", {"headline": head, "mechanics": list(mech_rows),
                                            "train": {k: v for k, v in s.items() if k != "log"},
                                            "baseline": baseline, "before": before, "after": after})
    return head
