"""With `--log-level trace`: log every ASGI message in and out, bodies elided."""

from __future__ import annotations

import logging
from typing import Any

from squall.logging import TRACE_LOG_LEVEL

logger = logging.getLogger("squall.asgi")

_ELIDED_KEYS = ("body", "bytes", "text")


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    shown = dict(message)
    for key in _ELIDED_KEYS:
        value = shown.get(key)
        if value is not None:
            shown[key] = f"<{len(value)} {'chars' if isinstance(value, str) else 'bytes'}>"
    return shown


class MessageLoggerMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._next_id = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self._next_id += 1
        task_id = self._next_id
        client = scope.get("client")
        prefix = f"{client[0]}:{client[1]} - ASGI [{task_id}]" if client else f"ASGI [{task_id}]"

        async def logged_receive() -> dict[str, Any]:
            message = await receive()
            logger.log(TRACE_LOG_LEVEL, "%s Receive %s", prefix, _summary(message))
            return message

        async def logged_send(message: dict[str, Any]) -> None:
            logger.log(TRACE_LOG_LEVEL, "%s Send %s", prefix, _summary(message))
            await send(message)

        logger.log(TRACE_LOG_LEVEL, "%s Started scope=%s", prefix, {k: v for k, v in scope.items() if k != "state"})
        try:
            await self.app(scope, logged_receive, logged_send)
        except BaseException:
            logger.log(TRACE_LOG_LEVEL, "%s Raised exception", prefix)
            raise
        logger.log(TRACE_LOG_LEVEL, "%s Completed", prefix)
