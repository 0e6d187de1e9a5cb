"""The embedded model server: llama.cpp's ``llama-server`` in router mode, several models behind one endpoint.

Run state lives in the cache's ``run/`` directory (or a ``run_dir`` of your choice):

- ``presets.ini``: one section per model (see :func:`presets_text`);
- ``base-model-template.jinja``: a plain ``User:``/``Assistant:`` chat template for base models (Gemma 270M), the
  prompt file ``serve/base_model.jinja``;
- ``server.json``: the pid file (pid, port, base URL, model ids) used to find a running server again;
- ``pool.yaml``: the pool file of the running server (see :mod:`langtts.models.config`);
- ``llama-server.log``: the server's output.

Context sizing: the unified KV cache stays off (``kv-unified = false``), so llama-server splits ``ctx-size``
evenly among the ``parallel`` slots; each preset sets ``ctx-size = ctx_per_slot * parallel``, so every request
may use ``ctx_per_slot`` tokens (prompt + completion): the pool file's ``context_window``. The default, 8192,
fits a sink that reads ``DEFAULT_MAX_NODES`` full-length inputs at the largest family ``max_tokens`` default, plus
its own reply and the question (tested), so a search's widest graphs do not overflow.
Each model instance uses one thread by default (``threads``): with several graph nodes running at once that is far
faster than more threads per model on a small machine; a server for one model may use every core.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from langtts.files import write_text_atomic
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.prompts import PromptLibrary
from langtts.serve.cache import CachePaths, locked
from langtts.serve.setup import WEIGHTS, Progress, llama_server_binary, model_path, setup_models

DEFAULT_MODELS: tuple[str, ...] = tuple(WEIGHTS)
DEFAULT_CTX_PER_SLOT = 8192
DEFAULT_PARALLEL = 2
DEFAULT_CACHE_RAM_MIB = 1024  # host-memory prompt cache per model (llama-server's default is 8192)
HOST = "127.0.0.1"
BASE_MODEL_STOP: tuple[str, ...] = ("\nUser:", "\nAssistant:")
_STATE = "server.json"
_TEMPLATE = "base-model-template.jinja"


class ServerError(RuntimeError):
    """The embedded server could not be started, reached or stopped."""


@dataclass(frozen=True)
class ServerInfo:
    """A running embedded server."""

    base_url: str
    port: int
    pid: int
    models: tuple[str, ...]
    pool_file: Path
    log_file: Path
    run_dir: Path
    reused: bool = False  # True when an already-running server was found instead of started

    def describe(self) -> str:
        how = "already running" if self.reused else "started"
        weak = [m for m in self.models if WEIGHTS[m].base_model]
        lines = [
            f"langtts embedded server {how} (pid {self.pid}): {self.base_url}",
            f"  models: {', '.join(self.models)}",
            f"  pool file: {self.pool_file}",
            f"  log: {self.log_file}",
        ]
        if weak:
            lines.append(f"  base models (weak, plain User:/Assistant: template): {', '.join(weak)}")
        return "\n".join(lines)


def presets_text(
    models: Mapping[str, Path],
    *,
    parallel: int = DEFAULT_PARALLEL,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    cache_ram_mib: int = DEFAULT_CACHE_RAM_MIB,
    threads: int = 1,
    template_file: Path | None = None,
) -> str:
    """The router's presets INI: one section per model id (base models need ``template_file``)."""
    lines = ["version = 1", ""]
    for model_id, path in models.items():
        lines += [
            f"[{model_id}]",
            f"model = {path}",
            f"threads = {threads}",
            f"parallel = {parallel}",
            f"ctx-size = {ctx_per_slot * parallel}",
            "kv-unified = false",
            f"cache-ram = {cache_ram_mib}",
        ]
        if WEIGHTS[model_id].base_model:
            if template_file is None:
                raise ValueError(f"{model_id} is a base model: a chat template file is needed")
            lines.append(f"chat-template-file = {template_file}")
        lines.append("")
    return "\n".join(lines)


def pool_config(models: Sequence[str], base_url: str, *, parallel: int, ctx_per_slot: int) -> PoolConfig:
    """The pool file contents for a server with ``models`` at ``base_url``."""
    return PoolConfig(
        models=[
            PoolModel(
                id=m,
                endpoints=[Endpoint(base_url=base_url, max_concurrency=parallel)],
                context_window=ctx_per_slot,
                fingerprint=f"sha256:{WEIGHTS[m].sha256}",
                stop=list(BASE_MODEL_STOP) if WEIGHTS[m].base_model else [],
            )
            for m in models
        ]
    )


