"""The example gallery: a few failures of each kind, each output shortened around its evidence."""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Sequence

from ..constants import SLOT_LETTERS
from .contradiction import prediction_contradiction
from .formats import format_kind
from .inputs import bench_index, slot_texts
from .outcomes import outcomes


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


def gallery_page(preds: dict[str, Sequence[dict]], bench: dict[str, Any] | None = None, per_kind: int = 2) -> str:
    """Markdown with one example of each failure outcome, from the first judge (in ``preds`` order)
    that has one; each example is headed by its judge. ``bench`` maps judge id -> benchmark records
    (or None); :func:`gallery` picks up to ``per_kind`` examples per outcome and judge."""
    shown: set[str] = set()
    parts = []
    for j, p in preds.items():
        records = (bench or {}).get(j)
        for ex in gallery(p, bench_index(records) if records else None, per_kind=per_kind):
            if ex["outcome"] not in shown:
                shown.add(ex["outcome"])
                parts.append(f"**{j}**\n\n" + gallery_markdown([ex]))
    return "\n\n".join(parts)


def _md_quote(s: str) -> str:
    """Inline code on one line: runs of 3+ newlines become ``⏎×N``, others ``⏎``."""
    s = re.sub(r"\n{3,}", lambda m: f" ⏎×{len(m.group(0))} ", s.replace("`", "'"))
    return "`" + (s.replace("\n", " ⏎ ") if s.strip() else f"(whitespace only, {len(s)} chars)") + "`"

