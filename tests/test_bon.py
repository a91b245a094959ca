"""Best-of-N rejection sampling with a scalar RM (notebook 08, the paper's §6.2)."""
import pytest

from longrm_utils import rundir
from longrm_utils.bench import schema
from longrm_utils.train import bon


@pytest.fixture(scope="module")
def records():
    recs = schema.read_jsonl(rundir.find_artifact(None, "bench/short", verbose=False))
    return [r for r in recs if len(schema.answers(r)) >= 2][:4]


def test_picks_are_the_argmax_and_sft_rows_carry_them(tiny_rm, records):
    rows = bon.best_of_n(tiny_rm, records, n=2)
    assert len(rows) == len(records)
    for r in rows:
        assert r["picked"] == max(range(2), key=lambda i: r["scores"][i])
        assert r["correct"] == (r["picked"] == 0)
    sft = bon.sft_records(records, rows)
    for rec, row, ex in zip(records, rows, sft):
        assert ex["messages"][-1] == {"role": "assistant", "content": schema.answers(rec)[row["picked"]]}
        assert ex["messages"][:-1] == list(rec["prompt_template"])


def test_too_few_answers_names_the_record(tiny_rm, records):
    with pytest.raises(ValueError, match=records[0]["id"]):
        bon.best_of_n(tiny_rm, records[:1], n=5)


def test_summary_counts_and_interval():
    rows = [{"task": "A", "correct": c, "truncated": False} for c in (True, True, True, False)]
    s = bon.summary(rows, n=2)
    assert s["items"] == 4 and s["pick_accuracy"] == 0.75 and s["chance"] == 0.5
    assert s["ci95"][0] < 0.75 < s["ci95"][1] and s["per_task"] == {"A": 0.75}


def test_find_scalar_rm_falls_back_and_says_why(tmp_path):
    name, why = bon.find_scalar_rm(tmp_path, "auto", "tiny-rm")
    assert name == "tiny-rm" and "notebook 06" in why
    assert bon.find_scalar_rm(tmp_path, "smollm2-135m-rm")[0] == "smollm2-135m-rm"
