"""Pytest plugin: the real embedded llama.cpp server, started once per test session.

Register it in ``tests/conftest.py``: ``pytest_plugins = ["tests.serve_fixture"]``. The first session builds
llama-server and fetches the weights into the user cache (about 8 minutes, progress on the terminal); later
sessions reuse them. The server runs from a private run directory on a free port, so it never collides with a
user's own server, and is stopped when the session ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from langtts.serve.embedded import EmbeddedServer, ServerInfo
from langtts.serve.setup import setup_models

TEST_MODELS: tuple[str, ...] = ("smollm2-135m", "qwen2.5-coder-0.5b")


def _terminal(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def embedded_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A running embedded server with ``TEST_MODELS`` (ServerInfo: base_url, pool_file, models, ...)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # show progress: the first build takes minutes
        setup_models(TEST_MODELS, progress=_terminal)
    server = EmbeddedServer(TEST_MODELS, run_dir=tmp_path_factory.mktemp("langtts-run"), progress=lambda _: None)
    info = server.start(setup=False)
    try:
        yield info
    finally:
        server.stop()
