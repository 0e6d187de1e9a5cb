"""A minimal OpenAI-compatible chat server for benchmarks: real HTTP/1.1 (keep-alive) on 127.0.0.1.

Every ``POST /v1/chat/completions`` is answered after a fixed ``--latency`` (a sleep, so no CPU is used while
"generating") with the same ``--reply-words`` words, the last one the number 42 (an answer every task's
extraction finds, so no answer-recovery call is made), and a ``usage`` block (whitespace tokens).
``GET /v1/models`` and ``GET /health`` answer too. Run it as its own process so that its CPU use does not share
the interpreter lock with the client being measured::

    python benchmarks/stub_server.py --latency 0.05    # prints "PORT <n>", serves until killed or stdin closes

:func:`start_subprocess` does that from another script and returns the process and its base URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL = "stub-model"


def make_server(latency: float, reply_words: int, port: int = 0) -> ThreadingHTTPServer:
    reply = " ".join([*(f"word{i % 50}" for i in range(reply_words - 1)), "42"])
    counter = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls

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
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            time.sleep(latency)
            with lock:
                counter["n"] += 1
                number = counter["n"]
            prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
            limit = request.get("max_completion_tokens", request.get("max_tokens"))
            words = reply.split()
            finish = "stop"
            if limit is not None and len(words) > limit:
                words, finish = words[:limit], "length"
            self._send(
                200,
                {
                    "id": f"chatcmpl-bench-{number}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model", MODEL),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": len(words),
                        "total_tokens": prompt + len(words),
                    },
                },
            )

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler, bind_and_activate=False)
    httpd.daemon_threads = True
    httpd.request_queue_size = 256
    httpd.server_bind()
    httpd.server_activate()
    return httpd


def start_subprocess(latency: float, reply_words: int) -> tuple[subprocess.Popen[str], str]:
    """Start the stub in its own process; returns (process, base URL). Stop it with ``proc.terminate()``."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--latency", str(latency), "--reply-words", str(reply_words)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"stub server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each chat answer")
    parser.add_argument("--reply-words", type=int, default=60, help="words (= stub tokens) in each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    httpd = make_server(args.latency, args.reply_words, args.port)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    print(f"PORT {httpd.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # the parent closed our stdin (or exited): stop
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    main()
