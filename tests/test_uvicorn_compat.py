"""Uvicorn's command line, environment and Python API, as deployments use them.

The exit-code tests run Uvicorn itself (installed for the tests) next to
Squall, to show the two agree.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets.sync.client
from support import LoggedProcess, SquallProcess, run_squall, running_server

import squall
from squall.config import ConfigError

APP = '''
import asyncio
import contextvars
import os

VAR = contextvars.ContextVar("var", default="default")
VAR.set("set at import")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "ws ok"})
        await send({"type": "websocket.close"})
        return
    loop = type(asyncio.get_running_loop()).__name__
    body = f"{scope['root_path']}|{VAR.get()}|{loop}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app():
    return app


class AppFactory:
    """A class whose instances are apps: passing the class is passing a factory."""

    async def __call__(self, scope, receive, send):
        await app(scope, receive, send)


class PassThrough:
    """A wrapper that hands its arguments on: an app, not a factory."""

    def __call__(self, *args, **kwargs):
        return app(*args, **kwargs)


passthrough = PassThrough()
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "compat.py").write_text(APP)
    return tmp_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str = "/") -> str:
    return httpx.get(f"http://127.0.0.1:{port}{path}").text


def stop(process: SquallProcess) -> None:
    process.signal(signal.SIGTERM)
    assert process.wait() == 0


# -- environment variables -------------------------------------------------------------


def test_uvicorn_environment_variables_are_honoured(app_dir: Path) -> None:
    port = free_port()
    env = {"UVICORN_APP": "compat:app", "UVICORN_PORT": str(port), "UVICORN_ROOT_PATH": "/uv", "UVICORN_ACCESS_LOG": "false"}
    with SquallProcess(cwd=app_dir, env=env) as process:
        assert process.wait_started() == port
        assert get(port, "/x").startswith("/uv|")
        stop(process)
    assert '"GET /x' not in process.output


def test_squall_variables_win_over_uvicorns_and_the_command_line_over_both(app_dir: Path) -> None:
    squall_port, uvicorn_port, cli_port = free_port(), free_port(), free_port()
    env = {"SQUALL_PORT": str(squall_port), "UVICORN_PORT": str(uvicorn_port), "UVICORN_ROOT_PATH": "/uv"}
    with SquallProcess("compat:app", cwd=app_dir, env=env) as process:
        assert process.wait_started() == squall_port
        stop(process)
    with SquallProcess("compat:app", "--port", str(cli_port), cwd=app_dir, env=env) as process:
        assert process.wait_started() == cli_port
        assert get(cli_port).startswith("/uv|")
        stop(process)


def test_web_concurrency_with_reload_runs_one_reloading_process(app_dir: Path) -> None:
    args = ["compat:app", "--reload", "--reload-dir", str(app_dir), "--port", "0"]
    with SquallProcess(*args, cwd=app_dir, env={"WEB_CONCURRENCY": "3"}) as process:
        port = process.wait_started()
        assert port is not None
        process.wait_for_log(r"Started reloader process \[\d+\]")
        assert get(port).startswith("|")
        stop(process)
    assert "WARNING:  $WEB_CONCURRENCY=3 is ignored with --reload: running one reloading process." in process.output
    assert "Started parent process" not in process.output


def test_explicit_workers_with_reload_is_still_refused(app_dir: Path) -> None:
    result = run_squall("compat:app", "--reload", "--workers", "2", cwd=app_dir, env={"WEB_CONCURRENCY": "3"})
    assert result.returncode == 3
    assert "--reload and --workers are mutually exclusive" in result.stderr


# -- the app ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["compat:create_app", "compat:AppFactory"])
def test_a_factory_passed_without_factory_flag_is_called_with_a_warning(app_dir: Path, target: str) -> None:
    with SquallProcess(target, "--port", "0", cwd=app_dir) as process:
        port = process.wait_started()
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert response.status_code == 200
        stop(process)
    assert f"WARNING:  '{target}' takes no arguments and is not an ASGI app: calling it as an app factory" in process.output


def test_a_wrapper_taking_any_arguments_is_served_as_the_app(app_dir: Path) -> None:
    # Its __call__ is not a coroutine function: auto would take it for ASGI 2.
    with SquallProcess("compat:passthrough", "--port", "0", "--interface", "asgi3", cwd=app_dir) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port).startswith("|")
        stop(process)
    assert "factory" not in process.output


def test_workers_check_the_app_module_without_running_its_package(tmp_path: Path) -> None:
    package = tmp_path / "project"
    package.mkdir()
    (package / "__init__.py").write_text("print('package imported', flush=True)\n")
    (package / "web.py").write_text(APP)
    args = ["project.web:app", "--port", "0", "--workers", "2", "--lifespan", "off"]
    with SquallProcess(*args, cwd=tmp_path) as process:
        process.wait_for_matches(r"Worker \d+ \[\d+\] is serving", count=2)
        stop(process)
    # Once per worker; the supervisor found the module without importing it.
    assert process.output.count("package imported") == 2, process.output
    result = run_squall("project.nope:app", "--port", "0", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 3
    assert 'Could not import module "project.nope"' in result.stderr
    assert "Started worker" not in result.stderr


def test_a_failing_factory_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "badfactory.py").write_text("def create_app():\n    raise RuntimeError('no config')\n")
    result = run_squall("badfactory:create_app", "--factory", "--port", "0", cwd=tmp_path)
    assert result.returncode == 3
    assert "Error calling the app factory 'badfactory:create_app':" in result.stderr
    assert f'File "{tmp_path / "badfactory.py"}", line 2, in create_app' in result.stderr
    assert result.stderr.splitlines()[-1] == "RuntimeError: no config"


def test_an_app_that_runs_an_event_loop_at_import_is_served(tmp_path: Path, loop_impl: str) -> None:
    (tmp_path / "runsloop.py").write_text(textwrap.dedent('''
        import asyncio

        async def settings():
            return b"loaded at import"

        BODY = asyncio.run(settings())

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": BODY})
    '''))
    with SquallProcess("runsloop:app", "--port", "0", "--loop", loop_impl, cwd=tmp_path) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port) == "loaded at import"
        stop(process)


# -- custom implementations -----------------------------------------------------------

CUSTOM = '''
import asyncio

from squall.protocols.http.h11_impl import H11Protocol
from squall.protocols.websockets.wsproto_impl import WSProtocol

LOOPS = []
HTTP_CONNECTIONS = []
WS_CONNECTIONS = []


def new_loop():
    LOOPS.append(1)
    return asyncio.SelectorEventLoop()


class CountingHTTP(H11Protocol):
    def connection_made(self, transport):
        HTTP_CONNECTIONS.append(1)
        super().connection_made(transport)


class CountingWS(WSProtocol):
    def connection_made(self, transport):
        WS_CONNECTIONS.append(1)
        super().connection_made(transport)


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"ws connections {len(WS_CONNECTIONS)}"})
        await send({"type": "websocket.close"})
        return
    body = f"loops {len(LOOPS)} http connections {len(HTTP_CONNECTIONS)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
'''


def test_loop_http_and_ws_take_import_strings(tmp_path: Path) -> None:
    (tmp_path / "custom.py").write_text(CUSTOM)
    args = ["custom:app", "--port", "0", "--lifespan", "off",
            "--loop", "custom:new_loop", "--http", "custom:CountingHTTP", "--ws", "custom:CountingWS"]
    with SquallProcess(*args, cwd=tmp_path) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port) == "loops 1 http connections 1"
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/") as client:
            assert client.recv() == "ws connections 1"
        stop(process)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--loop", "custom:nope", "--loop 'custom:nope' could not be loaded: Attribute \"nope\" not found in module \"custom\"."),
        ("--loop", "custom:LOOPS", "--loop 'custom:LOOPS' is not callable"),
        ("--http", "nosuch:Protocol", "--http 'nosuch:Protocol' could not be loaded: Could not import module \"nosuch\""),
        ("--ws", "custom:Missing", "--ws 'custom:Missing' could not be loaded"),
    ],
)
def test_a_bad_custom_implementation_is_one_line_and_exit_3(tmp_path: Path, option: str, value: str, message: str) -> None:
    (tmp_path / "custom.py").write_text(CUSTOM)
    result = run_squall("custom:app", "--port", "0", option, value, cwd=tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# -- options Uvicorn added ----------------------------------------------------------------


@pytest.mark.parametrize(("flag", "expected"), [([], "set at import"), (["--reset-contextvars"], "default")])
def test_reset_contextvars(app_dir: Path, http_impl: str, flag: list[str], expected: str) -> None:
    with SquallProcess("compat:app", "--port", "0", "--http", http_impl, *flag, cwd=app_dir) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port).split("|")[1] == expected
        assert get(port).split("|")[1] == expected  # and again on a new request
        stop(process)


def test_reset_contextvars_from_python(app_dir: Path) -> None:
    script = app_dir / "serve.py"
    script.write_text(textwrap.dedent('''
        import squall
        from compat import app

        squall.run(app, port=0, reset_contextvars=True)
    '''))
    with LoggedProcess([sys.executable, str(script)], cwd=app_dir) as process:
        port = int(process.wait_for_log(r"Squall running on http://127\.0\.0\.1:(\d+)").group(1))
        assert get(port).split("|")[1] == "default"
        process.signal(signal.SIGTERM)
        assert process.wait() == 0


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert = ca.issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("certs")
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    return str(directory / "cert.pem"), str(directory / "key.pem")


def https_get(ca: trustme.CA, port: int) -> httpx.Response:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return httpx.get(f"https://127.0.0.1:{port}/", verify=context)


def test_ssl_context_factory_adjusts_the_default_context(ca: trustme.CA, cert_files: tuple[str, str]) -> None:
    calls: list[Any] = []

    def factory(config: squall.Config, default: Any) -> ssl.SSLContext:
        context = default()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        calls.append(config)
        return context

    certfile, keyfile = cert_files
    with running_server(hello, ssl_certfile=certfile, ssl_keyfile=keyfile, ssl_context_factory=factory) as server:
        assert https_get(ca, server.port).text == "hello"
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{server.port}/", verify=context)
    assert len(calls) == 1 and isinstance(calls[0], squall.Config)


def test_ssl_context_factory_alone_makes_the_server_https(ca: trustme.CA, cert_files: tuple[str, str]) -> None:
    certfile, keyfile = cert_files

    def factory(config: squall.Config, default: Any) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        return context

    with running_server(hello, ssl_context_factory=factory) as server:
        assert server.server.config.is_ssl
        assert https_get(ca, server.port).text == "hello"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda config, default: default(), "--ssl-keyfile was given without --ssl-certfile"),
        (lambda config, default: "not a context", "ssl_context_factory must return an ssl.SSLContext, not str"),
    ],
)
def test_ssl_context_factory_mistakes_are_config_errors(factory: Any, message: str) -> None:
    config = squall.Config(hello, ssl_context_factory=factory, log_config=None)
    with pytest.raises(ConfigError, match=message):
        config.load()


PRIOR_KNOWLEDGE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _answers_http2(port: int) -> bool:
    """Whether the server answers the HTTP/2 preface with a SETTINGS frame."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(PRIOR_KNOWLEDGE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        head = b""
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    return len(head) == 9 and head[3] == 0x4  # a frame of type SETTINGS


