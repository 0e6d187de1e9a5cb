"""The model pool: every LLM call of langtts, with retries, concurrency caps, a call cache and a ledger."""

from langtts.models.cache import CachedAnswer, CallCache
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.models.errors import (
    ErrorKind,
    ModelCallError,
    ModelNotServedError,
    PoolError,
    StructuredOutputError,
    UnknownModelError,
)
from langtts.models.ledger import CallRecord, EndpointUsage, Usage, UsageLedger, track
from langtts.models.pool import ChatRequest, ChatResult, ModelPool, sample_seed

__all__ = [
    "CachedAnswer",
    "CallCache",
    "CallRecord",
    "ChatRequest",
    "ChatResult",
    "Endpoint",
    "EndpointUsage",
    "ErrorKind",
    "ModelCallError",
    "ModelNotServedError",
    "ModelPool",
    "PoolConfig",
    "PoolError",
    "PoolModel",
    "StructuredOutputError",
    "UnknownModelError",
    "Usage",
    "UsageLedger",
    "sample_seed",
    "track",
]
