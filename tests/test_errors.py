"""Bad input and wrong arguments: one line naming file, line, record and field (or the argument as
typed), a non-zero exit, and nothing half-written. The CLI runs in-process (a subprocess costs ~5 s)."""
import json
import math
import shutil

import pytest

from longrm_utils import course, rundir
from longrm_utils.__main__ import main
from longrm_utils.bench import schema
from longrm_utils.constants import DATA_DIR
from longrm_utils.judge import score

MINI = DATA_DIR / "mini" / "mini.jsonl"


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def judge(capsys, tmp_path, *extra, bench=MINI, out="j"):
    return run(capsys, "judge", "--model", "longer", "--kind", "heuristic", "--bench", str(bench),
               "--out", str(tmp_path / out), *extra)


@pytest.mark.parametrize("args, message", [
    (("--batch-size", "0"), "argument --batch-size: must be at least 1, got 0"),
    (("--max-new-tokens", "-3"), "argument --max-new-tokens: must be at least 1, got -3"),
    (("--limit", "-1"), "argument --limit: must be at least 1, got -1"),
    (("--max-input-tokens", "x"), "argument --max-input-tokens: expected a whole number, got 'x'"),
    (("--tasks", "Poetry"), "--tasks: unknown task(s) Poetry; tasks are LongQA, Summ"),
])
def test_bad_arguments_name_the_argument(capsys, tmp_path, args, message):
    code, line = judge(capsys, tmp_path, *args)
    assert code == 2 and line.startswith("longrm judge: error: ") and message in line, line
    assert not (tmp_path / "j").exists()  # nothing written


def test_bad_benchmark_files_name_file_and_line(capsys, tmp_path):
    missing = tmp_path / "none.jsonl"
    code, line = judge(capsys, tmp_path, bench=missing)
    assert code == 2 and str(missing) in line
    bad = tmp_path / "bad.jsonl"
    bad.write_text(MINI.read_text().splitlines()[0] + "\n\n{oops\n")
    code, line = judge(capsys, tmp_path, bench=bad)
    assert code == 2 and f"{bad} line 3: not valid JSON" in line
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"id": "caf\xe9"}\n')
    code, line = judge(capsys, tmp_path, bench=latin)
    assert code == 2 and f"{latin}: not UTF-8 text" in line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, line = judge(capsys, tmp_path, bench=empty)
    assert code == 2 and line.endswith(f"{empty}: holds no items")
    code, line = judge(capsys, tmp_path, "--tasks", "Math", bench=_only(tmp_path, "LongQA"))
    assert code == 2 and "--tasks: no item of task(s) Math; it holds LongQA" in line
    assert not (tmp_path / "j").exists()


def _only(tmp_path, task):
    p = tmp_path / f"{task}.jsonl"
    p.write_text("".join(ln + "\n" for ln in MINI.read_text().splitlines() if json.loads(ln)["task"] == task))
    return p


def test_nan_score_and_wrong_id_type_are_refused(tmp_path):
    recs = schema.read_jsonl(MINI)
    bon = dict(next(r for r in recs if r["tasktype"] == "BestOfN"))
    with pytest.raises(schema.SchemaError, match=r"line 4, record .*field 'candidates_score': must be a list of \d "
                                                 r"finite numbers"):
        schema.validate_record(dict(bon, candidates_score=[math.nan] * len(bon["candidates"])), file="x", line=4)
    with pytest.raises(schema.SchemaError, match="field 'id': must be a non-empty string or an integer"):
        schema.validate_record(dict(bon, id=1.5), file="x", line=1)


