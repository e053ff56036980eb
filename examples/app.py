"""A small plain-ASGI application to try Squall with, no framework needed.

    squall app:app --app-dir examples

Routes:
    GET /       an HTML page that chats with /ws over a WebSocket
    GET /hello  "Hello, world!" as text/plain
    /ws         WebSocket echo: every text or binary message is sent back
Anything else is a 404. HEAD is answered like GET, without the body.
"""

import time

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Squall echo</title>
<!-- An empty inline icon keeps the browser from asking for /favicon.ico. -->
<link rel="icon" href="data:,">
<style>
  body { font-family: sans-serif; max-width: 40rem; margin: 2rem auto; }
  #messages { padding-left: 1.2rem; }
</style>
</head>
<body>
<h1>Squall WebSocket echo</h1>
<p>Status: <span id="status">connecting</span></p>
<form id="form">
  <input id="message" type="text" autocomplete="off" autofocus>
  <button id="send" type="submit">Send</button>
</form>
<ul id="messages"></ul>
<script>
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(scheme + "://" + location.host + "/ws");
  socket.binaryType = "arraybuffer";
  const status = document.getElementById("status");
  const input = document.getElementById("message");
  const list = document.getElementById("messages");
  // Messages typed before the socket is open are queued rather than lost.
  const pending = [];

  socket.addEventListener("open", () => {
    status.textContent = "open";
    while (pending.length) socket.send(pending.shift());
  });
  socket.addEventListener("close", () => { status.textContent = "closed"; });
  socket.addEventListener("message", (event) => {
    const item = document.createElement("li");
    item.textContent = typeof event.data === "string"
      ? event.data
      : "<" + event.data.byteLength + " bytes>";
    list.appendChild(item);
  });

  document.getElementById("form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket.readyState === WebSocket.OPEN) socket.send(input.value);
    else if (socket.readyState === WebSocket.CONNECTING) pending.push(input.value);
    input.value = "";
  });
</script>
</body>
</html>
"""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # "state" is optional in the ASGI spec; when the server provides it,
            # it is copied into every request scope.
            if "state" in scope:
                scope["state"]["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope, receive, send):
    method, path = scope["method"], scope["path"]
    if method in ("GET", "HEAD") and path == "/":
        status, content_type, body = 200, b"text/html; charset=utf-8", PAGE
    elif method in ("GET", "HEAD") and path == "/hello":
        status, content_type, body = 200, b"text/plain; charset=utf-8", b"Hello, world!"
    else:
        status, content_type, body = 404, b"text/plain; charset=utf-8", b"Not Found"

    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    # A HEAD response carries the GET headers (including its length) but no body.
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def websocket(scope, receive, send):
    await receive()  # the first message is always websocket.connect
    if scope["path"] != "/ws":
        # Closing before accepting makes the server reject the handshake (403).
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
