"""Which hot path is in use: compiled, or pure Python.

Two parts are compiled at install time when a C compiler is there, and
each is optional: `squall._speedups` (hand-written C: request heads,
response heads, WebSocket frames), and the request path's classes in
`COMPILED_MODULES`, which Cython compiles from their own .py files (see
setup.py).  SQUALL_NO_EXTENSIONS=1 forces the pure-Python path for both:
the compiled modules are then imported from their .py source.  Read once,
at import; `squall/__init__.py` imports this module first so that the
choice is made before any compiled module could be imported.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Compiled by Cython from the .py file of the same name (each has a .pxd beside it).
COMPILED_MODULES = frozenset(
    {
        "squall.middleware.proxy_headers",
        "squall.protocols.http.connection",
        "squall.protocols.http.h1_connection",
        "squall.protocols.http.h1_reader",
        "squall.protocols.http.h1_request",
        "squall.protocols.http.stream",
    }
)

PURE_PYTHON = os.environ.get("SQUALL_NO_EXTENSIONS", "") not in ("", "0")


class SourceOnlyFinder:
    """Imports the compiled modules from their .py files (SQUALL_NO_EXTENSIONS=1).

    Python's own finder prefers an extension module to the source of the
    same name; this finder, placed first, answers for `COMPILED_MODULES`
    only, with the source.
    """

    @staticmethod
    def find_spec(fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES or not path:
            return None
        source_name = fullname.rpartition(".")[2] + ".py"
        for directory in path:
            source = os.path.join(directory, source_name)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


speedups: ModuleType | None = None
if PURE_PYTHON:
    if not any(isinstance(finder, SourceOnlyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())
else:
    try:
        from squall import _speedups as speedups
    except ImportError:
        speedups = None


def _classes_compiled() -> bool:
    """Whether the compiled request-path classes are built (without importing them)."""
    if PURE_PYTHON:
        return False
    root = os.path.dirname(__file__)  # squall/
    return all(
        any(
            os.path.isfile(os.path.join(root, *name.split(".")[1:]) + suffix)
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
        )
        for name in COMPILED_MODULES
    )


CLASSES_COMPILED = _classes_compiled()

if speedups is not None and CLASSES_COMPILED:
    HOT_PATH = "compiled hot path"
elif speedups is not None:
    HOT_PATH = "compiled hot path, request path's classes in pure Python"
elif CLASSES_COMPILED:
    HOT_PATH = "compiled request path's classes, heads in pure Python"
else:
    HOT_PATH = "pure Python"
