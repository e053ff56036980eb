"""What each fuzz harness checks for one input.

`HARNESSES` maps a harness name to a function that feeds one input to
Squall's protocol objects (over `wire_harness`'s in-memory transport) and
raises `HarnessFailure` when an invariant breaks.  atheris calls them with
generated inputs (`run_fuzzer.py`, `make fuzz`); `test_fuzz_corpus.py` calls
them with every file of the seed corpus and every crash found so far, in
`make test`.

    http1      bytes on an HTTP/1.1 connection, under both parsers: the
               outcomes must be identical, and the HTTP/1.1 invariants hold
    websocket  bytes after a valid upgrade request, under every --ws
    http2      bytes after the connection preface, under both HTTP/2 wires

The first byte of an input says how it is cut into reads: below 0x80 it is
one read; else reads of `(byte & 0x7f) + 1` bytes.  So the fuzzer explores
read boundaries too, and every corpus file replays exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from wire_harness import H2_PREFACE, H2_WIRES, HTTP_IMPLS, WS_IMPLS, Driver, HarnessFailure, Outcome, check_h1

WS_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

_drivers: dict[tuple[str, str, str], Driver] = {}


def _driver(protocol: str, impl: str, ws: str = "none") -> Driver:
    """One driver per implementation, made once and reused: inputs run in microseconds, a Config load does not."""
    key = (protocol, impl, ws)
    driver = _drivers.get(key)
    if driver is None:
        driver = _drivers[key] = Driver(protocol, impl, ws=ws)
    return driver


def reads_of(data: bytes) -> list[bytes]:
    """The reads an input stands for (see the module's docstring)."""
    if not data:
        return []
    mode, payload = data[0], data[1:]
    if mode < 0x80 or not payload:
        return [payload] if payload else []
    size = (mode & 0x7F) + 1
    return [payload[start : start + size] for start in range(0, len(payload), size)]


def check_http1(data: bytes) -> None:
    reads = reads_of(data)
    outcomes: dict[str, Outcome] = {}
    for impl in HTTP_IMPLS:
        outcome = _driver("h1", impl).run(reads)
        check_h1(outcome)
        outcomes[impl] = outcome
    first, second = (outcomes[impl] for impl in HTTP_IMPLS)
    if first != second:
        raise HarnessFailure(f"the parsers disagree:\n  h11: {first.summary()}\n  httptools: {second.summary()}")


def check_websocket(data: bytes) -> None:
    reads = [WS_UPGRADE, *reads_of(data)]
    for ws in WS_IMPLS:
        outcome = _driver("h1", "httptools", ws).run(reads, client_eof=True)
        if not outcome.output.startswith(b"HTTP/1.1 101 "):
            raise HarnessFailure(f"--ws {ws}: the upgrade was not accepted: {outcome.summary()}")
        if not outcome.events or outcome.events[0] not in ("close", "abort"):
            raise HarnessFailure(f"--ws {ws}: the connection stayed open after the client's EOF: {outcome.summary()}")


def check_http2(data: bytes) -> None:
    reads = [H2_PREFACE, *reads_of(data)]
    for wire in H2_WIRES:
        outcome = _driver("h2", wire).run(reads)
        try:
            _check_h2(outcome)
        except HarnessFailure as exc:
            raise HarnessFailure(f"--http2-impl {wire}: {exc}") from None


def _check_h2(outcome: Outcome) -> None:
    """Frames well formed; nothing answered but complete requests; closed after a connection error."""
    from hpack import Decoder

    decoder = Decoder()
    output = outcome.output
    pos = 0
    answered = 0
    block = b""
    goaway_error = None
    while pos < len(output):
        if len(output) - pos < 9:
            raise HarnessFailure(f"a truncated frame header at {pos}")
        length = int.from_bytes(output[pos : pos + 3], "big")
        kind, flags = output[pos + 3], output[pos + 4]
        payload = output[pos + 9 : pos + 9 + length]
        if len(payload) != length:
            raise HarnessFailure(f"a truncated frame at {pos}")
        pos += 9 + length
        if kind in (0x1, 0x9):  # HEADERS, CONTINUATION
            if kind == 0x1:
                padded, priority = flags & 0x8, flags & 0x20
                start = (1 if padded else 0) + (5 if priority else 0)
                end = len(payload) - (payload[0] if padded else 0)
                block = payload[start:end]
            else:
                block += payload
            if flags & 0x4:  # END_HEADERS
                headers = dict(decoder.decode(block, raw=True))
                if headers.get(b":status") == b"200":
                    answered += 1
                block = b""
        elif kind == 0x7 and len(payload) >= 8:  # GOAWAY
            (code,) = struct.unpack(">I", payload[4:8])
            goaway_error = code
    complete = sum(1 for request in outcome.requests if request.complete)
    if answered > complete:
        raise HarnessFailure(f"{answered} responses for {complete} complete requests: {outcome.summary()}")
    if goaway_error and not any(event in ("close", "abort") for event in outcome.events):
        raise HarnessFailure(f"GOAWAY with error {goaway_error}, and the connection stayed open: {outcome.summary()}")


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "http1": check_http1,
    "websocket": check_websocket,
    "http2": check_http2,
}
