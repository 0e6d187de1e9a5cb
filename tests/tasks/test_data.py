"""The shipped data files match the sha256s recorded in PROVENANCE.md, and each benchmark has its license."""

from __future__ import annotations

import gzip
import hashlib
import re
from importlib import resources

import pytest

DATA = resources.files("langtts.tasks").joinpath("data")
PROVENANCE = DATA.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
RECORDED = {path: digest for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+/\S+)$", PROVENANCE, re.M)}


def test_every_shipped_file_is_recorded() -> None:
    folders = [folder for folder in DATA.iterdir() if folder.is_dir()]
    shipped = {f"{folder.name}/{item.name}" for folder in folders for item in folder.iterdir()}
    assert shipped == set(RECORDED)
    assert len(RECORDED) == 11


@pytest.mark.parametrize("path", sorted(RECORDED))
def test_sha256_matches_provenance(path: str) -> None:
    data = DATA.joinpath(*path.split("/")).read_bytes()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    assert hashlib.sha256(data).hexdigest() == RECORDED[path]


@pytest.mark.parametrize("folder", ["gsm8k", "humaneval", "math500", "mmlu"])
def test_each_benchmark_ships_its_license(folder: str) -> None:
    assert "MIT License" in DATA.joinpath(folder, "LICENSE").read_text(encoding="utf-8")
