"""Generate the raw judge outputs behind the hand-labelled sample (provenance script).

    HF_HUB_OFFLINE=1 .venv/bin/python data/labelled/generate_sample.py

SmolLM2-135M-Instruct (offline preset ``smollm2-135m-instruct``) judges 54 short pairwise items,
greedy, at most 96 new tokens. Each item is one short passage, a question, and two answers, one
grounded in the passage and one not; the grounded answer sits in slot A for half the items.
Three prompt wordings are used (explain-then-verdict, verdict-then-explain, and a reason-then-
``[[X]]`` request that names the assistants) so that several layouts occur. The script writes
``raw_outputs.jsonl``; the labels were then added BY HAND, by reading each output, into
``labels.csv`` (see README.md). ``--heldout`` writes a second batch (12 new passages, the first
two wordings) to ``raw_outputs_heldout.jsonl``, labelled into ``labels_heldout.csv`` only after
the detector rule was frozen. It is kept so that the sample can be regenerated and audited; it
is not run by the course.
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
HELDOUT_FACTS = [  # a second, held-out batch: labelled after the detector rule was frozen
    ("The Nordvik ferry leaves at 7:40 and arrives in Sandby at 9:10.", "When does the ferry arrive in Sandby?",
     "At 9:10.", "At 11:30."),
    ("Professor Okafor wrote the grammar in 1998; her student Lena Hart edited it in 2010.",
     "Who wrote the grammar?", "Professor Okafor.", "Lena Hart."),
    ("The tower is 143 metres tall and has 38 floors.", "How many floors does the tower have?",
     "38 floors.", "95 floors."),
    ("Only members over 16 may use the climbing wall.", "Can a 12-year-old member use the climbing wall?",
     "No, only members over 16 may use it.", "Yes, all members may use it."),
    ("def g(n):\n    return n - 7", "What does g(10) return?", "It returns 3.", "It returns 17."),
    ("The orchard grows pears on the south slope and cherries on the north slope.",
     "What grows on the north slope?", "Cherries.", "Pears."),
    ("The company's profit fell by 12 percent because fuel prices rose.", "Why did the profit fall?",
     "Because fuel prices rose.", "Because sales of phones dropped."),
    ("Room 4B holds 30 people; room 2A holds 120.", "How many people does room 2A hold?",
     "120 people.", "30 people."),
    ("The Verro glacier has retreated 2 km since 1950.", "How far has the Verro glacier retreated since 1950?",
     "2 km.", "40 km."),
    ("The library lends e-readers for three weeks and printed books for six weeks.",
     "How long can you borrow an e-reader?", "Three weeks.", "Six weeks."),
    ("The parade starts at the town hall and ends at the harbour.", "Where does the parade end?",
     "At the harbour.", "At the train station."),
    ("Captain Ruiz commanded the ship; the navigator was Ben Okoro.", "Who commanded the ship?",
     "Captain Ruiz.", "Ben Okoro."),
]
# Wording 0 asks for reasoning first, wording 1 for the verdict first, wording 2 names the assistants
# and asks for the official [[X]] at the end. Our own wording.
PROMPTS = [
    ("Read the passage and the question, then compare two answers.\n\nPassage: {p}\n\nQuestion: {q}\n\n"
     "Answer A: {a}\nAnswer B: {b}\n\nExplain in one or two sentences which answer is correct according to the "
     "passage, then give your verdict as [[A]] or [[B]]."),
    ("You are a judge. Passage: {p}\nQuestion: {q}\n[Answer A] {a}\n[Answer B] {b}\n"
     "Give your verdict first as [[A]] or [[B]], then a short reason."),
    ("Passage: {p}\n\nQuestion: {q}\n\nAssistant A answered: {a}\nAssistant B answered: {b}\n\n"
     "Which assistant is supported by the passage? Say why, and end your reply with exactly [[A]] or [[B]]."),
]


def items(seed: int = 0, heldout: bool = False) -> list[dict]:
    rng = random.Random(seed)
    out = []
    facts, wordings = (HELDOUT_FACTS, PROMPTS[:2]) if heldout else (FACTS, PROMPTS)
    for i, (p, q, good, bad) in enumerate(facts):
        for w, tmpl in enumerate(wordings):
            good_slot = "A" if (i + w) % 2 == 0 else "B"
            a, b = (good, bad) if good_slot == "A" else (bad, good)
            out.append({"sid": f"{'h' if heldout else 's'}{i:02d}w{w}", "passage": p, "question": q, "answer_a": a, "answer_b": b,
                        "correct": good_slot, "wording": w, "prompt": tmpl.format(p=p, q=q, a=a, b=b)})
    rng.shuffle(out)
    return out


def main(heldout: bool = False, max_new_tokens: int = 96) -> None:
    out = Path(__file__).with_name("raw_outputs_heldout.jsonl" if heldout else "raw_outputs.jsonl")
    from longrm_utils import models

    loaded = models.load("smollm2-135m-instruct", device="cpu")
    rows = []
    t0 = time.time()
    for it in items(heldout=heldout):
        ids = models.chat_ids(loaded.tokenizer, [{"role": "user", "content": it["prompt"]}], loaded.spec)
        text, _ = models.generate(loaded, ids, max_new_tokens)
        rows.append(dict(it, raw=text, model="smollm2-135m-instruct", max_new_tokens=max_new_tokens,
                         decoding="greedy"))
        print(it["sid"], repr(text[:120]), flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} outputs to {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    import sys

    main(heldout="--heldout" in sys.argv[1:])
