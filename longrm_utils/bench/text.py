"""Text for generated contexts: token counting, invented names and prose, exact-length assembly.

* :class:`TokenCounter` counts tokens with a named tokenizer (:func:`counter_for` builds one from a
  registry preset or a tokenizer folder); every length of the benchmark is measured with one.
* :class:`Namer`, :func:`prose_sentence` and :func:`prose_doc` write invented names and filler prose,
  unique within an item, so no two entities of a context clash.
* :func:`assemble` places the required documents (in order) among filler documents and grows the
  last document word by word until the whole context has exactly the target count.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import models

SEP = "\n\n"
"""Separator between the documents of a context."""


class ContextTooShort(ValueError):
    """The evidence alone does not fit the target length (or a source context is shorter than a bucket)."""


# --- token counting ---------------------------------------------------------------------------------

class TokenCounter:
    """Counts tokens of a text with a named tokenizer (no special tokens); memoises short strings."""

    def __init__(self, tokenizer, name: str):
        if tokenizer is None:
            raise ValueError("a tokenizer is required to measure contexts")
        self.tokenizer, self.name = tokenizer, name
        self._memo: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if len(text) < 400:
            n = self._memo.get(text)
            if n is None:
                n = self._memo[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return n
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def counter_for(name: str, seed: int = 0) -> TokenCounter:
    """A counter for a registry preset (``tiny``, ``smollm2-135m-instruct``, ``qwen3-8b@mini``, …) or a
    tokenizer folder; a hub preset's tokenizer needs the hub or its cache."""
    if Path(name).is_dir() and name not in models.REGISTRY:
        return TokenCounter(models.load_tokenizer(name, models.ModelSpec(name, models.GENERATIVE, "local")), name)
    spec = models.get_spec(name)
    return TokenCounter(models.load_tokenizer(models.base_folder(spec, seed), spec), name)


# --- names and prose ---------------------------------------------------------------------------------

_SYL = ("ka lo mir ten vos ra del un sa bri to nel quo fa ri zen ol ma gu ver an tis por le cal dun ew "
        "ha sor bel im rok va pel ste").split()
_FIRST = ("Ada Bruno Clara Dario Elin Farah Goran Hana Ivo Jana Kofi Lena Mateo Nadia Oskar Priya Quentin "
          "Rosa Sami Tomas Uma Viktor Wanda Yusuf Zora Emil Ines Leon Mira Pavel").split()
_TOPICS = ("harbour", "orchard", "railway", "bakery", "choir", "ferry", "quarry", "lighthouse", "library",
           "market", "mill", "school", "garden", "bridge", "festival", "museum", "vineyard", "workshop")
_VERBS = ("repaired", "visited", "described", "painted", "measured", "cleaned", "opened", "photographed",
          "recorded", "inspected", "moved", "restored", "planted", "counted", "sold", "mapped")
_ADJ = ("quiet", "narrow", "old", "busy", "bright", "wooden", "northern", "small", "crowded", "green",
        "stone", "windy", "tall", "early", "late", "long")
_NOUNS = ("path", "roof", "window", "wall", "boat", "field", "tower", "gate", "street", "hall", "room",
          "cart", "bench", "lamp", "river", "hill")
FILLER_WORDS = tuple("the a of and to in on with near over under after before while during some many "
                     "river hill lamp field wall road tree stone cloud bird boat coat".split())


