"""Self-contradiction: a verdict that names one answer while the judge's own explanation argues for another.

:func:`contradiction` is a rule-based detector: it reads the stated verdict leniently
(:func:`stated_verdict`), weighs the evidence the explanation gives for each slot
(:func:`explanation_evidence`) and flags a verdict that disagrees with a clear favourite.
:func:`contradiction_eval` measures the rule against the hand-labelled sample in ``data/labelled/``.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..constants import REPO_ROOT, SLOT_LETTERS
from ..contracts import winner_slot
from ..io import InputError, iter_jsonl
from ..stats import wilson_ci
from .formats import ANY_DOUBLE, ranking_parts, style
from .inputs import slot_texts

LABELLED_DIR = REPO_ROOT / "data" / "labelled"

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
        for m in ANY_DOUBLE.finditer(text):
            parts = ranking_parts(m.group(1))
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
    text = ANY_DOUBLE.sub(" ", text)
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
    for i, r in iter_jsonl(raw_path):
        for f in ("sid", "raw", "answer_a", "answer_b"):
            if f not in r:
                raise InputError("missing field", file=raw_path, line=i, field=f)
        rows[r["sid"]] = r
    out = []
    with open(lab_path, newline="", encoding="utf-8") as f:
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

