"""The Python API: `squall.run`, `squall.Config`, `squall.Server(config).serve()`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import STARTED_RE, wait_for_port

import squall


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"api"})


def test_public_names() -> None:
    assert squall.Config and squall.Server and squall.run
    assert isinstance(squall.__version__, str)


def test_serve_inside_an_existing_event_loop() -> None:
    config = squall.Config(app, port=0, lifespan="off", log_config=None, ws="none")
    server = squall.Server(config)
    results: dict[str, Any] = {}

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            results["text"] = (await client.get(f"http://127.0.0.1:{server.port}/")).text
        server.should_exit = True
        await serving

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join(10)
    assert results["text"] == "api"


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
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            match = STARTED_RE.search(line)
            if match:
                port = int(match.group(1))
                break
        assert port is not None
        wait_for_port(port)
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "/kw"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_needs_an_import_string_for_workers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        squall.run(app, workers=2, log_config=None)
    assert exit_info.value.code == 3


def test_config_rejects_bad_values() -> None:
    with pytest.raises(squall.config.ConfigError, match="--limit-concurrency must be at least 1"):
        squall.Config(app, limit_concurrency=0, log_config=None)
    with pytest.raises(squall.config.ConfigError, match="--log-level 'loud' is not one of"):
        squall.Config(app, log_level="loud", log_config=None)
