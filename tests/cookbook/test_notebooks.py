"""The cookbook's notebooks: committed with their outputs (offline checks), and run top to bottom against the real
embedded server (integration), each into a copy in a temporary directory — the committed files are never touched."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "cookbook"
NOTEBOOKS = sorted(COOKBOOK.glob("[0-9][0-9]_*.ipynb"))
NOTEBOOK_TIMEOUT_S = 900  # a notebook's whole run; cold CPU runs of the search notebooks take minutes
EXPECTED = {
    "01_quickstart.ipynb",
    "02_optimize_agent_reinforce.ipynb",
    "03_langchain_app.ipynb",
    "04_prompts_and_jsonl_task.ipynb",
    "05_accuracy_latency.ipynb",
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_the_cookbook_has_its_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} == EXPECTED
    readme = (COOKBOOK / "README.md").read_text()
    assert all(name in readme for name in EXPECTED), "cookbook/README.md lists every notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_valid_and_committed_with_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title first"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        ast.parse(cell.source)
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom in one session"
    assert sum(bool(cell.outputs) for cell in code) >= len(code) // 2, "outputs are committed"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, f"a cell failed when the notebook was saved: {errors[0].ename}: {errors[0].evalue}"
    assert any(line.lstrip().startswith("assert ") for source in _code(nb) for line in source.splitlines())
    assert 'os.environ["LANGTTS_POOL"]' in "".join(_code(nb)), "the pool file comes from $LANGTTS_POOL"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_uses_only_the_test_models(path: Path) -> None:
    text = "".join(_code(nbformat.read(path, as_version=4)))
    for model in ("qwen2.5-coder-1.5b", "gemma3-270m"):
        assert model not in text, f"{path.name} needs {model}, which the test server does not serve"


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path: Path, embedded_server, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # start from a clean copy
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        nb,
        timeout=NOTEBOOK_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(COOKBOOK)}},
        record_timing=False,
    )
    env = {**os.environ, "LANGTTS_POOL": str(embedded_server.pool_file), "MPLBACKEND": "Agg"}
    env.pop("LANGTTS_PROMPTS_DIR", None)
    started = time.monotonic()
    try:
        client.execute(env=env)
    finally:
        elapsed = time.monotonic() - started
        nbformat.write(nb, tmp_path / path.name)
        print(f"\n{path.name}: executed in {elapsed:.0f}s (copy: {tmp_path / path.name})")
    assert elapsed < NOTEBOOK_TIMEOUT_S
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
