"""The ASGI `websocket` connection scope."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from squall.protocols.http.connection import BadRequest, _origin_path
from squall.protocols.websockets.handshake import HandshakeError, HandshakeRequest


def split_target(target: bytes, root_path: str) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) of a request target, as the HTTP scope has them.

    Raises BadRequest for a target that is not a path (or absolute URL) in ASCII.
    """
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/"):
        raw_path = _origin_path(raw_path)
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("Invalid characters in the request target.") from None
    if "%" in path:
        path = unquote(path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("ascii") + raw_path
    return path, raw_path, query


def websocket_scope(
    request: HandshakeRequest,
    *,
    asgi_version: dict[str, str],
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    scheme: str,
    root_path: str,
    app_state: dict[str, Any],
    tls: dict[str, Any] | None,
) -> dict[str, Any]:
    """The scope of a handshake request.  Raises HandshakeError for a bad target."""
    try:
        path, raw_path, query = split_target(request.target, root_path)
    except BadRequest as exc:
        raise HandshakeError(str(exc), exc.status) from None
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    if tls is not None:
        extensions["tls"] = tls
    return {
        "type": "websocket",
        "asgi": asgi_version,
        "http_version": request.http_version,
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": request.headers,
        "subprotocols": request.subprotocols,
        "state": app_state.copy(),
        "extensions": extensions,
    }
