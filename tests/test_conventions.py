"""nbdev-style cheap checks: notebooks stripped, parameter cells, kernelspec, names, profiles."""
import json
import re

import pytest
import yaml

from longrm_utils import constants
from longrm_utils.course import check_parameters, load_profile, notebook_parameters, profiles, ProfileError
from longrm_utils.rundir import UnknownParameter

NBS = sorted(constants.NOTEBOOK_DIR.glob("*.ipynb"))


def test_notebooks_exist_and_follow_the_map():
    assert NBS, "no notebooks"
    for p in NBS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name), p.name
        assert p.stem in constants.NOTEBOOKS, f"{p.name} is not in constants.NOTEBOOKS"


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    tagged = [c for c in nb["cells"] if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    params = notebook_parameters(path.stem)
    for name in ("run_dir", "seed", "device"):
        assert name in params, f"{path.stem} lacks the standard parameter {name!r}"
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert md.lstrip().startswith("# "), "a notebook opens with a title"
    for heading in ("What you will learn", "Summary", "Exercises"):
        assert heading.lower() in md.lower(), f"{path.stem} lacks a {heading!r} section"


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebooks_call_verbs(path):
    """Logic lives in the package: no function defined in a notebook, no code cell over 15 lines
    (the parameters cell excepted), and the first code cell after it opens the run directory."""
    import ast

    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, c in enumerate(code):
        src = "".join(c["source"])
        if "parameters" in (c.get("metadata", {}).get("tags") or []):
            continue
        lines = src.strip().splitlines()
        assert len(lines) <= 15, f"{path.stem} code cell {i} has {len(lines)} lines: move the logic into longrm_utils"
        tree = ast.parse(src)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defs, f"{path.stem} code cell {i} defines {defs[0].name!r}: define it in longrm_utils"
    first = "".join(code[1]["source"])
    assert "RUN = rundir.run_dir(run_dir)" in first, f"{path.stem}: the first code cell opens the run directory"


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_every_parameter_is_visible_to_papermill(path):
    """papermill silently skips lines it can't parse (e.g. a comment holding '='); the runner would then
    reject a profile that sets that parameter. Every assignment in the cell must be inspectable."""
    import ast

    nb = json.loads(path.read_text())
    cell = [c for c in nb["cells"] if "parameters" in (c.get("metadata", {}).get("tags") or [])][0]
    names = {t.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert names == set(notebook_parameters(path.stem)), f"papermill can't see {names - set(notebook_parameters(path.stem))}"


@pytest.mark.parametrize("profile", profiles())
def test_profile_keys_and_types_match_notebooks(profile):
    _, raw = load_profile(profile)
    for stem in constants.NOTEBOOKS:
        nb = constants.NOTEBOOK_DIR / f"{stem}.ipynb"
        if not nb.exists():
            continue
        declared = notebook_parameters(stem)
        params = dict(raw.get("defaults") or {})
        params.update(raw.get(stem) or {})
        check_parameters(stem, params, declared)
        for k, v in params.items():
            default = declared[k]["default"]
            try:
                dv = eval(default, {}, {})  # literal defaults from the parameters cell
            except Exception:
                continue
            if dv is None or v is None:
                continue
            if isinstance(dv, bool) or isinstance(v, bool):
                assert isinstance(v, bool) == isinstance(dv, bool), f"{profile}:{stem}.{k}: {v!r} vs default {dv!r}"
            elif isinstance(dv, (int, float)):
                assert isinstance(v, (int, float)), f"{profile}:{stem}.{k}: {v!r} is not a number"
            elif isinstance(dv, str):
                assert isinstance(v, str), f"{profile}:{stem}.{k}: {v!r} is not a string"
            elif isinstance(dv, (list, dict)):
                assert isinstance(v, type(dv)), f"{profile}:{stem}.{k}: {v!r} is not a {type(dv).__name__}"


def test_unknown_profile_lists_existing():
    with pytest.raises(ProfileError, match="cpu"):
        load_profile("no-such-profile")


def test_unknown_parameter_names_it_and_the_notebook():
    stem = NBS[0].stem
    with pytest.raises(UnknownParameter, match=rf"{stem}.*bogus_param"):
        check_parameters(stem, {"bogus_param": 1})


def test_profiles_describe_hardware():
    for name in profiles():
        raw = yaml.safe_load((constants.PROFILE_DIR / f"{name}.yaml").read_text())
        assert "hardware" in raw and "description" in raw, name


@pytest.mark.parametrize("profile", [p for p in profiles() if p.startswith("cpu")])
def test_short_set_evaluations_reuse_earlier_judging(profile):
    """Base (02) -> Stage I (04) -> aligned (05) and base scalar (02) -> aligned scalar (06) are compared
    on the same short-set items, and a later notebook re-scores an earlier judging instead of judging
    the base again only when its items are among the earlier ones. Every notebook takes
    `judge.run.spread(short, n)`, so each later item set must be a subset of the earlier one."""
    from longrm_utils.bench import schema
    from longrm_utils.judge.run import spread

    _, raw = load_profile(profile)
    short = schema.read_jsonl(constants.DATA_DIR / "mini" / "short.jsonl")

    def ids(stem, key):
        params = {k: eval(v["default"], {}, {"true": True, "false": False, "null": None})
                  for k, v in notebook_parameters(stem).items() if k != "run_dir"}
        params.update(raw.get(stem) or {})
        return {r["id"] for r in spread(short, params[key])}

    base_gen, stage1 = ids("02_baseline_judging", "short_limit"), ids("04_stage1_long_sft", "short_eval_items")
    aligned = ids("05_stage2_align_generative_rm", "eval_items")
    base_rm, aligned_rm = ids("02_baseline_judging", "short_scalar_limit"), ids("06_stage2_align_scalar_rm", "eval_limit")
    assert stage1 == base_gen, "Stage I is judged on other items than its base (02)"
    assert aligned <= stage1, "the aligned judge's items are not all among Stage I's"
    assert aligned_rm <= base_rm, "the aligned RM's items are not all among the base RM's (02)"
