"""How judges fail on long contexts: a failure taxonomy over saved ``predictions.jsonl`` files.

Everything here except :func:`run_ablation` is a pure function of prediction dicts (design
section 7) and, where a measure needs the responses, of the benchmark records they came from
(joined on ``(task, id)``). No model is loaded, so a GPU run can be analysed on a laptop.

The measures (notebook 03 explains each one):

* **format non-compliance** by kind (:data:`FORMAT_KINDS`), classified from ``raw`` itself;
* **position bias**: the first-slot rate and the bias rate of design section 7 (both computed by
  :mod:`longrm_utils.judge.score`, so they agree with ``metrics.json``) and a position-preference
  matrix (where the best answer was shown x which slot the judge picked);
* **contradictions**: a rule-based detector (:func:`contradiction`) for verdicts that name one
  answer while the judge's own explanation argues for another, measured against the hand-labelled
  sample in ``data/labelled/`` (:func:`contradiction_eval`);
* **decline with length**: two-order accuracy per length bucket with bootstrap intervals, and the
  least-squares slope in accuracy points per doubling of the context;
* **length bias**: how often the longest response is picked when it is not the best one;
* **context neglect**: the same items judged again with the context removed or replaced by
  same-length distractors (:func:`run_ablation`); a judge that reads the context changes its mind.

Each prediction line also gets one exclusive *outcome* (:func:`outcome`) for the stacked plots.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

from .constants import BUCKET_TOKENS, BUCKETS, MAX_RANK_ARROWS, SHORT_BUCKET, SLOT_LETTERS, TASKS
from .judge import score as jscore

REQUIRED_FIELDS = ("task", "id", "tasktype", "subtype", "ctx_length_for_length", "pass", "order", "raw",
                   "ranking", "parse_error", "score")
"""Prediction fields the analysis reads (design section 7); ``truncated`` and ``error`` are optional."""

FORMAT_KINDS = ("no_verdict", "wrong_pattern", "several_verdicts", "missing_letter", "repeated_letter",
                "too_many_arrows", "no_score", "several_scores")
"""Kinds of format non-compliance. ``several_*`` may still be accepted by the official parser."""

OUTCOMES = ("correct", "partial", "wrong", "position_bound", "contradiction", "format", "run_error")
"""Exclusive outcome of one prediction line, in the order they are checked (last first)."""

BUCKET_ORDER = (SHORT_BUCKET,) + BUCKETS
LABELLED_DIR = Path(__file__).resolve().parent.parent / "data" / "labelled"


# --- loading --------------------------------------------------------------------------------------

def load_predictions(path: str | Path) -> list[dict]:
    """Read a ``predictions.jsonl``; a missing field is an error naming file, line and field."""
    preds = jscore.read_predictions(path)
    if not preds:
        raise ValueError(f"{path}: no prediction lines")
    for i, p in enumerate(preds, 1):
        if not isinstance(p, dict):
            raise ValueError(f"{path}: line {i} is not a JSON object")
        for f in REQUIRED_FIELDS:
            if f not in p:
                raise ValueError(f"{path}: line {i} (task={p.get('task')!r}, id={p.get('id')!r}): missing field {f!r}")
        if p["ranking"] is not None and len(p["ranking"]) != len(p["order"]):
            raise ValueError(f"{path}: line {i} (task={p['task']!r}, id={p['id']!r}): field 'ranking' has "
                             f"{len(p['ranking'])} slots but 'order' has {len(p['order'])}")
    jscore.group_items(preds)  # duplicate (task, id, pass) is an error
    return preds


def judge_name(path: str | Path) -> str:
    """A judge's id from its file: ``judges/<id>/predictions.jsonl`` -> ``<id>``."""
    p = Path(path)
    return p.parent.name if p.name == "predictions.jsonl" else p.stem


def bench_index(records: Iterable[dict]) -> dict[tuple[str, str], dict]:
    return {(str(r["task"]), str(r["id"])): r for r in records}


def slot_texts(pred: dict, bench: dict[tuple[str, str], dict] | None) -> list[str] | None:
    """The responses in display order (``answers[order[j]]``), or None without the record."""
    if not bench:
        return None
    rec = bench.get(jscore.item_key(pred))
    if rec is None:
        return None
    from .bench.schema import answers

    ans = answers(rec)
    return [ans[o] for o in pred["order"]]


def style(pred: dict) -> str:
    """``generative`` (raw is text), ``pointwise`` (raw is one text per slot), ``scores`` (numbers or None)."""
    raw = pred.get("raw")
    if isinstance(raw, str):
        return "generative"
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return "pointwise"
    return "scores"


def winner_slot(pred: dict) -> int | None:
    r = pred.get("ranking")
    return None if r is None else r.index(0)


def top_answer(pred: dict) -> int | None:
    """The true rank of the answer the judge put first (0 = it picked the best answer)."""
    j = winner_slot(pred)
    return None if j is None else pred["order"][j]


# --- 1. format non-compliance ----------------------------------------------------------------------

_OFFICIAL_PAIR = re.compile(r"\[\[([AB])\]\]")
_ANY_DOUBLE = re.compile(r"\[\[([^\[\]]{0,60})\]\]")
_LOOSE_VERDICT = re.compile(
    r"(?<!\[)\[\s*[A-D]\s*\](?!\])"                                       # [A]
    r"|^\s*\**\(?[A-D]\)?\**\s*[:.)]"                                     # A: / (A) / **A**. at the start
    r"|\b(?:verdict|answer|winner|choice|response|assistant|output)\s*(?:is|:)\s*\**\(?[A-D]\)?\b"
    r"|\b(?:response|assistant|answer|output|option)\s+\(?[A-D]\)?\s+is\s+(?:the\s+)?(?:better|best|correct)",
    re.MULTILINE)
_LOOSE_CHAIN = re.compile(r"\b[A-D]\s*>\s*[A-D]\b")
_SCORE_TAG = re.compile(r"\[\s*Score\s*:\s*(-?\d+(?:\.\d+)?)\s*\]", re.IGNORECASE)
_LOOSE_SCORE = re.compile(r"score\s*(?:of|is|:)?\s*\d+|\b\d+\s*/\s*10\b", re.IGNORECASE)
_STRIP = re.compile(r"assistant|Assistant|:|\s")


def _ranking_parts(content: str) -> list[str]:
    return _STRIP.sub("", content).split(">")


def format_kind_pairwise(text: str) -> str | None:
    letters = set(_OFFICIAL_PAIR.findall(text))
    if len(letters) > 1:
        return "several_verdicts"
    if letters:
        return None
    if _ANY_DOUBLE.search(text) or _LOOSE_VERDICT.search(text):
        return "wrong_pattern"
    return "no_verdict"


def format_kind_ranking(text: str, n: int) -> str | None:
    if text.count(">") >= MAX_RANK_ARROWS:
        return "too_many_arrows"
    found = [m.group(1) for m in _ANY_DOUBLE.finditer(text) if ">" in m.group(1)]
    if not found:
        return "wrong_pattern" if (_ANY_DOUBLE.search(text) or _LOOSE_CHAIN.search(text)
                                   or _LOOSE_VERDICT.search(text)) else "no_verdict"
    letters = SLOT_LETTERS[:n]
    valid = []
    first_error = None
    for content in found:
        parts = _ranking_parts(content)
        if any(len(p) != 1 or not p.isalpha() for p in parts):
            err = "wrong_pattern"
        elif len(set(parts)) != len(parts):
            err = "repeated_letter"
        elif set(parts) != set(letters):
            err = "missing_letter"
        else:
            err = None
            valid.append(tuple(parts))
        if first_error is None and not valid:
            first_error = err
    if len(set(valid)) > 1:
        return "several_verdicts"
    return None if valid and first_error is None else first_error


