"""The real embedded llama.cpp server (``embedded_server`` fixture from ``tests.serve_fixture``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from langtts.models.config import PoolConfig
from langtts.serve import embedded
from langtts.serve.embedded import EmbeddedServer, ServerInfo
from langtts.serve.setup import WEIGHTS, model_path
from tests.serve_fixture import TEST_MODELS

pytestmark = pytest.mark.integration


def _post(base_url: str, path: str, body: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    request = urllib.request.Request(
        base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def _get(base_url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + path, timeout=30) as resp:
        return json.loads(resp.read())


def test_lists_both_models(embedded_server: ServerInfo) -> None:
    ids = {m["id"] for m in _get(embedded_server.base_url, "/models")["data"]}
    assert set(TEST_MODELS) <= ids
    assert embedded_server.models == TEST_MODELS


def test_pool_file_describes_the_server(embedded_server: ServerInfo) -> None:
    pool = PoolConfig.load(embedded_server.pool_file)
    assert [m.id for m in pool.models] == list(TEST_MODELS)
    for model in pool.models:
        assert model.endpoints[0].base_url == embedded_server.base_url
        assert model.fingerprint == f"sha256:{WEIGHTS[model.id].sha256}"
        assert model.context_window == embedded.DEFAULT_CTX_PER_SLOT


@pytest.mark.parametrize("model", TEST_MODELS)
def test_chat_returns_text_and_usage(embedded_server: ServerInfo, model: str) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Name one primary colour. Answer with one word."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    reply = _post(embedded_server.base_url, "/chat/completions", body)
    assert reply["choices"][0]["message"]["content"].strip()
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 5
    assert 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("model", TEST_MODELS)
def test_json_schema_is_enforced(embedded_server: ServerInfo, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "integer"},
            "unit": {"type": "string", "enum": ["apples", "pears"]},
        },
        "required": ["answer", "unit"],
        "additionalProperties": False,
    }
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "I had 3 apples and bought 4 more. How many apples now?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "count", "schema": schema}},
        "max_tokens": 48,
        "temperature": 0,
    }
    content = _post(embedded_server.base_url, "/chat/completions", body)["choices"][0]["message"]["content"]
    data = json.loads(content)
    assert set(data) == {"answer", "unit"}
    assert isinstance(data["answer"], int)
    assert data["unit"] in {"apples", "pears"}


def test_unknown_model_is_an_error(embedded_server: ServerInfo) -> None:
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(embedded_server.base_url, "/chat/completions", body)
    assert 400 <= err.value.code < 500


def test_second_start_reuses_the_running_server(embedded_server: ServerInfo) -> None:
    again = EmbeddedServer(TEST_MODELS[:1], run_dir=embedded_server.run_dir, progress=lambda _: None)
    info = again.start(setup=False)
    assert info.reused
    assert (info.pid, info.base_url) == (embedded_server.pid, embedded_server.base_url)
    assert again.running() == info


def test_stop_leaves_no_processes(embedded_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = EmbeddedServer(TEST_MODELS[:1], run_dir=tmp_path_factory.mktemp("stop-run"), progress=lambda _: None)
    info = server.start(setup=False)
    assert info.base_url != embedded_server.base_url
    body = {"model": TEST_MODELS[0], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    _post(info.base_url, "/chat/completions", body)  # loads the model: the router spawns a child instance
    family = embedded.process_family(info.pid)
    assert len(family) >= 2
    assert server.stop() is True
    assert not any(embedded._alive(p) for p in family)
    assert server.running() is None
    assert not info.pool_file.exists()
    assert server.stop() is False


@pytest.mark.skipif(model_path("gemma3-270m") is None, reason="gemma3-270m weights not set up (setup_models)")
def test_base_model_gets_the_plain_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = EmbeddedServer(["gemma3-270m"], run_dir=tmp_path_factory.mktemp("gemma-run"), progress=lambda _: None)
    info = server.start(setup=False)
    try:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        root = info.base_url.removesuffix("/v1")
        prompt = _post(root, "/apply-template", {"model": "gemma3-270m", "messages": messages})["prompt"]
        assert prompt == "Be brief.\n\nUser: Hi\nAssistant: Hello.\nUser: What is the capital of France?\nAssistant:"
        no_system = _post(root, "/apply-template", {"model": "gemma3-270m", "messages": messages[3:]})["prompt"]
        preamble = (  # prompts/serve/base_model.jinja, without a system message
            "The following is a conversation between a curious user and a knowledgeable, helpful assistant. "
            "The assistant answers questions correctly and concisely."
        )
        assert no_system == preamble + "\n\nUser: What is the capital of France?\nAssistant:"
        stop = PoolConfig.load(info.pool_file).models[0].stop
        body = {
            "model": "gemma3-270m",
            "messages": messages[3:],
            "max_tokens": 32,
            "temperature": 0,
            "stop": stop,
        }
        reply = _post(info.base_url, "/chat/completions", body)
        text = reply["choices"][0]["message"]["content"]
        assert text.strip() and "User:" not in text
        assert reply["usage"]["completion_tokens"] > 0
    finally:
        server.stop()
