"""Judge prompts in our own wording, with a pluggable template file.

Three prompt families ask for the official verdict formats (docs/contracts.md):

* ``pairwise``: two responses, verdict ``[[A]]`` or ``[[B]]`` (Long-RewardBench PairWise items);
* ``ranking``: N = 2, 3 or 4 responses, verdict ``[[A>B>C]]`` (BestOfN items);
* ``pointwise``: one response, ``[Analysis] ... [Score: N]`` as in the paper's training data.

A template is plain text with placeholders in braces. Only the placeholders listed in
:data:`PLACEHOLDERS` are replaced; any other ``{identifier}`` is an error naming the file and key,
and other braces (JSON examples, say) are left alone. The task prompt (the record's
``prompt_template``, holding the long context) comes *before* the responses in every template we
ship, so that the long context is a shared token prefix across display orders and candidates;
the backends reuse its KV cache.

A user template file (``prompt_file=``) is YAML or JSON with any of the keys ``system``,
``pairwise``, ``ranking``, ``pointwise``; missing keys fall back to ours.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..constants import SLOT_LETTERS

PLACEHOLDERS = {
    "task": "the task prompt shown to the model that wrote the responses (with its long context)",
    "responses": "the responses, each between [Response X] and [End of Response X] lines",
    "response": "pointwise only: the one response to score",
    "n": "number of responses",
    "letters": "the slot letters, e.g. 'A, B and C'",
    "verdict_example": "the verdict format, e.g. '[[A]]' / '[[B]]' or '[[B>A>C]]'",
}
REQUIRED = {"pairwise": ("task", "responses"), "ranking": ("task", "responses"), "pointwise": ("task", "response")}

DEFAULT_SYSTEM = (
    "You are a careful and impartial evaluator of AI assistant responses to tasks that come with long "
    "documents. You judge each response against the document and the instructions, not against your own "
    "knowledge or the response's length or style."
)

DEFAULT_PAIRWISE = """Below is a task that an AI assistant was given, followed by two responses to it.

===== TASK =====
{task}
===== END OF TASK =====

{responses}

Decide which response completes the task better. Check each claim against the document in the task: a
response that is faithful to the document, answers what was asked and is complete should win over one
that is fluent but unsupported. The order in which the responses appear must not influence you.
Explain your reasoning briefly, then give your verdict on the last line in exactly this format:
{verdict_example}"""

DEFAULT_RANKING = """Below is a task that an AI assistant was given, followed by {n} responses to it, labelled {letters}.

===== TASK =====
{task}
===== END OF TASK =====

{responses}

Rank the {n} responses from best to worst. Check each claim against the document in the task: a
response that is faithful to the document, answers what was asked and is complete ranks higher than one
that is fluent but unsupported. The order in which the responses appear must not influence you.
Explain your reasoning briefly, then give the full ranking on the last line in exactly this format,
using every letter once: {verdict_example}"""

DEFAULT_POINTWISE = """Below is a task that an AI assistant was given, followed by one response to it.

===== TASK =====
{task}
===== END OF TASK =====

[Response]
{response}
[End of Response]

Rate the response for helpfulness, faithfulness to the document, and completeness. Write your analysis
after "[Analysis]", then finish with a score from 0 (useless or wrong) to 10 (fully correct and
complete), in exactly this format: [Score: N]"""


@dataclass(frozen=True)
class Templates:
    system: str | None = DEFAULT_SYSTEM
    pairwise: str = DEFAULT_PAIRWISE
    ranking: str = DEFAULT_RANKING
    pointwise: str = DEFAULT_POINTWISE
    source: str = "longrm_utils.judge.prompts (course wording)"


_PH = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_template(text: str, key: str, where: str = "<templates>") -> None:
    """Unknown placeholders and missing required ones are errors naming the file and key."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: template {key!r} must be a string, got {type(text).__name__}")
    found = set(_PH.findall(text))
    unknown = sorted(found - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"{where}: template {key!r} uses unknown placeholder(s) {unknown}; "
                         f"known: {sorted(PLACEHOLDERS)}")
    missing = [p for p in REQUIRED.get(key, ()) if p not in found]
    if missing:
        raise ValueError(f"{where}: template {key!r} lacks required placeholder(s) {missing}")


