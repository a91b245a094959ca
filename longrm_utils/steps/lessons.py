"""Lessons as steps: measure a claim from two prediction files, record it in ``RUN/lessons.json``
and say in the notebook, from the numbers, whether it holds on this run and why not.

The measuring is :mod:`longrm_utils.evaluate.lessons`; this module writes and narrates. A notebook
never types a measured number: the sentence it shows is rendered here from the entry.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..constants import REPO_ROOT
from ..contracts import LESSONS as LESSONS_FILE, read_predictions
from ..evaluate.lessons import RULES, lesson, measure
from ..io import read_json, write_json

METRIC_WORDS = {"parse_failure_rate": "format-failure rate", "two_order_accuracy": "two-order accuracy",
                "consistent_accuracy": "consistent accuracy", "bias_rate": "position-bias rate"}


LIMITS = {
    "scalar_rm_learns": "Why: on the grounding probe every word of a wrong answer occurs in the context, so the RM "
                        "must check the pairing of names against the sentence that states it. With the `cpu` "
                        "profile's splice items (train_data 'grounding', 40 steps at learning rate 2e-3) "
                        "SmolLM2-135M-RM learned it; trained on the benchmark's mixed records instead, it did not "
                        "in the same 40 steps (benchmarks/RESULTS.md). Other settings may not: at learning "
                        "rate 3e-3 an earlier version of the probe stayed at chance.",
    "length_decline": "Why it may not: length alone did not hurt this RM (prose filler, benchmarks/RESULTS.md); "
                      "the decline comes from more sentences of the checked form, so a shorter bucket or fewer "
                      "pairs may leave the interval across 0.",
    "long_training_restores": "Why it may not: the cpu-real setting is 10 steps of 4 splice items at 4k tokens, "
                              "and 32 pairs give an interval of the change about 0.4 wide; raise long_max_steps, "
                              "long_train_items and ladder_pairs (each costs CPU minutes).",
    "bias_reduced": "Why: Stage II here is a few steps on a 135M judge over seven tasks at short contexts. A "
                    "longer try on the grounding probe's pairs, where the scalar RM learns, made the judge "
                    "worse: rejects that differ from the chosen judgement only in the verdict letter pushed "
                    "both letters down, and the judge lost its verdict format; with a stronger NLL term it kept the "
                    "format but gave one letter everywhere (benchmarks/RESULTS.md, "
                    "benchmarks/generative_probe.py). No setting measured on this machine makes it hold.",
}
"""What usually keeps a lesson from holding on the CPU default; shown after the measured reasons."""


def first_judge(rd: str | os.PathLike, judge_ids: list[str]) -> str | None:
    """``judges/<id>/predictions.jsonl`` (relative to ``rd``) of the first id in ``judge_ids`` that
    has predictions, or None when none has (the lesson is then reported as not measured)."""
    for jid in judge_ids:
        rel = Path("judges") / jid / "predictions.jsonl"
        if (Path(rd) / rel).is_file():
            return str(rel)
    return None


def record(rd: str | os.PathLike, lesson_id: str, *, notebook: str, claim: str, metric: str,
           before: str | os.PathLike, after: str | os.PathLike, before_filter: dict | None = None,
           after_filter: dict | None = None) -> dict[str, Any]:
    """Measure a lesson (prediction paths relative to ``rd``), store it in ``rd/lessons.json``
    (replacing an entry with the same id) and return the entry. Without one of the two prediction
    files nothing is recorded, and the returned entry says what is missing."""
    if before is None or after is None:
        return {"id": lesson_id, "claim": claim, "metric": metric, "missing": "before" if before is None else "after"}
    entry = lesson(lesson_id, notebook=notebook, claim=claim, metric=metric, root=rd, before=before, after=after,
                   before_filter=before_filter, after_filter=after_filter)
    path = Path(rd) / LESSONS_FILE
    entries = [e for e in (read_json(path)["lessons"] if path.exists() else []) if e["id"] != lesson_id]
    write_json(path, {"lessons": entries + [entry]})
    return entry


COMMITTED_RESULTS = REPO_ROOT / "docs" / "results"
"""The committed runs' results: the ``cpu`` run at the top, other profiles in sub-folders (a wheel
carries their ``lessons.json`` and cited predictions only; setup.py)."""


def committed(profile: str, lesson_id: str) -> str:
    """A lesson as the committed run of ``profile`` measured it (``docs/results/<profile>/lessons.json``),
    rendered by :func:`markdown` and labelled as not this run's; or a sentence saying it is not there."""
    path = COMMITTED_RESULTS / profile / LESSONS_FILE
    found = [e for e in (read_json(path)["lessons"] if path.is_file() else []) if e["id"] == lesson_id]
    if not found:
        return (f"**Lesson `{lesson_id}`:** not measured on this run, and no committed `{profile}` run has it "
                f"(looked in `{path}`).")
    return (f"*Not measured on this run; this is the committed `{profile}` run's entry "
            f"(`docs/results/{profile}/{LESSONS_FILE}`).* " + markdown(found[0], run=f"the committed `{profile}` run"))


