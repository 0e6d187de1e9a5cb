"""Helpers shared by the benchmark scripts: machine description, result files, a pool-file loader.

The scripts run as ``python benchmarks/<name>.py`` (this directory is then first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langtts.graph import CollaborationGraph
    from langtts.models import Endpoint, PoolModel

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def default_out(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model and count, memory, OS, Python and key package versions."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        info["mem_total_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        info["mem_total_gib"] = None
    versions = {}
    for package in ("langgraph", "langchain-core", "langchain-openai", "httpx", "openai"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
    info["packages"] = versions
    return info


def _cpu_model() -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def header(name: str) -> dict[str, Any]:
    """The common head of a result file: benchmark name, UTC date and time, the exact command, the machine."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "benchmark": name,
        "date": now.date().isoformat(),
        "time_utc": now.isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    from langtts.files import write_text_atomic

    return write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def say(line: str = "") -> None:
    print(line, flush=True)


def parse_shape(text: str, model: str) -> CollaborationGraph:
    """``single``, ``parallel:N`` or ``layered:DEPTHxWIDTH``, every node on ``model``."""
    from langtts.shapes import layered, parallel, single

    kind, _, size = text.partition(":")
    if kind == "single":
        return single(model)
    if kind == "parallel":
        return parallel(model, int(size))
    if kind == "layered":
        depth, width = (int(x) for x in size.lower().split("x"))
        return layered(model, width=width, depth=depth)
    raise argparse.ArgumentTypeError(f"unknown shape {text!r}: single, parallel:N or layered:DxW")


# -- the embedded (llama.cpp) server ---------------------------------------------------------------------------


def server_extra_body(prompt_cache: bool) -> dict[str, Any]:
    """Extra fields for every request to llama.cpp: its prompt (prefix) cache off unless ``prompt_cache``.

    With it on, a request whose prompt the server saw before skips most of its prefill, so whichever run goes
    second looks faster for reasons that have nothing to do with what is measured.
    """
    return {} if prompt_cache else {"cache_prompt": False}


def chat_model_factory(extra: dict[str, Any], timeout: float = 120.0) -> Callable[[PoolModel, Endpoint], Any]:
    """For ``ModelPool(chat_model_factory=...)``: the pool's own ``ChatOpenAI`` client plus ``extra`` in every
    request body."""
    import httpx
    from langchain_openai import ChatOpenAI

    from langtts.models.pool import DUMMY_API_KEY

    def make(model: PoolModel, endpoint: Endpoint) -> ChatOpenAI:
        return ChatOpenAI(
            model=model.name_on_server,
            base_url=endpoint.base_url,
            api_key=DUMMY_API_KEY,
            timeout=timeout,
            max_retries=0,
            http_async_client=httpx.AsyncClient(timeout=timeout),
            extra_body=extra or None,
        )

    return make


def warm_up(pool_file: str | Path) -> None:
    """One tiny request per model of the pool file, so that the router's loading of weights is not timed."""
    import httpx

    from langtts.models import PoolConfig

    for model in PoolConfig.load(pool_file).models:
        for endpoint in model.endpoints:
            body = {"model": model.name_on_server, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
            for attempt in range(3):  # llama.cpp's router now and then drops a kept-alive connection
                try:
                    url = endpoint.base_url.rstrip("/") + "/chat/completions"
                    httpx.post(url, json=body, timeout=300.0).raise_for_status()
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