@pytest.mark.parametrize("flag", ["--http2", "--no-http2", None])
def test_http2_flag(app_dir: Path, flag: str | None) -> None:
    """Uvicorn's --http2 spelling: on (the default, with h2 installed) serves HTTP/2 beside HTTP/1.1; --no-http2 does not."""
    args = ["compat:app", "--port", "0"] + ([flag] if flag else [])
    with SquallProcess(*args, cwd=app_dir) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port).startswith("|")
        assert _answers_http2(port) is (flag != "--no-http2")
        stop(process)


def test_http2_without_the_h2_package_is_one_line_and_exit_3(app_dir: Path, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    # find_spec() answers None for a module that sys.modules maps to None.
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['h2'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])}
    result = run_squall("compat:app", "--http2", cwd=app_dir, env=env)
    assert result.returncode == 3
    output = result.stderr + result.stdout
    assert "--http2 was asked for, but the h2 package is not installed" in output
    assert "Traceback" not in output
    # Without --http2, the same install serves HTTP/1.1 and says nothing about HTTP/2.
    with SquallProcess("compat:app", "--port", "0", cwd=app_dir, env=env) as process:
        port = process.wait_started()
        assert port is not None
        assert get(port).startswith("|")
        assert not _answers_http2(port)
        stop(process)


