"""Process helpers of the server launchers: ports, health checks, process trees and stopping a group."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from langtts.serve import process


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class _Health(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def health_server() -> Iterator[int]:
    server = HTTPServer((process.HOST, 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_terminate_group_leaves_no_orphans() -> None:
    script = "sleep 60 & setsid sleep 60 & wait"  # the second one leaves the group but stays a child
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(process.process_family(proc.pid)) < 3:
        time.sleep(0.05)
    family = process.process_family(proc.pid)
    assert proc.pid in family and len(family) >= 3
    process.terminate_process_group(proc.pid, grace=1.0)  # bash dies on SIGTERM, its sleeps need SIGKILL
    assert proc.wait(timeout=5) is not None
    assert not any(process.alive(p) for p in family)


def test_alive_and_free_port() -> None:
    assert process.alive(os.getpid())
    assert not process.alive(_dead_pid())
    port = process.free_port()
    assert 1024 <= port <= 65535
    assert not process.is_healthy(f"http://{process.HOST}:{port}/health", timeout=0.5)


def test_runs_checks_the_command_line() -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert process.runs(other.pid, "sleep")
        assert not process.runs(other.pid, "llama-server")  # a recycled pid is not our server
    finally:
        other.kill()
        other.wait()
    assert not process.runs(other.pid, "sleep")


def test_health_check_answers_200_only(health_server: int) -> None:
    base = f"http://{process.HOST}:{health_server}"
    assert process.is_healthy(f"{base}/health")
    assert not process.is_healthy(f"{base}/other")
    assert not process.is_healthy("not a url")


def test_wait_until_healthy(health_server: int, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("starting\nfailed to load\n")
    idle = subprocess.Popen(["sleep", "30"])
    try:
        process.wait_until_healthy(idle, f"http://{process.HOST}:{health_server}/health", log, 5, name="fake")
        with pytest.raises(process.ServerError, match=r"(?s)fake did not become healthy within 1s.*failed to load"):
            process.wait_until_healthy(idle, f"http://{process.HOST}:{health_server}/x", log, 1, name="fake")
    finally:
        idle.kill()
        idle.wait()
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(process.ServerError, match=r"(?s)fake exited with code 3.*failed to load"):
        process.wait_until_healthy(dead, f"http://{process.HOST}:{health_server}/health", log, 5, name="fake")
