"""run_judge: output contract, determinism, resume after a kill, error items, the CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longrm_utils.bench import schema
from longrm_utils.constants import RESULT_COLUMNS
from longrm_utils.judge import backends, run, toy_records
from longrm_utils.contracts import BENCH_COPY, PRED_FIELDS
from longrm_utils.judge.run import run_judge

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(tmp_path):
    p = tmp_path / "bench.jsonl"
    schema.write_jsonl(toy_records(4, 3, context_words=80), p)
    return p


def lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_output_contract_generative(bench, tmp_path):
    m = run_judge("tiny", kind="generative", bench=bench, out_dir=tmp_path / "g", max_new_tokens=8,
                  progress=False, n_boot=20)
    preds = lines(tmp_path / "g" / "predictions.jsonl")
    assert len(preds) == 14 and all(tuple(p) == PRED_FIELDS for p in preds)
    assert [(p["id"], p["pass"]) for p in preds] == [(f"toy-{i:03d}", k) for i in range(7) for k in (0, 1)]
    for a, b in zip(preds[::2], preds[1::2]):
        assert b["order"] == a["order"][::-1] and sorted(a["order"]) == list(range(len(a["order"])))
    assert not any(k.endswith("_s") or "time" in k for p in preds for k in p)  # no timings
    tim = lines(tmp_path / "g" / "timings.jsonl")
    assert [(t["id"], t["pass"]) for t in tim] == [(p["id"], p["pass"]) for p in preds]
    header = (tmp_path / "g" / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == list(RESULT_COLUMNS)
    assert m["n_items"] == 7 and "acc_consistent" in m["overall"] and m["run"]["resolved"]["max_new_tokens"] == 8


def test_generative_batches_by_default_and_one_at_a_time_on_request(bench, tmp_path):
    """An HF generative judge batches items unless --batch-size 1; the setting is recorded, a resume
    under the other one is refused, and both write the same verdicts (log-probabilities to rounding)."""
    kw = dict(kind="generative", bench=bench, max_new_tokens=6, progress=False, n_boot=0)
    m = run_judge("tiny", out_dir=tmp_path / "b", **kw)
    one = run_judge("tiny", out_dir=tmp_path / "o", batch_size=1, **kw)
    assert m["run"]["resolved"]["batch_size"] == run.GEN_BATCH_ITEMS and one["run"]["resolved"]["batch_size"] == 1
    assert "batch_rows" in lines(tmp_path / "b" / "timings.jsonl")[0]
    for x, y in zip(lines(tmp_path / "b" / "predictions.jsonl"), lines(tmp_path / "o" / "predictions.jsonl")):
        assert (x["raw"], x["ranking"], x["score"]) == (y["raw"], y["ranking"], y["score"])
        assert x["slot_scores"] == (None if y["slot_scores"] is None else pytest.approx(y["slot_scores"], abs=1e-4))
    with pytest.raises(Exception, match="batch_size"):
        run_judge("tiny", out_dir=tmp_path / "b", batch_size=1, **kw)


def test_cpu_caps_new_tokens():
    assert run.resolve_max_new_tokens(None, "cpu") == 64
    assert run.resolve_max_new_tokens(500, "cpu") == 64
    assert run.resolve_max_new_tokens(None, "cuda") == 2048


def test_orders_are_seeded_per_item_and_independent_of_limit(bench, tmp_path):
    a = run_judge("random", kind="heuristic", bench=bench, out_dir=tmp_path / "a", progress=False, n_boot=0)
    b = run_judge("random", kind="heuristic", bench=bench, out_dir=tmp_path / "b", limit=3, orders=1,
                  progress=False, n_boot=0)
    pa, pb = lines(tmp_path / "a" / "predictions.jsonl"), lines(tmp_path / "b" / "predictions.jsonl")
    assert [p["order"] for p in pb] == [p["order"] for p in pa if p["pass"] == 0][:3]
    assert b["passes"] == [0] and a["passes"] == [0, 1]
    run_judge("random", kind="heuristic", bench=bench, out_dir=tmp_path / "c", order_seed=7, progress=False,
              n_boot=0)
    assert [p["order"] for p in lines(tmp_path / "c" / "predictions.jsonl")] != [p["order"] for p in pa]


@pytest.mark.parametrize("judge,kind", [("tiny", "generative"), ("tiny-rm", "scalar"), ("tiny", "pointwise")])
def test_byte_identical_reruns(bench, tmp_path, judge, kind):
    for d in ("r1", "r2"):
        run_judge(judge, kind=kind, bench=bench, out_dir=tmp_path / d, max_new_tokens=16, progress=False, n_boot=0)
    assert (tmp_path / "r1" / "predictions.jsonl").read_bytes() == (tmp_path / "r2" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "r1" / "results.csv").read_bytes() == (tmp_path / "r2" / "results.csv").read_bytes()


def test_error_items_are_recorded_and_the_run_goes_on(bench, tmp_path, monkeypatch):
    orig = backends.HeuristicJudge.judge_item

    def flaky(self, item, orders):
        if item.rec["id"] == "toy-002":
            raise MemoryError("simulated out of memory")
        return orig(self, item, orders)

    monkeypatch.setattr(backends.HeuristicJudge, "judge_item", flaky)
    m = run_judge("overlap", kind="heuristic", bench=bench, out_dir=tmp_path / "e", progress=False, n_boot=0)
    preds = lines(tmp_path / "e" / "predictions.jsonl")
    bad = [p for p in preds if p["id"] == "toy-002"]
    assert len(preds) == 14 and len(bad) == 2
    assert all(p["error"].startswith("MemoryError") and p["score"] == 0.0 and p["ranking"] is None for p in bad)
    assert m["overall"]["error_items"] == 1 and m["overall"]["parse_failures"] == 0


def test_other_configuration_in_same_folder_is_refused(bench, tmp_path):
    run_judge("longer", kind="heuristic", bench=bench, out_dir=tmp_path / "x", progress=False, n_boot=0)
    with pytest.raises(ValueError, match="holds predictions made with other settings"):
        run_judge("longer", kind="heuristic", bench=bench, out_dir=tmp_path / "x", orders=1, progress=False)
    # the same configuration again is a no-op resume
    before = (tmp_path / "x" / "predictions.jsonl").read_bytes()
    run_judge("longer", kind="heuristic", bench=bench, out_dir=tmp_path / "x", progress=False, n_boot=0)
    assert (tmp_path / "x" / "predictions.jsonl").read_bytes() == before


def test_bad_arguments(bench, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        run_judge("tiny", kind="oracle", bench=bench, out_dir=tmp_path / "k")
    with pytest.raises(ValueError, match="heuristic"):
        run_judge("tiny", kind="heuristic", bench=bench, out_dir=tmp_path / "k")
    with pytest.raises(ValueError, match="loaded as a generative"):
        run_judge("tiny", kind="scalar", bench=bench, out_dir=tmp_path / "k",
                  loaded=__import__("longrm_utils.models", fromlist=["load"]).load("tiny", device="cpu"))


def test_prompt_file(bench, tmp_path):
    pf = tmp_path / "p.yaml"
    pf.write_text("pairwise: 'TASK {task} RESP {responses} say [[A]] or [[B]]'\n")
    run_judge("tiny", kind="generative", bench=bench, out_dir=tmp_path / "pf", prompt_file=pf, limit=1,
              max_new_tokens=2, progress=False, n_boot=0)
    cfg = json.loads((tmp_path / "pf" / "run_config.json").read_text())
    assert cfg["args"]["prompts"] == str(pf)
    pf.write_text("pairwise: 'no placeholders {foo}'\n")
    with pytest.raises(ValueError, match="unknown placeholder"):
        run_judge("tiny", kind="generative", bench=bench, out_dir=tmp_path / "pf2", prompt_file=pf)


def _cli(bench, out):
    return [sys.executable, "-m", "longrm_utils", "judge", "--model", "tiny", "--kind", "generative",
            "--bench", str(bench), "--out", str(out), "--max-new-tokens", "64"]


def test_resume_after_kill(tmp_path):
    big = tmp_path / "big.jsonl"
    schema.write_jsonl(toy_records(24, 12, context_words=400), big)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    ref = tmp_path / "ref"
    subprocess.run(_cli(big, ref), check=True, env=env, cwd=REPO, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(big, killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pred = killed / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not pred.exists() or pred.read_text().count("\n") < 6):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = pred.read_text().count("\n")
    assert 6 <= n_before < 72, "the run must be killed part-way for this test to mean anything"
    with open(pred, "a") as f:  # a torn line, as if killed in the middle of a write
        f.write('{"task": "LongQA", "id": "toy-0')
    subprocess.run(_cli(big, killed), check=True, env=env, cwd=REPO, capture_output=True)
    assert pred.read_bytes() == (ref / "predictions.jsonl").read_bytes()
    assert (killed / "results.csv").read_bytes() == (ref / "results.csv").read_bytes()
    tim = lines(killed / "timings.jsonl")
    assert len(tim) == 72 and len({(t["id"], t["pass"]) for t in tim}) == 72


def test_cli_on_shipped_mini(tmp_path):
    mini = REPO / "data" / "mini" / "mini.jsonl"
    if not mini.exists():
        pytest.skip("data/mini/mini.jsonl not built yet (notebook 01)")
    from longrm_utils.__main__ import main

    assert main(["judge", "--model", "overlap", "--kind", "heuristic", "--bench", str(mini),
                 "--out", str(tmp_path / "m")]) == 0
    assert main(["score", "--predictions", str(tmp_path / "m" / "predictions.jsonl"), "--out",
                 str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "results.csv").read_bytes() == (tmp_path / "m" / "results.csv").read_bytes()


def test_spread_keeps_file_order_and_covers_the_file():
    recs = [{"task": t, "id": str(i)} for t in ("A", "B", "C") for i in range(5)]
    s = run.spread(recs, 6)
    assert len(s) == 6 and {r["task"] for r in s} == {"A", "B", "C"}
    assert [recs.index(r) for r in s] == sorted(recs.index(r) for r in s)
    assert run.spread(recs, None) == recs and run.spread(recs, 99) == recs


def test_changed_benchmark_content_is_not_resumed(bench, tmp_path):
    run_judge("overlap", kind="heuristic", bench=bench, out_dir=tmp_path / "c", progress=False, n_boot=0)
    recs = schema.read_jsonl(bench)
    recs[0]["chosen"] = recs[0]["chosen"] + " (edited)"
    schema.write_jsonl(recs, bench)
    with pytest.raises(ValueError, match=r"other settings \(items: .* -> .*\); rerun with --overwrite"):
        run_judge("overlap", kind="heuristic", bench=bench, out_dir=tmp_path / "c", progress=False, n_boot=0)


def test_records_judged_in_memory_are_kept_beside_the_predictions(bench, tmp_path):
    """A judge folder made from an in-memory subset is self-contained: analysis finds its records."""
    from longrm_utils.analysis import inputs as analysis

    recs = schema.read_jsonl(bench)[1:3]
    out = tmp_path / "j"
    run_judge("longer", kind="heuristic", bench=recs, out_dir=out)
    assert [(r["task"], r["id"]) for r in analysis.bench_of(out)] == [(r["task"], r["id"]) for r in recs]
    run_judge("longer", kind="heuristic", bench=bench, out_dir=tmp_path / "k")
    assert not (tmp_path / "k" / BENCH_COPY).exists()
    assert len(analysis.bench_of(tmp_path / "k")) == len(schema.read_jsonl(bench))


def test_a_retrained_in_memory_model_is_judged_again(bench, tmp_path):
    """Predictions of a model trained in the notebook (``loaded=``) are tied to its weights: the same
    weights resume, retrained weights replace the stale predictions instead of reusing them."""
    import torch

    from longrm_utils import models

    lo = models.add_lora(models.load("tiny-rm", kind="scalar", device="cpu", trainable=True), r=4)
    kw = dict(kind="scalar", bench=bench, out_dir=tmp_path / "s", loaded=lo, progress=False, n_boot=0)
    run_judge("tiny-rm", **kw)
    first = (tmp_path / "s" / "predictions.jsonl").read_text()
    fp = json.loads((tmp_path / "s" / "run_config.json").read_text())["args"]["weights"]
    assert fp == models.weights_fingerprint(lo.model)
    run_judge("tiny-rm", **kw)  # same weights: resumed, nothing judged again
    assert (tmp_path / "s" / "predictions.jsonl").read_text() == first
    with torch.no_grad():
        for n, p in lo.model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)  # "retrained"
    m = run_judge("tiny-rm", **kw)
    assert m["run"]["args"]["weights"] != fp and m["n_items"] == 7
    assert (tmp_path / "s" / "predictions.jsonl").read_text() != first
    assert len(lines(tmp_path / "s" / "predictions.jsonl")) == 14  # replaced, not appended
