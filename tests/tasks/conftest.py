"""Shared helpers for the task tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest


@pytest.fixture
def timed(capsys: pytest.CaptureFixture[str]) -> Callable[[str], AbstractContextManager[None]]:
    """``with timed("label"):`` prints how long the block took, even under output capture."""

    @contextmanager
    def block(label: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        with capsys.disabled():
            print(f"\n  [timing] {label}: {time.perf_counter() - start:.1f}s", end="")

    return block
