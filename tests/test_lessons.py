"""Lessons are computed from prediction lines by one function; these check it on hand-made lines."""
import json

import pytest

from longrm_utils.evaluate import lessons


def line(i, pas, *, ranking, order=(0, 1), task="LongQA", tasktype="PairWise", bucket="short", parse_error=None):
    score = 0.0 if ranking is None else sum(r == o for r, o in zip(ranking, order)) / len(order)
    return {"task": task, "id": str(i), "tasktype": tasktype, "subtype": "same", "ctx_length_for_length": bucket,
            "pass": pas, "order": list(order), "raw": None, "ranking": None if ranking is None else list(ranking),
            "parse_error": parse_error, "score": score}


def judge(n, *, right, always_a=False, fail=0):
    """n pairs judged in both orders: the first `right` right in both; `always_a` picks slot A; `fail` unparsed."""
    out = []
    for i in range(n):
        for pas, order in ((0, (0, 1)), (1, (1, 0))):
            if i < fail:
                out.append(line(i, pas, ranking=None, order=order, parse_error="no_verdict"))
            elif always_a:
                out.append(line(i, pas, ranking=(0, 1), order=order))
            else:
                good = i < right
                out.append(line(i, pas, ranking=order if good else order[::-1], order=order))
    return out


def test_per_item_metrics_follow_their_definitions():
    preds = judge(4, right=2, fail=1)
    assert lessons.per_item(preds, "parse_failure_rate")[("LongQA", "0")] == 1.0
    acc = lessons.per_item(preds, "two_order_accuracy")
    assert acc[("LongQA", "1")] == 1.0 and acc[("LongQA", "3")] == 0.0 and acc[("LongQA", "0")] == 0.0
    assert lessons.per_item(preds, "consistent_accuracy")[("LongQA", "1")] == 1.0
    bias = lessons.per_item(judge(3, right=0, always_a=True), "bias_rate")
    assert set(bias.values()) == {1.0}  # slot A wins both passes: the verdict followed the position
    assert ("LongQA", "0") not in lessons.per_item(preds, "bias_rate")  # not parsed in both passes: left out
    with pytest.raises(ValueError, match="unknown lesson metric"):
        lessons.per_item(preds, "accuracy")


def test_filter_keeps_only_matching_lines():
    preds = judge(3, right=3) + [dict(p, id="x" + p["id"], ctx_length_for_length="8k") for p in judge(3, right=0)]
    assert lessons.per_item(preds, "two_order_accuracy", {"ctx_length_for_length": "8k"}) == {
        ("LongQA", "x0"): 0.0, ("LongQA", "x1"): 0.0, ("LongQA", "x2"): 0.0}


def test_a_real_improvement_holds_and_noise_does_not():
    before, after = judge(60, right=30), judge(60, right=60)
    m = lessons.measure(before, after, "two_order_accuracy")
    assert m["paired"] and m["n_items"] == 60 and m["before_value"] == 0.5 and m["after_value"] == 1.0
    assert m["diff_ci95"][0] > 0.3
    assert lessons.holds(lessons.RULES["scalar_rm_learns"], m)
    flat = lessons.measure(before, judge(60, right=32), "two_order_accuracy")
    assert not lessons.holds(lessons.RULES["scalar_rm_learns"], flat)  # +0.03: interval spans 0, change < 0.20
    few = lessons.measure(judge(20, right=10), judge(20, right=20), "two_order_accuracy")
    assert not lessons.holds(lessons.RULES["scalar_rm_learns"], few)  # too few items


def test_unpaired_when_items_differ(tmp_path):
    short = judge(40, right=38)
    long = [dict(p, id="L" + p["id"]) for p in judge(40, right=10)]
    m = lessons.measure(short, long, "two_order_accuracy")
    assert not m["paired"] and m["diff_ci95"][1] < 0
    assert lessons.holds(lessons.RULES["length_decline"], m)