def format_kind_pointwise(texts: Sequence[str]) -> str | None:
    for t in texts:
        vals = {float(v) for v in _SCORE_TAG.findall(t)}
        if not vals:
            return "wrong_pattern" if _LOOSE_SCORE.search(t) else "no_score"
        if len(vals) > 1:
            return "several_scores"
        if not 0 <= next(iter(vals)) <= 10:
            return "wrong_pattern"
    return None


def format_kind(pred: dict) -> str | None:
    """The format failure of one line from its raw output, or None (compliant, or a scalar/heuristic judge).

    Classified from ``raw`` alone, not from the parser's error strings: ``several_verdicts`` is
    reported even where the official parser accepted the first verdict.
    """
    if pred.get("error"):
        return None
    st = style(pred)
    if st == "scores":
        return None
    if st == "pointwise":
        return format_kind_pointwise(pred["raw"])
    if jscore.is_pairwise(pred):
        return format_kind_pairwise(pred["raw"])
    return format_kind_ranking(pred["raw"], len(pred["order"]))


def format_table(preds: Sequence[dict]) -> dict[str, Any]:
    """Counts and rates of each format kind among judged lines (run errors excluded).

    ``official_failures`` is what the official parser refused; ``disagree`` counts lines where our
    classifier and the parser disagree on pass/fail (``several_verdicts`` accepted by the parser
    is not a disagreement), so the two can be checked against each other.
    """
    lines = [p for p in preds if not p.get("error") and style(p) != "scores"]
    kinds = Counter(format_kind(p) for p in lines)
    accepted_several = sum(1 for p in lines if format_kind(p) in ("several_verdicts", "several_scores")
                           and p.get("ranking") is not None)
    disagree = sum(1 for p in lines if (p.get("ranking") is None) != (format_kind(p) is not None)
                   and not (format_kind(p) in ("several_verdicts", "several_scores") and p.get("ranking") is not None))
    n = len(lines)
    return {
        "n_lines": n,
        "compliant": kinds.get(None, 0),
        "counts": {k: kinds.get(k, 0) for k in FORMAT_KINDS},
        "rates": {k: (kinds.get(k, 0) / n if n else None) for k in FORMAT_KINDS},
        "noncompliance_rate": (1 - kinds.get(None, 0) / n) if n else None,
        "official_failures": sum(1 for p in lines if p.get("ranking") is None),
        "several_but_accepted": accepted_several,
        "disagree_with_parser": disagree,
    }


# --- 2. position bias ------------------------------------------------------------------------------

def position_bias(preds: Sequence[dict], n_boot: int = jscore.N_BOOT, seed: int = jscore.BOOT_SEED) -> dict[str, Any]:
    """First-slot rate and bias rate (design section 7, computed by judge.score) with a 95% interval.

    ``first_slot_rate``: share of parsed pairwise lines that pick slot A. ``bias_rate``: among
    pairwise items parsed in both passes, the share where the same slot letter won both times.
    """
    items = list(jscore.group_items([p for p in preds if jscore.is_pairwise(p)]).values())
    g = jscore.group_metrics(items, n_boot=0)
    per_item = [float(ps[0]["ranking"][0] == ps[1]["ranking"][0]) for ps in items
                if 0 in ps and 1 in ps and ps[0].get("ranking") is not None and ps[1].get("ranking") is not None]
    firsts = [float(p["ranking"][0] == 0) for ps in items for p in ps.values() if p.get("ranking") is not None]
    return {"first_slot_rate": g["first_slot_rate"], "first_slot_ci95": jscore.bootstrap_ci(firsts, n_boot, seed) if n_boot else None,
            "n_parsed_lines": len(firsts), "bias_rate": g["bias_rate"],
            "bias_ci95": jscore.bootstrap_ci(per_item, n_boot, seed) if n_boot else None,
            "n_pairs_parsed_both": g["n_bias_pairs"]}


def position_matrix(preds: Sequence[dict], n: int = 2) -> list[list[int]]:
    """Counts ``m[r][c]``: the best answer was shown in slot ``r`` and the judge picked slot ``c``.

    An ideal judge fills the diagonal; a judge that always picks A fills column 0 whatever the row.
    """
    m = [[0] * n for _ in range(n)]
    for p in preds:
        if len(p["order"]) != n or p.get("ranking") is None:
            continue
        m[p["order"].index(0)][winner_slot(p)] += 1
    return m


# --- 3. contradictions -----------------------------------------------------------------------------

_STOP = set("""a an the of to in on at for by from with and or but so as is are was were be been it its this that
these those there here which who what when where why how not no yes do does did has have had can could would should
will may might must i you he she we they them their his her our your my me than then also very more most such only
about into over under because while if answer answers response responses passage question correct incorrect
assistant text states stated says according reply given provided""".split())
# yes/no are dropped from the stop list below on purpose: they are the content of yes/no answers.
_STOP -= {"yes", "no"}
_WORD = re.compile(r"\w+")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_VERDICT_STATEMENT = re.compile(
    r"\b(?:answer|verdict|winner|choice)\s*(?:to\s+[^.\n]{0,80}?)?\s+is\s*:?\s*\[{1,2}\s*([A-D])\s*\]{1,2}"
    r"|\b(?:answer|verdict|winner|choice)\s*(?:to\s+[^.\n]{0,80}?)?\s+is\s*:?\s*([A-D])\s*[:.,]"
    r"|\b(?:answer|response|assistant|option|output)\s+\(?([A-D])\)?\s+is\s+(?:the\s+)?(?:better|best|correct|right)",
    re.IGNORECASE)
_LEADING = re.compile(r"^\s*(?:\[\[?\s*([A-D])\s*\]\]?|\**([A-D])\**\s*:)")
_LETTER_CUE = re.compile(
    r"\b(?:(?:answer|response|assistant|option|output)\s+)?\(?\b([A-D])\)?\s+(?:is|was)\s+(not\s+)?(?:the\s+)?(?:more\s+)?"
    r"(correct|better|best|right|accurate|supported|grounded|faithful|wrong|incorrect|worse|inaccurate|unsupported)\b")
_MARKER_CUE = re.compile(r"^\s*(?:the\s+)?(?:answer|response)\s+is\s+(not\s+)?(correct|right|wrong|incorrect)\b",
                         re.IGNORECASE)
_NEGATIVE = {"wrong", "incorrect", "worse", "inaccurate", "unsupported"}


def _tokens(text: str) -> list[str]:
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())
    out = []
    for w in _WORD.findall(text):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.isdigit():
            w = w[:-1]
        out.append(w[:5])
    return out


def stated_verdict(text: str, n: int = 2) -> str | None:
    """The slot letter an output names as its choice, read leniently (as a person would).

    In order: the official ``[[X]]`` (A before B, as the official parser) or the first
    ``[[X>Y…]]``; an explicit statement (``The answer is [B]``, ``answer A is the correct
    answer``); a leading marker (``[A] …``, ``A: …``). None when no slot letter is named.
    """
    letters = SLOT_LETTERS[:n]
    if n == 2:
        for x in "AB":
            if f"[[{x}]]" in text:
                return x
    else:
        for m in _ANY_DOUBLE.finditer(text):
            parts = _ranking_parts(m.group(1))
            if ">" in m.group(1) and parts[0] in letters:
                return parts[0]
    for m in _VERDICT_STATEMENT.finditer(text):
        x = next(g for g in m.groups() if g)
        if x in letters:
            return x
    m = _LEADING.match(text)
    if m:
        x = m.group(1) or m.group(2)
        if x in letters:
            return x
    return None


