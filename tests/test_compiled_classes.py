"""The request path's classes compiled by Cython, and SQUALL_NO_EXTENSIONS=1.

setup.py compiles each module with a .pxd beside it from its own .py file;
squall/_compiled.py names the same modules, to import them from source
when SQUALL_NO_EXTENSIONS=1.  The behaviour of both paths is the protocol
suites' business (make test runs them both ways); this checks which path
each run actually takes.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import squall
from squall import _compiled

PACKAGE = Path(squall.__file__).parent

REPORT = """
import importlib, json
from squall import _compiled
modules = {name: importlib.import_module(name).__file__ for name in sorted(_compiled.COMPILED_MODULES)}
print(json.dumps({"modules": modules, "hot_path": _compiled.HOT_PATH}))
"""


def imported_from(env: dict[str, str]) -> dict[str, object]:
    """Which file each compiled module comes from, in a fresh interpreter."""
    environ = {key: value for key, value in os.environ.items() if key != "SQUALL_NO_EXTENSIONS"}
    result = subprocess.run(
        [sys.executable, "-c", REPORT], env={**environ, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def test_the_compiled_modules_are_those_with_declarations() -> None:
    declared = {
        "squall." + ".".join(pxd.relative_to(PACKAGE).with_suffix("").parts) for pxd in PACKAGE.rglob("*.pxd")
    }
    assert declared == set(_compiled.COMPILED_MODULES)
    for name in declared:
        assert (PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")).is_file(), name


def test_no_extensions_imports_every_compiled_module_from_its_source() -> None:
    report = imported_from({"SQUALL_NO_EXTENSIONS": "1"})
    assert report["hot_path"] == "pure Python"
    for name, path in report["modules"].items():  # type: ignore[union-attr]
        assert path.endswith(".py"), (name, path)


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="no C compiler here: the install keeps the pure-Python classes",
)
def test_an_install_with_a_compiler_imports_the_compiled_classes() -> None:
    report = imported_from({})
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name, path in report["modules"].items():  # type: ignore[union-attr]
        assert path.endswith(suffixes), (name, path)
    assert report["hot_path"] == "compiled hot path"


def test_a_compiled_class_keeps_python_subclasses_working() -> None:
    # The `--http` implementations are Python subclasses of the compiled classes:
    # they are asyncio protocols, and keep attributes of their own.
    from squall.protocols.http.h11_impl import H11Protocol
    from squall.protocols.http.httptools_impl import HttpToolsProtocol
    from squall.protocols.http2.connection import H2Connection

    for protocol in (H11Protocol, HttpToolsProtocol, H2Connection):
        assert issubclass(protocol, asyncio.Protocol)
