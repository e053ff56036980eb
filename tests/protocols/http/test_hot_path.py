"""The compiled hot path against its pure-Python reference.

In memory: many response heads, ordinary and broken, through both
`build_response_head`s; results and errors must be identical.  Many request
heads through `parse_request_head` and through the pure path (the byte
checks, then llhttp and h11, then `check_request_head`): wherever the
compiled reader reads a head, the outcome must be the pure path's.  Many
HTTP/2 response heads through both `response_headers` and both
`encode_headers` (whose blocks the `hpack` library must decode back).  Over real
sockets: a `squall` process with SQUALL_NO_EXTENSIONS=1 and one without
answer the same requests with the same bytes (but the Date).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import hpack
import pytest
from support import SquallProcess

from h1_support import RawClient, get_request
from squall._compiled import speedups
from squall.protocols.http.h1_request import (
    BadRequest,
    RequestLimits,
    check_head_bytes,
    check_request_head,
    plain_request,
    pure_split_target,
)
from squall.protocols.http.h11_impl import H11Reader
from squall.protocols.http.h1_connection import H1Connection
from squall.protocols.http.httptools_impl import HttpToolsReader
from squall.protocols.http.response import pure_build_response_head
from squall.protocols.http2.frames import pure_encode_headers
from squall.protocols.http2.request import pure_response_headers

STATUSES: list[Any] = [100, 101, 103, 199, 200, 201, 204, 206, 301, 304, 404, 418, 500, 599, 600, 999,
                       0, 99, 1000, -1, "200", 200.0, True, None]
NAMES = [b"content-type", b"Content-Type", b"x-custom", b"set-cookie", b"X!#$%&'*+-.^_`|~9",
         b"content-length", b"Content-Length", b"CONTENT-LENGTH", b"transfer-encoding", b"Transfer-Encoding",
         b"connection", b"Connection", b"server", b"Server", b"date", b"DATE",
         b"", b"bad name", b"x:y", b"x\xff", b"caf\xc3\xa9", "content-type", bytearray(b"x-b")]
VALUES = [b"", b"text/plain", b"a" * 300, b" spaced ", b"tab\tinside", b"\xff\xfe", b"a\rb", b"a\nb", b"a\x00b",
          "str", bytearray(b"ba"), None]
LENGTHS = [b"0", b"13", b" 13 ", b"\t7\x0b", b"007", b"1_0", b"-1", b"+1", b"1.0", b"", b" ", b"abc",
           b"9" * 18, b"9" * 19, b"9" * 40, b"\xd9\xa1"]
ENCODINGS = [b"chunked", b" Chunked ", b"gzip", b"gzip, chunked", b""]
CONNECTIONS = [b"close", b"Close", b"keep-alive", b"upgrade, close", b"closer", b""]
DEFAULTS = [
    (b"", frozenset()),
    (b"server: squall\r\ndate: Sat, 28 Nov 2026 22:00:00 GMT\r\n", frozenset((b"server", b"date"))),
    (b"date: Sat, 28 Nov 2026 22:00:00 GMT\r\nx-extra: 1\r\n", frozenset((b"date",))),
]


def random_header(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.02:
        return rng.choice([[b"x-list", b"pair"], (b"one",), (b"a", b"b", b"c"), b"x-raw"])
    name = rng.choice(NAMES)
    lname = name.lower() if isinstance(name, bytes) else None
    if lname == b"content-length" and rng.random() < 0.9:
        value: Any = rng.choice(LENGTHS)
    elif lname == b"transfer-encoding" and rng.random() < 0.9:
        value = rng.choice(ENCODINGS)
    elif lname == b"connection" and rng.random() < 0.9:
        value = rng.choice(CONNECTIONS)
    else:
        value = rng.choice(VALUES)
    return (name, value)


def outcome(build: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        head = build(*args)
    except Exception as exc:
        return ("error", type(exc), str(exc))
    return ("head", *head)


@pytest.mark.skipif(speedups is None, reason="the compiled hot path is not built here (or SQUALL_NO_EXTENSIONS=1)")
def test_compiled_response_head_matches_the_reference() -> None:
    assert speedups is not None
    compiled = speedups.build_response_head
    rng = random.Random(15)
    ordinary = 0
    for _ in range(30000):
        # Mostly ordinary heads (the compiled path's own work), some broken ones (its hand-over).
        if rng.random() < 0.6:
            pool = [(b"content-type", b"text/plain"), (b"x-a", b"1"), (b"content-length", b"13"), (b"Set-Cookie", b"a=b")]
            headers: Any = rng.sample(pool, rng.randint(0, len(pool)))
            status: Any = rng.choice([200, 204, 304, 404, 101, 500])
        else:
            headers = [random_header(rng) for _ in range(rng.randint(0, 6))]
            status = rng.choice(STATUSES)
        container = rng.choices([list, tuple], weights=[9, 1])[0]
        default_headers, default_names = rng.choice(DEFAULTS)
        flags = (rng.random() < 0.8, rng.random() < 0.8, rng.random() < 0.2)
        args = (status, container(headers), default_headers, default_names, *flags)
        expected = outcome(pure_build_response_head, args)
        assert outcome(compiled, args) == expected, args
        ordinary += expected[0] == "head"
    assert ordinary > 15000  # the inputs did reach the successful paths



METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"PROPFIND", b"get",
           b"GETX", b"G\xc3T", b""]
TARGETS = [b"/", b"/hello", b"/a?b=c&d", b"/%7Euser/x%20y", b"/caf\xc3\xa9", b"/a#frag", b"/a\\b", b"/\"<>{}|^`",
           b"*", b"http://example.com/x", b"example.com:443", b"/a b", b"/a\x7f", b"/a\tb", b"//x", b"/" + b"p" * 300]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 "]
FIELD_NAMES = [b"Host", b"host", b"HOST", b"User-Agent", b"accept", b"X-Custom", b"Content-Length", b"content-length",
               b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade", b"TE", b"HTTP2-Settings", b"Cookie",
               b"x!#$%&'*+-.^_`|~9", b"", b"bad name", b"x\xff", b"X-Forwarded-For"]
FIELD_VALUES = [b"", b"example.com", b" spaced  ", b"a  b", b"text/html, */*;q=0.8", b"tab\tinside", b"\tlead",
                b"caf\xc3\xa9", b"a\x7fb", b"a\x00b", b"a\rb", b"a\nb", b"0", b"12", b"5, 5", b"chunked", b"CHUNKED",
                b"gzip", b"close", b"keep-alive", b"Upgrade", b"websocket", b"100-continue", b"trailers", b"x" * 200]
BODY_LENGTHS = [b"0", b"12", b"4096", b"007", b"9" * 18, b"9" * 19, b"", b"1 2", b"-1", b"1a"]
LIMIT_SETS = [(8190, 65536, 100, 8190), (8190, 65536, 0, 0), (40, 256, 3, 40), (12, 64, 1, 20), (8190, 65536, 2, 1)]


class _Conn(H1Connection):
    """Just what a reader's head parsing reads of its connection (a compiled
    reader accepts only an H1Connection)."""

    def __init__(self, limits: RequestLimits) -> None:  # noqa: super-init-not-called
        self.limits = limits


def random_request_head(rng: random.Random) -> bytes:
    """A request head, most of the time a common one (the compiled reader's own work)."""
    if rng.random() < 0.5:
        method, target, version = rng.choice(METHODS[:7]), rng.choice(TARGETS[:5]), rng.choice(VERSIONS[:2])
        fields = [(b"Host", b"example.com")] + [
            (rng.choice(FIELD_NAMES[3:6]), rng.choice(FIELD_VALUES[:5])) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.3:  # a body's length: read by the compiled reader when valid
            fields.append((rng.choice(FIELD_NAMES[6:8]), rng.choice(BODY_LENGTHS)))
    else:
        method, target, version = rng.choice(METHODS), rng.choice(TARGETS), rng.choice(VERSIONS)
        fields = [(rng.choice(FIELD_NAMES), rng.choice(FIELD_VALUES)) for _ in range(rng.randint(0, 5))]
    separators = [b" ", b" "] if rng.random() < 0.95 else [rng.choice([b"  ", b"\t", b""]), b" "]
    lines = [method + separators[0] + target + separators[1] + version]
    for name, value in fields:
        colon = b":" if rng.random() < 0.97 else rng.choice([b" :", b"", b"::"])
        space = rng.choice([b" ", b"", b"  "])
        lines.append(name + colon + space + value)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if rng.random() < 0.03:
        cut = rng.randrange(len(head))
        head = head[:cut] + rng.choice([b"\n", b"\r", b"\r\n ", b"\x00", b"\r\n\r\n"]) + head[cut:]
    return head


def pure_outcome(reader: Any, head: bytes, limits: RequestLimits) -> tuple[Any, ...]:
    try:
        check_head_bytes(head, limits)
        method, target, version, headers = reader.parse_head(head)
        info = check_request_head(method, target, version, headers, None)
    except BadRequest as exc:
        return ("refused", exc.status)
    return ("read", method, target, version, headers, info_fields(info))


def info_fields(info: Any) -> tuple[Any, ...]:
    return tuple(getattr(info, name) for name in type(info).__slots__)


@pytest.mark.skipif(speedups is None, reason="the compiled hot path is not built here (or SQUALL_NO_EXTENSIONS=1)")
def test_compiled_request_head_reader_matches_the_pure_path() -> None:
    assert speedups is not None
    rng = random.Random(14)
    read = plain = with_body = 0
    for _ in range(20000):
        head = random_request_head(rng)
        limits = RequestLimits(*rng.choices(LIMIT_SETS, weights=[10, 4, 2, 1, 1])[0])
        parsed = speedups.parse_request_head(
            head, limits.request_line_size, limits.head_size, limits.fields, limits.field_size)
        if parsed is None:
            continue  # the pure path reads it (tested by every other HTTP test)
        method, target, version, headers, is_plain = parsed
        try:
            info = check_request_head(method, target, version, headers, None)
        except BadRequest as exc:
            compiled = ("refused", exc.status)
        else:
            compiled = ("read", method, target, version, headers, info_fields(info))
            if is_plain >= 0:
                assert info_fields(info) == info_fields(plain_request(is_plain)), head
                plain += 1
                with_body += is_plain > 0
        for reader_class in (HttpToolsReader, H11Reader):
            assert pure_outcome(reader_class(_Conn(limits)), head, limits) == compiled, (reader_class, head)
        read += 1
    # The inputs did reach the compiled reader's own paths, plain and not.
    assert read > 5000 and plain > 2000 and read - plain > 1000 and with_body > 200, (read, plain, with_body)



TARGET_PIECES = [b"/", b"a", b"%20", b"%", b"?", b"=", b"&", b"\xc3\xa9", b"#", b"//", b"*", b"http://h", b"b/c", b""]


@pytest.mark.skipif(speedups is None, reason="the compiled hot path is not built here (or SQUALL_NO_EXTENSIONS=1)")
def test_compiled_split_target_matches_the_reference() -> None:
    assert speedups is not None
    rng = random.Random(3986)
    compiled_own = 0
    for _ in range(20000):
        target = b"".join(rng.choice(TARGET_PIECES) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.7:
            target = b"/" + target
        root_path = rng.choices(["", "/root", "/caf\u00e9"], weights=[8, 1, 1])[0]
        args = (target, root_path)
        assert h2_outcome(speedups.split_target, args) == h2_outcome(pure_split_target, args), args
        compiled_own += root_path == "" and target[:1] == b"/" and b"%" not in target.partition(b"?")[0]
    assert compiled_own > 5000  # the inputs did reach the compiled path's own work


def h2_outcome(function: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return ("fields", function(*args))
    except Exception as exc:
        return ("error", type(exc), str(exc))


@pytest.mark.skipif(speedups is None, reason="the compiled hot path is not built here (or SQUALL_NO_EXTENSIONS=1)")
def test_compiled_http2_response_head_matches_the_reference() -> None:
    assert speedups is not None
    decoder = hpack.Decoder()
    rng = random.Random(9113)
    ordinary = 0
    for _ in range(20000):
        if rng.random() < 0.6:
            pool = [(b"content-type", b"text/plain"), (b"X-A", b"1"), (b"content-length", b"13"), (b"set-cookie", b"a=b"),
                    (b"Connection", b"close"), (b"server", b"app"), (b"x-long", b"v" * rng.choice([10, 200, 20000]))]
            headers: Any = rng.sample(pool, rng.randint(0, len(pool)))
            status: Any = rng.choice([200, 204, 304, 404, 101, 500, 599, 999, 103])
        else:
            headers = [random_header(rng) for _ in range(rng.randint(0, 6))]
            status = rng.choice(STATUSES)
        container = rng.choices([list, tuple], weights=[9, 1])[0]
        default_list = rng.choice([[], [(b"server", b"squall"), (b"date", b"Sat, 28 Nov 2026 22:00:00 GMT")]])
        default_names = frozenset(name for name, _ in default_list)
        args = (status, container(headers), default_list, default_names)
        expected = h2_outcome(pure_response_headers, args)
        assert h2_outcome(speedups.response_fields, args) == expected, args
        if expected[0] == "fields":
            ordinary += 1
            fields = expected[1][0]
            block = speedups.encode_headers(fields)
            assert block == pure_encode_headers(fields), fields
            assert decoder.decode(block, raw=True) == fields
    assert ordinary > 12000  # the inputs did reach the successful paths
    # Not lists of byte pairs: handed to the reference, its errors included.
    for odd in ([(b"a", "str")], [(b"a",)], [[b"a", b"b"]], ((b"a", b"b"),), [(bytearray(b"a"), b"b")]):
        assert h2_outcome(speedups.encode_headers, (odd,)) == h2_outcome(pure_encode_headers, (odd,)), odd


HELLO_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    headers = [(b"content-type", b"text/plain"), (b"x-path", path.encode())]
    if path == "/length":
        headers.append((b"content-length", b"5"))
    elif path == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 204 if path == "/none" else 200, "headers": headers})
    if path == "/none":
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.body", "body": b"hel", "more_body": True})
    await send({"type": "http.response.body", "body": b"lo"})
'''

REQUESTS = [get_request("/length"), get_request("/chunked"), get_request("/none"),
            get_request("/length", version="1.0", headers="Connection: keep-alive\r\n"),
            get_request("/close")]


def exchange(port: int) -> list[bytes]:
    """The raw responses to REQUESTS on one connection, Date values blanked."""
    answers = []
    with RawClient.connect(port) as client:
        for request in REQUESTS:
            response = client.request(request)
            answers.append(re.sub(rb"date: [^\r]*", b"date: -", response.raw_head) + response.raw_body)
    return answers


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_both_paths_answer_the_same_bytes(tmp_path: Path, http: str) -> None:
    (tmp_path / "hello.py").write_text(HELLO_APP)
    results = []
    for env in ({}, {"SQUALL_NO_EXTENSIONS": "1"}):
        args = ("hello:app", "--port", "0", "--http", http, "--log-level", "debug")
        with SquallProcess(*args, cwd=tmp_path, env=env) as squall:
            port = squall.wait_started()
            assert port is not None
            results.append(exchange(port))
            expected = "pure Python" if env or speedups is None else "compiled hot path"
            squall.wait_for_log(f"Squall hot path: {expected}")
    assert results[0] == results[1]
    assert b"content-length: 5\r\n" in results[0][0]
    assert b"transfer-encoding: chunked\r\n" in results[0][1]
    assert b"connection: close\r\n" in results[0][4]
