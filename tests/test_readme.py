"""The README's code: every Python block runs against the real embedded server; its pool-file example parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from langtts import shapes
from langtts.graph import load_graph
from langtts.models.config import PoolConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_pool_file_example_is_a_valid_pool() -> None:
    (block,) = _blocks("yaml")
    pool = PoolConfig.model_validate(yaml.safe_load(block))
    assert [m.id for m in pool.models] == ["llama-3.1-8b", "llama-3.2-1b"]
    assert len(pool.models[0].endpoints) == 2


def test_graph_files_named_in_the_readme_exist_and_are_valid() -> None:
    for path in re.findall(r"examples/graphs/[\w.]+", README):
        load_graph(ROOT / path).check()


def test_the_example_graph_named_for_a_shape_is_that_shape() -> None:
    graph = load_graph(ROOT / "examples/graphs/self_consistency5.json")
    assert "examples/graphs/self_consistency5.json" in README
    assert graph.fingerprint() == shapes.self_consistency(graph.nodes[0].model, 5).fingerprint()


def test_python_blocks_use_graphs_that_ship_with_langtts() -> None:
    for block in _blocks("python"):
        assert "examples/" not in block, "an installed langtts has no examples/ directory: build graphs with shapes"


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_block_runs(index: int, embedded_server, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("LANGTTS_POOL", str(embedded_server.pool_file))
    monkeypatch.chdir(ROOT)
    exec(compile(_blocks("python")[index], f"README.md python block {index}", "exec"), {})
    assert capsys.readouterr().out.strip()
