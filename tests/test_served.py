"""Judging through an OpenAI-compatible server: a real HTTP server (our own ``longrm serve`` in a
subprocess, since no third-party server installs offline), the same prompts, parsing and files as
the HF backend, retries on 5xx, per-item errors on refusals; and the progress bar of a CLI run."""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from longrm_utils import models
from longrm_utils.contracts import PREDICTIONS, TIMINGS
from longrm_utils.io import read_jsonl
from longrm_utils.judge import prompts, run, served

ROOT = Path(__file__).resolve().parents[1]
SHORT = ROOT / "data" / "mini" / "short.jsonl"


@pytest.fixture(scope="module")
def server():
    """``longrm serve --model tiny --port 0`` as a user would start it; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "longrm_utils", "serve", "--model", "tiny", "--port", "0",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving tiny at http://"), (line, proc.stderr.read() if proc.poll() else "")
        yield line.split(" at ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_backend_judges_the_short_set_like_the_hf_backend(server, tmp_path):
    out = tmp_path / "served"
    rc = run.cli(["--model", "tiny", "--kind", "generative", "--backend", "openai", "--base-url", server,
                  "--bench", str(SHORT), "--out", str(out), "--limit", "2", "--max-new-tokens", "12"])
    assert rc == 0
    preds = read_jsonl(out / PREDICTIONS)
    assert len(preds) == 4 and not any(p["error"] for p in preds)
    ref = run.run_judge("tiny", kind="generative", bench=SHORT, out_dir=tmp_path / "hf", limit=2,
                        max_new_tokens=12, device="cpu", progress=False, n_boot=0)
    assert ref["n_items"] == 2
    hf = read_jsonl(tmp_path / "hf" / PREDICTIONS)
    # the same prompts, orders and greedy decoding: the same text, parse and score
    for a, b in zip(preds, hf):
        assert (a["id"], a["pass"], a["order"], a["raw"], a["ranking"], a["score"], a["prompt_tokens"]) == \
               (b["id"], b["pass"], b["order"], b["raw"], b["ranking"], b["score"], b["prompt_tokens"])
        assert a["pref_prob"] is None  # text only
    assert all(t["attempts"] == 1 for t in read_jsonl(out / TIMINGS))
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["args"]["base_url"] == server and cfg["resolved"]["backend"] == "openai"
    # a rerun resumes: nothing is sent again, the file is unchanged
    before = (out / PREDICTIONS).read_bytes()
    assert run.cli(["--model", "tiny", "--kind", "generative", "--backend", "openai", "--base-url", server,
                    "--bench", str(SHORT), "--out", str(out), "--limit", "2", "--max-new-tokens", "12"]) == 0
    assert (out / PREDICTIONS).read_bytes() == before


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 to every first request of a prompt, then a fixed verdict; 400 to a 'refuse' prompt."""

    seen: dict = {}

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = json.dumps(body["messages"])
        if "REFUSE" in key:
            code, obj = 400, {"error": {"message": "prompt too long"}}
        elif key not in self.seen:
            self.seen[key] = 1
            code, obj = 503, {"error": {"message": "busy"}}
        else:
            code, obj = 200, {"choices": [{"message": {"content": "Reasoning. [[A]]"}}],
                              "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_retries_on_5xx_and_records_a_refusal_per_item(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        recs = read_jsonl(SHORT)[:3]
        recs[2] = dict(recs[2], prompt_template=[{"role": "user", "content": "REFUSE " + recs[2]["prompt_template"][0]["content"]}])
        m = run.run_judge("remote-judge", kind="generative", bench=recs, out_dir=tmp_path / "o", backend="openai",
                          served_args={"base_url": url, "backoff_s": 0.01, "concurrency": 2},
                          max_new_tokens=8, progress=False, n_boot=0)
        preds = read_jsonl(tmp_path / "o" / PREDICTIONS)
        assert [p["id"] for p in preds] == [r["id"] for r in recs for _ in (0, 1)]  # file order kept
        assert all(t["attempts"] == 2 for t in read_jsonl(tmp_path / "o" / TIMINGS)[:4])
        assert [p["ranking"] for p in preds[:4]] == [[0, 1]] * 4  # "[[A]]" parsed as in the HF backend
        assert "HTTP 400" in preds[4]["error"] and m["overall"]["error_items"] == 1
    finally:
        srv.shutdown()


def test_openai_backend_refuses_bad_arguments(tmp_path):
    with pytest.raises(Exception, match="--base-url"):
        run.run_judge("x", kind="generative", bench=SHORT, out_dir=tmp_path / "a", backend="openai", limit=1)
    with pytest.raises(Exception, match="kind generative"):
        run.run_judge("x", kind="scalar", bench=SHORT, out_dir=tmp_path / "b", backend="openai", limit=1,
                      served_args={"base_url": "http://127.0.0.1:9/v1"})


def test_server_refuses_prompts_over_its_window(tiny):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), served._handler(tiny, "tiny", 300, threading.Lock()))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        judge = served.OpenAIChatJudge("tiny", base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1",
                                       templates=prompts.load_templates(),
                                       max_new_tokens=8, retries=0)
        with pytest.raises(served.ServedError, match="HTTP 400.*exceeds the window of 300"):
            judge.request([{"role": "user", "content": "word " * 400}])
        resp, attempts = judge.request([{"role": "user", "content": "hi"}])
        assert attempts == 1 and resp["usage"]["prompt_tokens"] == len(
            models.chat_ids(tiny.tokenizer, [{"role": "user", "content": "hi"}], tiny.spec))
    finally:
        srv.shutdown()


def test_a_four_item_cli_run_shows_a_progress_bar(tmp_path):
    cmd = [sys.executable, "-m", "longrm_utils", "judge", "--model", "tiny", "--kind", "generative",
           "--bench", str(SHORT), "--limit", "4", "--max-new-tokens", "4", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    shown = subprocess.run(cmd + ["--out", str(tmp_path / "a")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert "judge tiny-generative" in shown.stderr and "4/4" in shown.stderr
    quiet = subprocess.run(cmd + ["--out", str(tmp_path / "b"), "--quiet"], capture_output=True, text=True, env=env,
                           cwd=ROOT)
    assert quiet.returncode == 0 and "4/4" not in quiet.stderr
