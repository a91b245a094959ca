"""Generate the raw judge outputs behind ``contradiction_sample.jsonl`` (provenance script).

    HF_HUB_OFFLINE=1 .venv/bin/python data/labelled/generate_sample.py

SmolLM2-135M-Instruct (offline preset ``smollm2-135m-instruct``) judges 36 short pairwise items,
greedy, at most 96 new tokens. Each item is one short passage, a question, and two answers, one
grounded in the passage and one not; the grounded answer sits in slot A for half the items.
Two prompt wordings are used (explain-then-verdict and verdict-then-explain) so that both
layouts occur. The script writes ``raw_outputs.jsonl``; the labels were then added BY HAND,
by reading each output, into ``contradiction_sample.jsonl`` (see README.md). It is kept so that
the sample can be regenerated and audited; it is not run by the course.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

FACTS = [  # (passage, question, grounded answer, ungrounded answer)
    ("The Lindqvist Museum in Bergen opened in 1921 and holds 4,000 maps.", "When did the Lindqvist Museum open?",
     "It opened in 1921.", "It opened in 1958."),
    ("The river Ambra flows north for 212 km before reaching the sea at Porto Vel.", "How long is the river Ambra?",
     "It is 212 km long.", "It is 48 km long."),
    ("Maria Costa led the bridge project; her deputy was Tomas Reyes.", "Who led the bridge project?",
     "Maria Costa led it.", "Tomas Reyes led it."),
    ("The Kestrel company sold 3,200 bicycles in March and 2,100 in April.", "How many bicycles were sold in March?",
     "3,200 bicycles.", "2,100 bicycles."),
    ("Station 9 is closed on Sundays because of track repairs until June.", "Is Station 9 open on Sundays?",
     "No, it is closed on Sundays until June.", "Yes, it is open every day."),
    ("The village of Orla has a population of 860 and one school.", "How many schools does Orla have?",
     "Orla has one school.", "Orla has four schools."),
    ("def f(x):\n    return x * 3 + 2", "What does f(4) return?", "It returns 14.", "It returns 12."),
    ("The report states that the green team finished first and the red team finished last.",
     "Which team finished first?", "The green team.", "The red team."),
    ("The festival moved from July to September in 2019 because of the heat.", "Why did the festival move?",
     "Because of the heat in July.", "Because the venue was sold."),
    ("Dr. Ilse Brandt discovered the comet in 1987 from the Harlow observatory.", "Who discovered the comet?",
     "Dr. Ilse Brandt.", "The Harlow city council."),
    ("The market in Tarsa opens at 6 am and closes at 2 pm.", "When does the Tarsa market close?",
     "At 2 pm.", "At 9 pm."),
    ("The recipe needs 250 g of flour, two eggs and 100 ml of milk.", "How much flour does the recipe need?",
     "250 g of flour.", "500 g of flour."),
    ("The east wing of the hospital was built in 1964; the west wing in 2003.", "When was the west wing built?",
     "In 2003.", "In 1964."),
    ("Policy 12 says employees may work from home two days a week.", "How many days may employees work from home?",
     "Two days a week.", "Every day of the week."),
    ("The blue line train runs every 8 minutes; the red line every 15.", "How often does the blue line run?",
     "Every 8 minutes.", "Every 15 minutes."),
    ("The novel's narrator is a lighthouse keeper named Ewan.", "Who narrates the novel?",
     "A lighthouse keeper named Ewan.", "A fisherman named Paul."),
    ("The total of the three invoices is 1,450 euros.", "What is the total of the invoices?",
     "1,450 euros.", "3,000 euros."),
    ("Lake Serin freezes every winter, usually in late December.", "When does Lake Serin usually freeze?",
     "In late December.", "In early April."),
]
# Wording 1 asks for reasoning first; wording 2 asks for the verdict first. Our own wording.
PROMPTS = [
    ("Read the passage and the question, then compare two answers.\n\nPassage: {p}\n\nQuestion: {q}\n\n"
     "Answer A: {a}\nAnswer B: {b}\n\nExplain in one or two sentences which answer is correct according to the "
     "passage, then give your verdict as [[A]] or [[B]]."),
    ("You are a judge. Passage: {p}\nQuestion: {q}\n[Answer A] {a}\n[Answer B] {b}\n"
     "Give your verdict first as [[A]] or [[B]], then a short reason."),
]


def items(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i, (p, q, good, bad) in enumerate(FACTS):
        for w, tmpl in enumerate(PROMPTS):
            good_slot = "A" if (i + w) % 2 == 0 else "B"
            a, b = (good, bad) if good_slot == "A" else (bad, good)
            out.append({"sid": f"s{i:02d}w{w}", "passage": p, "question": q, "answer_a": a, "answer_b": b,
                        "correct": good_slot, "wording": w, "prompt": tmpl.format(p=p, q=q, a=a, b=b)})
    rng.shuffle(out)
    return out


def main(out: Path = Path(__file__).with_name("raw_outputs.jsonl"), max_new_tokens: int = 96) -> None:
    from longrm_utils import models

    loaded = models.load("smollm2-135m-instruct", device="cpu")
    rows = []
    t0 = time.time()
    for it in items():
        ids = models.chat_ids(loaded.tokenizer, [{"role": "user", "content": it["prompt"]}], loaded.spec)
        text, _ = models.generate(loaded, ids, max_new_tokens)
        rows.append(dict(it, raw=text, model="smollm2-135m-instruct", max_new_tokens=max_new_tokens,
                         decoding="greedy"))
        print(it["sid"], repr(text[:120]), flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} outputs to {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
