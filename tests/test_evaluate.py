"""Evaluation across judges (notebook 07): RewardBench conversion, benchmark detection, roles,
lineages, leaderboard and Markdown, on small hand-made run directories (no model is loaded)."""
import json
import math
from pathlib import Path

import pytest

from longrm_utils.io import InputError
from longrm_utils import models, rundir
from longrm_utils.analysis.inputs import saved_judges
from longrm_utils.bench import schema
from longrm_utils.constants import DATA_DIR
from longrm_utils.contracts import item_score
from longrm_utils.evaluate import judges as ej
from longrm_utils.evaluate import plots as ep
from longrm_utils.evaluate import tables as et
from longrm_utils.judge import score

SAMPLE = DATA_DIR / "samples" / "rewardbench.jsonl"


def rows():
    return [json.loads(ln) for ln in SAMPLE.read_text().splitlines() if ln.strip()]


# --- from_rewardbench ---------------------------------------------------------------------------

def test_from_rewardbench_sample():
    src = rows()
    recs = schema.from_rewardbench(src, where=str(SAMPLE))
    assert len(recs) == len(src)
    for r, row in zip(recs, src):
        schema.validate_record(r)  # strict: our own records
        assert r["tasktype"] == "PairWise" and r["ctx_length_for_length"] == "short"
        assert schema.answers(r) == [row["chosen"], row["rejected"]]
        assert r["prompt_template"] == [{"role": "user", "content": row["prompt"]}]
        assert r["subtask"] == row["subset"] and r["id"] == f"rb-{row['id']}"
        assert r["meta"]["rewardbench"]["section"] == r["source"].split("/")[1]
    by_subset = {r["subtask"]: r for r in recs}
    assert by_subset["refusals-dangerous"]["task"] == "Safety"
    assert by_subset["math-prm"]["task"] == "Math" and by_subset["hep-python"]["task"] == "Code"
    assert by_subset["llmbar-natural"]["source"] == "reward-bench/Chat Hard/llmbar-natural"
    assert by_subset["some-new-subset"]["source"].startswith("reward-bench/Other/")
    # one model for both answers -> intra-model; otherwise a model pair; missing models are 'unknown'
    assert by_subset["mt-bench-easy"]["subtype"] == "same"
    assert by_subset["alpacaeval-easy"]["subtype"] == "model-x vs model-y"
    assert by_subset["some-new-subset"]["subtype"] == "unknown vs unknown"
    assert by_subset["alpacaeval-easy"]["length"] == len(src[0]["prompt"].split())


def test_from_rewardbench_errors_name_row_and_field():
    src = rows()
    bad = [dict(src[0]), {k: v for k, v in src[1].items() if k != "rejected"}]
    with pytest.raises(schema.SchemaError, match=r"x\.jsonl line 2, record 102, field 'rejected': missing"):
        schema.from_rewardbench(bad, where="x.jsonl")
    with pytest.raises(schema.SchemaError, match="field 'rejected'.*3 answers"):
        schema.from_rewardbench([{**src[0], "rejected": ["a", "b", "c"]}])
    assert schema.from_rewardbench([{**src[0], "chosen": ["only one"]}])[0]["chosen"] == "only one"
    with pytest.raises(schema.SchemaError, match="duplicate id"):
        schema.from_rewardbench([src[0], src[0]])
    with pytest.raises(schema.SchemaError, match="identical to chosen"):
        schema.from_rewardbench([{**src[0], "rejected": src[0]["chosen"]}])
    with pytest.raises(schema.SchemaError, match="field 'prompt'"):
        schema.from_rewardbench([{**src[0], "prompt": "  "}])
    no_id = schema.from_rewardbench([{k: v for k, v in r.items() if k != "id"} for r in src[:2]])
    assert [r["id"] for r in no_id] == ["rb-1", "rb-2"]


def test_rewardbench_judged_end_to_end(tmp_path):
    """Converted rows go through the real harness (a heuristic judge) and come back as a short check."""
    from longrm_utils.judge import run as jrun

    recs = schema.from_rewardbench(rows())
    jrun.run_judge("longer", kind="heuristic", bench=recs, out_dir=tmp_path / "rb", progress=False, n_boot=50)
    j = ej.load_judge(tmp_path / "rb")
    assert j["bench"] == "rewardbench"
    sc = et.short_check_frame({"rb": j}, n_boot=50)
    groups = dict(zip(sc["group"], sc["n items"]))
    assert groups == {"Chat": 2, "Chat Hard": 1, "Safety": 2, "Reasoning": 2, "Other": 1, "all": 8}
    allrow = sc[sc["group"] == "all"].iloc[0]
    assert allrow["value"] == pytest.approx(j["metrics"]["results"]["AVG."])
    # 'longer' picks the longer answer: right exactly where chosen is longer (ties aside)
    by_id = {p["id"]: p["score"] for p in j["preds"] if p["pass"] == 0}
    untied = [r for r in recs if len(r["chosen"]) != len(r["rejected"])]
    assert len(untied) == 6
    assert all(by_id[r["id"]] == float(len(r["chosen"]) > len(r["rejected"])) for r in untied)