def test_near_duplicate_pairs_are_counted_not_refused(capsys, tmp_path):
    pair = dict(next(r for r in schema.read_jsonl(MINI) if r["tasktype"] == "PairWise"))
    pair["rejected"] = "  " + pair["chosen"].replace(" ", "  ")
    p = tmp_path / "near.jsonl"
    p.write_text(json.dumps(pair) + "\n")
    code, _ = judge(capsys, tmp_path, bench=p)
    assert code == 0
    main(["judge", "--model", "longer", "--kind", "heuristic", "--bench", str(p), "--out", str(tmp_path / "k")])
    assert "1 pair(s) whose chosen and rejected answers differ only in whitespace" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("score", 5.0, "field 'score': must be a number in [0, 1], got 5.0"),
    ("score", math.nan, "field 'score': must be a number in [0, 1], got nan"),
    ("tasktype", "Triple", "field 'tasktype': must be one of PairWise, BestOfN, got 'Triple'"),
    ("task", "Poetry", "field 'task': must be one of LongQA"),
    ("ctx_length_for_length", "3k", "field 'ctx_length_for_length': must be one of short, 4k"),
    ("order", [0, 0], "field 'order': must be a permutation"),
])
def test_score_refuses_bad_prediction_lines(capsys, tmp_path, field, value, message):
    from longrm_utils.judge.run import run_judge

    run_judge("longer", kind="heuristic", bench=MINI, out_dir=tmp_path / "j", limit=3, progress=False, n_boot=0)
    lines = (tmp_path / "j" / "predictions.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad[field] = value
    lines[2] = json.dumps(bad)
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 3"):
        score.score_file(p, tmp_path / "s")
    code, line = run(capsys, "score", "--predictions", str(p), "--out", str(tmp_path / "s2"))
    assert code == 2 and f"{p} line 3, record {bad['id']!r}, {message}" in line, line


def test_rerun_with_other_settings_is_refused_then_overwritten(capsys, tmp_path):
    assert judge(capsys, tmp_path, "--limit", "4")[0] == 0
    code, line = judge(capsys, tmp_path, "--limit", "5")
    assert code == 2 and "holds predictions made with other settings" in line and "limit: 4 -> 5" in line
    assert "--overwrite" in line
    assert judge(capsys, tmp_path, "--limit", "5", "--overwrite")[0] == 0
    assert len((tmp_path / "j" / "predictions.jsonl").read_text().splitlines()) == 10
    code, line = judge(capsys, tmp_path, "--limit", "5", "--orders", "1")
    assert code == 2 and "orders: 2 -> 1" in line


def test_retry_errors_judges_errored_items_again(capsys, tmp_path):
    assert judge(capsys, tmp_path, "--limit", "3")[0] == 0
    pred = tmp_path / "j" / "predictions.jsonl"
    lines = [json.loads(x) for x in pred.read_text().splitlines()]
    for p in lines[:2]:  # item 1 "ran out of memory" in both passes
        p.update(error="OutOfMemoryError: simulated", ranking=None, score=0.0)
    pred.write_text("".join(json.dumps(p) + "\n" for p in lines))
    code, line = judge(capsys, tmp_path, "--limit", "3")  # resumes; the errored item stays and is reported
    assert code == 1 and "1 item(s) raised while judging" in line and "rerun with --retry-errors" in line
    assert judge(capsys, tmp_path, "--limit", "3", "--retry-errors")[0] == 0
    again = [json.loads(x) for x in pred.read_text().splitlines()]
    assert len(again) == 6 and not any(p["error"] for p in again)


def test_window_is_checked_before_judging(capsys, tmp_path):
    code, line = run(capsys, "judge", "--model", "tiny", "--kind", "generative", "--bench", str(MINI), "--out",
                     str(tmp_path / "t"), "--limit", "1", "--max-input-tokens", "200000", "--device", "cpu")
    assert code == 2 and "--max-input-tokens 200000 plus 64 new tokens exceeds the window of tiny" in line, line


def test_build_refuses_zero_items_and_leaves_nothing(capsys, tmp_path):
    code, line = run(capsys, "build", "--out", str(tmp_path / "b"), "--items-per-cell", "0")
    assert code == 2 and "argument --items-per-cell: must be at least 1, got 0" in line
    assert not (tmp_path / "b").exists()


def test_course_errors(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {seed: 0\n02_baseline_judging: [\n")
    code, line = run(capsys, "course", "--profile", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and f"{bad} line" in line and "not valid YAML" in line
    code, line = run(capsys, "course", "--profile", "cpu", "--out", str(tmp_path / "r"), "--only", "03", "--from", "05")
    assert code == 2 and "matches no notebook" in line
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(Exception, match="holds no items"):
        (tmp_path / "e.jsonl").write_text("")
        main(["judge", "--model", "longer", "--kind", "heuristic", "--bench", str(tmp_path / "e.jsonl"),
              "--out", str(tmp_path / "j"), "--debug"])
    monkeypatch.setenv("LONGRM_DEBUG", "1")
    with pytest.raises(Exception, match="holds no items"):
        main(["judge", "--model", "longer", "--kind", "heuristic", "--bench", str(tmp_path / "e.jsonl"),
              "--out", str(tmp_path / "j")])


def test_injected_parameter_typos_are_refused():
    params = 'run_dir = None\nseed = 0\nitems_per_cell = 1  # items\n'
    rundir.check_injected(["", params, '# Parameters\nitems_per_cell = 2\nrun_dir = "/tmp/x"\n', "x = 1"])
    with pytest.raises(rundir.UnknownParameter, match="unknown parameter.*items_per_cel .*declares: items_per_cell"):
        rundir.check_injected(["", params, "# Parameters\nitems_per_cel = 2\n"])


@pytest.mark.slow
def test_papermill_typo_stops_the_notebook(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="items_per_cel"):
        pm.execute_notebook(str(course.notebook_path("01_build_long_rewardbench")), str(tmp_path / "o.ipynb"),
                            parameters={"run_dir": str(tmp_path / "r"), "items_per_cel": 2}, kernel_name="python3",
                            progress_bar=False)
    shutil.rmtree(tmp_path / "r", ignore_errors=True)