def record_or_committed(rd: str | os.PathLike, lesson_id: str, *, measured: bool, profile: str = "cpu-real",
                        **kwargs: Any) -> dict[str, Any] | str:
    """:func:`record` when this run measured the lesson; otherwise the committed ``profile`` run's
    entry, rendered (:func:`committed`). :func:`show` displays either."""
    return record(rd, lesson_id, **kwargs) if measured else committed(profile, lesson_id)


def why_not(entry: dict[str, Any]) -> list[str]:
    """The parts of the lesson's rule that this run's numbers miss, in words."""
    rule = RULES[entry["id"]]
    b, a, ci = entry["before_value"], entry["after_value"], entry["diff_ci95"]
    out = []
    n = min(entry["n_before"], entry["n_after"])
    if n < rule.min_items:
        out.append(f"only {n} items were measured; the rule asks for at least {rule.min_items}")
    if b is None or a is None or ci is None:
        return out + ["a side has no item the metric applies to"]
    up = rule.direction == "increase"
    if (ci[0] <= 0) if up else (ci[1] >= 0):
        out.append(f"the 95% interval of the change, [{ci[0]:+.2f}, {ci[1]:+.2f}], includes 0")
    change = a - b if up else b - a
    if change < rule.min_change:
        out.append(f"the change, {a - b:+.2f}, is smaller than the {rule.min_change:.2f} the rule asks for")
    for name, ok, word in (("before_min", b >= (rule.before_min or 0), "before"), ("after_min", a >= (rule.after_min or 0), "after"),
                           ("after_max", a <= (rule.after_max if rule.after_max is not None else 1), "after")):
        if getattr(rule, name) is not None and not ok:
            bound = getattr(rule, name)
            out.append(f"{word} is {b if word == 'before' else a:.2f}, not {'at least' if 'min' in name else 'at most'} "
                       f"{bound:.2f}")
    if rule.after_at_most_before_times is not None and a > rule.after_at_most_before_times * b:
        out.append(f"after ({a:.2f}) is not at most {rule.after_at_most_before_times:g} x before ({b:.2f})")
    return out


def markdown(entry: dict[str, Any], run: str = "this run") -> str:
    """The lesson in one paragraph: the claim, the measured numbers, and whether it holds (and why not)
    on ``run`` (the run that measured it: this one, or a committed run named by :func:`committed`)."""
    words = METRIC_WORDS[entry["metric"]]
    if "missing" in entry:
        return (f"**Lesson `{entry['id']}`: {entry['claim']}** Not measured on this run: the judging that gives "
                f"its '{entry['missing']}' side is not in this run directory (run the notebooks before this one).")
    b, a, ci = entry["before_value"], entry["after_value"], entry["diff_ci95"]
    nums = ("no measurement" if b is None or a is None else
            f"{words} {b:.2f} → {a:.2f} on {entry['n_items']} items"
            + ("" if ci is None else f" (change {a - b:+.2f}, 95% interval [{ci[0]:+.2f}, {ci[1]:+.2f}])"))
    text = f"**Lesson `{entry['id']}`: {entry['claim']}** Measured on {run}: {nums}. "
    if entry["holds"]:
        return text + f"**It holds on {run}.**"
    limit = f" {LIMITS[entry['id']]}" if entry["id"] in LIMITS else ""
    return text + f"**It does not hold on {run}:** " + "; ".join(why_not(entry)) + "." + limit


def comparison(rd: str | os.PathLike, what: str, *, metric: str, before: str | None, after: str | None,
               item_filter: dict | None = None) -> str:
    """A measured before/after that is not a lesson (no rule), in one sentence: the change on ``what``
    with its paired 95% interval, and whether the interval excludes 0. Paths are relative to ``rd``."""
    if before is None or after is None:
        return f"On {what}: not measured on this run (a side's judge is not in this run directory)."
    m = measure(read_predictions(Path(rd) / before), read_predictions(Path(rd) / after), metric,
                before_filter=item_filter, after_filter=item_filter)
    b, a, ci = m["before_value"], m["after_value"], m["diff_ci95"]
    if b is None or a is None or ci is None:
        return f"On {what}: no item on one side."
    verdict = ("the interval excludes 0: it " + ("rose" if ci[0] > 0 else "fell") if ci[0] > 0 or ci[1] < 0
               else "the interval includes 0: no measurable change")
    return (f"On {what}: {METRIC_WORDS[metric]} {b:.2f} → {a:.2f} on {m['n_items']} items (change {a - b:+.2f}, "
            f"95% interval [{ci[0]:+.2f}, {ci[1]:+.2f}]); {verdict}.")


def show(entry: dict[str, Any] | str) -> None:
    """Display :func:`markdown` of a lesson entry (or a rendered sentence) in a notebook (plain text elsewhere)."""
    text = entry if isinstance(entry, str) else markdown(entry)
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    display(Markdown(text))