def _is_echo(sentence_tokens: list[str], answer_tokens: list[str]) -> bool:
    a = set(answer_tokens)
    if not a:
        return False
    return len(a & set(sentence_tokens)) / len(a) >= 0.6 and len(sentence_tokens) <= 2 * len(a) + 3


def explanation_evidence(text: str, slots: Sequence[str] | None) -> dict[str, float]:
    """How strongly the explanation argues for each slot letter (letter cues plus content overlap).

    Verdict statements and *echoes* (a slot's own text repeated right after its letter, as in
    ``[A] It opened in 1958.``) are removed first: they are the verdict, not its reasons. Then:

    * a letter cue (``A is correct``, ``response B is better``, ``answer B is not correct``,
      ``A: The answer is wrong``) adds +1 to that letter, or -1 and +1 to every other letter when
      negative; a bare verdict statement (``The answer is [A]``) is no cue;
    * content: for each slot, the words that only its response contains (lower case, 5-letter
      stems, stop words dropped); each occurrence in the explanation adds ``1/len(those words)``.
    """
    n = len(slots) if slots else 2
    letters = SLOT_LETTERS[:n]
    ev = {x: 0.0 for x in letters}
    slot_tok = [_tokens(s) for s in slots] if slots else None
    distinct = None
    if slot_tok:
        sets = [set(t) for t in slot_tok]
        distinct = [s - set().union(*(sets[:i] + sets[i + 1:])) for i, s in enumerate(sets)]
    text = re.sub(r"\[\[[^\[\]]{0,60}\]\]", " ", text)
    for raw_sent in _SENT.split(text):
        sent = raw_sent.strip()
        if not sent:
            continue
        lead = _LEADING.match(sent)
        marker = (lead.group(1) or lead.group(2)) if lead else None
        rest = sent[lead.end():] if lead else sent
        before = ""
        stmt = _VERDICT_STATEMENT.search(rest)
        if stmt:  # "X, so answer A is correct" / "The answer is A: <echo>": keep X, test the echo
            marker = next(g for g in stmt.groups() if g)
            before, rest = rest[:stmt.start()], rest[stmt.end():]
            if stmt.group(3) and marker in letters:  # "response B is better" is a reason, not only a verdict
                _cue(ev, marker, False)
        toks = _tokens(rest)
        if marker and marker in letters and slot_tok and _is_echo(toks, slot_tok[letters.index(marker)]):
            toks, rest = [], ""
        toks = _tokens(before) + toks
        if marker and marker in letters:
            mc = _MARKER_CUE.match(rest)
            if mc:
                neg = bool(mc.group(1)) != (mc.group(2).lower() in _NEGATIVE)
                _cue(ev, marker, neg)
        for m in _LETTER_CUE.finditer(rest):
            if m.group(1) in letters:
                _cue(ev, m.group(1), bool(m.group(2)) != (m.group(3).lower() in _NEGATIVE))
        if distinct:
            counts = Counter(toks)
            for i, d in enumerate(distinct):
                if d:
                    ev[letters[i]] += sum(counts[t] for t in d) / len(d)
    return ev


def _cue(ev: dict[str, float], letter: str, negative: bool) -> None:
    if negative:
        ev[letter] -= 1.0
        for k in ev:
            if k != letter:
                ev[k] += 1.0
    else:
        ev[letter] += 1.0


def favoured_slot(ev: dict[str, float], ratio: float = 2.0) -> str | None:
    """The letter the evidence favours: the top score must be positive and more than ``ratio``
    times the runner-up (the runner-up's score clipped at 0). None when nothing or several."""
    ranked = sorted(ev.items(), key=lambda kv: -kv[1])
    top, second = ranked[0][1], max(ranked[1][1], 0.0) if len(ranked) > 1 else 0.0
    if top <= 0 or top <= ratio * second:
        return None
    return ranked[0][0]


def contradiction(text: str, slots: Sequence[str] | None = None, verdict: str | None = None) -> dict[str, Any]:
    """Does the verdict name one answer while the explanation favours another?

    Returns ``{"verdict", "favours", "contradiction"}``; ``contradiction`` is None when the output
    names no verdict. ``verdict`` may be passed (the parsed official verdict) instead of read.
    """
    n = len(slots) if slots else 2
    v = verdict or stated_verdict(text, n)
    fav = favoured_slot(explanation_evidence(text, slots))
    return {"verdict": v, "favours": fav, "contradiction": None if v is None else (fav is not None and fav != v)}


def prediction_contradiction(pred: dict, bench: dict | None = None) -> dict[str, Any] | None:
    """:func:`contradiction` for one generative prediction line (None for scalar/pointwise/errors)."""
    if style(pred) != "generative" or pred.get("error"):
        return None
    j = winner_slot(pred)
    verdict = SLOT_LETTERS[j] if j is not None else None
    return contradiction(pred["raw"], slot_texts(pred, bench), verdict)


LABELLED_SPLITS = {"dev": ("raw_outputs.jsonl", "labels.csv"),
                   "heldout": ("raw_outputs_heldout.jsonl", "labels_heldout.csv")}
"""``dev``: read while the detector rule was written. ``heldout``: labelled after the rule was frozen."""


def load_labelled(folder: str | Path = LABELLED_DIR, split: str = "dev") -> list[dict]:
    """A frozen hand-labelled sample: raw outputs joined with their hand labels on ``sid``."""
    folder = Path(folder)
    raw_name, lab_name = LABELLED_SPLITS[split]
    raw_path, lab_path = folder / raw_name, folder / lab_name
    rows = {}
    for i, line in enumerate(raw_path.read_text().splitlines(), 1):
        if line.strip():
            r = json.loads(line)
            for f in ("sid", "raw", "answer_a", "answer_b"):
                if f not in r:
                    raise ValueError(f"{raw_path}: line {i}: missing field {f!r}")
            rows[r["sid"]] = r
    out = []
    with open(lab_path, newline="") as f:
        for i, lab in enumerate(csv.DictReader(f), 2):
            sid = lab.get("sid")
            if sid not in rows:
                raise ValueError(f"{lab_path}: line {i}: sid {sid!r} has no output in {raw_path.name}")
            if lab["contradiction"] not in ("yes", "no", "na"):
                raise ValueError(f"{lab_path}: line {i}, sid {sid!r}: field 'contradiction' must be yes/no/na, "
                                 f"got {lab['contradiction']!r}")
            out.append(dict(rows.pop(sid), label=lab))
    if rows:
        raise ValueError(f"{lab_path}: outputs without a label: {sorted(rows)}")
    return out


