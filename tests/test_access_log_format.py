"""`--access-log-format`, `--log-format json`, WebSocket sessions in the access
log, and request data escaped in every log line.

The servers run in process with Squall's default logging configuration, so
the lines asserted are those its handlers write to stdout (access) and
stderr (the rest), captured by pytest.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from support import SquallProcess, recv_all, run_squall, running_server, wait_until

from squall.access_log import AccessFormat, AccessFormatError, escape
from squall.config import LOGGING_CONFIG, Config, ConfigError
from squall.logging import EscapeRequestData
from squall.protocols.http import stream as http_stream

WS_IMPLS = ["websockets", "websockets-sansio", "wsproto"]
# Every atom, between separators, in a fixed order.
ATOMS = ["h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "B", "b", "f", "a", "T", "M", "D", "L", "p"]
HEADER_ATOMS = ["{x-req}i", "{X-Absent}i", "{x-resp}o", "{content-type}o"]
ALL_ATOMS_FORMAT = "|".join(f"%({atom})s" for atom in ATOMS + HEADER_ATOMS)
APP_DELAY = 0.02
# The least a response time can be: the app's sleep, less the event loop's
# clock granularity (asyncio may wake a sleeper a little early).
MIN_MICROS = int(APP_DELAY * 1_000_000 * 0.9)


class Output:
    """What the server wrote to stdout and stderr so far (read from capsys as it comes)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.out = ""
        self.err = ""

    def read(self) -> Output:
        captured = self.capsys.readouterr()
        self.out += captured.out
        self.err += captured.err
        return self

    def out_lines(self, count: int, what: str = "access lines") -> list[str]:
        """Wait until stdout has `count` lines; return them."""
        return wait_until(lambda: (lines := self.read().out.splitlines()) and len(lines) >= count and lines, 5.0, what)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: 201 with 5 bytes of body (none at /empty) after APP_DELAY; /boom raises.
    WebSocket: accepted and closed after APP_DELAY, refused (403) at /deny..."""
    import asyncio

    if scope["type"] == "websocket":
        await receive()
        if scope["path"].startswith("/deny"):
            await send({"type": "websocket.close"})
            return
        await send({"type": "websocket.accept"})
        await asyncio.sleep(APP_DELAY)
        await send({"type": "websocket.close"})
        return
    assert scope["type"] == "http"
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await asyncio.sleep(APP_DELAY)
    empty = scope["path"] == "/empty"
    headers = [(b"content-type", b"text/plain"), (b"x-resp", b"def")]
    await send({"type": "http.response.start", "status": 204 if empty else 201, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if empty else b"hello"})


REQUEST_HEADERS = {
    "User-Agent": "test-agent/1.0",
    "Referer": "http://ref.example/page",
    "X-Req": "abc",
    "Authorization": "Basic " + base64.b64encode(b"alice:secret").decode(),
}


def check_all_atoms(line: str, *, path: str, protocol: str, status: int, body: int, pid: int) -> None:
    fields = dict(zip(ATOMS + HEADER_ATOMS, line.split("|"), strict=True))
    timestamp = fields.pop("t")
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]", timestamp), line
    logged = time.mktime(time.strptime(timestamp, "[%d/%b/%Y:%H:%M:%S +0000]")) - time.mktime(time.gmtime(0))
    assert abs(logged - time.time()) < 5, line
    micros, millis, seconds, decimal = int(fields.pop("D")), int(fields.pop("M")), int(fields.pop("T")), fields.pop("L")
    assert MIN_MICROS <= micros < 5_000_000, line
    assert millis == micros // 1000 and seconds == micros // 1_000_000, line
    assert re.fullmatch(r"\d+\.\d{6}", decimal) and abs(float(decimal) - micros / 1e6) < 1e-5, line
    assert fields == {
        "h": "127.0.0.1",
        "l": "-",
        "u": "alice",
        "r": f"GET {path}?a=1&b=%2F {protocol}",
        "m": "GET",
        "U": path.replace("%20", " "),
        "q": "?a=1&b=%2F",
        "H": protocol,
        "s": str(status),
        "B": str(body),
        "b": str(body) if body else "-",
        "f": "http://ref.example/page",
        "a": "test-agent/1.0",
        "p": f"<{pid}>",
        "{x-req}i": "abc",
        "{X-Absent}i": "-",
        "{x-resp}o": "def",
        "{content-type}o": "text/plain",
    }


# -- the atoms, over HTTP/1.1 and HTTP/2 ------------------------------------------------


@pytest.mark.parametrize(("path", "status", "body"), [("/p%20th/x", 201, 5), ("/empty", 204, 0)])
def test_every_atom_over_http11(serve: Any, capsys: pytest.CaptureFixture[str], path: str, status: int, body: int) -> None:
    output = Output(capsys)
    with serve(app, log_config=LOGGING_CONFIG, access_log_format=ALL_ATOMS_FORMAT) as server:
        response = httpx.get(f"{server.url}{path}?a=1&b=%2F", headers=REQUEST_HEADERS)
        assert response.status_code == status
        [line] = output.out_lines(1)
    check_all_atoms(line, path=path, protocol="HTTP/1.1", status=status, body=body, pid=os.getpid())


@pytest.mark.parametrize(("path", "status", "body"), [("/p%20th/x", 201, 5), ("/empty", 204, 0)])
def test_every_atom_over_http2(http_impl: str, capsys: pytest.CaptureFixture[str], path: str, status: int, body: int) -> None:
    output = Output(capsys)
    with running_server(app, http=http_impl, log_config=LOGGING_CONFIG, access_log_format=ALL_ATOMS_FORMAT) as server:
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(f"{server.url}{path}?a=1&b=%2F", headers=REQUEST_HEADERS)
        assert response.http_version == "HTTP/2"
        assert response.status_code == status
        [line] = output.out_lines(1)
    check_all_atoms(line, path=path, protocol="HTTP/2.0", status=status, body=body, pid=os.getpid())


def test_a_failing_app_is_logged_with_its_500(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    with serve(app, log_config=LOGGING_CONFIG, access_log_format="%(r)s %(s)s %(B)s") as server:
        assert httpx.get(server.url + "/boom").status_code == 500
        assert output.out_lines(1) == ["GET /boom HTTP/1.1 500 0"]
    assert "Exception in ASGI application" in output.read().err


def test_literal_text_and_percent_signs_pass_through(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    with serve(app, log_config=LOGGING_CONFIG, access_log_format='100%% "%(m)s" s=%(s)s %%(h)s') as server:
        httpx.get(server.url + "/")
        assert output.out_lines(1) == ['100% "GET" s=201 %(h)s']


def test_default_line_is_uvicorns_over_http2(capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    with running_server(app, log_config=LOGGING_CONFIG) as server:
        with httpx.Client(http1=False, http2=True) as client:
            client.get(server.url + "/x?y=1")
        [line] = output.out_lines(1)
    assert re.fullmatch(r'INFO:     127\.0\.0\.1:\d+ - "GET /x\?y=1 HTTP/2\.0" 201 Created', line), line


# -- WebSocket sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("ws", WS_IMPLS)
def test_websocket_sessions_accepted_and_denied(http_impl: str, ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    fmt = "%(m)s %(U)s%(q)s %(H)s %(s)s %(b)s %(D)s %(a)s"
    with running_server(app, http=http_impl, ws=ws, log_config=LOGGING_CONFIG, access_log_format=fmt) as server:
        url = f"ws://127.0.0.1:{server.port}"
        with websockets.sync.client.connect(url + "/ws?room=1", user_agent_header="ws-client") as client:
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                client.recv()
        accepted = output.out_lines(1, "the accepted session's line")[0]
        with pytest.raises(websockets.exceptions.InvalidStatus):
            websockets.sync.client.connect(url + "/deny", user_agent_header="ws-client")
        denied = output.out_lines(2, "the denied session's line")[1]
    method, target, protocol, status, size, micros, agent = accepted.split(" ")
    assert (method, target, protocol, status, size, agent) == ("GET", "/ws?room=1", "HTTP/1.1", "101", "-", "ws-client")
    assert int(micros) >= MIN_MICROS
    assert re.fullmatch(r"GET /deny HTTP/1\.1 403 - \d+ ws-client", denied), denied
    # The error log keeps Uvicorn's lines.
    err = output.read().err
    assert re.search(r'INFO:     127\.0\.0\.1:\d+ - "WebSocket /ws\?room=1" \[accepted\]\n', err), err
    assert re.search(r'INFO:     127\.0\.0\.1:\d+ - "WebSocket /deny" 403\n', err), err


@pytest.mark.parametrize("ws", WS_IMPLS)
def test_websocket_session_default_line(ws: str, capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    with running_server(app, ws=ws, log_config=LOGGING_CONFIG) as server:
        with websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                client.recv()
        [line] = output.out_lines(1)
    assert re.fullmatch(r'INFO:     127\.0\.0\.1:\d+ - "GET /ws HTTP/1\.1" 101 Switching Protocols', line), line


# -- JSON ------------------------------------------------------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.mark.parametrize("access_log_format", [None, "%(h)s %({x-req}i)s %({x-resp}o)s"], ids=["default", "custom"])
def test_json_access_and_error_records(serve: Any, capsys: pytest.CaptureFixture[str], access_log_format: str | None) -> None:
    output = Output(capsys)
    with serve(app, log_config=LOGGING_CONFIG, log_format="json", access_log_format=access_log_format) as server:
        httpx.get(server.url + "/p%20th?a=1", headers=REQUEST_HEADERS)
        httpx.get(server.url + "/boom")
        output.out_lines(2)
    first, second = json_lines(output.out)
    port = first.pop("client_port")
    assert isinstance(port, int)
    assert re.fullmatch(ISO_UTC, first.pop("timestamp"))
    assert 0 < first.pop("duration_us") < 5_000_000
    message = first.pop("message")
    expected = {
        "level": "INFO",
        "logger": "squall.access",
        "type": "http",
        "client": "127.0.0.1",
        "request_line": "GET /p%20th?a=1 HTTP/1.1",
        "method": "GET",
        "path": "/p th",
        "query": "a=1",
        "protocol": "HTTP/1.1",
        "status": 201,
        "bytes": 5,
        "user_agent": "test-agent/1.0",
        "referer": "http://ref.example/page",
        "user": "alice",
        "pid": os.getpid(),
    }
    if access_log_format is None:
        assert message == f'127.0.0.1:{port} - "GET /p th?a=1 HTTP/1.1" 201'
    else:
        assert message == "127.0.0.1 abc def"
        expected.update(request_header_x_req="abc", response_header_x_resp="def")
    assert first == expected
    assert second["status"] == 500 and second["path"] == "/boom"
    errors = json_lines(output.read().err)
    assert all(set(record) >= {"timestamp", "level", "logger", "message"} for record in errors)
    assert {"level": "INFO", "logger": "squall.error"}.items() <= errors[0].items()
    [failure] = [record for record in errors if record["message"] == "Exception in ASGI application\n"]
    assert failure["level"] == "ERROR"
    assert "RuntimeError: boom" in failure["exception"]


def test_json_websocket_session(capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(capsys)
    with running_server(app, ws="websockets", log_config=LOGGING_CONFIG, log_format="json") as server:
        with websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                client.recv()
        output.out_lines(1)
    [record] = json_lines(output.out)
    assert (record["type"], record["method"], record["path"], record["status"]) == ("websocket", "GET", "/ws", 101)
    assert record["duration_us"] >= MIN_MICROS


def test_a_log_config_of_the_users_own_wins_over_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "MINE %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}},
        "loggers": {"squall.access": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    output = Output(capsys)
    with running_server(app, log_config=config, log_format="json", access_log_format="%(m)s %(s)s") as server:
        httpx.get(server.url + "/")
        assert output.out_lines(1) == ["MINE GET 201"]


# -- control characters from the request -------------------------------------------------------

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # all but the line ends
EVIL_TARGET = b"/a%0d%0aINFO:%20forged%1b[31m%e2%80%a8?q=%1b%0a"
EVIL_HEADER = b"a\x9b31m\tb\x85"  # a tab, and obs-text: C1 CSI and NEL, which HTTP lets through


def send_raw(port: int, target: bytes, header: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-Evil: " + header + b"\r\nConnection: close\r\n\r\n")
        return recv_all(sock)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("access_log_format", [None, '%(r)s "%(U)s" %(q)s %({x-evil}i)s'], ids=["default", "custom"])
def test_control_characters_from_the_request_are_escaped(
    http_impl: str, capsys: pytest.CaptureFixture[str], log_format: str, access_log_format: str | None
) -> None:
    output = Output(capsys)
    options = {"log_format": log_format, "access_log_format": access_log_format, "log_level": "debug"}
    with running_server(app, http=http_impl, ws="websockets", log_config=LOGGING_CONFIG, **options) as server:
        response = send_raw(server.port, EVIL_TARGET, EVIL_HEADER)
        assert response.startswith(b"HTTP/1.1 201 "), response
        with httpx.Client(http1=False, http2=True) as client:
            assert client.get(server.url + EVIL_TARGET.decode()).status_code == 201
        with pytest.raises(websockets.exceptions.InvalidStatus):
            websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/deny%1b[2J%0d%0a")
        lines = output.out_lines(3)
    everything = output.read().out + output.err
    assert not CONTROL.search(everything), repr(everything)
    assert len(lines) == 3, lines  # no line was split
    escaped_path = "/a\\r\\nINFO: forged\\x1b[31m\\u2028"
    if log_format == "json":
        records = json_lines(output.out)
        assert [record["path"] for record in records] == [escaped_path, escaped_path, "/deny\\x1b[2J\\r\\n"]
        assert [record["query"] for record in records[:2]] == ["q=%1b%0a"] * 2
        if access_log_format:
            assert records[0]["request_header_x_evil"] == "a\\x9b31m\\tb\\x85"
        text = "\n".join(record["message"] for record in records) + "\n".join(r["message"] for r in json_lines(output.err))
    else:
        text = everything
    assert escaped_path in text, text
    assert "/deny\\x1b[2J\\r\\n" in text, text  # the error log's WebSocket line too
    if access_log_format:
        assert "a\\x9b31m\\tb\\x85" in text, text


def test_only_squalls_own_messages_are_escaped_in_the_error_log() -> None:
    ours = logging.LogRecord("squall.error", logging.INFO, http_stream.__file__, 1, "path %s", ("/a\x1b\n",), None)
    apps = logging.LogRecord("squall.error", logging.INFO, __file__, 1, "report:\n%s", ("line 1\nline 2",), None)
    escaping = EscapeRequestData()
    assert escaping.filter(ours) and escaping.filter(apps)
    assert ours.getMessage() == "path /a\\x1b\\n"
    assert apps.getMessage() == "report:\nline 1\nline 2"


def test_escape() -> None:
    assert escape("/plain/path é") == "/plain/path é"
    assert escape("a\r\nb\x1b[31m\x00\x7f\x9b\u2028\u202e\\x1b") == "a\\r\\nb\\x1b[31m\\x00\\x7f\\x9b\\u2028\\u202e\\\\x1b"


# -- mistakes, and workers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%(h)s %(zz)s", "unknown atom '%(zz)s'"),
        ("%(h)d", "a '%' that starts no atom"),
        ("50% done", "a '%' that starts no atom"),
        ("%({}i)s", "'%({}i)s' does not name a header"),
        ("%({a b}o)s", "'%({a b}o)s' does not name a header"),
    ],
)
def test_a_bad_format_is_refused_with_one_line(fmt: str, message: str) -> None:
    with pytest.raises(AccessFormatError, match=re.escape(message)):
        AccessFormat(fmt)
    with pytest.raises(ConfigError, match=re.escape(f"--access-log-format: {message}")):
        Config(app, access_log_format=fmt, log_config=None)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--access-log-format", "%(zz)s"], {}, "Invalid value for '--access-log-format': unknown atom '%(zz)s'"),
        ([], {"SQUALL_ACCESS_LOG_FORMAT": "%(h)s %(nope)s"}, "SQUALL_ACCESS_LOG_FORMAT='%(h)s %(nope)s': unknown atom '%(nope)s'"),
        (["--log-format", "xml"], {}, "Invalid value for '--log-format': 'xml' is not one of 'text', 'json'."),
    ],
    ids=["option", "environment", "log-format"],
)
def test_command_line_mistakes_are_one_line_and_exit_2(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    result = run_squall("nosuch:app", "--port", "0", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1, result.stderr


def test_squall_run_with_a_bad_format_exits_3(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text("import squall\nsquall.run(lambda: None, access_log_format='%(x)s')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "--access-log-format: unknown atom '%(x)s'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_compiled_format_travels_to_workers_by_pickle() -> None:
    compiled = pickle.loads(pickle.dumps(AccessFormat("%(m)s %({x-req}i)s")))
    assert compiled.source == "%(m)s %({x-req}i)s"
    assert compiled.request_headers == [b"x-req"]


def test_environment_and_workers(tmp_path: Path) -> None:
    """SQUALL_ACCESS_LOG_FORMAT and SQUALL_LOG_FORMAT reach every worker process."""
    (tmp_path / "wapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    env = {"SQUALL_ACCESS_LOG_FORMAT": "%(m)s %(U)s %(s)s %(B)s", "SQUALL_LOG_FORMAT": "json"}
    with SquallProcess("wapp:app", "--port", "0", "--workers", "2", cwd=tmp_path, env=env) as squall:
        port = int(squall.wait_for_log(r'"message": "Squall running on http://127\.0\.0\.1:(\d+)').group(1))
        squall.wait_for_matches(r'"message": "Started server process \[\d+\]"', 2)
        for _ in range(4):
            httpx.get(f"http://127.0.0.1:{port}/w")
        squall.wait_for_matches(r'"message": "GET /w 200 2"', 4)
        squall.signal()
        assert squall.wait() == 0
    records = [json.loads(line) for line in squall.output.splitlines()]
    assert all(record["level"] for record in records)
