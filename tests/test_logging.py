"""Logging as Uvicorn users rely on it: the `uvicorn.*` logger names, Uvicorn's
log configuration files, and what the terminal shows.

Most tests run the `squall` command and read its output, since that is
where the formatting, the colours and the configuration come together.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from support import LoggedProcess, SquallProcess, run_squall, running_server, wait_until

from squall.config import LOGGING_CONFIG as CONFIG_LOGGING_CONFIG
from squall.logging import LOGGING_CONFIG, AccessFormatter, DefaultFormatter

# Answers /redirect with 302, /missing with 404, /error with 500, /health and
# anything else with 200; logs through Uvicorn's logger names.
APP = '''
import logging
import sys

log = logging.getLogger("uvicorn.error")
IMPORT_UVICORN = %(import_uvicorn)r
if IMPORT_UVICORN:
    import uvicorn  # the real one, installed in the test environment
    import uvicorn.config

if %(filter_health)r:
    class DropHealthChecks(logging.Filter):
        def filter(self, record):
            return "/health" not in record.getMessage()

    logging.getLogger("uvicorn.access").addFilter(DropHealthChecks())

STATUS = {"/redirect": 302, "/missing": 404, "/error": 500}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.warning("a warning from the app")
                log.info("uvicorn imported: %%s", "uvicorn" in sys.modules)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return
    log.info("handling %%s", scope["path"])
    headers = [(b"location", b"/")] if scope["path"] == "/redirect" else []
    await send({"type": "http.response.start", "status": STATUS.get(scope["path"], 200), "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
'''


def write_app(directory: Path, *, import_uvicorn: bool = False, filter_health: bool = False) -> str:
    (directory / "logapp.py").write_text(APP % {"import_uvicorn": import_uvicorn, "filter_health": filter_health})
    return "logapp:app"


def hide_uvicorn(directory: Path) -> dict[str, str]:
    """An environment in which `import uvicorn` fails, as where it is not installed."""
    shim = directory / "no-uvicorn"
    (shim / "uvicorn").mkdir(parents=True)
    (shim / "uvicorn" / "__init__.py").write_text("raise ImportError('uvicorn is not installed here')\n")
    return {"PYTHONPATH": str(shim)}


def serve_and_stop(process: SquallProcess, *paths: str) -> None:
    # Not `wait_started`: with colours, the address is wrapped in escape codes.
    port = int(process.wait_for_log(r"Squall running on \S*http://127\.0\.0\.1:(\d+)").group(1))
    for path in paths:
        httpx.get(f"http://127.0.0.1:{port}{path}")
    process.signal(signal.SIGTERM)
    assert process.wait() == 0


# -- the uvicorn.* loggers ------------------------------------------------------------


def test_uvicorn_logger_names_are_squalls_loggers() -> None:
    from squall import Config

    Config(lambda: None, log_config=None)
    for uvicorn_name, squall_name in [
        ("uvicorn", "squall"),
        ("uvicorn.error", "squall.error"),
        ("uvicorn.access", "squall.access"),
        ("uvicorn.asgi", "squall.asgi"),
    ]:
        assert logging.getLogger(uvicorn_name) is logging.getLogger(squall_name)
    assert logging.getLogger("uvicorn.error.child").parent is logging.getLogger("squall.error")


@pytest.mark.parametrize("import_uvicorn", [False, True], ids=["plain", "app-imports-uvicorn"])
def test_app_messages_under_uvicorn_error_look_like_squalls(tmp_path: Path, import_uvicorn: bool) -> None:
    with SquallProcess(write_app(tmp_path, import_uvicorn=import_uvicorn), "--port", "0", cwd=tmp_path) as squall:
        serve_and_stop(squall, "/page")
    output = squall.output
    assert "WARNING:  a warning from the app\n" in output
    assert "INFO:     handling /page\n" in output
    assert f"INFO:     uvicorn imported: {import_uvicorn}\n" in output


@pytest.mark.parametrize("import_uvicorn", [False, True], ids=["plain", "app-imports-uvicorn"])
def test_a_filter_on_uvicorn_access_sees_and_drops_squalls_access_records(tmp_path: Path, import_uvicorn: bool) -> None:
    app = write_app(tmp_path, import_uvicorn=import_uvicorn, filter_health=True)
    with SquallProcess(app, "--port", "0", "--http", "h11", cwd=tmp_path) as squall:
        serve_and_stop(squall, "/page", "/health", "/page")
    output = squall.output
    assert len(re.findall(r'"GET /page HTTP/1\.1" 200 OK', output)) == 2, output
    assert '"GET /health' not in output
    assert "INFO:     handling /health" in output  # the request was served: only its line was dropped


def test_a_filter_set_before_squall_starts_on_an_imported_uvicorn_still_applies(tmp_path: Path) -> None:
    """A program that imports Uvicorn and configures its access logger, then runs Squall."""
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent('''
        import logging
        import uvicorn  # creates Uvicorn's loggers before Squall is imported
        import squall

        class DropHealthChecks(logging.Filter):
            def filter(self, record):
                return "/health" not in record.getMessage()

        logging.getLogger("uvicorn.access").addFilter(DropHealthChecks())
        logging.getLogger("uvicorn.error.mine").warning("unseen: Squall's handlers are not set up yet")

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            logging.getLogger("uvicorn.error.mine").warning("child logger of uvicorn.error")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        squall.run(app, port=0, lifespan="off")
    '''))
    with LoggedProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        port = int(process.wait_for_log(r"Squall running on http://127\.0\.0\.1:(\d+)").group(1))
        httpx.get(f"http://127.0.0.1:{port}/health")
        httpx.get(f"http://127.0.0.1:{port}/page")
        process.wait_for_log(r'"GET /page HTTP/1\.1" 200')
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    assert '"GET /health' not in process.output
    assert "WARNING:  child logger of uvicorn.error\n" in process.output


def test_an_apps_own_dictconfig_naming_only_uvicorn_loggers_keeps_squalls_output(tmp_path: Path) -> None:
    """dictConfig disables the loggers it does not name (by default): naming
    Uvicorn's must not silence Squall's, which are the same loggers."""
    (tmp_path / "configured.py").write_text(textwrap.dedent('''
        import logging.config

        logging.config.dictConfig({
            "version": 1,
            "formatters": {
                "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "APP %(levelprefix)s %(message)s"},
                "access": {"()": "uvicorn.logging.AccessFormatter",
                           "fmt": 'APP-ACCESS %(client_addr)s "%(request_line)s" %(status_code)s'},
            },
            "handlers": {
                "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
                "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
            },
            "loggers": {
                "uvicorn.error": {"handlers": ["default"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            },
        })

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
    '''))
    with SquallProcess("configured:app", "--port", "0", "--lifespan", "off", cwd=tmp_path, env=hide_uvicorn(tmp_path)) as squall:
        serve_and_stop(squall, "/configured")
    output = squall.output
    assert "APP INFO:     Squall running on" in output
    assert re.search(r'APP-ACCESS 127\.0\.0\.1:\d+ "GET /configured HTTP/1\.1" 200 OK', output), output
    assert "APP INFO:     Finished server process" in output


# -- Uvicorn's --log-config files ---------------------------------------------------

UVICORN_DICT_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": "%(asctime)s [%(name)s] %(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s [%(name)s] %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

UVICORN_INI_CONFIG = '''
[loggers]
keys=root,uvicorn,error,access

[handlers]
keys=default,access

[formatters]
keys=default,access

[logger_root]
level=WARNING
handlers=

[logger_uvicorn]
level=INFO
handlers=default
propagate=0
qualname=uvicorn

[logger_error]
level=INFO
handlers=
qualname=uvicorn.error

[logger_access]
level=INFO
handlers=access
propagate=0
qualname=uvicorn.access

[handler_default]
class=StreamHandler
formatter=default
args=(sys.stderr,)

[handler_access]
class=StreamHandler
formatter=access
args=(sys.stdout,)

[formatter_default]
format=%(asctime)s [%(name)s] %(levelprefix)s %(message)s
class=uvicorn.logging.DefaultFormatter

[formatter_access]
format=%(asctime)s [%(name)s] %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s
class=uvicorn.logging.AccessFormatter
'''


def write_uvicorn_log_config(directory: Path, kind: str, disable_existing: bool = False) -> Path:
    config = {**UVICORN_DICT_CONFIG, "disable_existing_loggers": disable_existing}
    if kind == "json":
        path = directory / "uvicorn-log.json"
        path.write_text(json.dumps(config))
    elif kind == "yaml":
        import yaml

        path = directory / "uvicorn-log.yaml"
        path.write_text(yaml.safe_dump(config))
    else:
        path = directory / "uvicorn-log.ini"
        path.write_text(UVICORN_INI_CONFIG)
    return path


@pytest.mark.parametrize(
    ("kind", "disable_existing"),
    [("json", False), ("json", True), ("yaml", False), ("yaml", True), ("ini", False)],
)
def test_a_uvicorn_log_config_works_unchanged_without_uvicorn(tmp_path: Path, kind: str, disable_existing: bool) -> None:
    config_path = write_uvicorn_log_config(tmp_path, kind, disable_existing)
    app = write_app(tmp_path)
    env = hide_uvicorn(tmp_path)
    with SquallProcess(app, "--port", "0", "--log-config", str(config_path), cwd=tmp_path, env=env) as squall:
        serve_and_stop(squall, "/logged")
    output = squall.output
    assert "Unable to configure" not in output and "Traceback" not in output, output
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.search(rf"{stamp} \[squall\.error\] INFO:     Squall running on http://127\.0\.0\.1:\d+", output), output
    assert re.search(rf'{stamp} \[squall\.access\] INFO:     127\.0\.0\.1:\d+ - "GET /logged HTTP/1\.1" 200 OK', output), output
    assert re.search(rf"{stamp} \[squall\.error\] WARNING:  a warning from the app", output), output
    assert "Application shutdown complete." in output
    # Squall imported no Uvicorn to do it: the app says whether uvicorn is in sys.modules.
    assert "uvicorn imported: False" in output


def test_log_config_dict_for_squall_run_takes_use_colors_without_changing_it(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent('''
        import copy
        import squall
        from squall.config import LOGGING_CONFIG

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        config = copy.deepcopy(LOGGING_CONFIG)
        config["formatters"]["default"]["fmt"] = "CUSTOM %(levelprefix)s %(message)s"
        squall.run(app, port=0, lifespan="off", log_config=config, use_colors=False)
        assert config["formatters"]["default"]["use_colors"] is None, "the caller's dict was changed"
        assert LOGGING_CONFIG["formatters"]["default"]["fmt"] == "%(levelprefix)s %(message)s"
        print("dicts unchanged", flush=True)
    '''))
    with LoggedProcess([sys.executable, str(script)], cwd=tmp_path) as process:
        process.wait_for_log(r"CUSTOM INFO:     Squall running on http://127\.0\.0\.1:\d+")
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    assert "dicts unchanged" in process.output
    assert "\x1b[" not in process.output


def test_squall_config_exposes_logging_config() -> None:
    assert CONFIG_LOGGING_CONFIG is LOGGING_CONFIG
    assert set(LOGGING_CONFIG["loggers"]) == {"squall", "squall.error", "squall.access"}


# -- what the terminal shows ---------------------------------------------------------


def test_status_codes_and_pid_are_coloured_as_uvicorn_colours_them(tmp_path: Path) -> None:
    with SquallProcess(write_app(tmp_path), "--port", "0", "--use-colors", cwd=tmp_path) as squall:
        serve_and_stop(squall, "/page", "/redirect", "/missing", "/error")
    output = squall.output
    pid = squall.proc.pid
    assert f"Started server process [\x1b[36m{pid}\x1b[0m]" in output
    assert f"Finished server process [\x1b[36m{pid}\x1b[0m]" in output
    for status, colour in [("200 OK", 32), ("302 Found", 33), ("404 Not Found", 31), ("500 Internal Server Error", 91)]:
        assert f"\x1b[{colour}m{status}\x1b[0m" in output, (status, output)


def test_no_colours_when_not_asked_and_not_a_terminal(tmp_path: Path) -> None:
    with SquallProcess(write_app(tmp_path), "--port", "0", cwd=tmp_path) as squall:
        serve_and_stop(squall, "/missing")
    assert "\x1b[" not in squall.output
    assert re.search(r'INFO:     127\.0\.0\.1:\d+ - "GET /missing HTTP/1\.1" 404 Not Found\n', squall.output)


@pytest.mark.parametrize("ws", ["websockets", "websockets-sansio", "wsproto"])
def test_websocket_lines_read_as_uvicorns(tmp_path: Path, ws: str) -> None:
    with SquallProcess(write_app(tmp_path), "--port", "0", "--ws", ws, cwd=tmp_path) as squall:
        port = squall.wait_started()
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws?room=1") as client:
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                client.recv()
        squall.wait_for_log("connection closed")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    lines = squall.output.splitlines()
    accepted = [i for i, line in enumerate(lines) if re.fullmatch(r'INFO:     127\.0\.0\.1:\d+ - "WebSocket /ws\?room=1" \[accepted\]', line)]
    assert len(accepted) == 1, squall.output
    after = lines[accepted[0] + 1:]
    assert after.index("INFO:     connection open") < after.index("INFO:     connection closed")


def test_unix_socket_banner(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with SquallProcess(write_app(tmp_path), "--uds", str(path), cwd=tmp_path) as squall:
        squall.wait_for_log(rf"INFO:     Squall running on unix socket {re.escape(str(path))} \(Press CTRL\+C to quit\)\n")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_trace_level_logs_connections_made_and_lost(tmp_path: Path) -> None:
    with SquallProcess(write_app(tmp_path), "--port", "0", "--log-level", "trace", cwd=tmp_path) as squall:
        port = squall.wait_started()
        with socket.create_connection(("127.0.0.1", port)) as client:
            local_port = client.getsockname()[1]
            client.sendall(b"GET /traced HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while client.recv(65536):
                pass
        squall.wait_for_log(rf"TRACE:    127\.0\.0\.1:{local_port} - HTTP connection lost")
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/ws") as ws_client:
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                ws_client.recv()
        # The app closes at once: the client's port is read from the log.
        ws_port = int(squall.wait_for_log(r"TRACE:    127\.0\.0\.1:(\d+) - WebSocket connection lost").group(1))
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    output = squall.output
    assert f"TRACE:    127.0.0.1:{local_port} - HTTP connection made" in output
    assert f"TRACE:    127.0.0.1:{ws_port} - WebSocket connection made" in output
    assert re.search(r"TRACE:    ASGI \[\d+\] Send ", output)  # the ASGI messages too


def test_no_trace_lines_at_debug(tmp_path: Path) -> None:
    with SquallProcess(write_app(tmp_path), "--port", "0", "--log-level", "debug", cwd=tmp_path) as squall:
        serve_and_stop(squall, "/untraced")
    assert "TRACE" not in squall.output
    assert "connection made" not in squall.output


LIFESPAN_APPS = {
    "answers": '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
''',
    "returns": '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
''',
    "raises": '''
async def app(scope, receive, send):
    assert scope["type"] == "http"
''',
}


@pytest.mark.parametrize("kind", list(LIFESPAN_APPS))
def test_startup_complete_only_when_the_app_takes_part_in_the_lifespan(tmp_path: Path, kind: str) -> None:
    (tmp_path / "lifespanapp.py").write_text(LIFESPAN_APPS[kind])
    with SquallProcess("lifespanapp:app", "--port", "0", cwd=tmp_path) as squall:
        serve_and_stop(squall)
    output = squall.output
    takes_part = kind == "answers"
    assert ("Application startup complete." in output) is takes_part, output
    assert ("Application shutdown complete." in output) is takes_part, output
    assert ("ASGI 'lifespan' protocol appears unsupported." in output) is not takes_part, output
    assert "ERROR" not in output and "Traceback" not in output


def test_lifespan_on_refuses_an_app_that_returns_without_answering(tmp_path: Path) -> None:
    (tmp_path / "lifespanapp.py").write_text(LIFESPAN_APPS["returns"])
    result = run_squall("lifespanapp:app", "--port", "0", "--lifespan", "on", cwd=tmp_path)
    assert result.returncode == 3
    assert "The ASGI app returned without answering 'lifespan.startup'." in result.stderr
    assert "Application startup failed. Exiting." in result.stderr


# -- the formatters, in process -------------------------------------------------------


def record(name: str, msg: str, args: Any, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_access_formatter_takes_a_record_an_app_logged_its_own_way() -> None:
    formatter = AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    line = formatter.format(record("uvicorn.access", "custom %s", ("note",)))
    assert line == 'INFO:     - - "custom note" '


def test_default_formatter_uses_color_message_only_with_colours() -> None:
    plain = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False)
    coloured = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=True)
    entry = record("squall.error", "pid %d", (7,))
    entry.color_message = "pid <%d>"
    assert plain.format(entry) == "INFO:     pid 7"
    assert coloured.format(entry) == "\x1b[32mINFO\x1b[0m:     pid <7>"


def test_access_records_reach_a_handler_on_uvicorn_access_in_process() -> None:
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            seen.append(entry.getMessage())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = Collect()
    with running_server(app) as server:
        access = logging.getLogger("uvicorn.access")
        access.setLevel(logging.INFO)
        access.addHandler(handler)
        try:
            httpx.get(server.url + "/seen")
            wait_until(lambda: seen, what="the access record")
        finally:
            access.removeHandler(handler)
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /seen HTTP/1\.1" 204', seen[0]), seen


@pytest.mark.parametrize("use_colors", [False, True])
@pytest.mark.parametrize("status", [200, 304, 404, 500, 599])
def test_the_direct_access_line_is_the_formatters_line(use_colors: bool, status: int) -> None:
    """The default set-up writes access lines without LogRecords: the same lines."""
    from squall.logging import ACCESS_FORMAT, AccessFormatter

    formatter = AccessFormatter(ACCESS_FORMAT, use_colors=use_colors)
    args = ("127.0.0.1:5000", "GET", "/a b?x=1", "1.1", status)
    record = logging.LogRecord("squall.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d', args, None)
    assert formatter.direct_line(record.msg, args) == formatter.format(record)
