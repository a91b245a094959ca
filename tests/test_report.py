import json
import re

import nbformat
import pytest

from longrm_utils import report
from longrm_utils.constants import REPO_ROOT


def _fake_run(tmp_path):
    run = tmp_path / "run"
    (run / "analysis" / "figures").mkdir(parents=True)
    summary = {"profile": "cpu", "total_wall_s": 90.0, "notebooks": [
        {"notebook": "00_setup_and_tour", "status": "ok", "wall_s": 90.0, "budget_s": 60.0, "over_budget": True,
         "headline": {}}]}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "summary.md").write_text(f"# Course run\n\nTotal wall time: 1.5 min in {run}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# hello"),
                nbformat.v4.new_markdown_cell(f"wrote {run}/bench/short.jsonl; model in {REPO_ROOT}/models"),
                nbformat.v4.new_markdown_cell("/elsewhere/ci/.venv/lib/python3.11/site-packages/peft/x.py:3: warn")]
    nbformat.write(nb, str(run / "00_setup_and_tour.ipynb"))
    (run / "analysis" / "figures" / "acc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    return run, summary


def test_render_writes_pages_and_figures(tmp_path):
    run, _ = _fake_run(tmp_path)
    idx = report.render(run, tmp_path / "docs")
    text = idx.read_text()
    assert "00_setup_and_tour.html" in text and "analysis__figures__acc.png" in text
    assert (tmp_path / "docs" / "00_setup_and_tour.html").read_text().count("hello") >= 1
    assert (tmp_path / "docs" / "figures" / "analysis__figures__acc.png").exists()
    # no absolute path of this machine survives: the run directory reads runs/<profile>
    for page in (tmp_path / "docs").glob("*.*"):
        body = page.read_text()
        assert str(tmp_path) not in body and str(REPO_ROOT) not in body, page.name
    page = (tmp_path / "docs" / "00_setup_and_tour.html").read_text()
    assert "wrote runs/cpu/bench/short.jsonl; model in ./models" in page
    assert "site-packages/peft/x.py:3" in page and "/elsewhere" not in page  # another machine's library path
    assert "1.5 min in runs/cpu" in (tmp_path / "docs" / "summary.md").read_text()


def test_render_copies_the_lessons_and_the_predictions_they_cite(tmp_path):
    """A committed run (docs/results/cpu-real) carries lessons.json and the prediction files its
    entries name, at the same relative paths, so each lesson can be re-measured from the repo."""
    from longrm_utils.evaluate import lessons

    run, _ = _fake_run(tmp_path)
    lines = lambda right: "".join(json.dumps({"task": "LongQA", "id": str(i), "tasktype": "PairWise", "pass": 0, "raw": None,  # noqa: E731
                                              "subtype": "same", "ctx_length_for_length": "short",
                                              "order": [0, 1], "ranking": [0, 1] if i < right else [1, 0],
                                              "parse_error": None, "score": float(i < right)}) + "\n"
                                  for i in range(40))
    for jid, right in (("short", 38), ("long", 20), ("unused", 0)):
        (run / "judges" / jid).mkdir(parents=True)
        (run / "judges" / jid / "predictions.jsonl").write_text(lines(right))
    entry = lessons.lesson("length_decline", notebook="06", claim="c", metric="two_order_accuracy", root=run,
                           before="judges/short/predictions.jsonl", after="judges/long/predictions.jsonl")
    (run / "lessons.json").write_text(json.dumps({"lessons": [entry]}))
    idx = report.render(run, tmp_path / "docs", html=False)
    out = tmp_path / "docs"
    copied = json.loads((out / "lessons.json").read_text())["lessons"][0]
    again = lessons.lesson("length_decline", notebook="06", claim="c", metric="two_order_accuracy", root=out,
                           before=copied["before"]["predictions"], after=copied["after"]["predictions"])
    assert again["before_value"] == entry["before_value"] == 0.95 and again["holds"] == entry["holds"]
    assert not (out / "judges" / "unused").exists() and "2 prediction files" in idx.read_text()


SCRATCH = re.compile(r"(?<![\w.~$])/(?:tmp|work|root|home|Users|var/folders)/|pytest-of-|\.\./shared/")


def test_docs_and_readme_name_no_absolute_scratch_path():
    files = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md")),
             *sorted((REPO_ROOT / "docs").rglob("*.html"))]
    hits = [f"{f.relative_to(REPO_ROOT)}:{i}: {m.group(0)}" for f in files
            for i, ln in enumerate(f.read_text(errors="replace").splitlines(), 1) for m in SCRATCH.finditer(ln)]
    assert not hits, hits[:10]


def test_render_needs_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        report.render(tmp_path, tmp_path / "docs")


def test_course_map_uses_measured_times(tmp_path):
    _, summary = _fake_run(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text((REPO_ROOT / "README.md").read_text())
    report.update_readme(summary, readme)
    row = [ln for ln in readme.read_text().splitlines() if ln.startswith("| 00 |")][0]
    assert "1.5 min (over budget)" in row
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="course-map"):
        report.update_readme(summary, readme)