class EmbeddedServer:
    """Start, find and stop the embedded llama.cpp router for one run directory."""

    def __init__(
        self,
        models: Sequence[str] = DEFAULT_MODELS,
        *,
        port: int | None = None,
        ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
        parallel: int = DEFAULT_PARALLEL,
        threads: int = 1,
        cache_ram_mib: int = DEFAULT_CACHE_RAM_MIB,
        run_dir: str | Path | None = None,
        cache: CachePaths | None = None,
        startup_timeout: float = 120.0,
        progress: Progress | None = None,
    ) -> None:
        unknown = [m for m in models if m not in WEIGHTS]
        if unknown or not models:
            raise ValueError(f"unknown or no model ids {list(models)}; known: {list(WEIGHTS)}")
        self.models = tuple(dict.fromkeys(models))
        self.port = port
        self.ctx_per_slot = ctx_per_slot
        if parallel < 1 or threads < 1:
            raise ValueError(f"parallel and threads must be ≥ 1, got {parallel} and {threads}")
        self.parallel = parallel
        self.threads = threads
        self.cache_ram_mib = cache_ram_mib
        self.cache = CachePaths(cache.root if cache else CachePaths.default().root, Path(run_dir) if run_dir else None)
        self.startup_timeout = startup_timeout
        self.progress = progress
        self._entered: ServerInfo | None = None

    @property
    def run_dir(self) -> Path:
        return self.cache.run

    # -- discovery ------------------------------------------------------------------------------------------

    def running(self) -> ServerInfo | None:
        """The server recorded in the run directory if it is alive and ``/health`` answers; else None.

        A pid file whose process is gone is removed.
        """
        state = self._read_state()
        if state is None:
            return None
        if not _is_llama_server(state["pid"]):
            self._clear_state()
            return None
        if not is_healthy(state["port"]):
            return None
        return self._info(state, reused=True)

    # -- start / stop ---------------------------------------------------------------------------------------

    def start(self, *, setup: bool = True) -> ServerInfo:
        """Start the server (or reuse the one already running here) and wait until it is healthy.

        With ``setup`` the server binary and weights are built/fetched first when missing (cached afterwards).
        Concurrent starts in one run directory are serialised by a lock file: the second one reuses the first.
        """
        with locked(self.run_dir / "server.lock"):
            return self._start(setup)

    def _start(self, setup: bool) -> ServerInfo:
        existing = self.running()
        if existing is not None:
            missing = [m for m in self.models if m not in existing.models]
            if missing:
                raise ServerError(
                    f"a server (pid {existing.pid}) already runs from {self.run_dir} without {missing}; stop it first"
                )
            self._say(existing.describe())
            return existing
        state = self._read_state()
        if state is not None:  # alive but not healthy
            raise ServerError(
                f"llama-server pid {state['pid']} from {self.run_dir} is alive but /health does not answer "
                f"on port {state['port']}; stop it first or see {self.run_dir / 'llama-server.log'}"
            )
        paths = self._model_paths(setup)
        binary = llama_server_binary(self.cache)
        if binary is None:
            raise ServerError("llama-server is not built yet: run langtts.serve.setup_models(...) first")
        run = self.run_dir
        run.mkdir(parents=True, exist_ok=True)
        template = run / _TEMPLATE
        template.write_text(PromptLibrary().file("serve/base_model.jinja").read_text(encoding="utf-8"))
        presets = run / "presets.ini"
        presets.write_text(
            presets_text(
                paths,
                parallel=self.parallel,
                ctx_per_slot=self.ctx_per_slot,
                cache_ram_mib=self.cache_ram_mib,
                threads=self.threads,
                template_file=template,
            )
        )
        port = self.port or free_port()
        log_file = run / "llama-server.log"
        cmd = [
            str(binary),
            "--models-preset", str(presets),
            "--models-max", str(len(paths)),
            "--host", HOST,
            "--port", str(port),
        ]  # fmt: skip
        with log_file.open("w") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        state = {"pid": proc.pid, "port": port, "models": list(paths), "started": time.time()}
        self._write_state(state)
        try:
            wait_until_healthy(proc, port, log_file, self.startup_timeout, name="llama-server")
        except BaseException:
            terminate_process_group(proc.pid, grace=5.0)
            self._clear_state()
            raise
        info = self._info(state, reused=False)
        pool_config(info.models, info.base_url, parallel=self.parallel, ctx_per_slot=self.ctx_per_slot).save(
            info.pool_file
        )
        self._say(info.describe())
        return info

    def stop(self, grace: float = 10.0) -> bool:
        """Stop the server of this run directory: SIGTERM to its process group, SIGKILL after ``grace`` s.

        Returns False when no server was running.
        """
        with locked(self.run_dir / "server.lock"):
            state = self._read_state()
            if state is None:
                return False
            was_alive = _is_llama_server(state["pid"])
            if was_alive:
                terminate_process_group(state["pid"], grace=grace)
            self._clear_state()
            return was_alive

    def serve_forever(self) -> None:
        """Start (or find) the server, block until Ctrl-C or SIGTERM, then stop it if this call started it."""
        info = self.start()
        if info.reused:
            return
        # Also when SIGINT was inherited as ignored (a background job of a script): SIGINT must stop it.
        previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while _alive(info.pid):
                time.sleep(0.5)
            raise ServerError(f"llama-server exited unexpectedly; log {info.log_file}:\n{log_tail(info.log_file)}")
        except KeyboardInterrupt:
            self._say("stopping the embedded server")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> ServerInfo:
        self._entered = self.start()
        return self._entered

    def __exit__(self, *exc: object) -> None:
        if self._entered is not None and not self._entered.reused:  # a found server is not ours to stop
            self.stop()

    # -- internals ------------------------------------------------------------------------------------------

    def _model_paths(self, setup: bool) -> dict[str, Path]:
        if setup:
            return setup_models(self.models, cache=self.cache, progress=self.progress)
        paths = {m: model_path(m, self.cache) for m in self.models}
        missing = [m for m, p in paths.items() if p is None]
        if missing:
            raise ServerError(f"weights of {missing} are not set up: run langtts.serve.setup_models(...) first")
        return {m: p for m, p in paths.items() if p is not None}

    def _info(self, state: dict, *, reused: bool) -> ServerInfo:
        return ServerInfo(
            base_url=f"http://{HOST}:{state['port']}/v1",
            port=state["port"],
            pid=state["pid"],
            models=tuple(state["models"]),
            pool_file=self.run_dir / "pool.yaml",
            log_file=self.run_dir / "llama-server.log",
            run_dir=self.run_dir,
            reused=reused,
        )

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.run_dir / _STATE).read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, state: dict) -> None:
        write_text_atomic(self.run_dir / _STATE, json.dumps(state, indent=2) + "\n")

    def _clear_state(self) -> None:
        for name in (_STATE, "pool.yaml"):
            (self.run_dir / name).unlink(missing_ok=True)

    def _say(self, text: str) -> None:
        (self.progress or (lambda line: print(line, file=sys.stderr, flush=True)))(text)


