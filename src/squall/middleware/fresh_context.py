"""`--reset-contextvars`: each request and WebSocket runs in an empty `contextvars.Context`.

Without it, a request sees the context variables that were set before the
server started serving (at import, or by the program embedding the server).
With it, every `ContextVar.get()` in the app starts from its default.

The app runs in a task of its own, created inside a fresh context: a task
copies the context current when it is created.  Cancelling the request's
task cancels this one too, since it is what that task awaits.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any


class FreshContextMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        task = contextvars.Context().run(asyncio.ensure_future, self.app(scope, receive, send))
        return await task
