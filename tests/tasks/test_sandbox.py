"""The sandbox contains hostile programs: they fail, and the test process and the machine are unharmed.

Every test runs on each backend that works here: the namespace backends and the rlimits-only fallback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from langtts.tasks import confine, sandbox
from langtts.tasks.sandbox import RLIMITS_ONLY, SandboxResult, run_python

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="only a root parent can drop the child to another uid")
WORKING = [backend for backend in confine.BACKENDS if sandbox.backend_failure(backend) is None]


@pytest.fixture(scope="module", autouse=True)
def name_the_backends(pytestconfig: pytest.Config) -> None:
    """Print, in the test log, which sandbox backends work here and which one scoring uses."""
    chosen, reason = sandbox.confinement()
    line = f"sandbox backends that work here: {', '.join(WORKING) or 'none'}; scoring uses: {chosen}"
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n  [{line}" + (f"; {reason}" if reason else "") + "]", end="")


@pytest.fixture(autouse=True, params=[RLIMITS_ONLY, *WORKING])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend every `run_python` of the test uses."""
    monkeypatch.setattr(sandbox, "select_backend", lambda sandbox="auto": request.param)
    return request.param


def _sandbox_processes() -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"langtts-sandbox" in cmdline and state not in "ZX":
            pids.append(int(name))
    return pids


@pytest.fixture(autouse=True)
def no_strays() -> Iterator[None]:
    """Every test must leave no live sandbox process and no sandbox temp dir behind."""
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("langtts-sandbox-*"))
    yield
    assert _sandbox_processes() == []
    assert set(tmp.glob("langtts-sandbox-*")) <= before


def _can_fork() -> bool:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)[1] == 0 and subprocess.run(["true"], check=False).returncode == 0


def test_a_clean_program_passes(backend: str) -> None:
    assert run_python("x = 1\nprint(x)") == SandboxResult(True, "passed", "", backend)


def test_an_exception_fails_with_the_traceback() -> None:
    result = run_python("def f():\n    raise ValueError('boom')\nf()")
    assert (result.passed, result.status) == (False, "failed")
    assert "ValueError: boom" in result.detail


def test_a_syntax_error_fails() -> None:
    result = run_python("def f(:\n    pass")
    assert (result.passed, result.status) == (False, "failed") and "SyntaxError" in result.detail


@pytest.mark.parametrize("source", ["import os\nos._exit(0)", "import sys\nsys.exit(0)", "exit()", "quit(0)"])
def test_exit_status_zero_before_the_end_is_not_a_pass(source: str) -> None:
    result = run_python(source + "\nraise AssertionError('tests would fail here')")
    assert (result.passed, result.status) == (False, "failed")
    assert "before the program finished" in result.detail


def test_infinite_loop_times_out() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass", timeout_s=1.5)
    assert (result.passed, result.status) == (False, "timeout")
    assert time.monotonic() - start < 5


def test_sleeping_program_times_out() -> None:
    result = run_python("import time\ntime.sleep(60)", timeout_s=1)
    assert result.status == "timeout"


def test_memory_hog_hits_the_address_space_limit() -> None:
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(100 * 2**20))", timeout_s=20)
    assert not result.passed and result.status in {"failed", "killed"}
    assert result.status == "killed" or "MemoryError" in result.detail


def test_memory_limit_is_configurable() -> None:
    assert run_python("x = bytearray(300 * 2**20)").passed
    result = run_python("x = bytearray(300 * 2**20)", memory_bytes=200 * 2**20)
    assert not result.passed and "MemoryError" in result.detail


def test_huge_output_is_cut_off() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    print('x' * 10000)", max_output_bytes=100_000)
    assert (result.passed, result.status) == (False, "killed") and "output limit" in result.detail
    result = run_python("import sys\nsys.stderr.write('e' * 50_000_000)")
    assert (result.passed, result.status) == (False, "killed")
    assert time.monotonic() - start < 10


def test_fork_bomb_is_contained(timed) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    with timed("fork bomb"):
        result = run_python(bomb, timeout_s=2)
    assert not result.passed and result.status in {"timeout", "killed"}
    assert _sandbox_processes() == []
    assert _can_fork()


@root_only
def test_fork_bomb_does_not_disturb_concurrent_runs() -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    with ThreadPoolExecutor(3) as pool:
        hostile = pool.submit(run_python, bomb, timeout_s=3)
        time.sleep(0.5)
        benign = list(pool.map(lambda i: run_python(f"assert {i} + 1 == {i + 1}"), range(8)))
    assert all(r.passed for r in benign), benign
    assert not hostile.result().passed


@root_only
def test_detached_children_are_killed_too() -> None:
    source = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
    )
    assert run_python(source, timeout_s=5).passed
    assert _sandbox_processes() == []


@root_only
def test_child_runs_unprivileged_in_a_fresh_writable_directory() -> None:
    source = (
        "import os\n"
        "assert 0 not in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()), os.getuid()\n"
        "assert os.getgroups() == [], os.getgroups()\n"
        "assert os.listdir('.') == ['main.py'], os.listdir('.')\n"
        "open('scratch.txt', 'w').write('ok')\n"
    )
    result = run_python(source)
    assert result.passed, result.detail


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGTTS_TEST_SECRET", "hunter2")
    assert run_python("import os\nassert 'LANGTTS_TEST_SECRET' not in os.environ").passed


@root_only
def test_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    tmp_path.chmod(0o755)
    created = tmp_path / "created.txt"
    shell = run_python(f"import os\nos.system('echo pwned > {victim}; touch {created}; rm -f {victim}')")
    assert shell.passed  # os.system may run, but the shell cannot touch the files
    python = run_python(f"open({str(victim)!r}, 'w').write('pwned')")
    assert not python.passed and ("PermissionError" in python.detail or "FileNotFoundError" in python.detail)
    assert victim.read_text() == "original" and not created.exists()


@root_only
@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.kill(os.getppid(), 9)",
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
        "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)",
    ],
)
def test_cannot_kill_the_parent(source: str) -> None:
    result = run_python(source)
    # in a PID namespace the parent's process group reads as 0, so killpg kills the program's own group
    assert not result.passed and (result.status == "killed" or "PermissionError" in result.detail)
    assert _can_fork()  # still alive and well


@root_only
def test_kill_everything_reaches_only_the_sandbox() -> None:
    with subprocess.Popen(["sleep", "30"]) as bystander:
        run_python("import os\nos.kill(-1, 9)\nos.kill(-1, 15)")
        assert bystander.poll() is None
        bystander.kill()


def test_start_failure_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_interpreter", lambda: "/nonexistent/python")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(confine, "interpreter", lambda: "/nonexistent/python")
    result = run_python("pass")
    assert (result.passed, result.status) == (False, "error") and "interpreter" in result.detail
