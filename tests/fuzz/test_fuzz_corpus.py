"""Every seed input and every crash the fuzzers found, replayed through its harness (see fuzz_targets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz_targets import HARNESSES

HERE = Path(__file__).resolve().parent
INPUTS = sorted(
    (harness, path)
    for harness in HARNESSES
    for folder in (HERE / "corpus" / harness, HERE / "crashes" / harness)
    if folder.is_dir()
    for path in folder.iterdir()
    if path.is_file()
)


def test_every_harness_has_seeds() -> None:
    for harness in HARNESSES:
        assert any(name == harness for name, _ in INPUTS), f"no seed corpus for {harness}"


@pytest.mark.parametrize(("harness", "path"), INPUTS, ids=[f"{harness}/{path.parent.name}/{path.name}" for harness, path in INPUTS])
def test_input(harness: str, path: Path) -> None:
    HARNESSES[harness](path.read_bytes())
