"""Valid HTTP/1.1 inputs and byte-level mutations of them, reproducible from a seed."""

from __future__ import annotations

import random
from collections.abc import Iterator

HOST = b"Host: example.com\r\n"

# Valid inputs covering each part of the grammar the mutations then break:
# request lines, fields, both body framings, chunk extensions, trailers,
# pipelining, and the empty lines allowed before a request.
VALID_INPUTS: list[bytes] = [
    b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /a/b%20c?x=1&y=%2F HTTP/1.1\r\n" + HOST + b"User-Agent: curl/8.5\r\nAccept: */*\r\n\r\n",
    b"HEAD /head HTTP/1.1\r\n" + HOST + b"\r\n",
    b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET http://example.com/abs?q HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /again HTTP/1.0\r\n\r\n",
    b"POST /form HTTP/1.1\r\n" + HOST + b"Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    b"PUT /empty HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n",
    b"POST /chunked HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"POST /ext HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    b"a;name=value;q=\"quoted \\\" text\"\r\n0123456789\r\n0;last\r\nChecksum: abc\r\nX-Trailer: 1\r\n\r\n",
    b"POST /expect HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /1 HTTP/1.1\r\n" + HOST + b"\r\nPOST /2 HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nabc"
    b"\r\nGET /3 HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
    b"POST /te HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
    b"GET /after HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /ws HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\n" + HOST + b"X-Empty:\r\nX-Spaces:   padded   \r\nX-Tab:\tv\r\n\r\n",
]

# Bytes that mean something somewhere in HTTP/1.1 framing.
INTERESTING = b" \t\r\n\x00\x01\x0b\x0c\x7f\x80\xff:;=,\"\\/0123456789aAfFxX-+_.?#%@"
INTERESTING_STRINGS = [
    b"\r\n", b"\n", b"\r", b" ", b"  ", b"\t", b"\r\n\r\n", b"0", b"00000000000000000000000", b"ffffffffffffffffff",
    b"-1", b"+1", b"0x5", b";", b"=", b"\"", b"\\", b"chunked", b"Chunked", b"gzip, chunked", b"chunked, chunked",
    b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"Host: other\r\n",
    b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"\r\n ", b"\xc3\xa9", b"99999999999999999999999999",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits of `data`: a byte replaced, inserted or deleted, a string inserted, a span repeated."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if kind == 0 and pos < len(buf):
            buf[pos] = rng.choice(INTERESTING)
        elif kind == 1:
            buf[pos:pos] = bytes([rng.choice(INTERESTING)])
        elif kind == 2 and pos < len(buf):
            del buf[pos]
        elif kind == 3:
            buf[pos:pos] = rng.choice(INTERESTING_STRINGS)
        elif kind == 4 and pos < len(buf):
            end = min(len(buf), pos + rng.randint(1, 16))
            buf[pos:pos] = buf[pos:end]
        elif pos < len(buf):
            buf[pos] = rng.randrange(256)
    return bytes(buf)


def mutated_inputs(seed: int, count: int) -> Iterator[tuple[bytes, list[int]]]:
    """`count` (input, read boundaries) pairs: mutated valid inputs, some cut into several reads."""
    rng = random.Random(seed)
    for _ in range(count):
        data = mutate(rng.choice(VALID_INPUTS), rng)
        cuts = [rng.randrange(1, len(data)) for _ in range(rng.randint(0, 3))] if len(data) > 1 and rng.random() < 0.3 else []
        yield data, cuts
