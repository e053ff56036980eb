"""The ASGI lifespan protocol, observed through a real server."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import SquallProcess, running_server

from squall import Config, Server


def make_app(events: list[str], *, startup: str = "complete", shutdown: str = "complete") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = {"connected": True}
                    scope["state"]["counter"] = 0
                    reply: dict[str, Any] = {"type": f"lifespan.startup.{startup}"}
                    if startup == "failed":
                        reply["message"] = "no database"
                    await send(reply)
                    if startup == "failed":
                        return
                else:
                    await send({"type": f"lifespan.shutdown.{shutdown}"})
                    return
        body = repr((scope["state"].get("counter"), scope["state"].get("db"))).encode()
        # Rebinding a key in a request's state must not leak to the next request.
        scope["state"]["counter"] = 99
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def test_startup_and_shutdown_run_and_state_is_copied_per_request(http_impl: str) -> None:
    events: list[str] = []
    with running_server(make_app(events), lifespan="on", http=http_impl) as server:
        assert events == ["lifespan.startup"]
        first = httpx.get(server.url).text
        second = httpx.get(server.url).text
    assert first == second == "(0, {'connected': True})"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_failed_startup_does_not_serve(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    caplog.set_level(logging.INFO, logger="squall")
    server = Server(Config(make_app(events, startup="failed"), port=0, lifespan="on", log_config=None, ws="none"))
    server.run()
    assert not server.started
    assert server.servers == []
    assert "no database" in caplog.text
    assert "Application startup failed. Exiting." in caplog.text


def test_failed_shutdown_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="squall")
    with running_server(make_app([], shutdown="failed"), lifespan="on"):
        pass
    assert "Application shutdown failed." in caplog.text


async def no_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("this app only speaks HTTP")
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_auto_carries_on_when_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="squall")
    with running_server(no_lifespan_app, lifespan="auto") as server:
        assert httpx.get(server.url).status_code == 204
    assert "ASGI 'lifespan' protocol appears unsupported." in caplog.text
    assert "Traceback" not in caplog.text


def test_on_refuses_an_app_without_lifespan(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="squall")
    server = Server(Config(no_lifespan_app, port=0, lifespan="on", log_config=None, ws="none"))
    server.run()
    assert not server.started
    assert "Exception in 'lifespan' protocol" in caplog.text
    assert "Application startup failed. Exiting." in caplog.text


def test_off_never_calls_the_app_for_lifespan() -> None:
    events: list[str] = []
    with running_server(make_app(events), lifespan="off") as server:
        assert httpx.get(server.url).status_code == 200
    assert events == []


def test_out_of_order_lifespan_message_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    caplog.set_level(logging.INFO, logger="squall")
    server = Server(Config(app, port=0, lifespan="on", log_config=None, ws="none"))
    server.run()
    assert not server.started
    assert "A lifespan shutdown message was sent before shutdown was asked for." in caplog.text


HANGING_LIFESPAN_APP = '''
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if PHASE == "startup":
            await asyncio.sleep(3600)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(3600)
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''


def test_a_hanging_startup_fails_after_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "hangs.py").write_text(HANGING_LIFESPAN_APP.replace("PHASE", '"startup"'))
    with SquallProcess("hangs:app", "--port", "0", "--lifespan", "on", "--timeout-lifespan-startup", "0.5", cwd=tmp_path) as squall:
        assert squall.wait(timeout=10) == 3
    errors = [line for line in squall.output.splitlines() if line.startswith("ERROR")]
    assert errors == ["ERROR:    Application startup did not complete within 0.5s (--timeout-lifespan-startup). Exiting."]
    assert "Traceback" not in squall.output
    assert "Squall running on" not in squall.output


def test_a_hanging_shutdown_is_left_after_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "hangs.py").write_text(HANGING_LIFESPAN_APP.replace("PHASE", '"shutdown"'))
    with SquallProcess("hangs:app", "--port", "0", "--lifespan", "on", "--timeout-lifespan-shutdown", "0.5", cwd=tmp_path) as squall:
        squall.wait_started()
        squall.signal(signal.SIGTERM)
        assert squall.wait(timeout=10) == 0
    assert (
        "WARNING:  Application shutdown did not complete within 0.5s (--timeout-lifespan-shutdown); exiting anyway."
        in squall.output.splitlines()
    )
    assert "Traceback" not in squall.output
    assert "Finished server process" in squall.output


def test_lifespan_timeouts_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(3600)

    caplog.set_level(logging.INFO, logger="squall")
    with running_server(app, lifespan="on", timeout_lifespan_shutdown=0.2) as running:
        pass
    assert running.server.server_state.counters["timeout_lifespan_shutdown"] == 1
    assert "Exception in 'lifespan' protocol" not in caplog.text

    caplog.clear()

    async def hang_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(3600)

    server = Server(Config(hang_startup, port=0, lifespan="on", log_config=None, ws="none", timeout_lifespan_startup=0.2))
    server.run()
    assert not server.started
    assert server.server_state.counters["timeout_lifespan_startup"] == 1
    assert "Application startup did not complete within 0.2s" in caplog.text
    assert "Traceback" not in caplog.text
