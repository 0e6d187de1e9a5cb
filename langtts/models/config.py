"""The pool file: which models exist, where they are served, and how to account for them.

A pool file (YAML or JSON) maps model ids to one or more OpenAI-compatible endpoints. API keys are never
stored: an endpoint names the environment variable that holds its key.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from langtts.files import write_text_atomic

POOL_SCHEMA_VERSION = 1


class Endpoint(BaseModel):
    """One OpenAI-compatible server that serves a model (several endpoints of one model are replicas)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://127.0.0.1:8080/v1")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    max_concurrency: int = Field(default=4, ge=1)


class PoolModel(BaseModel):
    """A model of the pool: its endpoints, its FLOPs spec and its serving details."""

    model_config = ConfigDict(extra="forbid")

    id: str
    endpoints: list[Endpoint] = Field(min_length=1)
    spec: str | dict | None = Field(
        default=None,
        description="catalog id in langtts.cost, or an inline ModelSpec mapping; default: the id",
    )
    served_name: str | None = Field(default=None, description="model name sent to the server; default: the id")
    context_window: int | None = Field(default=None, ge=1, description="tokens per request the server accepts")
    fingerprint: str | None = Field(default=None, description="weights hash or server fingerprint, for the cache")
    stop: list[str] = Field(default_factory=list, description="stop sequences always sent (base models)")

    @property
    def name_on_server(self) -> str:
        return self.served_name or self.id


class PoolConfig(BaseModel):
    """The contents of a pool file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = POOL_SCHEMA_VERSION
    models: list[PoolModel]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        data = self.model_dump(mode="json", exclude_none=True)
        text = yaml.safe_dump(data, sort_keys=False) if path.suffix in {".yaml", ".yml"} else _json(data)
        write_text_atomic(path, text)

    @classmethod
    def load(cls, path: str | Path) -> PoolConfig:
        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
        return cls.model_validate(data)


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"
