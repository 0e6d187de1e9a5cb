"""The vLLM launcher: command lines, environments, GPU groups; a real launch only when opted in."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from langtts.models.config import PoolConfig
from langtts.serve import vllm
from langtts.serve.embedded import ServerError


def test_cpu_command_and_env() -> None:
    cmd = vllm.server_command("/venv/bin/python", "/models/q", "qwen", 8101, cpu=True)
    assert cmd[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags == {
        "--model": "/models/q",
        "--served-model-name": "qwen",
        "--host": "127.0.0.1",
        "--port": "8101",
        "--max-model-len": "4096",
        "--dtype": "bfloat16",
    }
    env = vllm.server_env([], cpu_threads=2)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_gpu_command_and_env() -> None:
    cmd = vllm.server_command("py", "org/m", "m", 9000, tensor_parallel=2, gpu_memory_utilization=0.45)
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.45"
    assert "--dtype" not in cmd
    env = vllm.server_env([2, 3])
    assert env == {**os.environ, "CUDA_VISIBLE_DEVICES": "2,3"}


def test_gpu_groups() -> None:
    assert vllm.gpu_groups(2, [0, 1, 2, 3], 2) == [(0, 1), (2, 3)]
    assert vllm.gpu_groups(3, [0, 1], 1) == [(0,), (1,), (0,)]
    with pytest.raises(ServerError, match="tensor_parallel=4"):
        vllm.gpu_groups(1, [0, 1], 4)


def test_detect_gpus_honours_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert vllm.detect_gpus() == [1, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert vllm.detect_gpus() == []


def test_failed_start_stops_everything_and_shows_the_log(tmp_path: Path) -> None:
    """A 'python' that is no vLLM: the launcher reports its exit with the log tail."""
    with pytest.raises(ServerError, match=r"(?s)vLLM \(m\) exited with code 1.*No module named"):
        vllm.start_vllm({"m": "/nowhere"}, python=sys.executable, gpus=[], base_port=18931, run_dir=tmp_path)
    assert not (tmp_path / "vllm-pool.yaml").exists()


def test_gguf_to_hf_failure_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="converting"):
        vllm.gguf_to_hf(tmp_path / "x.gguf", tmp_path / "out", python=sys.executable)


@pytest.mark.integration
@pytest.mark.skipif(
    os.environ.get("LANGTTS_TEST_VLLM") != "1" or not os.environ.get("LANGTTS_VLLM_PYTHON"),
    reason="opt-in: LANGTTS_TEST_VLLM=1 and LANGTTS_VLLM_PYTHON=<python of a vLLM environment>",
)
def test_real_vllm_serves_a_converted_model(tmp_path: Path) -> None:
    from langtts.serve.setup import setup_models

    python = os.environ["LANGTTS_VLLM_PYTHON"]
    gguf = setup_models(["qwen2.5-coder-0.5b"])["qwen2.5-coder-0.5b"]
    hf_dir = vllm.gguf_to_hf(gguf, tmp_path / "hf", python=python)
    servers, pool_file = vllm.start_vllm({"qwen2.5-coder-0.5b": hf_dir}, python=python, run_dir=tmp_path)
    try:
        pool = PoolConfig.load(pool_file)
        body = {
            "model": "qwen2.5-coder-0.5b",
            "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 8,
        }
        request = urllib.request.Request(
            pool.models[0].endpoints[0].base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as resp:
            reply = json.loads(resp.read())
        assert reply["choices"][0]["message"]["content"]
        assert reply["usage"]["completion_tokens"] > 0
    finally:
        vllm.stop_vllm(servers)
