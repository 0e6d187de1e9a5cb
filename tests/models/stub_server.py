"""A small OpenAI-compatible HTTP server for offline tests: real HTTP on 127.0.0.1, in a thread.

It serves `GET /v1/models` and `POST /v1/chat/completions` with `usage` (and `logprobs` when asked), and can
be told to be slow, to fail the first N chat requests with a status (503 by default), to always fail with a
status (e.g. 400), to script its answers, and to die with requests in flight (`kill`). It records every chat
request and the most requests it had in flight at once. With `prompt_cache` it reports
`usage.prompt_tokens_details.cached_tokens` as llama-server does: 0 for a prompt it has not seen, else all the
prompt's tokens but the last. With `stream` set it answers with server-sent events,
one chunk per word, and a usage chunk only when the request has `stream_options.include_usage` (as OpenAI and
vLLM do).

    with StubServer(models=["m"], latency=0.1) as server:
        ...  # server.base_url is "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


def echo(request: dict[str, Any]) -> str:
    """The default answer: the last user message, tagged with the seed when sampling (temperature > 0)."""
    last = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
    text = f"echo: {last}"
    if request.get("temperature", 0) > 0 and request.get("seed") is not None:
        text += f" [seed {request['seed']}]"
    return text


def count_tokens(text: str) -> int:
    """The stub's tokenizer: whitespace-separated words."""
    return len(text.split())


class StubServer:
    """See the module docstring. Counters and `requests` are safe to read from the test thread."""

    def __init__(
        self,
        *,
        models: Sequence[str] = ("stub-model",),
        latency: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 503,
        always_status: int | None = None,
        reply: Reply = echo,
        usage: bool = True,
        logprobs: bool = True,
        prompt_cache: bool = False,
    ) -> None:
        self.models = list(models)
        self.latency = latency
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always_status = always_status
        self.reply = reply
        self.usage = usage
        self.logprobs = logprobs
        self.prompt_cache = prompt_cache
        self._seen_prompts: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.chat_calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.killed = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StubServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self), bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.request_queue_size = 128
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections (new connections are refused); requests in flight finish."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join()
            self._httpd = None

    def kill(self) -> None:
        """Die: requests in flight get their connection closed without an answer, new ones are refused."""
        self.killed.set()
        self.stop()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling (runs in the server's threads) ----------------------------------------------------

    def _chat(self, request: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """(status, body); body None: drop the connection."""
        with self._lock:
            self.chat_calls += 1
            number = self.chat_calls
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.always_status is not None:
                return self.always_status, _error(self.always_status, "the stub always rejects this request")
            if number <= self.fail_first:
                return self.fail_status, _error(self.fail_status, f"stub failure {number} of {self.fail_first}")
            if request.get("model") not in self.models:
                return 400, _error(400, f"model {request.get('model')!r} not found")
            deadline = time.monotonic() + self.latency
            while time.monotonic() < deadline:
                if self.killed.is_set():
                    return 0, None
                time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
            if self.killed.is_set():
                return 0, None
            return 200, self._completion(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        text = self.reply(request)
        finish = "stop"
        for stop in request.get("stop") or []:
            if stop in text:
                text = text[: text.index(stop)]
        limit = request.get("max_completion_tokens", request.get("max_tokens"))
        if limit is not None and count_tokens(text) > limit:
            text, finish = " ".join(text.split()[:limit]), "length"
        prompt = sum(count_tokens(str(m.get("content", ""))) for m in request["messages"])
        body: dict[str, Any] = {
            "id": f"chatcmpl-stub-{self.chat_calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        }
        if request.get("logprobs") and self.logprobs:
            body["choices"][0]["logprobs"] = {"content": logprobs(text, request.get("top_logprobs") or 0)}
        if self.usage:
            completion = count_tokens(text)
            body["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if self.prompt_cache:
                seen = json.dumps(request["messages"], sort_keys=True)
                with self._lock:
                    cached = prompt - 1 if seen in self._seen_prompts else 0
                    self._seen_prompts.add(seen)
                body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        return body


def sse_chunks(body: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A completion `body` as the chunks of a stream: role, one chunk per word, finish reason, then usage."""
    choice = body["choices"][0]
    words = re.findall(r"\s*\S+", choice["message"]["content"]) or [""]
    lists = choice.get("logprobs", {}).get("content") or []
    head = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": w} for w in words]
    chunks = [head | {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    for chunk, entry in zip(chunks[1:], lists, strict=False):
        chunk["choices"][0]["logprobs"] = {"content": [entry]}
    chunks.append(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if include_usage and "usage" in body:
        chunks.append(head | {"choices": [], "usage": body["usage"]})
    return chunks


def logprobs(text: str, top: int) -> list[dict[str, Any]]:
    """The stub's log-probabilities: each word at -0.25, then alternatives `alt1`, `alt2`, ... at -1, -2, ..."""
    content = []
    for word in text.split():
        alternatives = [(word, -0.25)] + [(f"alt{i}", -float(i)) for i in range(1, top)]
        content.append(
            {
                "token": word,
                "logprob": -0.25,
                "bytes": list(word.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives],
            }
        )
    return content


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "type": "stub_error"}}


def _handler(server: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
                self.close_connection = True

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, _error(404, f"no route {self.path}"))

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                self._send(404, _error(404, f"no route {self.path}"))
                return
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length))
            status, body = server._chat(request)
            if body is None:
                self.close_connection = True
            elif status == 200 and request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                self._stream(sse_chunks(body, include_usage))
            else:
                self._send(status, body)

        def _stream(self, chunks: list[dict[str, Any]]) -> None:
            """Server-sent events; the end of the body is the end of the connection (HTTP/1.0)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
