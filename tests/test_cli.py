"""The `squall` command, run as a subprocess: messages, exit codes, binding, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from support import SquallProcess, run_squall, wait_past_duplicate_window

HELLO_APP = '''
import os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = os.environ.get("GREETING", "hello")
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = f'{scope["state"].get("greeting")} {scope["root_path"]} {scope["path"]}'.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app():
    return app


class Asgi2App:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2"})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi ", environ["PATH_INFO"].encode()]
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(HELLO_APP)
    return tmp_path


def assert_one_clear_line(result_output: str, expected: str) -> None:
    lines = [line for line in result_output.splitlines() if line.strip()]
    assert any(expected in line for line in lines), result_output
    assert "Traceback" not in result_output
    assert len(lines) == 1, result_output


def test_version() -> None:
    result = run_squall("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("Running squall ")
    assert "CPython" in result.stdout or "PyPy" in result.stdout


def test_version_names_the_hot_path() -> None:
    from squall import _compiled

    built = _compiled.speedups is not None and _compiled.CLASSES_COMPILED
    default = run_squall("--version")
    assert default.returncode == 0
    assert f"({_compiled.HOT_PATH})" in default.stdout, default.stdout
    assert ("(compiled hot path)" in default.stdout) == built, default.stdout
    forced = run_squall("--version", env={"SQUALL_NO_EXTENSIONS": "1"})
    assert forced.returncode == 0
    assert "(pure Python)" in forced.stdout, forced.stdout


def test_help_lists_uvicorn_options() -> None:
    result = run_squall("--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--uds", "--fd", "--reload", "--workers", "--loop", "--http", "--ws",
                   "--proxy-headers", "--forwarded-allow-ips", "--limit-concurrency", "--timeout-keep-alive",
                   "--ssl-keyfile", "--log-config", "--factory", "--app-dir", "--h11-max-incomplete-event-size"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:app", 'Could not import module "nosuchmodule"'),
        ("hello:nope", 'Attribute "nope" not found in module "hello"'),
        ("hello", 'must be in the form "<module>:<attribute>"'),
    ],
)
def test_app_not_found_is_one_line_and_exit_3(app_dir: Path, target: str, message: str) -> None:
    result = run_squall(target, "--port", "0", cwd=app_dir)
    assert result.returncode == 3
    assert_one_clear_line(result.stderr + result.stdout, message)


@pytest.mark.parametrize(
    ("module", "source", "last_line"),
    [
        ("raising", "import os\n\nraise ValueError('boom')\n", "ValueError: boom"),
        ("broken", "import a_dependency_that_is_missing\n", "ModuleNotFoundError: No module named 'a_dependency_that_is_missing'"),
        ("nested", "import raising_helper\n", "ValueError: deep"),
    ],
)
def test_exception_while_importing_the_app_shows_its_traceback(app_dir: Path, module: str, source: str, last_line: str) -> None:
    (app_dir / f"{module}.py").write_text(source)
    (app_dir / "raising_helper.py").write_text("def helper():\n    raise ValueError('deep')\n\nhelper()\n")
    result = run_squall(f"{module}:app", "--port", "0", cwd=app_dir)
    assert result.returncode == 3
    output = result.stderr + result.stdout
    lines = output.splitlines()
    assert lines[0] == f'ERROR:    Error importing "{module}":', output
    assert lines[1] == "Traceback (most recent call last):", output
    # It starts at the app's own code: no frames of importlib or of Squall.
    assert lines[2].startswith(f'  File "{app_dir / module}.py", line '), output
    assert "importlib" not in output and "squall" not in output.lower().replace(f'"{module}"', "")
    assert lines[-1] == last_line


def test_syntax_error_in_the_app_points_at_the_line(app_dir: Path) -> None:
    (app_dir / "typo.py").write_text("async def app(scope, receive, send:\n    pass\n")
    result = run_squall("typo:app", "--port", "0", cwd=app_dir)
    assert result.returncode == 3
    output = result.stderr + result.stdout
    assert f'File "{app_dir / "typo.py"}", line 1' in output
    assert output.splitlines()[-1].startswith("SyntaxError:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--reload", "--workers", "2"], "--reload and --workers are mutually exclusive"),
        (["--header", "no-colon"], "is not of the form Name:Value"),
        (["--ssl-certfile", "/nonexistent/cert.pem"], "--ssl-certfile '/nonexistent/cert.pem' does not exist"),
        (["--http2-max-frame-size", "100"], "--http2-max-frame-size must be between 16384 and 16777215"),
        (["--http", "nosuchmodule:Protocol"], "--http 'nosuchmodule:Protocol' could not be loaded"),
    ],
)
def test_bad_settings_are_one_line_and_exit_3(app_dir: Path, args: list[str], message: str) -> None:
    result = run_squall("hello:app", *args, cwd=app_dir)
    assert result.returncode == 3
    assert_one_clear_line(result.stderr + result.stdout, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-file", "/nonexistent/.env"], "Invalid value for '--env-file': File '/nonexistent/.env' does not exist."),
        (["--log-config", "/nonexistent/log.json"], "Invalid value for '--log-config': File '/nonexistent/log.json' does not exist."),
        (["--reload", "--reload-dir", "/nonexistent"], "Invalid value for '--reload-dir': Path '/nonexistent' does not exist."),
        (["--port", "eighty"], "Invalid value for '--port': 'eighty' is not a valid integer."),
        (["--http", "h2"], "Invalid value for '--http': 'h2' is not one of auto, h11, httptools"),
        (["--no-such-option"], "No such option"),  # the rest of the wording is click's, and varies
    ],
)
def test_usage_errors_are_one_line_and_exit_2(app_dir: Path, args: list[str], message: str) -> None:
    result = run_squall("hello:app", *args, cwd=app_dir)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr + result.stdout, "Error: " + message)


def test_missing_app_argument_is_a_usage_error(app_dir: Path) -> None:
    result = run_squall(cwd=app_dir)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr + result.stdout, "Error: Missing argument 'APP'.")


def test_port_in_use_is_one_line(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_squall("hello:app", "--port", str(port), "--lifespan", "off", cwd=app_dir)
    assert result.returncode == 3
    assert f"Could not listen on 127.0.0.1:{port}" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_serves_on_free_port_and_exits_cleanly_on_sigterm(app_dir: Path) -> None:
    with SquallProcess("hello:app", "--port", "0", cwd=app_dir) as squall:
        port = squall.wait_started()
        assert port and port != 0
        response = httpx.get(f"http://127.0.0.1:{port}/x")
        assert response.text == "hello  /x"
        assert response.headers["server"] == "squall"
        squall.wait_for_log(r'127\.0\.0\.1:\d+ - "GET /x HTTP/1\.1" 200')
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    assert "Application shutdown complete." in squall.output
    assert "Finished server process" in squall.output


def test_sigint_exits_zero(app_dir: Path) -> None:
    with SquallProcess("hello:app", "--port", "0", cwd=app_dir) as squall:
        squall.wait_started()
        squall.signal(signal.SIGINT)
        assert squall.wait() == 0


def test_second_sigint_forces_exit(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(textwrap.dedent('''
        import asyncio
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            print("request started", flush=True)
            await asyncio.sleep(60)
    '''))
    with SquallProcess("slow:app", "--port", "0", "--lifespan", "off", cwd=tmp_path) as squall:
        port = squall.wait_started()
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        squall.wait_for_log("request started")  # a busy connection: the first SIGINT has to wait for it
        squall.signal(signal.SIGINT)
        first = time.monotonic()
        squall.wait_for_log("Waiting for connections to close")
        wait_past_duplicate_window(first)
        squall.signal(signal.SIGINT)
        assert squall.wait(timeout=5) == 0
        client.close()


def test_no_access_log_and_no_server_header(app_dir: Path) -> None:
    with SquallProcess("hello:app", "--port", "0", "--no-access-log", "--no-server-header", "--header", "X-Team:squall", cwd=app_dir) as squall:
        port = squall.wait_started()
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert "server" not in response.headers
        assert response.headers["x-team"] == "squall"
        squall.signal(signal.SIGTERM)
        squall.wait()
    assert '"GET / HTTP/1.1"' not in squall.output


def test_unix_socket(app_dir: Path, tmp_path: Path) -> None:
    path = str(tmp_path / "squall.sock")
    with SquallProcess("hello:app", "--uds", path, cwd=app_dir) as squall:
        squall.wait_for_log(f"unix socket {path}")
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://squall/u").text == "hello  /u"
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_inherited_fd(app_dir: Path) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    with SquallProcess("hello:app", "--fd", str(sock.fileno()), cwd=app_dir, pass_fds=(sock.fileno(),)) as squall:
        squall.wait_started()
        sock.close()
        assert httpx.get(f"http://127.0.0.1:{port}/fd").text == "hello  /fd"
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_ipv6_host(app_dir: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not available here")
    with SquallProcess("hello:app", "--host", "::1", "--port", "0", cwd=app_dir) as squall:
        match = squall.wait_for_log(r"http://\[::1\]:(\d+)")
        port = int(match.group(1))
        assert httpx.get(f"http://[::1]:{port}/v6").text == "hello  /v6"
        squall.signal(signal.SIGTERM)
        squall.wait()


def test_factory_app_dir_root_path_and_env_file(tmp_path: Path, app_dir: Path) -> None:
    env_file = tmp_path / "squall.env"
    env_file.write_text("GREETING=bonjour\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["hello:create_app", "--factory", "--app-dir", str(app_dir), "--root-path", "/api", "--env-file", str(env_file), "--port", "0"]
    with SquallProcess(*args, cwd=elsewhere) as squall:
        port = squall.wait_started()
        assert httpx.get(f"http://127.0.0.1:{port}/x").text == "bonjour /api /api/x"
        squall.signal(signal.SIGTERM)
        squall.wait()


@pytest.mark.parametrize(("target", "interface", "expected"), [
    ("hello:Asgi2App", "auto", "asgi2"),
    ("hello:Asgi2App", "asgi2", "asgi2"),
    ("hello:wsgi_app", "wsgi", "wsgi /w"),
])
def test_interfaces(app_dir: Path, target: str, interface: str, expected: str) -> None:
    with SquallProcess(target, "--interface", interface, "--port", "0", "--lifespan", "off", cwd=app_dir) as squall:
        port = squall.wait_started()
        assert httpx.get(f"http://127.0.0.1:{port}/w").text == expected
        squall.signal(signal.SIGTERM)
        squall.wait()


def test_failed_lifespan_startup_exits_without_serving(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(textwrap.dedent('''
        async def app(scope, receive, send):
            assert scope["type"] == "lifespan"
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
    '''))
    result = run_squall("failing:app", "--port", "0", cwd=tmp_path)
    assert result.returncode == 3
    output = result.stdout + result.stderr
    assert "database unreachable" in output
    assert "Application startup failed. Exiting." in output
    assert "Squall running on" not in output


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_files(app_dir: Path, tmp_path: Path, kind: str) -> None:
    log_file = tmp_path / "squall.log"
    if kind == "json":
        config_path = tmp_path / "log.json"
        config_path.write_text(json.dumps({
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "CUSTOM %(name)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}},
            "loggers": {"squall": {"handlers": ["file"], "level": "INFO", "propagate": False},
                        "squall.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
        }))
    elif kind == "yaml":
        config_path = tmp_path / "log.yaml"
        config_path.write_text(textwrap.dedent(f'''
            version: 1
            disable_existing_loggers: false
            formatters:
              plain: {{format: "CUSTOM %(name)s %(message)s"}}
            handlers:
              file: {{class: logging.FileHandler, filename: "{log_file}", formatter: plain}}
            loggers:
              squall: {{handlers: [file], level: INFO, propagate: false}}
              squall.access: {{handlers: [file], level: INFO, propagate: false}}
        '''))
    else:
        config_path = tmp_path / "log.ini"
        config_path.write_text(textwrap.dedent(f'''
            [loggers]
            keys=root,squall,access
            [handlers]
            keys=file
            [formatters]
            keys=plain
            [logger_root]
            handlers=
            [logger_squall]
            qualname=squall
            handlers=file
            level=INFO
            propagate=0
            [logger_access]
            qualname=squall.access
            handlers=file
            level=INFO
            propagate=0
            [handler_file]
            class=FileHandler
            args=('{log_file}',)
            formatter=plain
            [formatter_plain]
            format=CUSTOM %(name)s %(message)s
        '''))
    with SquallProcess("hello:app", "--port", "0", "--log-config", str(config_path), cwd=app_dir) as squall:
        port = _port_from_log_file(log_file)
        httpx.get(f"http://127.0.0.1:{port}/logged")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    text = log_file.read_text()
    assert "CUSTOM squall.error Squall running on" in text
    assert "CUSTOM squall.access" in text and "/logged" in text


def _port_from_log_file(log_file: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_file.read_text() if log_file.exists() else ""
        match = re.search(r"Squall running on http://127\.0\.0\.1:(\d+)", text)
        if match:
            return int(match.group(1))
        time.sleep(0.02)
    raise AssertionError(f"no startup line in {log_file}")


def test_colors_forced_on(app_dir: Path) -> None:
    with SquallProcess("hello:app", "--port", "0", "--use-colors", cwd=app_dir) as squall:
        squall.wait_for_log(r"Squall running on \x1b\[1mhttp://127\.0\.0\.1:\d+\x1b\[0m")
        squall.signal(signal.SIGTERM)
        squall.wait()
    assert "\x1b[32mINFO\x1b[0m" in squall.output


def test_python_m_squall_matches_console_script() -> None:
    result = run_squall("--version")
    assert result.returncode == 0
    assert os.path.basename(result.args[0]).startswith("python")


def test_host_name_and_backlog(app_dir: Path) -> None:
    with SquallProcess("hello:app", "--host", "localhost", "--port", "0", "--backlog", "16", cwd=app_dir) as squall:
        port = squall.wait_started()
        assert httpx.get(f"http://localhost:{port}/name").text == "hello  /name"
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