# --- a hand-made run directory --------------------------------------------------------------------

def line(task, id_, bucket, pass_, right, source="longrm-gen/x"):
    order = [0, 1] if pass_ == 0 else [1, 0]
    ranking = list(order) if right else order[::-1]
    return {"task": task, "id": id_, "tasktype": "PairWise", "subtype": "same", "ctx_length_for_length": bucket,
            "source": source, "pass": pass_, "order": order, "raw": "", "ranking": ranking, "parse_error": None,
            "strict_error": None, "score": item_score(ranking, order), "truncated": False,
            "prompt_tokens": 10, "error": None}


def make_judge(rd: Path, jid: str, right: dict, *, judge: str, kind: str, bench: str = "<records>",
               register: bool = True, bucket: str = "short") -> Path:
    """A judge folder whose item (LongQA, id) is right in both passes when right[id] is true."""
    d = rd / "judges" / jid
    d.mkdir(parents=True)
    preds = [line("LongQA", i, bucket, p, ok) for i, ok in right.items() for p in (0, 1)]
    (d / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    (d / "run_config.json").write_text(json.dumps({"args": {"judge": judge, "judge_id": jid, "kind": kind,
                                                             "bench": bench}}))
    score.score_file(d / "predictions.jsonl", n_boot=100)
    if register:
        rundir.register_artifact(rd, f"judges/{jid}", d)
    return d


def make_model(rd: Path, mid: str, **meta) -> Path:
    d = rd / "models" / mid
    models.write_meta(d, **meta)
    rundir.register_artifact(rd, f"models/{mid}", d)
    return d


@pytest.fixture
def run(tmp_path):
    rd = tmp_path / "run"
    ids = [f"q{k}" for k in range(8)]
    # notebook 02: a heuristic and the base judges; the base generative judged items q0..q5 only
    make_judge(rd, "heuristic-random-short", {i: k % 2 == 0 for k, i in enumerate(ids)}, judge="random", kind="heuristic")
    make_judge(rd, "smollm2-135m-instruct-generative-short", {i: k < 2 for k, i in enumerate(ids[:6])},
               judge="smollm2-135m-instruct", kind="generative")
    make_judge(rd, "smollm2-135m-rm-scalar-short", {i: k < 4 for k, i in enumerate(ids)},
               judge="smollm2-135m-rm", kind="scalar")
    make_judge(rd, "tiny-generative", {"q0": False, "q1": False}, judge="tiny", kind="generative",
               bench="bench/mini", bucket="4k")
    # notebook 04 (SFT), 05 (aligned from the SFT model, recorded as init), 06 (BT-aligned scalar)
    sft = make_model(rd, "stage1-smollm2", base="smollm2-135m-instruct", kind="generative", method="lora",
                     stage="stage1-sft")
    make_judge(rd, "stage1-smollm2", {i: k < 5 for k, i in enumerate(ids)}, judge="stage1-smollm2", kind="generative")
    make_model(rd, "stage2-smollm2", base="smollm2-135m-instruct", kind="generative",
               method="stage2-generative-lora", init=str(sft))
    make_judge(rd, "stage2-smollm2", {i: k < 6 for k, i in enumerate(ids)}, judge="stage2-smollm2", kind="generative")
    bt = make_model(rd, "smollm2-135m-rm-stage2-bt", base="smollm2-135m-rm", kind="scalar", method="stage2-bt-lora")
    make_judge(rd, "smollm2-135m-rm-stage2-bt", {i: k < 7 for k, i in enumerate(ids)}, judge=str(bt), kind="scalar")
    # things the evaluation must skip or report: a CSV under judges/ and an unregistered judge folder
    (rd / "judges" / "baseline_table.csv").write_text("a,b\n1,2\n")
    rundir.register_artifact(rd, "judges/baseline_table", rd / "judges" / "baseline_table.csv")
    make_judge(rd, "stage1-smollm2-base", {i: False for i in ids}, judge="smollm2-135m-instruct", kind="generative",
               register=False)
    return rd


def load_run(rd):
    folders = saved_judges(rd)
    judges = {j: ej.load_judge(f, j) for j, f in folders.items()}
    metas = {k.split("/", 1)[1]: (v, models.read_meta(v)) for k, v in rundir.artifacts(rd).items()
             if k.startswith("models/")}
    return judges, metas


def test_unlisted_and_bench(run):
    half = run / "judges" / "interrupted"
    half.mkdir()
    (half / "predictions.jsonl").write_text(json.dumps(line("LongQA", "q0", "short", 0, True)) + "\n")
    skipped, unreg = ej.unlisted_judges(rundir.artifacts(run), run / "judges")
    assert list(skipped) == ["judges/baseline_table", "judges/interrupted (not registered)"]
    assert "not a judge folder" in skipped["judges/baseline_table"]
    assert "unfinished" in skipped["judges/interrupted (not registered)"]
    assert list(unreg) == ["stage1-smollm2-base"]
    judges, _ = load_run(run)
    assert "baseline_table" not in judges
    assert judges["tiny-generative"]["bench"] == "long"
    assert judges["stage2-smollm2"]["bench"] == "short"
    long_official = [line("LongQA", "1", "8k", 0, True, source="LongBench")]
    assert ej.judge_bench(long_official) == "official"
    assert ej.judge_bench([line("LongQA", "1", "8k", 0, True)], {"bench": "LCM-Lab/LongRewardBench"}) == "official"
    assert ej.judge_bench([line("LongQA", "1", "8k", 0, True), line("LongQA", "2", "short", 0, True)]) == "mixed"
    both = [line("LongQA", "1", "8k", 0, True), line("LongQA", "2", "8k", 0, True, source="LongBench")]
    assert ej.judge_bench(both) == "long+official"
    probe = [line("LongQA", "g1", "short", 0, True, source="longrm-gen/founders")]
    assert ej.judge_bench(probe) == "grounding"  # notebook 06's probe is not the short set
    assert ej.judge_bench([line("LongQA", "g1", "4k", 0, True, source="longrm-gen/founders")]) == "grounding-long"
    assert ej.judge_bench(probe + [line("LongQA", "2", "short", 0, True)]) == "short"
    with pytest.raises(ValueError):
        ej.judge_bench([])


def test_model_stage_from_meta():
    assert ej.model_stage({"stage": "stage1-sft", "method": "lora"}) == "sft"
    assert ej.model_stage({"method": "stage2-bt-lora"}) == "aligned"
    assert ej.model_stage({"method": "stage2-generative-full", "init": "x"}) == "aligned"
    assert ej.model_stage({"method": "lora"}) == "trained"


def test_roles_lineages_and_tables(run):
    judges, metas = load_run(run)
    roles = ej.judge_roles(judges, metas)
    assert roles["heuristic-random-short"]["stage"] == "heuristic"
    assert roles["smollm2-135m-rm-scalar-short"] == {"kind": "scalar", "stage": "base", "model": "smollm2-135m-rm",
                                                     "base": "smollm2-135m-rm", "notebook": "02_baseline_judging",
                                                     "released": False}
    assert roles["stage1-smollm2"]["stage"] == "sft" and roles["stage1-smollm2"]["notebook"] == "04_stage1_long_sft"
    assert roles["stage2-smollm2"]["notebook"] == "05_stage2_align_generative_rm"
    # the scalar judge names its model by folder path, not by id
    assert roles["smollm2-135m-rm-stage2-bt"]["model"] == "smollm2-135m-rm-stage2-bt"
    assert roles["smollm2-135m-rm-stage2-bt"]["notebook"] == "06_stage2_align_scalar_rm"
    assert all(c["status"] == "ok" for c in et.coverage(roles, judges))
    # notebook 04's own judging of the base (unregistered '<model>-base') is attributed to notebook 04
    extra = ej.load_judge(run / "judges" / "stage1-smollm2-base")
    r = ej.judge_roles({**judges, "stage1-smollm2-base": extra}, metas)["stage1-smollm2-base"]
    assert (r["stage"], r["model"], r["notebook"]) == ("base", "smollm2-135m-instruct", "04_stage1_long_sft")

    lins = {lin["kind"]: lin for lin in ej.discover_lineages(judges, roles, metas)}
    assert set(lins) == {"generative", "scalar"}
    g = lins["generative"]
    assert g["models"] == ["stage1-smollm2", "stage2-smollm2"]
    assert g["stages"] == {"base": "smollm2-135m-instruct-generative-short", "sft": "stage1-smollm2",
                           "aligned": "stage2-smollm2"}
    assert lins["scalar"]["stages"] == {"base": "smollm2-135m-rm-scalar-short", "sft": None,
                                        "aligned": "smollm2-135m-rm-stage2-bt"}

    t = et.lineage_table(list(lins.values()), judges, n_boot=100)
    gen = t[t["lineage"] == g["name"]].set_index("stage")
    # common items of the generative lineage: q0..q5 (the base judged only those)
    assert (gen["n common"] == 6).all()
    assert gen.loc["Base", "AVG."] == pytest.approx(100 * 2 / 6, abs=1e-3)
    assert gen.loc["After SFT", "AVG."] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert gen.loc["After alignment", "AVG."] == pytest.approx(100.0)
    assert gen.loc["After SFT", "AVG. (own items)"] == pytest.approx(100 * 5 / 8)
    assert gen.loc["Base", "lo"] <= gen.loc["Base", "AVG."] <= gen.loc["Base", "hi"]
    sc = t[t["lineage"] == lins["scalar"]["name"]].set_index("stage")
    assert math.isnan(sc.loc["After SFT", "AVG."]) and sc.loc["After alignment", "AVG."] == pytest.approx(100 * 7 / 8)

    wide = et.table1_view(t)
    ref = et.reference_table("headline")
    q = wide[(wide["source"] == "paper Table 1") & (wide["model"] == "Qwen3-8B")].iloc[0]
    want = ref[(ref["model"] == "Qwen3-8B") & (ref["stage"] == "aligned")]["AVG."].iloc[0]
    assert q["After alignment"] == pytest.approx(want)
    ours = wide[wide["model"] == g["name"]].iloc[0]
    assert ours["After SFT"] == pytest.approx(100 * 5 / 6, abs=1e-3) and ours["source"] == "this run"

    by_hand = ej.explicit_lineages([{"stages": {"base": "smollm2-135m-instruct-generative-short",
                                                   "aligned": "stage2-smollm2"}}], judges, roles)
    assert by_hand[0]["bench"] == "short" and by_hand[0]["kind"] == "generative"
    assert by_hand[0]["base_model"] == "smollm2-135m-instruct" and by_hand[0]["models"] == ["stage2-smollm2"]
    with pytest.raises(ValueError, match="'stages'"):
        ej.explicit_lineages([{"stages": {"final": "stage2-smollm2"}}], judges, roles)
    with pytest.raises(KeyError, match="nope"):
        ej.explicit_lineages([{"stages": {"aligned": "nope"}}], judges, roles)
    unjudged = {"name": "x", "stages": {"base": None, "sft": None, "aligned": None}}
    assert et.lineage_table([unjudged], judges).empty
    empty = et.lineage_table([], judges)
    assert empty.empty and "AVG." in empty.columns  # a run without trained models still has the columns
    # an explicit lineage naming a judge the run does not hold is an error naming it
    with pytest.raises(KeyError, match="nope"):
        et.lineage_table([{"name": "x", "stages": {"base": "nope"}}], judges)


def test_leaderboard_and_markdown(run):
    judges, metas = load_run(run)
    roles = ej.judge_roles(judges, metas)
    board = et.leaderboard(judges, roles, n_boot=100)
    assert set(board["benchmark"]) == {ej.BENCH_LABELS["short"], ej.BENCH_LABELS["long"]}
    short = board[board["benchmark"] == ej.BENCH_LABELS["short"]].set_index("judge")
    assert (short["n common"] == 6).all()   # the base generative judge saw 6 of the 8 items
    assert short.loc["stage2-smollm2", "AVG. (common)"] == pytest.approx(100.0)
    assert short.loc["stage2-smollm2", "AVG."] == pytest.approx(75.0)
    # sorted best first within a benchmark
    vals = short["AVG."].tolist()
    assert vals == sorted(vals, reverse=True) and short.index[0] == "smollm2-135m-rm-stage2-bt"
    md = et.leaderboard_markdown(board)
    assert md.count("\n## ") == 2 and "nan" not in md.lower()
    assert "All 6 judges share 6 items." in md
    assert "| stage2-smollm2 | generative | aligned | 8 | 75.0 |" in md


def test_markdown_table_cells():
    import pandas as pd

    df = pd.DataFrame({"a": ["x|y", "z"], "b": [1.234, float("nan")], "c": [None, 2]})
    md = et.markdown_table(df)
    assert md.splitlines()[0] == "| a | b | c |"
    assert md.splitlines()[2] == "| x\\|y | 1.2 |  |"
    assert md.splitlines()[3] == "| z |  | 2.0 |"   # a float column stays float; NaN is empty
    ints = pd.DataFrame({"n": pd.array([3, None], dtype="Int64"), "v": [1.0, 2.0]})
    assert et.markdown_table(ints, digits=2).splitlines()[2:] == ["| 3 | 1.00 |", "|  | 2.00 |"]


def test_group_frame_and_plot(run, tmp_path):
    judges, _ = load_run(run)
    fr = et.group_frame({k: judges[k] for k in ("stage1-smollm2", "stage2-smollm2")}, "by_task")
    r = fr.set_index("judge").loc["stage1-smollm2"]
    assert r["group"] == "LongQA" and r["n items"] == 8 and r["value"] == pytest.approx(62.5)
    assert r["lo"] <= r["value"] <= r["hi"]
    p = ep.plot_group_bars(fr, tmp_path / "f.png", title="t", chance=50)
    assert p.exists() and p.stat().st_size > 1000


def test_paper_comparison(run):
    judges, metas = load_run(run)
    d = run / "judges" / "longreward-qwen3-8b-generative-eval"
    make_judge(run, d.name, {"q0": True, "q1": False}, judge="longreward-qwen3-8b", kind="generative", bucket="8k")
    judges[d.name] = ej.load_judge(d)
    roles = ej.judge_roles(judges, metas)
    assert roles[d.name]["stage"] == "aligned" and roles[d.name]["released"]
    pc = et.paper_comparison(judges, roles).set_index("judge")
    assert list(pc.index) == [d.name]
    assert pc.loc[d.name, "AVG. (this run)"] == pytest.approx(50.0)
    ref = et.reference_table("headline")
    assert pc.loc[d.name, "AVG. (paper, 1,900 items)"] == pytest.approx(
        ref[(ref["model"] == "Qwen3-8B") & (ref["stage"] == "aligned")]["AVG."].iloc[0])


def test_load_rewardbench_local_and_offline(tmp_path, monkeypatch):
    assert schema.load_rewardbench(SAMPLE) == schema.from_rewardbench(rows(), where=str(SAMPLE))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SAMPLE.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad\.jsonl line 2.*not valid JSON"):
        schema.load_rewardbench(bad)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        schema.load_rewardbench("allenai/reward-bench")


def test_lineage_without_init_and_unjudged_model(run):
    judges, metas = load_run(run)
    # an aligned generative model without 'init' hangs on the only SFT model of its base (noted)
    folder, meta = metas["stage2-smollm2"]
    metas["stage2-smollm2"] = (folder, {k: v for k, v in meta.items() if k != "init"})
    # a trained model that nobody judged yields a lineage without judges, and a note
    metas["stage1-other"] = (run / "models" / "stage1-other", {"base": "tiny", "kind": "generative",
                                                                "stage": "stage1-sft"})
    roles = ej.judge_roles(judges, metas)
    lins = ej.discover_lineages(judges, roles, metas)
    gen = next(lin for lin in lins if lin["stages"]["aligned"] == "stage2-smollm2")
    assert gen["stages"]["sft"] == "stage1-smollm2"
    assert any("no 'init'" in n and "stage1-smollm2" in n for n in gen["notes"])
    other = next(lin for lin in lins if lin["models"] == ["stage1-other"])
    assert not any(other["stages"].values()) and "no saved judge" in other["notes"][0]


def test_calibration_table_and_reliability_figure(run, tmp_path):
    """A judge that says 0.9 for the slot it picks: right on 6 of 8 items in both passes. By hand:
    AUC = (36 wins + (12 + 12) / 2 ties) / 64 = 75%; ECE = 15% (each bin is 75% right at 0.9 / 0.1)."""
    d = run / "judges" / "stage2-smollm2"
    preds = [json.loads(x) for x in (d / "predictions.jsonl").read_text().splitlines()]
    for p in preds:
        p["pref_prob"] = 0.9 if p["ranking"][0] == 0 else 0.1
    (d / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    score.score_file(d / "predictions.jsonl", n_boot=100)
    judges, _ = load_run(run)
    fr = et.calibration_frame(judges)
    assert set(fr["judge"]) == {"stage2-smollm2"}  # the only judge with a probability
    r = fr[fr["group"] == "all"].iloc[0]
    assert r["n lines"] == 16 and r["AUC"] == pytest.approx(75.0) and r["ECE"] == pytest.approx(15.0)
    assert r["AUC lo"] <= r["AUC"] <= r["AUC hi"] and list(fr["group"]) == ["all", "short"]
    rows = et.reliability_rows(judges["stage2-smollm2"])
    assert [(x["n"], x["frequency"]) for x in rows] == [(8, 0.25), (8, 0.75)]
    p = ep.plot_reliability({"stage2-smollm2": rows}, tmp_path / "rel.png", title="t")
    assert p.exists() and p.stat().st_size > 1000
