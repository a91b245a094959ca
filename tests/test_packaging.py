"""The one dependency list (pyproject) and the conda route stay in step; the two README commands exist."""
import re
import tomllib

import pytest
import yaml

from longrm_utils.constants import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_environment_yml_in_step_with_pyproject():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    py = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert py, "environment.yml pins no python"
    ver = py[0].split("=")[-1]
    req = _pyproject()["project"]["requires-python"]
    lo = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", req).group(1).split("."))
    assert tuple(int(x) for x in ver.split(".")) >= lo
    pip = [d for d in deps if isinstance(d, dict) and "pip" in d][0]["pip"]
    # The conda route installs exactly the project with its dev extra: no second dependency list.
    assert pip == ["-e .[dev]"], pip
    text = (REPO_ROOT / "environment.yml").read_text()
    assert "python -m longrm_utils setup" in text, "environment.yml must name the same setup step as the Makefile"
    assert "longrm_utils setup" in (REPO_ROOT / "Makefile").read_text()


def test_pins_and_extras():
    proj = _pyproject()["project"]
    deps = proj["dependencies"]
    assert "torch==2.13.0" in deps
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]
    assert {"dev", "gpu", "multigpu"} <= set(proj["optional-dependencies"])
    assert "vllm" not in proj["optional-dependencies"]  # does not resolve with the pins: served instead
    assert not any(d.startswith("flash-attn") for d in deps), "flash-attn must stay an optional extra"


def test_readme_first_commands_and_ci():
    lines = [ln.strip() for ln in (REPO_ROOT / "README.md").read_text().splitlines() if ln.strip()]
    first = "\n".join(lines[:15])
    assert "make course" in first and "make test" in first
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must run the README's test command unchanged"
    mk = (REPO_ROOT / "Makefile").read_text()
    assert "HF_HUB_OFFLINE" in mk


def test_cli_version_plain_help_and_one_boolean_style():
    import re
    import subprocess
    import sys

    pkg = REPO_ROOT / "longrm_utils"
    out = subprocess.run([sys.executable, "-m", "longrm_utils", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and re.fullmatch(r"longrm \d+\.\d+\.\d+\n", out.stdout)
    helptext = subprocess.run([sys.executable, "-m", "longrm_utils", "judge", "--help"], capture_output=True,
                              text=True).stdout
    assert helptext.startswith("usage: longrm judge") and "``" not in helptext and ":func:" not in helptext
    assert "--shared-prefix, --no-shared-prefix" in helptext and "--quiet, --no-quiet" in helptext
    offenders = [f"{p.relative_to(pkg)}:{i}" for p in pkg.rglob("*.py")
                 for i, ln in enumerate(p.read_text().splitlines(), 1) if re.search(r"store_(true|false)", ln)]
    assert not offenders, f"booleans go through cli.add_flag (--flag/--no-flag): {offenders}"


@pytest.mark.slow
def test_a_wheel_install_runs_the_first_notebooks_outside_the_checkout(tmp_path):
    """Build the wheel, install it (no dependencies: they are this environment's) into a folder of its
    own, and run ``course --profile cpu --only 00,01`` from an unrelated directory: the profiles,
    notebooks and data come from the wheel, the run directory lands under the working directory."""
    import json
    import os
    import subprocess
    import sys

    dist, target, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO_ROOT),
                    "-w", str(dist)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("longrm_course-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run([sys.executable, "-c", "import longrm_utils.constants as c; print(c.REPO_ROOT, c.IN_CHECKOUT)"],
                           capture_output=True, text=True, env=env, cwd=work, check=True).stdout.split()
    assert where == [str(target / "longrm_utils" / "_course"), "False"]
    shipped = target / "longrm_utils" / "_course" / "docs" / "results"  # committed lessons, for notebooks that show them
    assert (shipped / "cpu-real" / "lessons.json").is_file() and not list(shipped.rglob("*.html"))
    res = subprocess.run([sys.executable, "-m", "longrm_utils", "course", "--profile", "cpu", "--only", "00,01"],
                         capture_output=True, text=True, env=env, cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    run = work / "runs" / "cpu"
    summary = json.loads((run / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["ok", "ok"]
    assert (run / "bench" / "short.jsonl").exists()
    assert json.loads((run / "manifest.json").read_text())["git_commit"] is None  # not the checkout's code
