"""The benchmark application: as little work as possible, so that what is
measured is the server, not the app.

Every HTTP request gets "Hello, world!" with a Content-Length (so keep-alive
needs no chunking); a WebSocket on /ws echoes each message back.
"""

BODY = b"Hello, world!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
BODY_MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await send(START)
        await send(BODY_MESSAGE)
    elif kind == "websocket":
        await echo(scope, receive, send)
    elif kind == "lifespan":
        # Answer lifespan properly so neither server logs a fallback warning.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


async def echo(scope, receive, send):
    await receive()  # websocket.connect
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
