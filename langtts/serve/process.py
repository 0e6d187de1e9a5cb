"""Process helpers shared by the server launchers (embedded llama.cpp and vLLM): ports, health checks, process
trees (via ``psutil``) and stopping a server's process group without leaving orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A model server could not be started, reached or stopped."""


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True if ``GET url`` (a server's ``/health``) answers 200; never through a proxy."""
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code == 200
    except (httpx.HTTPError, httpx.InvalidURL, OSError):
        return False


def wait_until_healthy(proc: subprocess.Popen, url: str, log_file: Path, timeout: float, *, name: str) -> None:
    """Poll the health ``url`` until it answers; fail with the log tail if ``proc`` dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServerError(f"{name} exited with code {code}; log {log_file}:\n{log_tail(log_file)}")
        if is_healthy(url):
            return
        time.sleep(0.2)
    raise ServerError(f"{name} did not become healthy within {timeout:.0f}s; log {log_file}:\n{log_tail(log_file)}")


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a zombie child of ours is reaped)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def runs(pid: int, program: str) -> bool:
    """True if ``pid`` is alive and (where the OS tells) its command line names ``program``: a recycled pid is
    never a server of ours."""
    if not alive(pid):
        return False
    try:
        return any(program in part for part in psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def process_family(pid: int) -> set[int]:
    """``pid``, its process group and all its descendants that are alive."""
    procs: dict[int, tuple[int, int]] = {}
    for proc in psutil.process_iter(["ppid", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            with contextlib.suppress(OSError):
                procs[proc.pid] = (proc.info["ppid"], os.getpgid(proc.pid))
    members = {pid}
    changed = True
    while changed:
        new = {p for p, (ppid, pgrp) in procs.items() if (ppid in members or pgrp == pid) and p not in members}
        members |= new
        changed = bool(new)
    return {p for p in members if alive(p)}


def terminate_process_group(pid: int, grace: float) -> None:
    """Stop the process group led by ``pid`` without leaving orphans.

    SIGTERM goes to the leader only (llama-server's router and vLLM stop their own children; a second SIGTERM
    would make them abort), or to the group if the leader is gone. Whatever is left of the group and of the
    leader's descendants after ``grace`` seconds gets SIGKILL.
    """
    targets = process_family(pid)
    if not targets:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pid in targets:
            os.kill(pid, signal.SIGTERM)
        else:
            os.killpg(pid, signal.SIGTERM)
    _wait_gone(targets, grace)
    targets = {p for p in targets | process_family(pid) if alive(p)}  # children orphaned meanwhile stay targets
    if targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for p in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        _wait_gone(targets, 5.0)
    left = {p for p in targets | process_family(pid) if alive(p)}
    if left:
        raise ServerError(f"processes {sorted(left)} of group {pid} survived SIGKILL")


def _wait_gone(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
