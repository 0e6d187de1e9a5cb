"""Run untrusted, model-written Python in a confined child process.

Each run gets a fresh temporary working directory, a scrubbed environment, ``python -I``, its own session
and process group, a wall-clock timeout, rlimits (CPU, address space, processes, file size, no core files)
and a cap on its output; afterwards every process it started is killed. A run passes only if it exits with
status 0 *and* prints a random nonce appended after the program, so an early ``os._exit(0)`` fails.

Under root the child first drops to a dedicated unprivileged uid/gid (one per concurrent run, from a range
with no users and no live processes), so it cannot signal other processes, write outside world-writable
places, or escape cleanup (every process of that uid is killed). Without root the child runs as the current
user: the rlimits and the cleanup of its process group hold, but it can signal or write what that user can.

Where the machine allows it (Linux, root), the run is also confined in namespaces (see :mod:`langtts.tasks.confine`):
no network, a minimal read-only view of the files, a private ``/tmp`` and ``/proc``. The backend is probed once
per process; where none works, code runs with the rlimits only, and :func:`select_backend` says so once (a
:class:`SandboxWarning`), or refuses with ``sandbox="strict"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import IO, Literal

from langtts.tasks import confine

Status = Literal["passed", "failed", "timeout", "killed", "error"]
SandboxMode = Literal["auto", "strict"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_BYTES = 1 << 30
DEFAULT_MAX_OUTPUT_BYTES = 1 << 20
MAX_PROCS = 64  # tasks (processes and threads) the sandbox may add
MAX_FILE_BYTES = 16 << 20
SANDBOX_UIDS = range(1_900_000_000, 1_900_000_000 + (1 << 16))  # uids with no users, one per concurrent run
_DETAIL_CHARS = 2000
RLIMITS_ONLY = "rlimits only"  # the backend name where no namespace backend works
_MARKER = "# langtts-sandbox"  # in the child's command line, to recognise sandbox processes
_RUN = """
import resource, runpy, sys
for name, value in zip(("CPU", "AS", "NPROC", "FSIZE", "CORE"), map(int, sys.argv[1:6])):
    key = getattr(resource, "RLIMIT_" + name)
    hard = resource.getrlimit(key)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(key, (value, value))
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""
_BOOTSTRAP = _MARKER + _RUN
_CONFINED_BOOTSTRAP = _MARKER + confine.SETUP + _RUN
_PROBE = "import os, socket\nassert [n for _, n in socket.if_nameindex()] == ['lo']\nassert os.listdir('/tmp') == []\n"
_log = logging.getLogger(__name__)


class SandboxUnavailableError(RuntimeError):
    """``sandbox="strict"`` on a machine where model-written code cannot be confined."""


