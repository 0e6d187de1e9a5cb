"""The vLLM launcher: command lines, environments, GPU groups; a real launch only when opted in."""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from langtts.cli import main
from langtts.models import ModelPool
from langtts.models.config import PoolConfig
from langtts.serve import vllm
from langtts.serve.process import ServerError


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


def test_host_and_data_parallel_flags() -> None:
    cmd = vllm.server_command("py", "org/m", "m", 9000, tensor_parallel=2, data_parallel=2, host="0.0.0.0")
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"
    assert cmd[cmd.index("--data-parallel-size") + 1] == "2"
    assert "--data-parallel-size" not in vllm.server_command("py", "org/m", "m", 9000)


def test_gpu_groups() -> None:
    assert vllm.gpu_groups(2, [0, 1, 2, 3], 2) == [(0, 1), (2, 3)]
    assert vllm.gpu_groups(3, [0, 1], 1) == [(0,), (1,), (0,)]
    with pytest.raises(ServerError, match="4 GPUs per server"):
        vllm.gpu_groups(1, [0, 1], 4)


FAKE_VLLM = """#!{python}
# Stands in for a vLLM environment's python: serves /health and /v1/models on --host/--port, records its argv.
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
with open(os.path.join({record!r}, args["--port"] + ".json"), "w") as f:
    json.dump({{"argv": sys.argv[1:], "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}}, f)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        models = {{"data": [{{"id": args["--served-model-name"]}}]}}
        body = json.dumps(models if self.path == "/v1/models" else {{}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer((args["--host"], int(args["--port"])), Handler).serve_forever()
"""


def fake_vllm_python(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "argv"
    record.mkdir()
    python = tmp_path / "python"
    python.write_text(FAKE_VLLM.format(python=sys.executable, record=str(record)))
    python.chmod(0o755)
    return python, record


def free_port_block(n: int) -> int:
    """The first of `n` consecutive ports that are free now."""
    for start in range(20000, 60000, 97):
        sockets = []
        try:
            for port in range(start, start + n):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free ports")


def test_replicas_behind_one_pool_file(tmp_path: Path) -> None:
    python, record = fake_vllm_python(tmp_path)
    port = free_port_block(4)
    servers, pool_file = vllm.start_vllm(
        {"qwen2.5-7b": "org/q", "llama-3.1-8b": "/models/l"},
        python=python,
        gpus=[0, 1, 2, 3, 4, 5, 6, 7],
        tensor_parallel=2,
        data_parallel=2,
        replicas=2,
        host="0.0.0.0",
        advertise="gpu-box",
        base_port=port,
        run_dir=tmp_path,
        startup_timeout=30,
    )
    try:
        pool = PoolConfig.load(pool_file)
        assert [m.id for m in pool.models] == ["qwen2.5-7b", "llama-3.1-8b"]
        assert [e.base_url for e in pool.models[0].endpoints] == [
            f"http://gpu-box:{port}/v1",
            f"http://gpu-box:{port + 1}/v1",
        ]
        assert [e.base_url for e in pool.models[1].endpoints][1] == f"http://gpu-box:{port + 3}/v1"
        launched = [json.loads((record / f"{port + i}.json").read_text()) for i in range(4)]
        assert [run["gpus"] for run in launched] == ["0,1,2,3", "4,5,6,7", "0,1,2,3", "4,5,6,7"]
        for run in launched:
            flags = dict(zip(run["argv"][2::2], run["argv"][3::2], strict=True))
            assert flags["--host"] == "0.0.0.0" and flags["--data-parallel-size"] == "2"
            assert flags["--tensor-parallel-size"] == "2"
        local = pool_file.read_text().replace("gpu-box", "127.0.0.1")  # this machine stands in for gpu-box
        (tmp_path / "local.yaml").write_text(local)
        with ModelPool.from_file(tmp_path / "local.yaml") as model_pool:
            served = model_pool.check()  # every replica answers the health check
        assert len(served) == 4
    finally:
        vllm.stop_vllm(servers, grace=5)
    assert {s.log_file.name for s in servers} >= {"vllm-qwen2.5-7b-0.log", "vllm-qwen2.5-7b-1.log"}


def test_bad_replica_counts_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--engine", "vllm", "--model", "m=org/m", "--replicas", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


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


@pytest.mark.integration
@pytest.mark.skipif(
    os.environ.get("LANGTTS_TEST_VLLM") != "1" or not os.environ.get("LANGTTS_VLLM_PYTHON"),
    reason="opt-in: LANGTTS_TEST_VLLM=1 and LANGTTS_VLLM_PYTHON=<python of a vLLM environment>",
)
def test_real_vllm_replicas_behind_one_pool(tmp_path: Path) -> None:
    """Two real replicas on all interfaces: the pool checks both and spreads requests over them."""
    from langtts.serve.setup import setup_models

    python = os.environ["LANGTTS_VLLM_PYTHON"]
    gguf = setup_models(["qwen2.5-coder-0.5b"])["qwen2.5-coder-0.5b"]
    hf_dir = vllm.gguf_to_hf(gguf, tmp_path / "hf", python=python)
    servers, pool_file = vllm.start_vllm(
        {"qwen2.5-coder-0.5b": hf_dir},
        python=python,
        replicas=2,
        host="0.0.0.0",
        advertise="127.0.0.1",
        run_dir=tmp_path,
    )
    try:
        with ModelPool.from_file(pool_file) as pool:
            assert len(pool.check()) == 2
            for i in range(4):
                pool.chat("qwen2.5-coder-0.5b", [{"role": "user", "content": f"Say hi {i}."}], max_tokens=8)
            figures = pool.ledger.by_endpoint()
        assert len(figures) == 2 and all(f.answered == 2 for f in figures.values())
    finally:
        vllm.stop_vllm(servers)
