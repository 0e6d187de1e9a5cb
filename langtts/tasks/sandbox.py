"""Run untrusted, model-written Python in a confined child process.

Each run gets a fresh temporary working directory, a scrubbed environment, ``python -I``, its own session
and process group, a wall-clock timeout, rlimits (CPU, address space, processes, file size, no core files)
and a cap on its output; afterwards every process it started is killed. A run passes only if it exits with
status 0 *and* prints a random nonce appended after the program, so an early ``os._exit(0)`` fails.

Under root the child first drops to a dedicated unprivileged uid/gid (one per concurrent run, from a range
with no users and no live processes), so it cannot signal other processes, write outside world-writable
places, or escape cleanup (every process of that uid is killed). Without root the child runs as the current
user: the rlimits and the cleanup of its process group hold, but it can signal or write what that user can.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pwd
import random
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Literal

Status = Literal["passed", "failed", "timeout", "killed", "error"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_BYTES = 1 << 30
DEFAULT_MAX_OUTPUT_BYTES = 1 << 20
MAX_PROCS = 64  # tasks (processes and threads) the sandbox may add
MAX_FILE_BYTES = 16 << 20
SANDBOX_UIDS = range(1_900_000_000, 1_900_000_000 + (1 << 16))  # uids with no users, one per concurrent run
_DETAIL_CHARS = 2000
_MARKER = "# langtts-sandbox"  # in the child's command line, to recognise sandbox processes
_BOOTSTRAP = f"""{_MARKER}
import resource, runpy, sys
for name, value in zip(("CPU", "AS", "NPROC", "FSIZE", "CORE"), map(int, sys.argv[1:6])):
    key = getattr(resource, "RLIMIT_" + name)
    hard = resource.getrlimit(key)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(key, (value, value))
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed run; `detail` is a short reason (e.g. the tail of stderr)."""

    passed: bool
    status: Status
    detail: str = ""


def run_python(
    source: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
) -> SandboxResult:
    """Run the Python program `source` in the sandbox; it passes if it runs to its end with exit status 0."""
    nonce = secrets.token_hex(16)
    program = f"{source}\n\n__import__('os').write(1, b'\\n{nonce}\\n')\n"
    workdir = tempfile.mkdtemp(prefix="langtts-sandbox-")
    try:
        with _sandbox_uid() as uid:  # on exit, every process of the uid is dead: only then remove the dir
            exe = _interpreter() if uid is not None else sys.executable
            if exe is None:
                return SandboxResult(False, "error", "no Python interpreter is executable by the sandbox uid")
            path = os.path.join(workdir, "main.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(program)
            if uid is not None:
                os.chmod(path, 0o644)  # readable whatever the umask
                os.chown(workdir, uid, uid)
            limits = (math.ceil(timeout_s) + 1, memory_bytes, _nproc_limit(uid), MAX_FILE_BYTES, 0)
            return _run(exe, workdir, uid, limits, nonce, timeout_s, max_output_bytes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    exe: str, workdir: str, uid: int | None, limits: tuple[int, ...], nonce: str, timeout_s: float, cap: int
) -> SandboxResult:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LC_ALL": "C.UTF-8"}
    ids = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    try:
        proc = subprocess.Popen(
            [exe, "-I", "-c", _BOOTSTRAP, *map(str, limits)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **ids,
        )
    except OSError as e:
        as_uid = "" if uid is None else f" as uid {uid}"
        return SandboxResult(False, "error", f"could not start the sandbox{as_uid}: {e}")
    with proc:  # closes the pipes and reaps the child on exit
        try:
            stdout, stderr, overrun = _collect(proc, time.monotonic() + timeout_s, cap)
        finally:
            # Kill the whole group before reaping the leader: until then its group id cannot be reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _drain(proc.stdout, stdout, cap)
        _drain(proc.stderr, stderr, cap)
    return _verdict(proc.returncode, bytes(stdout), bytes(stderr), overrun, nonce, timeout_s, cap)


def _collect(proc: subprocess.Popen[bytes], deadline: float, cap: int) -> tuple[bytearray, bytearray, str | None]:
    """Read stdout/stderr until both close or the leader exits; stop early at the deadline or output cap."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    overrun: str | None = None
    with selectors.DefaultSelector() as sel:
        for fd in buffers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and overrun is None:
            left = deadline - time.monotonic()
            if left <= 0:
                overrun = "timeout"
                break
            for key, _ in sel.select(min(left, 0.1)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buffers[key.fd] += chunk
                if len(buffers[out_fd]) + len(buffers[err_fd]) > cap:
                    overrun = "output"
                    break
            else:
                if _exited(proc.pid):  # a detached child may still hold the pipes; cleanup kills it
                    break
    return buffers[out_fd], buffers[err_fd], overrun


def _drain(pipe: IO[bytes] | None, buffer: bytearray, cap: int) -> None:
    """Read what the (now dead) leader left in `pipe`, without waiting for other holders of it."""
    assert pipe is not None
    with contextlib.suppress(BlockingIOError):
        while len(buffer) <= cap and (chunk := os.read(pipe.fileno(), 1 << 16)):
            buffer += chunk


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (so its process group id stays reserved)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _verdict(
    returncode: int, stdout: bytes, stderr: bytes, overrun: str | None, nonce: str, timeout_s: float, cap: int
) -> SandboxResult:
    tail = stderr.decode("utf-8", "replace")[-_DETAIL_CHARS:].strip()
    if overrun == "timeout":
        return SandboxResult(False, "timeout", f"timed out after {timeout_s:g}s")
    if overrun == "output":
        return SandboxResult(False, "killed", f"output limit exceeded ({cap} bytes)")
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return SandboxResult(False, "killed", f"killed by {name}; {tail}".rstrip("; "))
    if returncode != 0:
        return SandboxResult(False, "failed", tail or f"exit status {returncode}")
    if nonce.encode() not in stdout.splitlines():
        return SandboxResult(False, "failed", "exited with status 0 before the program finished")
    return SandboxResult(True, "passed", "")


def _nproc_limit(uid: int | None) -> int:
    """RLIMIT_NPROC counts all tasks of the real uid: a dedicated uid has none, the current user has some."""
    if uid is not None:
        return MAX_PROCS
    me = os.getuid()
    return MAX_PROCS + sum(threads for _, _, ruid, threads in _processes() if ruid == me)


def _processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, real uid, threads) of every live process, from /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="utf-8", errors="replace") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(re.findall(r"^(State|Uid|Threads):\s*(\S+)", status, re.M))
        if len(fields) == 3:
            yield int(name), fields["State"], int(fields["Uid"]), int(fields["Threads"])


