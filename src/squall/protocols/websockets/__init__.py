"""WebSockets over HTTP/1.1 (RFC 6455), as ASGI's `websocket` protocol.

- `asgi`: the connection as the app sees it, shared by every implementation;
- `handshake`, `scope`, `keepalive`: its parts that need no framing library;
- `websockets_impl`, `websockets_sansio_impl`, `wsproto_impl`: the `--ws`
  implementations, each adapting one framing library to `asgi`.
"""
