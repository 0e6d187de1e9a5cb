"""Every entry point listed in agents/langgraph.json imports and builds its graph, offline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from langgraph.pregel import Pregel

from langtts.models.config import Endpoint, PoolConfig, PoolModel

AGENTS = Path(__file__).resolve().parents[2] / "agents"
CONFIG = json.loads((AGENTS / "langgraph.json").read_text())
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch):
    """A pool file whose endpoints are never contacted, and the LANGTTS_* variables the entry points read."""
    pool = PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url="http://127.0.0.1:9/v1")]) for m in MODELS])
    pool.save(tmp_path / "pool.yaml")
    for name in ("MODELS", "SINK_MODEL", "AGENT_MODEL", "VARIANT", "OBJECTIVE", "SEED", "MAX_ROUNDS", "GRAPH"):
        monkeypatch.delenv(f"LANGTTS_{name}", raising=False)
    monkeypatch.setenv("LANGTTS_POOL", str(tmp_path / "pool.yaml"))
    monkeypatch.setenv("LANGTTS_TASK", "gsm8k")
    monkeypatch.setenv("LANGTTS_BUDGET", "40")


def build(name: str) -> Pregel:
    path, attribute = CONFIG["graphs"][name].rsplit(":", 1)
    spec = importlib.util.spec_from_file_location(f"langgraph_entry_{name}", AGENTS / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = getattr(module, attribute)
    return target if isinstance(target, Pregel) else target({"configurable": {}})


def test_the_config_installs_the_repository():
    assert (AGENTS / CONFIG["dependencies"][0] / "pyproject.toml").is_file()


@pytest.mark.parametrize("name", sorted(CONFIG["graphs"]))
def test_entry_point_builds_its_graph(name):
    graph = build(name)
    assert isinstance(graph, Pregel)
    assert graph.get_graph().nodes


def test_the_optimizer_agent_has_the_agent_reinforce_steps():
    nodes = set(build("optimizer").get_graph().nodes)
    assert {"initialise", "pretest", "sample", "evaluate", "feedback", "update"} <= nodes


def test_the_optimized_graph_entry_point_serves_a_graph_file(tmp_path, monkeypatch):
    assert set(build("optimized").get_graph().nodes) >= {"n0", "n1", "sink"}  # the default: duo.json
    from langtts import parallel

    parallel("smollm2-135m", n=3, sink_model="qwen2.5-coder-1.5b").save(tmp_path / "mine.yaml")
    monkeypatch.setenv("LANGTTS_GRAPH", str(tmp_path / "mine.yaml"))
    monkeypatch.setenv("LANGTTS_MAX_TOKENS", "32")
    assert set(build("optimized").get_graph().nodes) >= {"n0", "n1", "n2", "sink"}
    monkeypatch.delenv("LANGTTS_POOL")
    with pytest.raises(ValueError, match="LANGTTS_POOL"):
        build("optimized")
