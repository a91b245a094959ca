"""bench.schema: validation errors name file/line/id/field; io round trips; the official loader on local files."""
import copy
import json

import pytest

from longrm_utils.io import InputError

from longrm_utils.bench import schema
from longrm_utils.constants import DATA_DIR, TASKS

MINI = DATA_DIR / "mini" / "mini.jsonl"
OFFICIAL = DATA_DIR / "samples" / "official"


@pytest.fixture(scope="module")
def recs():
    return schema.read_jsonl(MINI)


def _pair(recs):
    return next(r for r in recs if r["tasktype"] == "PairWise")


def _bon(recs):
    return next(r for r in recs if r["tasktype"] == "BestOfN")


def test_shipped_sets_validate_and_have_official_fields_only(recs):
    for name in ("mini", "short", "short_train"):
        rs = schema.read_jsonl(DATA_DIR / "mini" / f"{name}.jsonl")
        assert rs
        for r in rs:
            allowed = set(schema.COMMON_FIELDS) | {schema.META_KEY} | set(
                schema.PAIRWISE_FIELDS if r["tasktype"] == "PairWise" else schema.BON_FIELDS)
            assert set(r) == allowed


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(subtype=""), "subtype"),
    (lambda r: r.pop("chosen"), "chosen"),
    (lambda r: r.update(rejected=r["chosen"]), "rejected"),
    (lambda r: r.update(task="Poetry"), "task"),
    (lambda r: r.update(ctx_length_for_length="3k"), "ctx_length_for_length"),
    (lambda r: r.update(extra_field=1), "extra_field"),
    (lambda r: r.update(prompt_template=[{"role": "narrator", "content": "x"}]), "prompt_template"),
    (lambda r: r.update(length=-1), "length"),
    (lambda r: r.update(meta=[1]), "meta"),
])
def test_pairwise_errors_name_file_line_id_and_field(recs, mutate, field):
    r = copy.deepcopy(_pair(recs))
    mutate(r)
    with pytest.raises(schema.SchemaError) as e:
        schema.validate_record(r, file="x.jsonl", line=7)
    msg = str(e.value)
    assert "x.jsonl line 7" in msg and repr(r.get("id")) in msg and repr(field) in msg, msg
    assert e.value.field == field


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(subtype="5"), "subtype"),
    (lambda r: r.update(candidates=r["candidates"][:-1]), "candidates"),
    (lambda r: r.update(candidates_score=list(reversed(r["candidates_score"]))), "candidates_score"),
    (lambda r: r.update(candidates_model=["m"]), "candidates_model"),
    (lambda r: r.update(chosen="x"), "chosen"),
])
def test_bon_errors(recs, mutate, field):
    r = copy.deepcopy(_bon(recs))
    mutate(r)
    with pytest.raises(schema.SchemaError) as e:
        schema.validate_record(r)
    assert e.value.field == field


def test_read_jsonl_reports_line_of_bad_json_and_duplicates(tmp_path, recs):
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(recs[0]) + "\n\n{oops\n")  # the blank line counts: line 3 is the bad one
    with pytest.raises(InputError, match=r"b.jsonl line 3: not valid JSON"):
        schema.read_jsonl(p)
    p.write_text(json.dumps(recs[0]) + "\n" + json.dumps(recs[0]) + "\n")
    with pytest.raises(InputError, match=r"b.jsonl line 2, record .*duplicate \(task, id\).*first seen on line 1"):
        schema.read_jsonl(p)


def test_write_read_and_dataset_round_trip(tmp_path, recs):
    p = schema.write_jsonl(recs[:5], tmp_path / "o.jsonl")
    assert schema.read_jsonl(p) == recs[:5]
    ds = schema.to_dataset(recs[:5])
    assert len(ds) == 5
    back = schema.from_dataset(ds)
    assert [b["id"] for b in back] == [r["id"] for r in recs[:5]]
    assert back[0]["meta"] == recs[0]["meta"]
    assert schema.answers(back[0]) == schema.answers(recs[0])


def test_answers_best_first_and_context_parts(recs):
    for r in recs:
        a = schema.answers(r)
        s = schema.answer_scores(r)
        assert len(a) == len(s) and s == sorted(s, reverse=True) and s[0] > s[-1]
        before, ctx, after = schema.context_parts(r)
        assert before + ctx + after == schema.user_prompt(r)
        assert ctx.strip() and r["question"] in after
        for s0, e0 in r["meta"]["evidence_spans"]:
            assert 0 <= s0 < e0 <= len(ctx)


def test_with_context_replaces_only_the_context(recs):
    r = _pair(recs)
    new = schema.with_context(r, "nothing here")
    b, c, a = schema.context_parts(new)
    assert c == "nothing here" and (b, a) == (schema.context_parts(r)[0], schema.context_parts(r)[2])
    assert schema.context_parts(r)[1] != c  # the original is untouched


def test_load_official_local_folder_normalises():
    recs = schema.load_official(OFFICIAL)
    assert {r["task"] for r in recs} == set(TASKS)
    bon = [r for r in recs if r["tasktype"] == "BestOfN"]
    assert bon and all(isinstance(r["subtype"], str) for r in bon)
    # context_parts falls back to the markers when there is no meta
    assert all(schema.context_parts(r)[1] for r in recs)
    only = schema.load_official(OFFICIAL, tasks=["Math"])
    assert {r["task"] for r in only} == {"Math"}


def test_load_official_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        schema.load_official(OFFICIAL, tasks=["Poetry"])
    (tmp_path / "LongQA.jsonl").write_text((OFFICIAL / "LongQA.jsonl").read_text())
    with pytest.raises(FileNotFoundError, match="Summ.jsonl"):
        schema.load_official(tmp_path, tasks=["LongQA", "Summ"])
    bad = json.loads((OFFICIAL / "Math.jsonl").read_text().splitlines()[0])
    bad["task"] = "Code"
    (tmp_path / "Math.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(schema.SchemaError, match="field 'task'"):
        schema.load_official(tmp_path, tasks=["Math"])