def _kill_uid(uid: int) -> None:
    """SIGKILL every live process of `uid` (also those that left the process group with setsid)."""
    for _ in range(100):
        pids = [pid for pid, state, ruid, _ in _processes() if ruid == uid and state not in "ZX"]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    _log.warning("sandbox uid %d still has processes after cleanup", uid)


class _UidPool:
    """Hands out sandbox uids that no user owns and no process runs as; one per concurrent run."""

    def __init__(self, uids: range) -> None:
        self._uids = uids
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            live = {ruid for _, _, ruid, _ in _processes()}
            start = random.randrange(len(self._uids))
            for k in range(len(self._uids)):
                uid = self._uids[(start + k) % len(self._uids)]
                if uid not in self._busy and uid not in live and not _has_user(uid):
                    self._busy.add(uid)
                    return uid
        raise RuntimeError("no free sandbox uid")

    def release(self, uid: int) -> None:
        with self._lock:
            self._busy.discard(uid)


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


_POOL = _UidPool(SANDBOX_UIDS)


@contextlib.contextmanager
def _sandbox_uid() -> Iterator[int | None]:
    """A dedicated uid when running as root (its processes are all killed on exit), else None."""
    if os.geteuid() != 0:
        yield None
        return
    uid = _POOL.acquire()
    try:
        yield uid
    finally:
        _kill_uid(uid)
        _POOL.release(uid)


@lru_cache(maxsize=1)
def _interpreter() -> str | None:
    """A Python the unprivileged uid can execute (a venv under /root is not), preferring the running one."""
    candidates = [
        sys.executable,
        getattr(sys, "_base_executable", None),
        shutil.which("python3", path=os.defpath),
    ]
    with _sandbox_uid() as uid:
        for exe in dict.fromkeys(c for c in candidates if c):
            try:
                subprocess.run(
                    [exe, "-I", "-c", "import resource, runpy"],
                    cwd="/",
                    env={"PATH": os.defpath},
                    capture_output=True,
                    timeout=60,
                    check=True,
                    user=uid,
                    group=uid,
                    extra_groups=[],
                )
            except (OSError, subprocess.SubprocessError):
                continue
            return exe
    return None
