"""``langtts setup`` / ``langtts serve``: argument errors offline; a real foreground server stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langtts.cli import main
from langtts.serve import embedded, process
from langtts.serve.setup import model_path


def test_stop_and_status_without_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--stop", "--run-dir", str(tmp_path)]) == 0
    assert "no embedded server was running" in capsys.readouterr().out
    assert main(["serve", "--status", "--run-dir", str(tmp_path)]) == 1
    assert "no embedded server is running" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--engine", "vllm"], "needs at least one --model"),
        (["serve", "--engine", "vllm", "--model", "qwen"], "expected ID=PATH_OR_NAME"),
        (["serve", "--models", "nope", "--detach"], "unknown or no model ids"),
        (["setup", "--models", "gpt-9"], "unknown model id"),
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.integration
@pytest.mark.skipif(model_path("smollm2-135m") is None, reason="run the embedded_server fixture (setup) first")
def test_foreground_server_stops_on_ctrl_c(embedded_server: embedded.ServerInfo, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "langtts", "serve", "--models", "smollm2-135m", "--run-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    pool_file = tmp_path / "pool.yaml"
    deadline = time.monotonic() + 120
    while not pool_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pool_file.exists(), proc.stderr.read() if proc.poll() is not None else "server did not start"
    info = embedded.running_server(tmp_path)
    assert info is not None and info.models == ("smollm2-135m",)
    status = subprocess.run(
        [sys.executable, "-m", "langtts", "serve", "--status", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and info.base_url in status.stdout
    family = process.process_family(info.pid)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert "stopping the embedded server" in proc.stderr.read()
    assert not any(process.alive(p) for p in family)
    assert not pool_file.exists()
