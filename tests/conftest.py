"""Shared fixtures.  The helpers they use live in `support.py` (importable
from any test as `import support`, since `tests/` is on pytest's pythonpath).

The `http_impl` and `loop_impl` fixtures parametrize a test over every
implementation; a test that takes `serve` runs once per combination.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import RunningServer, running_server

HTTP_IMPLS = ["h11", "httptools"]
LOOP_IMPLS = ["asyncio", "uvloop"]


@pytest.fixture(params=HTTP_IMPLS)
def http_impl(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=LOOP_IMPLS)
def loop_impl(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["compiled", "pure"])
def hot_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test under the compiled response writer and under its pure-Python reference.

    The process imported the compiled one when it is built (unless SQUALL_NO_EXTENSIONS=1);
    "pure" swaps the reference in where the HTTP/1.1 connection calls it.
    """
    from squall._compiled import speedups
    from squall.protocols.http import h1_connection, response

    if request.param == "compiled" and speedups is None:
        pytest.skip("the compiled hot path is not built in this environment (or SQUALL_NO_EXTENSIONS=1)")
    if request.param == "pure":
        monkeypatch.setattr(h1_connection, "build_response_head", response.pure_build_response_head)
    return request.param


@pytest.fixture
def serve(http_impl: str, loop_impl: str) -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """`with serve(app, **options) as server:` under every HTTP and loop implementation."""

    def start(app: Any, **options: Any) -> contextlib.AbstractContextManager[RunningServer]:
        options.setdefault("http", http_impl)
        options.setdefault("loop", loop_impl)
        return running_server(app, **options)

    return start


@pytest.fixture(autouse=True)
def _squall_logs_reach_caplog() -> Iterator[None]:
    """A Config made with the default log config stops propagation; undo it per test."""
    yield
    for name in ("squall", "squall.error", "squall.access", "squall.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