class SandboxWarning(RuntimeWarning):
    """Model-written code runs with the rlimits only: it can reach the network and read the machine's files."""


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed run; `detail` is a short reason (e.g. the tail of stderr)."""

    passed: bool
    status: Status
    detail: str = ""
    backend: str = ""  # one of confine.BACKENDS, or RLIMITS_ONLY


def select_backend(sandbox: SandboxMode = "auto") -> str:
    """The backend that runs code: the first of :data:`confine.BACKENDS` that works here, else
    :data:`RLIMITS_ONLY` — said once per process (a :class:`SandboxWarning`), or refused when `sandbox` is
    ``"strict"`` (:class:`SandboxUnavailableError`)."""
    if sandbox not in ("auto", "strict"):
        raise ValueError(f"sandbox must be 'auto' or 'strict', got {sandbox!r}")
    backend, reason = confinement()
    if backend == RLIMITS_ONLY:
        if sandbox == "strict":
            raise SandboxUnavailableError(f"strict sandbox: model-written code cannot be confined here ({reason})")
        _warn_unconfined(reason)
    return backend


def confinement() -> tuple[str, str]:
    """``(backend, why the others are not used)``, probed once per process by running a program confined."""
    with _PROBE_LOCK:
        return _probe()


_PROBE_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _probe() -> tuple[str, str]:
    reasons: list[str] = []
    for backend in confine.BACKENDS:
        reason = backend_failure(backend)
        if reason is None:
            return backend, "; ".join(reasons)
        reasons.append(f"{backend}: {reason}")
    return RLIMITS_ONLY, "; ".join(reasons)


def backend_failure(backend: str) -> str | None:
    """Why the namespace `backend` does not work here (None: it does), from a check and a trial run."""
    reason = confine.unavailable(backend)
    if reason is None:
        trial = run_python(_PROBE, backend=backend, timeout_s=30)
        reason = None if trial.passed else f"a trial run failed ({trial.status}: {trial.detail[-300:]})"
    return reason


@cache
def _warn_unconfined(reason: str) -> None:
    message = (
        f"sandbox: {RLIMITS_ONLY} — model-written code runs without namespaces: it can reach the network and "
        f"read what its uid can ({reason})"
    )
    warnings.warn(message, SandboxWarning, stacklevel=3)


def run_python(
    source: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    sandbox: SandboxMode = "auto",
    backend: str | None = None,
) -> SandboxResult:
    """Run the Python program `source` in the sandbox; it passes if it runs to its end with exit status 0.

    `sandbox` and `backend` are as in :func:`select_backend`, whose choice is used unless `backend` names one
    (one of :data:`confine.BACKENDS` or :data:`RLIMITS_ONLY`: for benchmarks and tests).
    """
    backend = backend or select_backend(sandbox)
    nonce = secrets.token_hex(16)
    program = f"{source}\n\n__import__('os').write(1, b'\\n{nonce}\\n')\n"
    base = tempfile.mkdtemp(prefix="langtts-sandbox-")
    try:
        with _sandbox_uid() as uid:  # on exit, every process of the uid is dead: only then remove the dir
            result = _prepare_and_run(program, backend, base, uid, nonce, timeout_s, memory_bytes, max_output_bytes)
            return dataclasses.replace(result, backend=backend)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _prepare_and_run(
    program: str, backend: str, base: str, uid: int | None, nonce: str, timeout_s: float, memory: int, cap: int
) -> SandboxResult:
    """Write the program into its working directory (`base`, or ``base/work`` when confined) and run it."""
    confined = backend != RLIMITS_ONLY
    if confined:
        exe: str | None = confine.interpreter()
        if uid is None:
            return SandboxResult(False, "error", "only root can confine code in namespaces")
        workdir = os.path.join(base, "work")
        os.mkdir(workdir)
        os.mkdir(os.path.join(base, "root"))  # the mount point of the sandbox's root
    else:
        exe = _interpreter() if uid is not None else sys.executable
        workdir = base
    if exe is None or not os.access(exe, os.X_OK):
        return SandboxResult(False, "error", "no Python interpreter is executable by the sandbox uid")
    with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
        f.write(program)
    if uid is not None:
        os.chmod(os.path.join(workdir, "main.py"), 0o644)  # readable whatever the umask
        os.chown(workdir, uid, uid)
    limits = [str(n) for n in (math.ceil(timeout_s) + 1, memory, _nproc_limit(uid), MAX_FILE_BYTES, 0)]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    if not confined:
        env |= {"HOME": workdir, "TMPDIR": workdir}
        return _run([exe, "-I", "-c", _BOOTSTRAP, *limits], workdir, env, uid, nonce, timeout_s, cap)
    assert uid is not None
    env |= {"HOME": confine.WORKDIR, "TMPDIR": "/tmp"}
    argv = confine.command(backend, exe, ["-I", "-c", _CONFINED_BOOTSTRAP, *limits], base, uid)
    return _run(argv, "/", env, None, nonce, timeout_s, cap, confined=True)


def _run(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    uid: int | None,
    nonce: str,
    timeout_s: float,
    cap: int,
    *,
    confined: bool = False,
) -> SandboxResult:
    """Run `argv` as `uid` (None: as this process, e.g. a confined run's setup, which drops to its uid itself)."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            user=uid,  # None: no change, as for group and extra_groups
            group=uid,
            extra_groups=None if uid is None else [],
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
    returncode = proc.returncode
    if confined and 128 < returncode <= 128 + 64:  # the namespace's init reports "killed by N" as 128 + N
        returncode = 128 - returncode
    return _verdict(returncode, bytes(stdout), bytes(stderr), overrun, nonce, timeout_s, cap)


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
