"""The ASGI `websocket` connection scope."""

from __future__ import annotations

from typing import Any

from squall.protocols.http.h1_request import BadRequest, split_target
from squall.protocols.websockets.handshake import HandshakeError, HandshakeRequest


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