def load_templates(prompt_file: str | Path | None = None) -> Templates:
    """Our templates, with any keys of a YAML/JSON ``prompt_file`` replacing them."""
    t = Templates()
    for key in ("pairwise", "ranking", "pointwise"):
        check_template(getattr(t, key), key)
    if prompt_file is None:
        return t
    p = Path(prompt_file)
    if not p.is_file():
        raise FileNotFoundError(f"prompt file {p} does not exist")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON ({e}); use a .yaml/.yml suffix for YAML") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a prompt file is a mapping with keys system/pairwise/ranking/pointwise")
    unknown = sorted(set(data) - {"system", "pairwise", "ranking", "pointwise"})
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {unknown}; allowed: system, pairwise, ranking, pointwise")
    for key in ("pairwise", "ranking", "pointwise"):
        if key in data:
            check_template(data[key], key, str(p))
    if "system" in data and data["system"] is not None and not isinstance(data["system"], str):
        raise ValueError(f"{p}: 'system' must be a string or null")
    return replace(t, source=str(p), **data)


def render(template: str, **fields: object) -> str:
    """Replace known ``{placeholders}``; leave every other brace alone."""
    return _PH.sub(lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), template)


def task_text(messages: Sequence[dict]) -> str:
    """The record's ``prompt_template`` as one block of text (role headers only when there are several)."""
    msgs = [m for m in messages if m.get("content")]
    if len(msgs) == 1:
        return str(msgs[0]["content"])
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{m['content']}" for m in msgs)


def letters_phrase(n: int) -> str:
    ls = list(SLOT_LETTERS[:n])
    return ls[0] if n == 1 else ", ".join(ls[:-1]) + " and " + ls[-1]


def verdict_example(n: int, pairwise: bool) -> str:
    if pairwise:
        return "[[A]] if Response A is better, or [[B]] if Response B is better"
    return "[[" + ">".join(SLOT_LETTERS[:n]) + "]] (an example ordering; put your own)"


def responses_block(slots: Sequence[str]) -> str:
    return "\n\n".join(f"[Response {SLOT_LETTERS[j]}]\n{r}\n[End of Response {SLOT_LETTERS[j]}]"
                       for j, r in enumerate(slots))


def _wrap(t: Templates, user: str) -> list[dict]:
    return ([{"role": "system", "content": t.system}] if t.system else []) + [{"role": "user", "content": user}]


def judge_messages(t: Templates, prompt_messages: Sequence[dict], slots: Sequence[str], *, pairwise: bool) -> list[dict]:
    """Chat messages for a pairwise (``[[A]]``) or ranking (``[[A>B>C]]``) judgement of ``slots``."""
    n = len(slots)
    if pairwise and n != 2:
        raise ValueError(f"a pairwise judgement needs 2 responses, got {n}")
    if not 2 <= n <= len(SLOT_LETTERS):
        raise ValueError(f"a ranking needs 2..{len(SLOT_LETTERS)} responses, got {n}")
    user = render(t.pairwise if pairwise else t.ranking, task=task_text(prompt_messages),
                  responses=responses_block(slots), n=n, letters=letters_phrase(n),
                  verdict_example=verdict_example(n, pairwise))
    return _wrap(t, user)


def pointwise_messages(t: Templates, prompt_messages: Sequence[dict], response: str) -> list[dict]:
    """Chat messages asking for ``[Analysis] ... [Score: N]`` on one response."""
    return _wrap(t, render(t.pointwise, task=task_text(prompt_messages), response=response, n=1,
                           letters="A", verdict_example="[Score: N]"))


def scalar_messages(prompt_messages: Sequence[dict], response: str) -> list[dict]:
    """What a scalar RM scores: the task prompt plus the response as an assistant turn."""
    return [dict(m) for m in prompt_messages] + [{"role": "assistant", "content": response}]