class Namer:
    """Unique invented names within one item (no clash between evidence and distractors)."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def _fresh(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            x = make()
            if x not in self.used:
                self.used.add(x)
                return x
        raise RuntimeError("name space exhausted")

    def word(self, syl: int = 2) -> str:
        return self._fresh(lambda: "".join(self.rng.choice(_SYL) for _ in range(syl)).capitalize())

    def person(self) -> str:
        return self._fresh(lambda: f"{self.rng.choice(_FIRST)} {''.join(self.rng.choice(_SYL) for _ in range(2)).capitalize()}")

    def number(self, lo: int, hi: int) -> str:
        return self._fresh(lambda: str(self.rng.randint(lo, hi)))


def prose_sentence(rng: random.Random, namer: Namer | None = None) -> str:
    who = namer.person() if namer is not None and rng.random() < 0.3 else f"A {rng.choice(_ADJ)} visitor"
    return (f"{who} {rng.choice(_VERBS)} the {rng.choice(_ADJ)} {rng.choice(_NOUNS)} near the "
            f"{rng.choice(_TOPICS)} {rng.choice(['in spring', 'at dawn', 'last year', 'after the rain', 'twice', 'slowly'])}.")


def prose_doc(rng: random.Random, namer: Namer | None = None, n: tuple[int, int] = (3, 7)) -> str:
    place = namer.word() if namer is not None else "the town"
    head = f"Notes on the {rng.choice(_TOPICS)} of {place}."
    return " ".join([head] + [prose_sentence(rng) for _ in range(rng.randint(*n))])


# --- assembling a context of an exact length ---------------------------------------------------------

@dataclass
class Assembled:
    text: str
    n_tokens: int
    required_spans: list[tuple[int, int]]
    """Character spans of the required documents in ``text``, in the order given."""
    required_numbers: list[int]
    """1-based document numbers of the required documents (for numbered contexts such as Cite)."""
    n_docs: int


def _fit_tail(count: TokenCounter, need: int, rng: random.Random, prefix: str) -> str:
    """Words (after ``prefix``) whose ``SEP + text`` counts exactly ``need`` tokens under ``count``."""
    words: list[str] = []

    def n(ws):
        return count(SEP + prefix + " ".join(ws))

    base = n([])
    if need < base:
        raise ContextTooShort(f"tail needs {need} tokens but its prefix alone has {base}")
    guard = 0
    while n(words) < need and guard < 100000:
        words.append(rng.choice(FILLER_WORDS))
        guard += 1
    for _ in range(200):
        cur = n(words)
        if cur == need:
            return prefix + " ".join(words)
        if cur > need:
            words.pop()
        cands = [w for w in FILLER_WORDS + ("a", "I", "x", ".", ",") if n(words + [w]) == need]
        if cands:
            return prefix + " ".join(words + [rng.choice(cands)])
        words.append(rng.choice(FILLER_WORDS))
        if n(words) > need + 3:
            del words[-2:]
    raise RuntimeError(f"could not fit the last document to exactly {need} tokens with tokenizer {count.name!r}")


def _draw_fillers(filler: Callable[[random.Random], str], rng: random.Random, count: TokenCounter,
                  budget: int) -> list[str]:
    """Filler documents, drawn until the next one would pass ``budget`` tokens (2 per separator)."""
    fill, used = [], 0
    while True:
        d = filler(rng)
        c = count(d) + 2
        if used + c > budget:
            return fill
        fill.append(d)
        used += c


def _interleave(required: Sequence[str], fill: Sequence[str], slots: Sequence[int]) -> tuple[list[str], list[int]]:
    """All documents in order, the required ones at the positions ``slots``; and those positions."""
    docs, pos_of, fi, k = [], [], iter(fill), 0
    for pos in range(len(fill) + len(required)):
        if k < len(required) and pos == slots[k]:
            docs.append(required[k])
            pos_of.append(pos)
            k += 1
        else:
            docs.append(next(fi))
    return docs, pos_of


def assemble(required: Sequence[str], target: int, count: TokenCounter, rng: random.Random,
             filler: Callable[[random.Random], str], *, numbered: bool = False, tail_prefix: str = "",
             reserve: int | None = None) -> Assembled:
    """Place ``required`` documents (in order) among filler documents; the result has exactly ``target`` tokens.

    Tokens of concatenated documents are not always additive, so the last document is grown
    against the real count of the whole text (a few full re-counts at most), and filler
    documents are dropped when the joined body overshoots.
    """
    fmt = (lambda i, d: f"[{i}] {d}") if numbered else (lambda i, d: d)
    req_tokens = sum(count(fmt(99, d)) + 2 for d in required)
    reserve = reserve if reserve is not None else (48 if target >= 2048 else 16)
    if req_tokens + reserve > target:
        raise ContextTooShort(f"the evidence needs about {req_tokens} tokens, more than the target {target} "
                              f"minus {reserve} reserved for the last document")
    fill = _draw_fillers(filler, rng, count, target - reserve - req_tokens)
    n_req = len(required)
    slots = sorted(rng.sample(range(len(fill) + n_req), n_req))
    while True:
        n_total = len(fill) + n_req
        slots = [min(p, n_total - n_req + i) for i, p in enumerate(slots)]
        docs, pos_of = _interleave(required, fill, slots)
        texts = [fmt(i + 1, d) for i, d in enumerate(docs)]
        body = SEP.join(texts)
        tprefix = (f"[{n_total + 1}] " if numbered else "") + tail_prefix
        nb = count(body)
        if target - nb >= count(SEP + tprefix) + 4:
            break
        if not fill:
            raise ContextTooShort(f"the evidence alone has {nb} tokens, more than the target {target}")
        fill.pop()
    starts, off = [], 0
    for t in texts:
        starts.append(off)
        off += len(t) + len(SEP)
    spans = [(starts[p], starts[p] + len(texts[p])) for p in pos_of]
    drift, got = 0, -1
    for _ in range(6):
        tail = _fit_tail(count, target - nb - drift, rng, tprefix)
        text = body + SEP + tail
        got = count(text)
        if got == target:
            return Assembled(text, got, spans, [p + 1 for p in pos_of], n_total + 1)
        drift += got - target
    raise RuntimeError(f"could not reach exactly {target} tokens with tokenizer {count.name!r} (last {got})")

