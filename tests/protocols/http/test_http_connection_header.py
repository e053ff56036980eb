"""`Connection` is a comma-separated list of tokens, in any case (RFC 9110 7.6.1).

A token counts only as a whole list element: `x-keep-alive` is not
`keep-alive` and `closed` is not `close` (reading the header as a
substring got both wrong).  The WebSocket side (`Upgrade` as a token) is
in tests/protocols/websockets/test_ws_connection_header.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from h1_support import RawClient, get_request, text_app

# Long enough that a connection the server keeps open is told apart from
# one it closes: the test's deadline for the close is much shorter.
KEEP_ALIVE = 30
CLOSE_DEADLINE = 3.0


def connection_headers(values: tuple[str, ...]) -> str:
    return "".join(f"Connection: {value}\r\n" for value in values)


def assert_kept_alive(client: RawClient, version: str) -> None:
    """The connection serves another request."""
    response = client.request(get_request("/again", version=version))
    assert (response.status, response.body) == (200, b"ok")


@pytest.mark.parametrize(
    "values",
    [("x-keep-alive",), ("keep-alives",), ("no-keep-alive, te",), ("keep-alive-please",)],
    ids=lambda v: "|".join(v),
)
def test_http10_lookalike_of_keep_alive_closes_the_connection(serve: Any, values: tuple[str, ...]) -> None:
    with serve(text_app(), timeout_keep_alive=KEEP_ALIVE) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request("/", connection_headers(values), version="1.0"))
            assert (response.status, response.body) == (200, b"ok")
            assert "keep-alive" not in (response.get("connection") or "").lower()
            client.assert_closed(timeout=CLOSE_DEADLINE)


@pytest.mark.parametrize(
    "values",
    [("keep-alive",), ("Keep-Alive",), ("te, KEEP-ALIVE",), ("foo ,keep-alive , bar",), ("te", "keep-alive")],
    ids=lambda v: "|".join(v),
)
def test_http10_keep_alive_token_in_any_case_and_place(serve: Any, values: tuple[str, ...]) -> None:
    with serve(text_app(), timeout_keep_alive=KEEP_ALIVE) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request("/", connection_headers(values), version="1.0"))
            assert (response.status, response.body) == (200, b"ok")
            assert (response.get("connection") or "").lower() == "keep-alive"
            response = client.request(get_request("/", "Connection: keep-alive\r\n", version="1.0"))
            assert response.status == 200


@pytest.mark.parametrize(
    "values", [("closed",), ("x-close",), ("te, close-later",), ("keep-alive", "unclose")], ids=lambda v: "|".join(v)
)
def test_http11_lookalike_of_close_keeps_the_connection(serve: Any, values: tuple[str, ...]) -> None:
    with serve(text_app(), timeout_keep_alive=KEEP_ALIVE) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request("/", connection_headers(values)))
            assert (response.status, response.body) == (200, b"ok")
            assert response.get("connection") is None
            assert_kept_alive(client, "1.1")


@pytest.mark.parametrize(
    "values", [("close",), ("Close",), ("keep-alive, CLOSE",), ("te,close",), ("te", "close")], ids=lambda v: "|".join(v)
)
def test_http11_close_token_in_any_case_and_place(serve: Any, values: tuple[str, ...]) -> None:
    with serve(text_app(), timeout_keep_alive=KEEP_ALIVE) as server:
        with RawClient.connect(server.port) as client:
            response = client.request(get_request("/", connection_headers(values)))
            assert (response.status, response.body) == (200, b"ok")
            assert response.closes
            client.assert_closed(timeout=CLOSE_DEADLINE)
