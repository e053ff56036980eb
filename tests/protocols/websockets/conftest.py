"""Fixtures for the WebSocket tests: the root `serve` fixture, per `--ws` implementation.

A test that takes `ws_serve` runs once per WebSocket implementation (and
once more for `--ws websockets` reading every frame through the library) and
per HTTP implementation, on one event loop; the core tests add
`@pytest.mark.parametrize("loop_impl", LOOP_IMPLS)` to run on both loops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from ws_helpers import LIBRARY_FRAMES

# `--ws websockets-sansio` is `--ws websockets` under another name (the unit
# tests check that); its place here is taken by `--ws websockets` with every
# frame left to the library.
WS_IMPLS = [
    pytest.param("websockets", id="websockets"),
    pytest.param(LIBRARY_FRAMES, id="websockets-library"),
    pytest.param("wsproto", id="wsproto"),
]


@pytest.fixture(params=WS_IMPLS)
def ws_impl(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def loop_impl() -> str:
    """One loop by default (overrides the root fixture); see the module docstring."""
    return "asyncio"


@pytest.fixture
def ws_serve(serve: Callable[..., Any], ws_impl: str) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """`with ws_serve(app, **options) as server:` for the current `--ws` implementation."""

    def start(app: Any, **options: Any) -> contextlib.AbstractContextManager[Any]:
        options.setdefault("ws", ws_impl)
        return serve(app, **options)

    return start
