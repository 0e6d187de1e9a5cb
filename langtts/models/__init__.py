"""The model pool: every LLM call of langtts, with retries, concurrency caps, a call cache and a ledger."""

from langtts.models import errors
from langtts.models.cache import CachedAnswer, CallCache
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.models.errors import *  # noqa: F403  (the pool's errors, listed in errors.__all__)
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
    "ModelPool",
    "PoolConfig",
    "PoolModel",
    "Usage",
    "UsageLedger",
    "sample_seed",
    "track",
    *errors.__all__,
]