def start_server(
    models: Sequence[str] = DEFAULT_MODELS,
    port: int | None = None,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    parallel: int = DEFAULT_PARALLEL,
    *,
    threads: int = 1,
    run_dir: str | Path | None = None,
    setup: bool = True,
) -> ServerInfo:
    """Start the embedded server in the background (or report the one already running) and return its info."""
    server = EmbeddedServer(
        models, port=port, ctx_per_slot=ctx_per_slot, parallel=parallel, threads=threads, run_dir=run_dir
    )
    return server.start(setup=setup)


def stop_server(run_dir: str | Path | None = None) -> bool:
    """Stop the embedded server of ``run_dir`` (default: the cache's ``run/``); False if none was running."""
    return EmbeddedServer(run_dir=run_dir).stop()


def running_server(run_dir: str | Path | None = None) -> ServerInfo | None:
    """The embedded server running from ``run_dir`` (default: the cache's ``run/``), or None."""
    return EmbeddedServer(run_dir=run_dir).running()


# -- process helpers ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def is_healthy(port: int, timeout: float = 2.0) -> bool:
    """True if ``GET /health`` on the loopback ``port`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_healthy(proc: subprocess.Popen, port: int, log_file: Path, timeout: float, *, name: str) -> None:
    """Poll ``/health`` on ``port`` until it answers; fail with the log tail if ``proc`` dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServerError(f"{name} exited with code {code}; log {log_file}:\n{log_tail(log_file)}")
        if is_healthy(port):
            return
        time.sleep(0.2)
    raise ServerError(f"{name} did not become healthy within {timeout:.0f}s; log {log_file}:\n{log_tail(log_file)}")


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of ``pid`` from /proc, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a zombie child of ours is reaped)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return stat is None or stat[0] != "Z"


def _is_llama_server(pid: int) -> bool:
    """True if ``pid`` is alive and (where /proc tells) runs llama-server: a recycled pid is never ours."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()
    return b"llama-server" in cmdline


def process_family(pid: int) -> set[int]:
    """``pid``, its process group and all its descendants that are alive (via /proc)."""
    members = {pid}
    procs: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) and stat[0] != "Z":
            procs[int(entry.name)] = (stat[1], stat[2])
    changed = True
    while changed:
        new = {p for p, (ppid, pgrp) in procs.items() if (ppid in members or pgrp == pid) and p not in members}
        members |= new
        changed = bool(new)
    return {p for p in members if _alive(p)}


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
    targets = {p for p in targets | process_family(pid) if _alive(p)}  # children orphaned meanwhile stay targets
    if targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for p in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        _wait_gone(targets, 5.0)
    left = {p for p in targets | process_family(pid) if _alive(p)}
    if left:
        raise ServerError(f"processes {sorted(left)} of group {pid} survived SIGKILL")


def _wait_gone(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
