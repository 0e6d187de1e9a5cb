"""Confinement: code that tries to escape (network, writes, reads, other processes) fails, and nothing escapes.

Each escape is tried on every namespace backend that works here (none is skipped where one works), and once
without namespaces as a control, showing that the same program does escape there.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import langtts
from langtts.tasks import SandboxUnavailableError, confine, get_task, sandbox
from langtts.tasks.humaneval import HumanEvalTask
from langtts.tasks.sandbox import RLIMITS_ONLY, SandboxWarning, run_python

WORKING = [backend for backend in confine.BACKENDS if sandbox.backend_failure(backend) is None]
confined = pytest.mark.parametrize(
    "backend", WORKING or [pytest.param(None, marks=pytest.mark.skip(reason="no namespace backend works here"))]
)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the control run needs a root parent")
README = Path(langtts.__file__).resolve().parents[1] / "README.md"


def _namespaces_work() -> bool:
    """An independent probe: util-linux's unshare makes network, mount and PID namespaces."""
    try:
        cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "true"]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_confinement_is_used_wherever_namespaces_work() -> None:
    if not (sys.platform.startswith("linux") and os.geteuid() == 0 and _namespaces_work()):
        pytest.skip("no root, or namespaces do not work here")
    backend, reason = sandbox.confinement()
    assert backend in confine.BACKENDS, reason
    assert "unshare" in WORKING and "syscall" in WORKING


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that never blocks on accept."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def _accepted(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def _connect(port: int) -> str:
    return (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
    )


@confined
def test_no_connection_to_a_local_port(backend: str, listener: socket.socket) -> None:
    result = run_python(_connect(listener.getsockname()[1]), backend=backend)
    assert not result.passed and result.status == "failed", result
    assert "ConnectionRefusedError" in result.detail or "Network is unreachable" in result.detail
    assert not _accepted(listener)


@confined
@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "8.8.8.8"])
def test_no_route_to_any_address(backend: str, address: str) -> None:
    source = f"import socket\nsocket.create_connection(({address!r}, 80), timeout=3)"
    result = run_python(source, backend=backend)
    assert not result.passed and "Network is unreachable" in result.detail, result