def wilson_ci(k: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def contradiction_eval(sample: Sequence[dict] | None = None, split: str = "dev") -> dict[str, Any]:
    """Precision and recall of :func:`contradiction` on the labelled sample (Wilson 95% intervals).

    A row counts as predicted positive when the rule says ``contradiction`` True; as positive when
    its label is ``yes``. Rows labelled ``na`` (no verdict) stay in: a rule that finds a
    contradiction there is a false positive. Also reports how often the lenient verdict reader
    agrees with the hand-read verdict.
    """
    sample = load_labelled(split=split) if sample is None else sample
    tp = fp = fn = tn = 0
    verdict_agree = 0
    rows = []
    for r in sample:
        res = contradiction(r["raw"], [r["answer_a"], r["answer_b"]])
        pos = r["label"]["contradiction"] == "yes"
        pred = bool(res["contradiction"])
        tp += pos and pred
        fp += (not pos) and pred
        fn += pos and not pred
        tn += (not pos) and not pred
        verdict_agree += (res["verdict"] or "-") == r["label"]["verdict"]
        rows.append({"sid": r["sid"], "label": r["label"]["contradiction"], "rule": pred, **res})
    return {"n": len(sample), "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else None, "precision_ci95": wilson_ci(tp, tp + fp),
            "recall": tp / (tp + fn) if tp + fn else None, "recall_ci95": wilson_ci(tp, tp + fn),
            "verdict_agreement": verdict_agree / len(sample) if sample else None, "rows": rows}


# --- 4. decline with length ------------------------------------------------------------------------

def bucket_key(b: Any) -> tuple[int, str]:
    return (BUCKET_ORDER.index(b) if b in BUCKET_ORDER else len(BUCKET_ORDER), str(b))


def item_accuracy(passes: dict[int, dict]) -> float:
    """Two-order accuracy of one item: the mean official score over its passes."""
    return sum(float(p["score"]) for p in passes.values()) / len(passes)


def length_curve(preds: Sequence[dict], n_boot: int = jscore.N_BOOT, seed: int = jscore.BOOT_SEED) -> dict[str, Any]:
    """Accuracy per bucket (two-order, with bootstrap 95% intervals over items) and the slope.

    The slope is the least-squares fit of per-item accuracy on log2(bucket tokens), in accuracy
    points (0-100) per doubling of the context, with a bootstrap interval resampling items.
    Buckets without a token size (unknown labels) are reported but left out of the fit.
    """
    import numpy as np

    items = list(jscore.group_items(preds).values())
    groups: dict[str, list[float]] = {}
    for ps in items:
        b = str(next(iter(ps.values())).get("ctx_length_for_length"))
        groups.setdefault(b, []).append(item_accuracy(ps))
    buckets = {b: {"n_items": len(v), "acc": sum(v) / len(v), "ci95": jscore.bootstrap_ci(v, n_boot, seed) if n_boot else None}
               for b, v in sorted(groups.items(), key=lambda kv: bucket_key(kv[0]))}
    xs = [(math.log2(BUCKET_TOKENS[b]), a) for b, v in groups.items() if b in BUCKET_TOKENS for a in v]
    out: dict[str, Any] = {"by_bucket": buckets, "slope_per_doubling": None, "slope_ci95": None,
                           "n_fit_items": len(xs)}
    if len({x for x, _ in xs}) >= 2:
        x = np.array([a for a, _ in xs])
        y = 100 * np.array([b for _, b in xs])

        def fit(ix):
            xx, yy = x[ix], y[ix]
            if np.ptp(xx) == 0:
                return math.nan
            return float(np.polyfit(xx, yy, 1)[0])

        out["slope_per_doubling"] = round(fit(np.arange(len(x))), 4)
        if n_boot:
            rng = np.random.default_rng(seed)
            s = np.array([fit(rng.integers(0, len(x), len(x))) for _ in range(n_boot)])
            s = s[~np.isnan(s)]
            out["slope_ci95"] = [round(float(q), 4) for q in np.quantile(s, [0.025, 0.975])] if s.size else None
    return out


# --- 5. length bias --------------------------------------------------------------------------------

def length_bias(preds: Sequence[dict], bench: dict[tuple[str, str], dict]) -> dict[str, Any]:
    """How often the longest response (in characters) is picked first, split by whether it is the best.

    Counted over parsed lines whose longest response is unique. ``picked_when_worse`` is the share
    of lines whose longest response is NOT the best in which the judge still put it first; an
    unbiased judge that can't tell the answers apart sits at ``chance`` (the mean of 1/N). Lines
    whose item is missing from ``bench`` are counted in ``missing_records``, never dropped silently.
    """
    worse = [0, 0]
    better = [0, 0]
    ties = missing = unparsed = 0
    chance = []
    for p in preds:
        if p.get("ranking") is None:
            unparsed += 1
            continue
        texts = slot_texts(p, bench)
        if texts is None:
            missing += 1
            continue
        lens = [len(t) for t in texts]
        L = max(range(len(lens)), key=lambda j: lens[j])
        if lens.count(lens[L]) > 1:
            ties += 1
            continue
        picked = winner_slot(p) == L
        if p["order"][L] == 0:
            better[0] += picked
            better[1] += 1
        else:
            worse[0] += picked
            worse[1] += 1
            chance.append(1 / len(lens))
    return {"picked_when_worse": worse[0] / worse[1] if worse[1] else None, "n_worse": worse[1],
            "picked_when_worse_ci95": wilson_ci(*worse), "chance": sum(chance) / len(chance) if chance else None,
            "picked_when_better": better[0] / better[1] if better[1] else None, "n_better": better[1],
            "length_ties": ties, "unparsed": unparsed, "missing_records": missing}


# --- 6. outcomes: one exclusive label per line -----------------------------------------------------

def outcomes(preds: Sequence[dict], bench: dict | None = None) -> list[str]:
    """One label per line, checked in this order: ``run_error``; ``format`` (the official parser
    refused it); ``contradiction`` (generative, the detector fires); ``position_bound`` (pairwise,
    parsed in both passes, the same slot letter won both times, so the verdict followed the slot);
    then ``correct`` (score 1), ``partial`` (0 < score < 1), ``wrong``."""
    items = jscore.group_items(preds)
    bound = set()
    for key, ps in items.items():
        if 0 in ps and 1 in ps and jscore.is_pairwise(ps[0]) and ps[0].get("ranking") is not None \
                and ps[1].get("ranking") is not None and ps[0]["ranking"][0] == ps[1]["ranking"][0]:
            bound.add(key)
    out = []
    for p in preds:
        if p.get("error"):
            out.append("run_error")
        elif p.get("ranking") is None:
            out.append("format")
        elif (c := prediction_contradiction(p, bench)) is not None and c["contradiction"]:
            out.append("contradiction")
        elif jscore.item_key(p) in bound:
            out.append("position_bound")
        else:
            s = float(p["score"])
            out.append("correct" if s >= 1 else "partial" if s > 0 else "wrong")
    return out


def outcome_table(preds: Sequence[dict], bench: dict | None = None, by: str = "ctx_length_for_length") -> dict:
    """Shares of each outcome per value of ``by`` (``ctx_length_for_length`` or ``task``) and overall."""
    labs = outcomes(preds, bench)
    groups: dict[str, Counter] = {}
    for p, o in zip(preds, labs):
        groups.setdefault(str(p.get(by)), Counter())[o] += 1
        groups.setdefault("all", Counter())[o] += 1
    key = bucket_key if by == "ctx_length_for_length" else (lambda t: (TASKS.index(t) if t in TASKS else 99, t))
    order = sorted((g for g in groups if g != "all"), key=key) + ["all"]
    return {g: {"n": sum(groups[g].values()), **{o: groups[g].get(o, 0) / sum(groups[g].values()) for o in OUTCOMES}}
            for g in order}


# --- 7. context neglect (ablation) -----------------------------------------------------------------

def ablate_records(records: Sequence[dict], mode: str = "remove", seed: int = 0) -> list[dict]:
    """Copies of ``records`` with the context removed (``remove``) or replaced by ``distractor`` text of
    the same length in characters, cut at a word boundary, taken from the OTHER records' contexts
    (rotated with ``seed``). Everything else (question, instructions, answers) is unchanged."""
    from .bench.schema import context_parts, with_context

    if mode not in ("remove", "distractor"):
        raise ValueError(f"mode must be 'remove' or 'distractor', got {mode!r}")
    ctxs = [context_parts(r)[1] for r in records]
    for r, c in zip(records, ctxs):
        if not c.strip():
            raise ValueError(f"record (task={r['task']!r}, id={r['id']!r}): field 'prompt_template' has no context "
                             "to ablate (context_parts found an empty context)")
    if mode == "remove":
        return [with_context(r, "") for r in records]
    if len(records) < 2:
        raise ValueError("mode='distractor' needs at least 2 records: the distractors come from other records")
    out = []
    for i, (r, c) in enumerate(zip(records, ctxs)):
        donors = [ctxs[(i + 1 + seed + k) % len(ctxs)] for k in range(len(ctxs) - 1)]
        donors = [d for k, d in enumerate(donors) if (i + 1 + seed + k) % len(ctxs) != i]
        text, k = "", 0
        while len(text) < len(c):
            text += (" " if text else "") + donors[k % len(donors)].strip()
            k += 1
        cut = text[:len(c)]
        sp = cut.rfind(" ")
        cut = cut[:sp] if sp > len(c) // 2 else cut
        out.append(with_context(r, cut.ljust(len(c))))
    return out


def select_subset(preds: Sequence[dict], k: int) -> list[tuple[str, str]]:
    """``k`` item keys spread evenly over the (bucket, task, id)-sorted items of ``preds``."""
    bucket = {jscore.item_key(p): p.get("ctx_length_for_length") for p in preds}
    keys = sorted(jscore.group_items(preds), key=lambda key: (bucket_key(bucket[key]), key))
    if k >= len(keys):
        return keys
    return [keys[int(i * len(keys) / k)] for i in range(k)]


def compare_verdicts(original: Sequence[dict], ablated: Sequence[dict]) -> dict[str, Any]:
    """How often the judge's verdict survives the ablation, per (task, id, pass) line.

    ``unchanged_rate``: among lines parsed both times, the share whose first-placed answer is the
    same answer (by true rank, so display order does not matter). ``ranking_unchanged_rate``: the
    whole predicted ranking of answers is the same. Lines missing from either side are counted.
    """
    def key(p):
        return (str(p["task"]), str(p["id"]), int(p["pass"]))

    orig = {key(p): p for p in original}
    same_top = same_rank = both = parse_changed = 0
    acc_o, acc_a = [], []
    missing = 0
    for p in ablated:
        o = orig.get(key(p))
        if o is None:
            missing += 1
            continue
        acc_o.append(float(o["score"]))
        acc_a.append(float(p["score"]))
        if (o.get("ranking") is None) != (p.get("ranking") is None):
            parse_changed += 1
        if o.get("ranking") is None or p.get("ranking") is None:
            continue
        both += 1
        same_top += top_answer(o) == top_answer(p)
        ro = [o["ranking"][o["order"].index(a)] for a in range(len(o["order"]))]
        ra = [p["ranking"][p["order"].index(a)] for a in range(len(p["order"]))]
        same_rank += ro == ra
    return {"n_lines": len(acc_a), "n_parsed_both": both, "unchanged_rate": same_top / both if both else None,
            "unchanged_ci95": wilson_ci(same_top, both), "ranking_unchanged_rate": same_rank / both if both else None,
            "parse_status_changed": parse_changed, "acc_with_context": sum(acc_o) / len(acc_o) if acc_o else None,
            "acc_ablated": sum(acc_a) / len(acc_a) if acc_a else None, "missing_in_original": missing}


def run_ablation(judge: str, *, kind: str, records: Sequence[dict], original: Sequence[dict], out_dir: str | Path,
                 modes: Sequence[str] = ("remove", "distractor"), k: int = 8, seed: int = 0,
                 loaded: Any = None, **run_kwargs: Any) -> dict[str, Any]:
    """Judge ``k`` items of ``original`` again with their context ablated; compare the verdicts.

    Works for every kind :func:`judge.run.run_judge` takes (generative, pointwise, scalar,
    heuristic): it only changes the records. Writes ``out_dir/<mode>/predictions.jsonl`` (resumable)
    and returns ``{mode: compare_verdicts(...)}`` plus the chosen keys. Pass ``loaded`` to judge
    with a model already in memory (it is loaded once for all modes).
    """
    from .judge.run import run_judge
    from . import models

    idx = bench_index(records)
    keys = [key for key in select_subset(original, k) if key in idx]
    missing = [key for key in select_subset(original, k) if key not in idx]
    if missing:
        raise ValueError(f"run_ablation: {len(missing)} item(s) of the predictions are not in the records "
                         f"(first: task={missing[0][0]!r}, id={missing[0][1]!r}); pass the benchmark they were judged on")
    subset = [idx[key] for key in keys]
    orig_sub = [p for p in original if jscore.item_key(p) in set(keys)]
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
        out[mode] = compare_verdicts(orig_sub, load_predictions(d / "predictions.jsonl"))
    return out


# --- 8. the example gallery ------------------------------------------------------------------------

def shorten_around(text: str, needles: Sequence[str], width: int = 70, max_windows: int = 3) -> str:
    """Keep ``width`` characters either side of the first occurrence of each needle; elide the rest
    with ``…[N chars]…`` so the reader sees how much was cut. Without a hit: the start and the end."""
    text = str(text)
    spans = []
    for nd in needles:
        i = text.find(nd) if nd else -1
        if i >= 0:
            spans.append((max(0, i - width), min(len(text), i + len(nd) + width)))
    if not spans:
        if len(text) <= 4 * width:
            return text
        spans = [(0, 2 * width), (len(text) - width, len(text))]
    spans.sort()
    merged = [list(spans[0])]
    for s, e in spans[1:]:
        if s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    merged = merged[:max_windows]
    parts, pos = [], 0
    for s, e in merged:
        if s > pos:
            parts.append(f"…[{s - pos} chars]…")
        parts.append(text[s:e])
        pos = e
    if pos < len(text):
        parts.append(f"…[{len(text) - pos} chars]…")
    return "".join(parts)


def gallery(preds: Sequence[dict], bench: dict | None = None, per_kind: int = 2, width: int = 70) -> list[dict]:
    """Up to ``per_kind`` examples of each outcome that is a failure, with the raw output shortened
    around its evidence (the verdict pattern, or the response text it echoes)."""
    labs = outcomes(preds, bench)
    out: list[dict] = []
    seen: Counter = Counter()
    for p, o in zip(preds, labs):
        if o in ("correct", "partial", "wrong") or seen[o] >= per_kind:
            continue
        raw = p.get("raw")
        raw_text = raw if isinstance(raw, str) else json.dumps(raw)
        kind = format_kind(p) if o == "format" else None
        needles = ["[[", "[", "Score", ">"] if o == "format" else ["[[", "answer is", "Answer"]
        ex = {"outcome": o, "format_kind": kind, "task": p["task"], "id": p["id"], "pass": p["pass"],
              "bucket": p.get("ctx_length_for_length"), "order": p["order"], "ranking": p.get("ranking"),
              "raw": shorten_around(raw_text if raw_text else "(no output)", needles, width),
              "error": (p.get("error") or "")[:200] or None}
        if o == "contradiction":
            ex["detector"] = prediction_contradiction(p, bench)
        texts = slot_texts(p, bench)
        if texts:
            ex["responses"] = [shorten_around(t, [], width // 2) for t in texts]
        out.append(ex)
        seen[o] += 1
    return out


def gallery_markdown(examples: Sequence[dict]) -> str:
    lines = []
    for ex in examples:
        head = f"**{ex['outcome']}**" + (f" ({ex['format_kind']})" if ex.get("format_kind") else "")
        lines.append(f"- {head} · {ex['task']} `{ex['id']}` pass {ex['pass']}, bucket {ex['bucket']}, "
                     f"order {ex['order']} (true rank per slot), ranking {ex['ranking']}")
        if ex.get("detector"):
            d = ex["detector"]
            lines.append(f"  - verdict {d['verdict']}, explanation favours {d['favours']}")
        if ex.get("error"):
            lines.append(f"  - error: `{ex['error']}`")
        lines.append("  - output: " + _md_quote(ex["raw"]))
        for j, t in enumerate(ex.get("responses") or []):
            lines.append(f"  - slot {SLOT_LETTERS[j]}: " + _md_quote(t))
    return "\n".join(lines)


def _md_quote(s: str) -> str:
    """Inline code on one line: runs of 3+ newlines become ``⏎×N``, others ``⏎``."""
    s = re.sub(r"\n{3,}", lambda m: f" ⏎×{len(m.group(0))} ", s.replace("`", "'"))
    return "`" + (s.replace("\n", " ⏎ ") if s.strip() else f"(whitespace only, {len(s)} chars)") + "`"


# --- 9. judges saved in a run directory -----------------------------------------------------------

def judge_config(folder: str | Path) -> dict[str, Any]:
    """The arguments ``run_judge`` recorded in ``folder/run_config.json`` (judge, kind, bench, ...); {} if absent."""
    p = Path(folder) / "run_config.json"
    return json.loads(p.read_text()).get("args", {}) if p.exists() else {}


def saved_judges(rd: str | Path, names: Sequence[str] | None = None) -> dict[str, Path]:
    """``judge id -> folder`` for the ``judges/<id>`` artifacts of a run that hold predictions.

    ``names`` picks some (an unknown one is an error naming the producing notebook); None takes all.
    """
    from . import env

    found = {k.split("/", 1)[1]: v for k, v in env.artifacts(rd).items()
             if k.startswith("judges/") and Path(v).is_dir() and (Path(v) / "predictions.jsonl").exists()}
    if names is None:
        if not found:
            raise env.MissingArtifact(f"no judges/<id> artifacts with predictions in run directory {rd}. They are "
                                      f"produced by notebook {env.producer_of('judges/x')}: run it first with the "
                                      "same run_dir.")
        return found
    return {n: env.find_artifact(rd, f"judges/{n}", fallback=False) for n in names}


def bench_of(folder: str | Path) -> list[dict] | None:
    """The benchmark records a saved judge was run on (from its run_config), or None if not a file."""
    from .bench.schema import read_jsonl

    cfg = judge_config(folder)
    if cfg.get("bench_file") and (Path(folder) / cfg["bench_file"]).is_file():  # records judged in memory
        return read_jsonl(Path(folder) / cfg["bench_file"])
    b = cfg.get("bench")
    return read_jsonl(b) if b and Path(b).is_file() else None


def pick_ablation_judges(found: dict[str, Path], spec: str | Sequence[str] = "auto") -> list[str]:
    """Judge ids to ablate. ``"auto"``: for the generative and the scalar kind, the saved judge with the
    largest model (registry size), plus the context-overlap heuristic as a control that does read
    the context. A list is taken as given (each id must be saved)."""
    from .models import get_spec

    if spec != "auto":
        missing = [j for j in spec if j not in found]
        if missing:
            raise ValueError(f"ablation judge(s) {missing} are not saved in this run; saved: {sorted(found)}")
        return list(spec)
    cfgs = {j: judge_config(f) for j, f in found.items()}
    out = []
    for kind in ("generative", "scalar"):
        cands = [j for j, c in cfgs.items() if c.get("kind") == kind and bench_of(found[j]) is not None]

        def size(j):
            try:
                return get_spec(cfgs[j]["judge"]).params_b
            except Exception:  # noqa: BLE001 - a folder without registry entry
                return 0.0

        if cands:
            out.append(max(cands, key=lambda j: (size(j), -list(found).index(j))))
    overlap = [j for j, c in cfgs.items() if c.get("kind") == "heuristic" and c.get("judge") == "overlap"]
    return out + overlap[:1]


def ablate_saved_judge(rd: str | Path, judge_id: str, *, k: int = 8, modes: Sequence[str] = ("remove", "distractor"),
                       seed: int = 0, device: str = "auto", loaded: Any = None) -> dict[str, Any]:
    """:func:`run_ablation` for a judge saved in a run: same model, kind, benchmark, prompts and limits as
    recorded in its ``run_config.json``; writes into ``RUN/analysis/ablation/<judge_id>/k<k>-seed<seed>/<mode>/``
    (so a rerun with the same ``k`` and ``seed`` resumes, and another ``k`` does not collide)."""
    folder = saved_judges(rd, [judge_id])[judge_id]
    cfg = judge_config(folder)
    if not cfg:
        raise ValueError(f"{folder}: no run_config.json, so the judge's model and benchmark are unknown")
    records = bench_of(folder)
    if records is None:
        raise ValueError(f"{folder}/run_config.json: field 'bench' ({cfg.get('bench')!r}) is not a JSONL file; "
                         "ablate with run_ablation(records=...) instead")
    prompt_file = cfg.get("prompts") if cfg.get("prompts") and Path(str(cfg["prompts"])).is_file() else None
    extra = {"max_new_tokens": cfg.get("requested_max_new_tokens"), "max_input_tokens": cfg.get("requested_max_input_tokens"),
             "quantization": cfg.get("quantization"), "prompt_file": prompt_file, "order_seed": cfg.get("order_seed", 42)}
    if cfg["kind"] == "heuristic":
        extra = {"order_seed": extra["order_seed"]}
    return run_ablation(cfg["judge"], kind=cfg["kind"], records=records,
                        original=load_predictions(folder / "predictions.jsonl"),
                        out_dir=Path(rd) / "analysis" / "ablation" / judge_id / f"k{k}-seed{seed}", modes=modes, k=k,
                        seed=seed,
                        loaded=loaded, device=device, judge_id=f"{judge_id}-ablated", **extra)


# --- 10. the report ---------------------------------------------------------------------------------

def analyze_judge(preds: Sequence[dict], bench: dict | None = None, n_boot: int = jscore.N_BOOT,
                  seed: int = jscore.BOOT_SEED) -> dict[str, Any]:
    """Every measure for one judge's predictions (no model, no new judging)."""
    preds = list(preds)
    contra = [c for p in preds if (c := prediction_contradiction(p, bench)) is not None]
    with_verdict = [c for c in contra if c["verdict"] is not None]
    by_task = {t: format_table([p for p in preds if p["task"] == t]) for t in sorted(
        {p["task"] for p in preds}, key=lambda t: (TASKS.index(t) if t in TASKS else 99, t))}
    by_bucket = {b: format_table([p for p in preds if str(p.get("ctx_length_for_length")) == b]) for b in sorted(
        {str(p.get("ctx_length_for_length")) for p in preds}, key=bucket_key)}
    styles = Counter(style(p) for p in preds if not p.get("error"))
    rep: dict[str, Any] = {
        "n_lines": len(preds), "n_items": len(jscore.group_items(preds)),
        "style": styles.most_common(1)[0][0] if styles else None,
        "run_errors": sum(1 for p in preds if p.get("error")),
        "truncated_lines": sum(1 for p in preds if p.get("truncated")),
        "format": format_table(preds), "format_by_task": by_task, "format_by_bucket": by_bucket,
        "position": position_bias(preds, n_boot, seed),
        "position_by_bucket": {b: position_bias([p for p in preds if str(p.get("ctx_length_for_length")) == b], 0)
                               for b in by_bucket},
        "position_matrix": {str(n): position_matrix(preds, n) for n in sorted({len(p["order"]) for p in preds})},
        "contradiction": {"n_generative_lines": len(contra), "n_with_verdict": len(with_verdict),
                          "rate": (sum(bool(c["contradiction"]) for c in with_verdict) / len(with_verdict))
                          if with_verdict else None,
                          "count": sum(bool(c["contradiction"]) for c in with_verdict),
                          "uses_responses": bench is not None},
        "length": length_curve(preds, n_boot, seed),
        "length_bias": length_bias(preds, bench) if bench else None,
        "outcomes_by_bucket": outcome_table(preds, bench, "ctx_length_for_length"),
        "outcomes_by_task": outcome_table(preds, bench, "task"),
        "gallery": gallery(preds, bench),
    }
    return rep


def analyze(predictions: dict[str, Sequence[dict]], out_dir: str | Path, *,
            bench: Sequence[dict] | dict[str, Sequence[dict]] | None = None, ablation: dict[str, Any] | None = None,
            n_boot: int = jscore.N_BOOT, seed: int = jscore.BOOT_SEED, labelled: bool = True,
            figures: bool = True) -> dict[str, Any]:
    """Analyse several judges; write ``failure_report.json``, ``failure_report.md`` and figures to ``out_dir``.

    ``predictions`` maps judge id -> prediction lines. ``bench`` (records, or judge id -> records)
    enables length bias and the content part of the contradiction detector. ``ablation`` is
    ``{judge_id: run_ablation(...)}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(bench, dict):
        idx = {j: bench_index(bench[j]) if bench.get(j) else None for j in predictions}
    else:
        one = bench_index(bench) if bench else None
        idx = {j: one for j in predictions}
    report: dict[str, Any] = {"judges": {j: analyze_judge(p, idx[j], n_boot, seed) for j, p in predictions.items()},
                              "ablation": ablation or {}, "n_boot": n_boot,
                              "bench_joined": {j: idx[j] is not None for j in predictions}}
    if labelled:
        report["contradiction_detector"] = {
            split: {k: v for k, v in contradiction_eval(split=split).items() if k != "rows"}
            for split in LABELLED_SPLITS}
        report["contradiction_detector"]["sample"] = str(LABELLED_DIR.relative_to(LABELLED_DIR.parent.parent))
    if figures:
        fig_dir = out / "figures"
        report["figures"] = {
            "accuracy_vs_length": str(plot_accuracy_vs_length(report, fig_dir / "accuracy_vs_length.png")),
            "failures_by_bucket": str(plot_failure_stacks(report, fig_dir / "failures_by_bucket.png")),
            "position_matrix": str(plot_position_matrix(report, fig_dir / "position_matrix.png")),
        }
    (out / "failure_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "failure_report.md").write_text(report_markdown(report) + "\n")
    return report


def _pct(x: float | None, nd: int = 0) -> str:
    return "–" if x is None else f"{100 * x:.{nd}f}%"


def _ci(c: Sequence[float] | None) -> str:
    return "" if not c else f" [{100 * c[0]:.0f}, {100 * c[1]:.0f}]"


def summary_rows(report: dict) -> list[dict]:
    """One row per judge with the headline rates (fractions), for tables and headline metrics."""
    rows = []
    for j, r in report["judges"].items():
        lb = r.get("length_bias") or {}
        rows.append({
            "judge": j, "style": r["style"], "lines": r["n_lines"],
            "format_failure": r["format"]["noncompliance_rate"] if r["format"]["n_lines"] else None,
            "first_slot": r["position"]["first_slot_rate"], "bias": r["position"]["bias_rate"],
            "contradiction": r["contradiction"]["rate"],
            "slope_pts_per_doubling": r["length"]["slope_per_doubling"],
            "longer_when_worse": lb.get("picked_when_worse"),
            "neglect_unchanged": ((report.get("ablation") or {}).get(j) or {}).get("remove", {}).get("unchanged_rate"),
        })
    return rows


def report_markdown(report: dict) -> str:
    L = ["# Failure report", "",
         "How each judge fails, measured from its saved predictions (notebook 03, `longrm_utils.analysis`). "
         "Rates are fractions of judged lines unless stated; brackets are 95% intervals.", "",
         "## Summary", "",
         "| judge | style | lines | format failures | first-slot rate | bias rate | contradictions | "
         "slope (pts/doubling) | longer picked when worse | verdict unchanged without context |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary_rows(report):
        s = row["slope_pts_per_doubling"]
        L.append(f"| {row['judge']} | {row['style']} | {row['lines']} | {_pct(row['format_failure'])} | "
                 f"{_pct(row['first_slot'])} | {_pct(row['bias'])} | {_pct(row['contradiction'])} | "
                 f"{'–' if s is None else f'{s:+.1f}'} | {_pct(row['longer_when_worse'])} | "
                 f"{_pct(row['neglect_unchanged'])} |")
    for j, r in report["judges"].items():
        L += ["", f"## {j}", "", "### Accuracy by length bucket (two-order)", "",
              "| bucket | items | accuracy |", "|---|---|---|"]
        for b, v in r["length"]["by_bucket"].items():
            L.append(f"| {b} | {v['n_items']} | {_pct(v['acc'], 1)}{_ci(v['ci95'])} |")
        s = r["length"]["slope_per_doubling"]
        L += ["", f"Slope: {'–' if s is None else f'{s:+.2f}'} accuracy points per doubling of the context"
              f"{'' if not r['length']['slope_ci95'] else ' [' + ', '.join(f'{x:+.1f}' for x in r['length']['slope_ci95']) + ']'}"
              f" ({r['length']['n_fit_items']} items).", ""]
        f = r["format"]
        if f["n_lines"]:
            L += ["### Format non-compliance", "", "| kind | lines | rate |", "|---|---|---|"]
            L += [f"| {k} | {f['counts'][k]} | {_pct(f['rates'][k], 1)} |" for k in FORMAT_KINDS if f["counts"][k]]
            L += [f"| compliant | {f['compliant']} | {_pct(f['compliant'] / f['n_lines'], 1)} |", "",
                  f"The official parser refused {f['official_failures']} of {f['n_lines']} lines; it accepted "
                  f"{f['several_but_accepted']} with several verdicts; our classifier and the parser disagree on "
                  f"{f['disagree_with_parser']}.", ""]
        else:
            L += ["### Format non-compliance", "", "Not applicable: this judge outputs scores, not text.", ""]
        pb = r["position"]
        L += ["### Position bias", "",
              f"First-slot rate {_pct(pb['first_slot_rate'])}{_ci(pb['first_slot_ci95'])} over {pb['n_parsed_lines']} "
              f"parsed pairwise lines; bias rate {_pct(pb['bias_rate'])}{_ci(pb['bias_ci95'])} over "
              f"{pb['n_pairs_parsed_both']} pairs parsed in both orders.", ""]
        c = r["contradiction"]
        if c["n_generative_lines"]:
            L += ["### Contradictions", "",
                  f"{c['count']} of {c['n_with_verdict']} lines with a verdict ({_pct(c['rate'], 1)}) name one answer "
                  f"while the explanation favours another" +
                  ("" if c["uses_responses"] else " (letter cues only: no benchmark records were joined)") + ".", ""]
        lb = r.get("length_bias")
        if lb:
            L += ["### Length bias", "",
                  f"The longest response was not the best in {lb['n_worse']} parsed lines; the judge put it first in "
                  f"{_pct(lb['picked_when_worse'])}{_ci(lb['picked_when_worse_ci95'])} of them (chance "
                  f"{_pct(lb['chance'])}). When the longest was the best ({lb['n_better']} lines) it was picked in "
                  f"{_pct(lb['picked_when_better'])}. Skipped: {lb['length_ties']} length ties, {lb['unparsed']} "
                  f"unparsed, {lb['missing_records']} without a benchmark record.", ""]
        L += ["### Outcomes by bucket", "", "| bucket | n | " + " | ".join(OUTCOMES) + " |",
              "|---|---|" + "---|" * len(OUTCOMES)]
        for b, v in r["outcomes_by_bucket"].items():
            L.append(f"| {b} | {v['n']} | " + " | ".join(_pct(v[o]) for o in OUTCOMES) + " |")
        if r["gallery"]:
            L += ["", "### Examples", "", gallery_markdown(r["gallery"])]
    abl = report.get("ablation") or {}
    if abl:
        L += ["", "## Context neglect (ablation)", "",
              "| judge | mode | lines | parsed both | verdict unchanged | ranking unchanged | acc with context | acc ablated |",
              "|---|---|---|---|---|---|---|---|"]
        for j, a in abl.items():
            for mode in ("remove", "distractor"):
                if mode in a:
                    m = a[mode]
                    L.append(f"| {j} | {mode} | {m['n_lines']} | {m['n_parsed_both']} | {_pct(m['unchanged_rate'])}"
                             f"{_ci(m['unchanged_ci95'])} | {_pct(m['ranking_unchanged_rate'])} | "
                             f"{_pct(m['acc_with_context'])} | {_pct(m['acc_ablated'])} |")
    det = report.get("contradiction_detector")
    if det:
        L += ["", "## The contradiction detector on the labelled sample", "",
              f"Hand-labelled outputs of SmolLM2-135M-Instruct ({det['sample']}). The `dev` labels were frozen before "
              "the rule was written, but the rule was written while reading them, so its `dev` figures are in-sample; "
              "the `heldout` batch was generated and labelled after the rule was frozen.", "",
              "| split | outputs | contradictions | precision | recall | tp / fp / fn |", "|---|---|---|---|---|---|"]
        for split in LABELLED_SPLITS:
            d = det[split]
            L.append(f"| {split} | {d['n']} | {d['positives']} | {_pct(d['precision'])}{_ci(d['precision_ci95'])} | "
                     f"{_pct(d['recall'])}{_ci(d['recall_ci95'])} | {d['tp']} / {d['fp']} / {d['fn']} |")
    return "\n".join(L)


# --- 11. plots -------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_length(report: dict, path: str | Path) -> Path:
    """Two-order accuracy per bucket for each judge, with 95% intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    buckets = sorted({b for r in report["judges"].values() for b in r["length"]["by_bucket"]}, key=bucket_key)
    xpos = {b: i for i, b in enumerate(buckets)}
    for j, r in report["judges"].items():
        bb = r["length"]["by_bucket"]
        xs = [xpos[b] for b in bb]
        ys = [100 * v["acc"] for v in bb.values()]
        err = [[100 * (v["acc"] - v["ci95"][0]) if v["ci95"] else 0 for v in bb.values()],
               [100 * (v["ci95"][1] - v["acc"]) if v["ci95"] else 0 for v in bb.values()]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=j)
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("context length bucket")
    ax.set_ylabel("two-order accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7)
    ax.set_title("Accuracy against context length")
    return _save(fig, path)


OUTCOME_COLORS = {"correct": "#4c9a2a", "partial": "#a6d96a", "wrong": "#bdbdbd", "position_bound": "#fdae61",
                  "contradiction": "#d7191c", "format": "#2b83ba", "run_error": "#000000"}


def plot_failure_stacks(report: dict, path: str | Path) -> Path:
    """One panel per judge: stacked shares of each outcome per bucket."""
    plt = _plt()
    judges = list(report["judges"])
    fig, axes = plt.subplots(1, len(judges), figsize=(max(4, 2.6 * len(judges)), 3.6), sharey=True, squeeze=False)
    for ax, j in zip(axes[0], judges):
        tab = report["judges"][j]["outcomes_by_bucket"]
        groups = [g for g in tab if g != "all"]
        bottom = [0.0] * len(groups)
        for o in OUTCOMES:
            vals = [100 * tab[g][o] for g in groups]
            ax.bar(groups, vals, bottom=bottom, color=OUTCOME_COLORS[o], label=o)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(j, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_ylabel("share of lines (%)")
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(fig, path)


def plot_position_matrix(report: dict, path: str | Path, n: int = 2) -> Path:
    """Per judge: row = slot holding the best answer, column = slot picked (row-normalised)."""
    plt = _plt()
    judges = [j for j, r in report["judges"].items() if str(n) in r["position_matrix"]]
    fig, axes = plt.subplots(1, max(1, len(judges)), figsize=(max(3, 2.3 * len(judges)), 2.6), squeeze=False)
    for ax, j in zip(axes[0], judges):
        m = report["judges"][j]["position_matrix"][str(n)]
        norm = [[x / sum(row) if sum(row) else 0 for x in row] for row in m]
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for r_ in range(n):
            for c_ in range(n):
                ax.text(c_, r_, f"{100 * norm[r_][c_]:.0f}%\n({m[r_][c_]})", ha="center", va="center", fontsize=7,
                        color="white" if norm[r_][c_] > 0.6 else "black")
        ax.set_xticks(range(n), list(SLOT_LETTERS[:n]))
        ax.set_yticks(range(n), list(SLOT_LETTERS[:n]))
        ax.set_xlabel("slot picked", fontsize=7)
        ax.set_title(j, fontsize=8)
    axes[0][0].set_ylabel("best answer in slot", fontsize=7)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# --- CLI -------------------------------------------------------------------------------------------

def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="longrm_utils analyze",
                                description="Failure analysis of one or more predictions.jsonl files (no model needed).")
    p.add_argument("--predictions", action="append", required=True,
                   help="a predictions.jsonl (repeatable); the judge id is its folder name, or give ID=PATH")
    p.add_argument("--out", required=True, help="output folder for failure_report.{json,md} and figures/")
    p.add_argument("--bench", action="append", default=[],
                   help="benchmark JSONL the predictions were judged on (repeatable); enables length bias and "
                        "content-based contradiction detection. Default: the bench in each run_config.json")
    p.add_argument("--n-boot", type=int, default=jscore.N_BOOT, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    a = p.parse_args(argv)
    preds: dict[str, list[dict]] = OrderedDict()
    for spec in a.predictions:
        jid, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        jid = jid or judge_name(path)
        if jid in preds:
            raise SystemExit(f"analyze: two prediction files map to judge id {jid!r}; name them with ID=PATH")
        preds[jid] = load_predictions(path)
    if a.bench:
        from .bench.schema import read_jsonl

        bench: Any = [r for b in a.bench for r in read_jsonl(b)]
    else:  # the benchmark each judge recorded in its run_config.json, where that is a file
        bench = {jid: bench_of(Path(spec.rpartition("=")[2]).parent) for jid, spec in zip(preds, a.predictions)}
        missing = [j for j, b in bench.items() if b is None]
        if missing:
            print(f"no benchmark records for {missing} (pass --bench): length bias and content-based "
                  "contradiction detection are skipped for them")
    rep = analyze(preds, a.out, bench=bench, n_boot=a.n_boot, figures=not a.no_figures)
    print(f"wrote {Path(a.out) / 'failure_report.json'} and failure_report.md")
    for row in summary_rows(rep):
        print(", ".join(f"{k}={_pct(v) if isinstance(v, float) and k != 'slope_pts_per_doubling' else v}"
                        for k, v in row.items()))
    return 0
