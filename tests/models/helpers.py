"""Helpers shared by the model pool tests."""

from __future__ import annotations

from typing import Any

from langtts.models import Endpoint, PoolConfig, PoolModel
from tests.models.stub_server import StubServer

MODEL = "m"
SPEC = "smollm2-135m"


def pool_config(*servers: StubServer, max_concurrency: int = 4, **model: Any) -> PoolConfig:
    """One model `m` (FLOPs spec smollm2-135m), one endpoint per server; `model`: other `PoolModel` fields."""
    endpoints = [Endpoint(base_url=s.base_url, max_concurrency=max_concurrency) for s in servers]
    return PoolConfig(models=[PoolModel(**{"id": MODEL, "spec": SPEC, "endpoints": endpoints, **model})])


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