@confined
@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_no_connection_to_a_unix_socket(backend: str, kind: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    address = str(tmp_path / "s.sock") if kind == "path" else f"\0langtts-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(address)
        if kind == "path":
            os.chmod(address, 0o777)
        server.listen()
        server.setblocking(False)
        source = f"import socket\nsocket.socket(socket.AF_UNIX).connect({address!r})"
        result = run_python(source, backend=backend)
        assert not result.passed and result.status == "failed", result
        assert "FileNotFoundError" in result.detail or "ConnectionRefusedError" in result.detail
        assert not _accepted(server)


def _write_outside(canary: str, host_dir: Path) -> str:
    """Writes to the private /tmp and /dev/shm (allowed, thrown away), then to world-writable places outside."""
    return (
        "import os\n"
        f"for place in ['/tmp', '/dev/shm', os.getcwd()]:\n"
        f"    open(os.path.join(place, {canary!r}), 'w').write('x')\n"
        f"for place in [{str(host_dir)!r}, '/var/tmp', os.path.dirname(os.getcwd())]:\n"
        f"    open(os.path.join(place, {canary!r}), 'w').write('x')\n"
    )


def _left_behind(canary: str, host_dir: Path) -> list[Path]:
    places = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/dev/shm"), Path("/var/tmp"), host_dir]
    return [place / canary for place in places if (place / canary).exists()]


@confined
def test_writes_do_not_outlive_the_run(backend: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o1777)
    canary = f"langtts-canary-{secrets.token_hex(4)}"
    result = run_python(_write_outside(canary, tmp_path), backend=backend)
    assert not result.passed and "FileNotFoundError" in result.detail, result  # the first place outside
    assert _left_behind(canary, tmp_path) == []


@confined
def test_tmp_starts_empty_and_the_root_is_read_only(backend: str) -> None:
    source = (
        "import os\n"
        "assert os.listdir('/tmp') == os.listdir('/dev/shm') == [], (os.listdir('/tmp'), os.listdir('/dev/shm'))\n"
        "assert os.getcwd() == '/sandbox' and os.listdir('.') == ['main.py']\n"
        "open('/evil', 'w')\n"
    )
    result = run_python(source, backend=backend)
    assert not result.passed and ("Read-only" in result.detail or "PermissionError" in result.detail), result


@confined
@pytest.mark.parametrize("what", ["project", "pool file", "home", "run", "passwd"])
def test_files_outside_the_allow_list_are_invisible(backend: str, what: str, tmp_path: Path) -> None:
    pool = tmp_path / "pool.yaml"
    pool.write_text("models: []\n")
    tmp_path.chmod(0o755)
    pool.chmod(0o644)
    path = {"project": README, "pool file": pool, "home": Path("/home"), "run": Path("/run")}.get(what)
    path = path or Path("/etc/passwd")
    source = (
        f"import os\nprint(os.listdir({str(path)!r}) if os.path.isdir({str(path)!r}) else open({str(path)!r}).read())"
    )
    result = run_python(source, backend=backend)
    assert not result.passed and "FileNotFoundError" in result.detail, result


def _find_process(token: str) -> str:
    """Looks for a process whose command line holds `token`, among every /proc entry."""
    return (
        "import os\n"
        "cmdlines = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        cmdlines.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        f"assert any({token.encode()!r} in c for c in cmdlines), 'no foreign process seen'\n"
    )


@pytest.fixture
def bystander() -> Iterator[str]:
    """A process outside the sandbox with a secret token in its command line."""
    token = f"secret-{secrets.token_hex(8)}"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", token]) as proc:
        yield token
        proc.kill()


@confined
def test_other_processes_are_invisible(backend: str, bystander: str) -> None:
    result = run_python(_find_process(bystander), backend=backend)
    assert not result.passed and "no foreign process seen" in result.detail, result
    only_its_own = (
        "import os\npids = sorted(map(int, filter(str.isdigit, os.listdir('/proc'))))\nassert pids == [1, 2], pids"
    )
    assert run_python(only_its_own, backend=backend).passed


@root_only
def test_the_escapes_work_without_namespaces(listener: socket.socket, bystander: str, tmp_path: Path) -> None:
    """The control: with the rlimits only, the same programs reach the listener, the project and other
    processes, and leave a file behind — so the tests above would see an escape."""
    assert run_python(_connect(listener.getsockname()[1]), backend=RLIMITS_ONLY).passed
    assert _accepted(listener)
    assert run_python(_find_process(bystander), backend=RLIMITS_ONLY).passed
    if os.stat(README).st_mode & 0o004 and all(os.stat(p).st_mode & 0o001 for p in README.parents):
        assert run_python(f"open({str(README)!r}).read()", backend=RLIMITS_ONLY).passed
    canary = f"langtts-canary-{secrets.token_hex(4)}"
    source = f"import os\nopen(os.path.join(os.path.dirname(os.getcwd()), {canary!r}), 'w').write('x')"
    assert run_python(source, backend=RLIMITS_ONLY).passed
    left = Path(tempfile.gettempdir()) / canary
    assert left.exists()
    left.unlink()


@confined
def test_humaneval_controls_hold(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample of HumanEval's reference solutions pass, and wrong answers fail, confined."""
    monkeypatch.setattr(sandbox, "select_backend", lambda sandbox="auto": backend)
    task = HumanEvalTask()
    examples = task.load()[::6]
    assert all(task.score(ex.answer, ex).correct for ex in examples)
    assert not any(task.score("    return None\n", ex).correct for ex in examples[::3])


@pytest.fixture
def no_confinement(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the fallback: the probe finds no namespace backend."""
    monkeypatch.setattr(sandbox, "confinement", lambda: (RLIMITS_ONLY, "forced by the test"))
    sandbox._warn_unconfined.cache_clear()


def test_fallback_runs_with_rlimits_only_and_says_so_once(no_confinement: None) -> None:
    with pytest.warns(SandboxWarning, match="rlimits only") as record:
        results = [run_python("assert 1 + 1 == 2") for _ in range(2)]
    assert [r.backend for r in results] == [RLIMITS_ONLY] * 2 and all(r.passed for r in results)
    assert len(record) == 1 and "forced by the test" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert HumanEvalTask().sandbox_backend == RLIMITS_ONLY  # already said


def test_strict_refuses_to_run_unconfined(no_confinement: None) -> None:
    with pytest.raises(SandboxUnavailableError, match="forced by the test"):
        run_python("pass", sandbox="strict")
    with pytest.raises(SandboxUnavailableError):
        get_task("humaneval", sandbox="strict")
    with pytest.raises(ValueError, match=r"auto.*strict"):
        HumanEvalTask(sandbox="lenient")  # type: ignore[arg-type]


@pytest.mark.skipif(not WORKING, reason="no namespace backend works here")
def test_strict_runs_where_confinement_works() -> None:
    task = get_task("humaneval", sandbox="strict")
    assert task.sandbox_backend == sandbox.confinement()[0] == WORKING[0]
    ex = task.load()[0]
    assert task.score(ex.answer, ex).correct
