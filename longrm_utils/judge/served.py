"""Judging with a served model: any OpenAI-compatible chat endpoint, and a minimal one of our own.

**Client** (:class:`OpenAIChatJudge`, ``judge --backend openai --base-url URL``). It works with a
vLLM or SGLang server, a llama.cpp server or a hosted API. Prompts, parsing, display orders,
resume and scoring are the same as for the HF backend; only the generation moves to the server:

* the key is read from an environment variable (``OPENAI_API_KEY`` by default), never recorded;
* ``concurrency`` requests are in flight at once: the run loop reads items ahead through
  :meth:`OpenAIChatJudge.judge_items` and still writes them in file order;
* each request has a timeout and is retried with exponential backoff on connection errors,
  timeouts, 429 and 5xx answers; a request that still fails (or a 4xx, such as a context-length
  refusal) is recorded as that item's error, and ``--retry-errors`` judges it again;
* the item's timings record the wall time, the attempts and the server's token counts.

The client cannot cut a prompt to a token budget without the server's tokenizer, so it sends the
whole prompt. A prompt longer than the server's window comes back as an HTTP 400, recorded per item.
Text is all a chat endpoint returns, so served judges carry no ``pref_prob`` (docs/contracts.md).

**Server** (:func:`serve`, ``longrm serve --model PRESET``). ``POST /v1/chat/completions`` and
``GET /v1/models`` in front of the HF backend, greedy, one request at a time. It lets a workshop
share one loaded judge among students, and it is what the tests judge against: a real HTTP server,
not a mock. Production serving belongs to vLLM or SGLang (see docs/serving.md).
"""
from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Iterator

from .. import models
from ..cli import ArgumentParser, positive_int
from ..runtime import get_logger
from . import prompts
from .backends import ItemView, PassResult, order_messages, verdict_result

log = get_logger("served")

RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
"""HTTP answers worth another attempt: timeouts, rate limits and server-side failures."""


class ServedError(RuntimeError):
    """A request that failed for good: the message names the status and the server's words."""


class OpenAIChatJudge:
    """Generative judging through ``{base_url}/chat/completions`` (greedy: temperature 0)."""

    kind = "generative"

    def __init__(self, model: str, *, base_url: str, templates: prompts.Templates, max_new_tokens: int,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4, timeout_s: float = 600.0,
                 retries: int = 4, backoff_s: float = 1.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https://, got {base_url!r}")
        self.model, self.url = model, base_url.rstrip("/") + "/chat/completions"
        self.t, self.max_new = templates, max_new_tokens
        self.key = os.environ.get(api_key_env, "")
        self.concurrency, self.timeout_s, self.retries, self.backoff_s = concurrency, timeout_s, retries, backoff_s

    def request(self, messages: list[dict]) -> tuple[dict, int]:
        """One chat completion, retried; returns (the server's JSON, attempts made)."""
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": self.max_new,
                           "temperature": 0.0}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        for attempt in range(1, self.retries + 2):
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    return json.loads(r.read()), attempt
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                if e.code not in RETRY_STATUS or attempt > self.retries:
                    raise ServedError(f"HTTP {e.code} from {self.url} after {attempt} attempt(s): {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt > self.retries:
                    raise ServedError(f"{self.url} unreachable after {attempt} attempt(s): {e}") from None
            delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
            log.debug(f"attempt {attempt} failed; retrying in {delay:.1f} s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def judge_item(self, item: ItemView, orders: list[list[int]]) -> list[PassResult]:
        out = []
        for order in orders:
            t0 = time.perf_counter()
            resp, attempts = self.request(order_messages(self.t, item, order))
            text = resp["choices"][0]["message"].get("content") or ""
            usage = resp.get("usage") or {}
            out.append(verdict_result(text, item, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                      timing={"total_s": time.perf_counter() - t0, "attempts": attempts,
                                              "new_tokens": int(usage.get("completion_tokens") or 0)}))
        return out

    def judge_items(self, items: Iterable[tuple[ItemView, list[list[int]]]]) -> Iterator[Any]:
        """Judge items ``concurrency`` at a time, yielding each item's results (or its exception) in
        the order given, so the run writes the same file whatever the concurrency."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            pending: list = []
            for it in items:
                pending.append(pool.submit(self.judge_item, *it))
                if len(pending) >= self.concurrency:
                    yield _outcome(pending.pop(0))
            while pending:
                yield _outcome(pending.pop(0))


def _outcome(future) -> Any:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - handed to the run loop, which records it per item
        return e


# --- the minimal server --------------------------------------------------------------------------

def _handler(loaded: models.Loaded, name: str, max_input_tokens: int, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # one debug line per request instead of stderr noise
            log.debug(fmt % args)

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, msg: str) -> None:
            self._send(code, {"error": {"message": msg, "type": "invalid_request_error", "code": code}})

        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                return self._send(200, {"object": "list", "data": [{"id": name, "object": "model"}]})
            self._error(404, f"no route {self.path}")

        def do_POST(self):  # noqa: N802
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self._error(404, f"no route {self.path}")
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                messages, max_new = req["messages"], int(req.get("max_tokens") or 256)
            except (ValueError, KeyError, TypeError) as e:
                return self._error(400, f"bad request body: {e}")
            if float(req.get("temperature") or 0.0) != 0.0:
                return self._error(400, "this server decodes greedily: temperature must be 0")
            ids = models.chat_ids(loaded.tokenizer, messages, loaded.spec)
            if len(ids) + max_new > max_input_tokens:
                return self._error(400, f"prompt of {len(ids)} tokens plus max_tokens {max_new} exceeds the "
                                        f"window of {max_input_tokens} tokens")
            with lock:
                text, new = models.generate(loaded, ids, max_new)
            self._send(200, {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion",
                             "created": int(time.time()), "model": name,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "length" if len(new) >= max_new else "stop"}],
                             "usage": {"prompt_tokens": len(ids), "completion_tokens": len(new),
                                       "total_tokens": len(ids) + len(new)}})
    return Handler


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          max_input_tokens: int | None = None, ready=None) -> None:
    """Serve ``model`` (a preset or folder) until interrupted. ``port=0`` picks a free port; the
    address is printed (and passed to ``ready``) once the model is loaded."""
    spec = models.get_spec(model)
    window = max_input_tokens or (spec.yarn_context or spec.max_context)
    loaded = models.load(model, device=device, max_context=window)  # rope scaling (YaRN) for a long window
    srv = ThreadingHTTPServer((host, port), _handler(loaded, model, window, threading.Lock()))
    url = f"http://{srv.server_address[0]}:{srv.server_address[1]}/v1"
    print(f"serving {model} at {url} (window {window} tokens); Ctrl-C stops", flush=True)
    if ready:
        ready(url)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


def serve_cli(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="longrm_utils serve",
                       description="Serve a generative model behind a minimal OpenAI-compatible chat endpoint.")
    p.add_argument("--model", required=True, help="preset or model folder (generative)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--max-input-tokens", type=positive_int, default=None,
                   help="refuse prompts longer than this, less max_tokens (default: the model's window)")
    a = p.parse_args(argv)
    try:
        serve(a.model, host=a.host, port=a.port, device=a.device, max_input_tokens=a.max_input_tokens)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
