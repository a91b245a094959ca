"""bench.text, bench.generators, bench.hub: every generator is exact to the token, deterministic, grounded;
the assembler keeps order and numbering; hub loaders on local samples."""
import random

import pytest

from longrm_utils import store
from longrm_utils.bench import generators as G
from longrm_utils.bench import hub as H
from longrm_utils.bench import metrics as M
from longrm_utils.bench import text as T
from longrm_utils.constants import DATA_DIR, TASKS

SAMPLES = DATA_DIR / "samples"


@pytest.fixture(scope="module")
def tiny_count():
    return T.counter_for("tiny")


@pytest.mark.parametrize("task", TASKS)
def test_generator_exact_deterministic_and_grounded(task, tiny_count):
    t = G.generate(task, 3000, tiny_count, seed=3, index=1)
    assert t.context_tokens == tiny_count(t.context) == 3000
    again = G.generate(task, 3000, tiny_count, seed=3, index=1)
    assert again.context == t.context and again.slots == t.slots
    other = G.generate(task, 3000, tiny_count, seed=4, index=1)
    assert other.context != t.context
    # the golden answer scores best; every wrong value occurs in the context (or is a computed result)
    gold = t.golden()
    g = M.score(task, gold, t.reference)
    assert g > 0
    for i, alts in enumerate(t.alts):
        assert alts, f"slot {i} has no wrong value"
        wrong = [a if j == i else s for j, (s, a) in enumerate(zip(t.slots, [x[0] for x in t.alts]))]
        assert M.score(task, t.render(wrong, "concise"), t.reference) < g
    # evidence spans are in the context and hold the evidence
    assert t.evidence_spans and all(0 <= s < e <= len(t.context) for s, e in t.evidence_spans)
    for s in t.slots if task in ("LongQA", "Math") else []:
        if task == "Math" and s == t.slots[-1]:
            continue  # the total is computed, not stated
        assert any(s in t.context[a:b] for a, b in t.evidence_spans), s


def test_code_ground_truth_comes_from_execution(tiny_count):
    t = G.generate("Code", 2500, tiny_count, seed=0, index=5)
    import contextlib
    import io

    ns = {}
    exec(t.context.split("\n\n# ")[0], ns)  # the code base without the last (comment) document
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ns["main"]()
    assert buf.getvalue().split() == t.slots


def test_128k_context_is_exact(tiny_count):
    t = G.generate("LongQA", 131072, tiny_count, seed=0, index=0)
    assert t.context_tokens == tiny_count(t.context) == 131072


def test_exactness_with_a_second_tokenizer():
    from transformers import AutoTokenizer

    if store.smollm2_wheel_dir() is None and not (store.cache_root() / "smollm2-135m-instruct").exists():
        pytest.skip("SmolLM2 not installed")
    c = T.counter_for("smollm2-135m-instruct")
    for task in ("Cite", "ICL"):
        t = G.generate(task, (256, 512), c, seed=0, index=2)
        assert 256 <= t.context_tokens <= 512 and c(t.context) == t.context_tokens
    assert isinstance(c.tokenizer, type(AutoTokenizer.from_pretrained(str(store.smollm2_dir()))))


def test_context_too_short_is_a_clear_error(tiny_count):
    with pytest.raises(T.ContextTooShort, match="evidence"):
        G.generate("Summ", 200, tiny_count, seed=0)
    with pytest.raises(ValueError, match="unknown task"):
        G.generate("Poetry", 2000, tiny_count)


def test_assemble_keeps_required_order_and_numbering(tiny_count):
    rng = random.Random(0)
    req = ["FIRST required document.", "SECOND required document.", "THIRD required document."]
    a = T.assemble(req, 800, tiny_count, rng, lambda r: T.prose_doc(r), numbered=True)
    assert a.n_tokens == tiny_count(a.text) == 800
    texts = [a.text[s:e] for s, e in a.required_spans]
    assert [t.split("] ", 1)[1] for t in texts] == req
    assert a.required_numbers == sorted(a.required_numbers)
    assert all(a.text[s:e].startswith(f"[{n}] ") for (s, e), n in zip(a.required_spans, a.required_numbers))


@pytest.mark.parametrize("source, n_ok, n_skip", [("longbench", 3, 1), ("infinitebench", 3, 0), ("leval", 1, 0),
                                                  ("babilong", 2, 1), ("l-citeeval", 1, 0), ("longsafety", 1, 0)])
def test_hub_loaders_on_local_samples(source, n_ok, n_skip):
    recs, skips = H.load_source(source, SAMPLES / f"{source}.jsonl")
    assert len(recs) == n_ok and len(skips) == n_skip
    for r in recs:
        assert r.task in TASKS and r.question and r.context and r.golden
    for s in skips:
        assert f"{source}.jsonl line" in s


def test_hub_loader_needs_the_flag_and_parses_citations():
    with pytest.raises(FileNotFoundError, match="use_hub=True"):
        H.load_source("longbench", None)
    recs, _ = H.load_source("l-citeeval", SAMPLES / "l-citeeval.jsonl")
    assert recs[0].reference["statements"][0][1] == [2]
    assert recs[0].context.startswith("[1] ")


def test_fit_source_context(tiny_count):
    recs, _ = H.load_source("longbench", SAMPLES / "longbench.jsonl")
    n = tiny_count(recs[0].context)
    cut = H.fit_source_context(recs[0], n // 2, tiny_count)
    assert tiny_count(cut) == n // 2
    with pytest.raises(T.ContextTooShort, match="fewer than"):
        H.fit_source_context(recs[0], n + 10, tiny_count)


def test_tokenizer_without_chat_template_is_a_clear_error(tmp_path, tiny_count):
    tok = tiny_count.tokenizer
    saved = tok.chat_template
    try:
        tok.chat_template = None
        tok.save_pretrained(tmp_path)
    finally:
        tok.chat_template = saved
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no chat template"):
        T.counter_for(str(tmp_path))