# -- exit codes, next to Uvicorn's ------------------------------------------------------------

SERVERS = {"squall": [sys.executable, "-m", "squall"], "uvicorn": [sys.executable, "-m", "uvicorn"]}


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["nosuchmodule:app"], 3),
        (["compat:nope"], 3),
        (["compat"], 3),
        (["compat:app", "--env-file", "/nonexistent/.env"], 2),
        (["compat:app", "--log-config", "/nonexistent/log.json"], 2),
        (["compat:app", "--reload", "--reload-dir", "/nonexistent"], 2),
        (["compat:app", "--port", "eighty"], 2),
        (["compat:app", "--no-such-option"], 2),
        ([], 2),
    ],
    ids=["no-module", "no-attribute", "malformed", "env-file", "log-config", "reload-dir", "bad-int", "bad-option", "no-app"],
)
def test_exit_status_matches_uvicorn(app_dir: Path, server: str, args: list[str], status: int) -> None:
    result = subprocess.run([*SERVERS[server], "--port", "0", *args], cwd=app_dir, capture_output=True, text=True, timeout=30)
    assert result.returncode == status, result.stderr


@pytest.mark.parametrize("server", list(SERVERS))
def test_port_in_use_exits_3_like_uvicorn(app_dir: Path, server: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*SERVERS[server], "compat:app", "--port", str(port)], cwd=app_dir, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 3, result.stderr


def test_config_warns_in_the_log_for_reload_options_without_reload(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="squall.error")
    squall.Config(hello, reload_includes=["*.html"], log_config=None)
    assert "only take effect with --reload" in caplog.text


def test_reload_patterns_add_to_the_defaults(tmp_path: Path) -> None:
    config = squall.Config("compat:app", reload=True, reload_dirs=[str(tmp_path)], reload_includes=["*.html"],
                           reload_excludes=["build/*"], log_config=None)
    assert config.reload_includes == ["*.py", "*.html"]
    assert config.reload_excludes[:2] == [".*", ".py[cod]"] and config.reload_excludes[-1] == "build/*"
