"""The Python API: `squall.run`, `squall.Config`, `squall.Server(config).serve()`."""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import socket
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import START_TIMEOUT, STARTED_RE, LoggedProcess, SquallProcess, running_server, wait_until

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
    assert exit_info.value.code == 3
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        'To use --reload or --workers, pass the app as an import string, like squall.run("main:app", ...).'
    ]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(squall.config.ConfigError, match="--limit-concurrency must be at least 1"):
        squall.Config(app, limit_concurrency=0, log_config=None)
    with pytest.raises(squall.config.ConfigError, match="--log-level 'loud' is not one of"):
        squall.Config(app, log_level="loud", log_config=None)


# -- embedding: signals, startup, descriptors ------------------------------------------

EMBEDDING_PROGRAM = '''
import asyncio
import signal
import sys

import squall

received = []

# Python's own SIGINT handler, as in a program started from a terminal (one
# started as a shell's background job inherits SIGINT ignored, and keeps it).
signal.signal(signal.SIGINT, signal.default_int_handler)


def on_sigterm(sig, frame):
    received.append("SIGTERM")


signal.signal(signal.SIGTERM, on_sigterm)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"embedded"})


async def main():
    server = squall.Server(squall.Config(app, port=0, lifespan="off"))
    await server.serve()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    received.append("KeyboardInterrupt")
print("program saw:", received, flush=True)
print("SIGTERM handler is the program's:", signal.getsignal(signal.SIGTERM) is on_sigterm, flush=True)
print("SIGINT handler is the default:", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
'''


@pytest.mark.parametrize(
    ("sig", "seen"), [(signal.SIGTERM, "['SIGTERM']"), (signal.SIGINT, "['KeyboardInterrupt']")], ids=["SIGTERM", "SIGINT"]
)
def test_serve_gives_the_signal_handlers_back_and_redelivers_the_signal(tmp_path: Path, sig: int, seen: str) -> None:
    script = tmp_path / "embed.py"
    script.write_text(EMBEDDING_PROGRAM)
    with LoggedProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        port = int(process.wait_for_log(r"Squall running on http://127\.0\.0\.1:(\d+)").group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "embedded"
        process.signal(sig)
        assert process.wait() == 0
    assert f"program saw: {seen}" in process.output
    assert "SIGTERM handler is the program's: True" in process.output
    assert "SIGINT handler is the default: True" in process.output
    assert "Finished server process" in process.output


def test_squall_run_returns_after_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent('''
        import squall

        async def app(scope, receive, send):
            pass

        squall.run(app, port=0, lifespan="off")
        print("squall.run returned", flush=True)
    '''))
    with LoggedProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        process.wait_for_log(STARTED_RE.pattern)
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    assert "squall.run returned" in process.output


def slow_startup_app(events: list[str], in_startup: threading.Event, release: threading.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                in_startup.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def test_should_exit_during_lifespan_startup_still_shuts_down_and_closes_the_port() -> None:
    events: list[str] = []
    in_startup, release = threading.Event(), threading.Event()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = squall.Config(slow_startup_app(events, in_startup, release), port=port, lifespan="on", log_config=None, ws="none")
    server = squall.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert in_startup.wait(10)
    server.should_exit = True
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sigterm_during_a_slow_startup_runs_the_apps_shutdown(tmp_path: Path) -> None:
    (tmp_path / "slowstart.py").write_text(textwrap.dedent('''
        import asyncio
        import os

        async def app(scope, receive, send):
            if scope["type"] != "lifespan":
                return
            await receive()
            print("startup began", flush=True)
            while not os.path.exists("go"):
                await asyncio.sleep(0.01)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            print("the app's shutdown ran", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
    '''))
    with SquallProcess("slowstart:app", "--port", "0", cwd=tmp_path) as process:
        process.wait_for_log("startup began")
        process.signal(signal.SIGTERM)
        (tmp_path / "go").touch()
        assert process.wait() == 0
    assert "the app's shutdown ran" in process.output
    assert "Application shutdown complete." in process.output


def test_config_fd_leaves_the_callers_descriptor_open() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with running_server(app, fd=listener.fileno()) as server:
            assert httpx.get(f"http://127.0.0.1:{port}/").text == "api"
            assert server.server.config.fd == listener.fileno()
        # Still ours, still listening: the kernel queues a new connection on it.
        assert listener.getsockname()[1] == port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        listener.close()


# -- the API's shape ----------------------------------------------------------------------


def test_run_takes_every_config_setting_as_a_typed_keyword() -> None:
    run_parameters = dict(inspect.signature(squall.run).parameters)
    config_parameters = dict(inspect.signature(squall.Config.__init__).parameters)
    del config_parameters["self"]
    assert list(run_parameters) == list(config_parameters)
    for name, parameter in list(run_parameters.items())[1:]:
        expected = config_parameters[name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == expected.default, name
        assert parameter.annotation == expected.annotation and parameter.annotation is not inspect.Parameter.empty, name


def test_server_exposes_what_uvicorns_does() -> None:
    config = squall.Config(app, port=0, lifespan="off", log_config=None, ws="none")
    server = squall.Server(config)
    assert server.config is config
    assert (server.started, server.should_exit, server.force_exit, server.servers) == (False, False, False, [])
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the server to start")
    assert len(server.servers) == 1 and server.servers[0].is_serving()
    server.should_exit = True
    thread.join(10)
    assert not server.servers[0].is_serving()
    assert not server.force_exit



def test_squall_run_delivers_sigterm_to_the_programs_own_handler(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent('''
        import signal
        import squall

        heard = []
        signal.signal(signal.SIGTERM, lambda sig, frame: heard.append(sig))

        async def app(scope, receive, send):
            pass

        squall.run(app, port=0, lifespan="off")
        print("the program heard SIGTERM:", heard == [signal.SIGTERM], flush=True)
    '''))
    with LoggedProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        process.wait_for_log(STARTED_RE.pattern)
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    assert "the program heard SIGTERM: True" in process.output
