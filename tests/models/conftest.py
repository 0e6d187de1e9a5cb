"""Fixtures for the model pool tests: stub servers and pools over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langtts.models import ModelPool
from tests.models.helpers import MODEL, pool_config
from tests.models.stub_server import StubServer


@pytest.fixture
def make_stub() -> Iterator[Callable[..., StubServer]]:
    """Start stub servers (`StubServer` arguments); all are stopped after the test."""
    servers: list[StubServer] = []

    def make(**kwargs: Any) -> StubServer:
        kwargs.setdefault("models", [MODEL])
        server = StubServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def stub(make_stub: Callable[..., StubServer]) -> StubServer:
    return make_stub()


@pytest.fixture
def make_pool() -> Iterator[Callable[..., ModelPool]]:
    """`make_pool(*servers, max_concurrency=4, model=None, **pool_kwargs)`; closed after the test."""
    pools: list[ModelPool] = []

    def make(*servers: StubServer, max_concurrency: int = 4, model: dict | None = None, **kwargs: Any) -> ModelPool:
        kwargs.setdefault("retry_wait", 0.01)
        kwargs.setdefault("retry_wait_max", 0.05)
        pool = ModelPool(pool_config(*servers, max_concurrency=max_concurrency, **(model or {})), **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()
