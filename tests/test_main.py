"""The Python API: `squall.run`, `squall.Config`, `squall.Server(config).serve()`."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import START_TIMEOUT, STARTED_RE, LoggedProcess

import squall


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"api"})


def test_public_names() -> None:
    import squall.config
    import squall.main
    import squall.server

    assert sorted(squall.__all__) == ["Config", "Server", "__version__", "run"]
    assert squall.Config is squall.config.Config
    assert squall.Server is squall.server.Server
    assert squall.run is squall.main.run
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[.-]?\w+)*", squall.__version__), squall.__version__


def test_serve_inside_an_existing_event_loop() -> None:
    config = squall.Config(app, port=0, lifespan="off", log_config=None, ws="none")
    server = squall.Server(config)
    results: dict[str, Any] = {}

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not server.started:
            assert not serving.done(), "serve() returned before it started listening"
            assert asyncio.get_running_loop().time() < deadline, "the server did not start listening in time"
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            results["text"] = (await client.get(f"http://127.0.0.1:{server.port}/", timeout=5.0)).text
        server.should_exit = True
        await asyncio.wait_for(serving, START_TIMEOUT)
        results["stopped"] = True

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            results["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(2 * START_TIMEOUT + 5)
    assert not thread.is_alive(), "the event loop running serve() did not finish"
    if "error" in results:
        raise results["error"]
    assert results == {"text": "api", "stopped": True}


def test_run_with_keyword_options(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent('''
        import squall

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["root_path"].encode()})

        squall.run(app, host="127.0.0.1", port=0, root_path="/kw", log_level="info", http="h11", loop="asyncio")
    '''))
    with LoggedProcess([sys.executable, str(script)]) as proc:
        port = int(proc.wait_for_log(STARTED_RE.pattern).group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0).text == "/kw"
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_run_needs_an_import_string_for_workers(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        squall.run(app, workers=2, log_config=None)
    assert exit_info.value.code == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        'To use --reload or --workers, pass the app as an import string, like squall.run("main:app", ...).'
    ]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(squall.config.ConfigError, match="--limit-concurrency must be at least 1"):
        squall.Config(app, limit_concurrency=0, log_config=None)
    with pytest.raises(squall.config.ConfigError, match="--log-level 'loud' is not one of"):
        squall.Config(app, log_level="loud", log_config=None)
