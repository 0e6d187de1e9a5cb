"""The embedded server without starting llama-server: presets, pool file, pid file and process handling."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from langtts.models.config import PoolConfig
from langtts.serve.cache import CachePaths
from langtts.serve.embedded import (
    BASE_MODEL_STOP,
    EmbeddedServer,
    pool_config,
    presets_text,
    running_server,
    stop_server,
)
from langtts.serve.process import ServerError
from langtts.serve.setup import WEIGHTS

PATHS = {"smollm2-135m": Path("/m/smol.gguf"), "gemma3-270m": Path("/m/gemma.gguf")}


def _sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return sections


def test_presets_one_section_per_model() -> None:
    text = presets_text(PATHS, parallel=3, ctx_per_slot=2048, template_file=Path("/run/t.jinja"))
    assert text.startswith("version = 1\n")
    sections = _sections(text)
    assert list(sections) == ["smollm2-135m", "gemma3-270m"]
    smol = sections["smollm2-135m"]
    assert smol == {
        "model": "/m/smol.gguf",
        "threads": "1",
        "parallel": "3",
        "ctx-size": str(3 * 2048),
        "kv-unified": "false",
        "cache-ram": "1024",
    }
    assert sections["gemma3-270m"]["chat-template-file"] == "/run/t.jinja"


def test_presets_threads_per_model() -> None:
    text = presets_text({"smollm2-135m": Path("/m/smol.gguf")}, threads=2)
    assert _sections(text)["smollm2-135m"]["threads"] == "2"


@pytest.mark.parametrize("option", [{"parallel": 0}, {"threads": 0}])
def test_server_rejects_non_positive_slots_or_threads(option: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be ≥ 1"):
        EmbeddedServer(["smollm2-135m"], **option)


def test_base_model_needs_a_template() -> None:
    with pytest.raises(ValueError, match="base model"):
        presets_text({"gemma3-270m": Path("/m/g.gguf")})


def test_pool_config(tmp_path: Path) -> None:
    pool = pool_config(list(PATHS), "http://127.0.0.1:9/v1", parallel=2, ctx_per_slot=4096)
    pool.save(tmp_path / "pool.yaml")
    loaded = PoolConfig.load(tmp_path / "pool.yaml")
    smol, gemma = loaded.models
    assert (smol.id, smol.context_window, smol.stop) == ("smollm2-135m", 4096, [])
    assert smol.endpoints[0].base_url == "http://127.0.0.1:9/v1"
    assert smol.endpoints[0].max_concurrency == 2
    assert smol.fingerprint == f"sha256:{WEIGHTS['smollm2-135m'].sha256}"
    assert gemma.stop == list(BASE_MODEL_STOP)


def test_unknown_models_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        EmbeddedServer(["gpt-5"])
    with pytest.raises(ValueError):
        EmbeddedServer([])


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_state(run: Path, pid: int, port: int = 9) -> None:
    run.mkdir(parents=True, exist_ok=True)
    state = {"pid": pid, "port": port, "models": ["smollm2-135m"], "started": 0}
    (run / "server.json").write_text(json.dumps(state))
    (run / "pool.yaml").write_text("models: []\n")


def test_dead_pid_is_not_running_and_is_cleaned(tmp_path: Path) -> None:
    _write_state(tmp_path, _dead_pid())
    assert running_server(tmp_path) is None
    assert not (tmp_path / "server.json").exists()
    assert not (tmp_path / "pool.yaml").exists()
    assert stop_server(tmp_path) is False


def test_recycled_pid_is_never_touched(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        _write_state(tmp_path, other.pid)
        assert running_server(tmp_path) is None  # alive, but not a llama-server
        _write_state(tmp_path, other.pid)
        assert stop_server(tmp_path) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_no_state_means_not_running(tmp_path: Path) -> None:
    assert running_server(tmp_path) is None
    assert stop_server(tmp_path) is False


def test_start_without_setup_reports_missing_weights(tmp_path: Path) -> None:
    server = EmbeddedServer(["smollm2-135m"], cache=CachePaths(tmp_path / "cache"), run_dir=tmp_path / "run")
    with pytest.raises(ServerError, match="not set up"):
        server.start(setup=False)


@pytest.mark.parametrize("task_name", ["gsm8k", "mmlu", "math500", "humaneval"])
def test_the_default_context_fits_a_sink_reading_max_nodes_full_inputs(task_name: str) -> None:
    from langtts.compile import CHARS_PER_TOKEN, compile_graph, default_settings
    from langtts.serve.embedded import DEFAULT_CTX_PER_SLOT
    from langtts.shapes import parallel
    from langtts.space import DEFAULT_MAX_NODES
    from langtts.tasks import get_task
    from tests.fakes import fake_pool

    task = get_task(task_name)
    pool, _ = fake_pool(lambda *_: "", context_window=DEFAULT_CTX_PER_SLOT)
    graph = parallel("qwen2.5-coder-0.5b", DEFAULT_MAX_NODES)
    compile_graph(graph, pool, task)  # the static check: inputs' and own max_tokens plus the templates fit
    longest = max(len(task.format_question(ex)) for ex in task.load()) / CHARS_PER_TOKEN
    need = (DEFAULT_MAX_NODES + 1) * default_settings(task.family).max_tokens + longest + 600  # 600: the templates
    assert need <= DEFAULT_CTX_PER_SLOT, (task_name, need)