def test_lesson_entry_is_relative_and_computed(tmp_path):
    for name, preds in (("a", judge(50, right=0, fail=50)), ("b", judge(50, right=25))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    e = lessons.lesson("format_fixed", notebook="04", claim="Stage I fixes the format", metric="parse_failure_rate",
                       root=tmp_path, before="a/predictions.jsonl", after=tmp_path / "b" / "predictions.jsonl")
    assert e["before"]["predictions"] == "a/predictions.jsonl" and e["after"]["predictions"] == "b/predictions.jsonl"
    assert e["before_value"] == 1.0 and e["after_value"] == 0.0 and e["holds"] is True


def test_narration_says_whether_and_why(tmp_path):
    from longrm_utils.steps import lessons as steps_lessons

    for name, preds in (("a", judge(20, right=10)), ("b", judge(20, right=11)), ("c", judge(70, right=20)),
                        ("d", judge(70, right=70))):
        (tmp_path / "judges" / name).mkdir(parents=True)
        (tmp_path / "judges" / name / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    weak = steps_lessons.record(tmp_path, "scalar_rm_learns", notebook="06", claim="It learns.",
                                metric="two_order_accuracy", before=steps_lessons.first_judge(tmp_path, ["x", "a"]),
                                after="judges/b/predictions.jsonl")
    text = steps_lessons.markdown(weak)
    assert "does not hold on this run" in text and "only 20 items were measured; the rule asks for at least 60" in text
    assert "includes 0" in text and "0.50 → 0.55 on 20 items" in text
    strong = steps_lessons.record(tmp_path, "scalar_rm_learns", notebook="06", claim="It learns.",
                                  metric="two_order_accuracy", before="judges/c/predictions.jsonl",
                                  after="judges/d/predictions.jsonl")
    assert "**It holds on this run.**" in steps_lessons.markdown(strong)
    stored = json.loads((tmp_path / "lessons.json").read_text())["lessons"]
    assert [e["id"] for e in stored] == ["scalar_rm_learns"] and stored[0]["holds"] is True  # replaced, not added
    missing = steps_lessons.record(tmp_path, "bias_reduced", notebook="05", claim="Less bias.", metric="bias_rate",
                                   before=steps_lessons.first_judge(tmp_path, ["nope"]), after="judges/d/predictions.jsonl")
    assert "Not measured on this run" in steps_lessons.markdown(missing)


def test_course_summary_marks_expected_lessons(tmp_path):
    """summary.md / summary.json list every recorded lesson and each lesson the profile expects,
    with "not measured" for an expected one that no notebook recorded."""
    from longrm_utils import course
    from longrm_utils.steps import lessons as steps_lessons

    for name, preds in (("c", judge(70, right=20)), ("d", judge(70, right=70))):
        (tmp_path / "judges" / name).mkdir(parents=True)
        (tmp_path / "judges" / name / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    steps_lessons.record(tmp_path, "scalar_rm_learns", notebook="06", claim="It learns.", metric="two_order_accuracy",
                         before="judges/c/predictions.jsonl", after="judges/d/predictions.jsonl")
    course._write_summary(tmp_path, "cpu", {}, ["scalar_rm_learns", "format_fixed"])
    rows = {r["id"]: r for r in json.loads((tmp_path / "summary.json").read_text())["lessons"]}
    assert rows["scalar_rm_learns"]["holds"] and rows["scalar_rm_learns"]["expected"]
    assert not rows["format_fixed"]["recorded"] and not rows["format_fixed"]["holds"]
    md = (tmp_path / "summary.md").read_text()
    assert "| scalar_rm_learns | 06 | two_order_accuracy | 0.286 -> 1.000 |" in md and "yes (expected)" in md
    assert "| format_fixed |  |  | not measured |" in md and "**no** (expected)" in md


def test_profile_lessons_must_be_a_list_of_ids(tmp_path):
    from longrm_utils.course import ProfileError, load_profile

    p = tmp_path / "bad.yaml"
    p.write_text("lessons: format_fixed\n")
    with pytest.raises(ProfileError, match="'lessons' is a list of lesson ids"):
        load_profile(str(p))


def test_a_comparison_without_a_rule_says_which_way_it_went(tmp_path):
    """Notebook 06's short-set sentence: measured like a lesson, worded by its interval."""
    from longrm_utils.steps import lessons as steps_lessons

    for name, preds in (("hi", judge(70, right=50)), ("lo", judge(70, right=20)), ("same", judge(70, right=49))):
        (tmp_path / "judges" / name).mkdir(parents=True)
        (tmp_path / "judges" / name / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    rel = "judges/{}/predictions.jsonl".format
    fell = steps_lessons.comparison(tmp_path, "the short set", metric="two_order_accuracy", before=rel("hi"),
                                    after=rel("lo"))
    assert "0.71 → 0.29 on 70 items" in fell and fell.endswith("the interval excludes 0: it fell.")
    flat = steps_lessons.comparison(tmp_path, "the short set", metric="two_order_accuracy", before=rel("hi"),
                                    after=rel("same"))
    assert flat.endswith("the interval includes 0: no measurable change.")
    assert "not measured" in steps_lessons.comparison(tmp_path, "x", metric="two_order_accuracy", before=None,
                                                      after=rel("lo"))


def test_a_lesson_this_run_skipped_comes_from_the_committed_run_and_says_so(tmp_path, monkeypatch):
    """Notebook 06 on `cpu` does not measure the length lessons; it shows the committed `cpu-real`
    entry, labelled as not this run's, or says that there is none."""
    from longrm_utils.steps import lessons as steps_lessons

    for name, preds in (("short", judge(40, right=38)), ("long", judge(40, right=24))):
        (tmp_path / "run" / "judges" / name).mkdir(parents=True)
        (tmp_path / "run" / "judges" / name / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    kw = dict(notebook="06", claim="It declines.", metric="two_order_accuracy", before="judges/short/predictions.jsonl",
              after="judges/long/predictions.jsonl")
    measured = steps_lessons.record_or_committed(tmp_path / "run", "length_decline", measured=True, **kw)
    assert measured["before_value"] == 0.95 and measured["after_value"] == 0.6 and measured["holds"] is True
    monkeypatch.setattr(steps_lessons, "COMMITTED_RESULTS", tmp_path / "results")
    absent = steps_lessons.record_or_committed(tmp_path / "other", "length_decline", measured=False, **kw)
    assert "no committed `cpu-real` run has it" in absent and not (tmp_path / "other").exists()
    (tmp_path / "results" / "cpu-real").mkdir(parents=True)
    (tmp_path / "results" / "cpu-real" / "lessons.json").write_text((tmp_path / "run" / "lessons.json").read_text())
    shown = steps_lessons.record_or_committed(tmp_path / "other", "length_decline", measured=False, **kw)
    assert shown.startswith("*Not measured on this run; this is the committed `cpu-real` run's entry")
    assert "Measured on the committed `cpu-real` run: two-order accuracy 0.95 → 0.60 on 40 items" in shown
    assert "It holds on the committed `cpu-real` run." in shown and "holds on this run" not in shown


@pytest.mark.parametrize("folder", ["", "cpu-real"])
def test_committed_runs_lessons_remeasure_from_their_predictions(folder):
    """docs/results (cpu) and docs/results/cpu-real: every committed entry equals a fresh measurement of
    the predictions it cites, and the lessons each run is cited for hold there (the notebooks show
    cpu-real's length_decline on `cpu`)."""
    from longrm_utils.constants import REPO_ROOT

    root = REPO_ROOT / "docs" / "results" / folder
    entries = {e["id"]: e for e in json.loads((root / "lessons.json").read_text())["lessons"]}
    for e in entries.values():
        m = lessons.remeasure(e, root)
        assert (e["before_value"], e["after_value"]) == pytest.approx((m["before_value"], m["after_value"]), abs=1e-4), e["id"]
        assert e["holds"] == m["holds"], e["id"]
    expected = {"": ["format_fixed", "scalar_rm_learns"], "cpu-real": ["scalar_rm_learns", "length_decline"]}[folder]
    assert all(entries[i]["holds"] for i in expected)
