"""Hostile HTTP/2 clients, each against a `squall` subprocess (per loop and wire layer, as `h2_serve`).

Every attack runs in a thread, bounded in bytes, streams and time, while
this thread plays a well-behaved client: new connections asking /stats,
each of which must be answered within PROBE_LIMIT seconds, and which also
report the server's resident memory (the app reads its own VmRSS), so that
each test can assert that the attack cost the server a bounded amount.  The
attacks are sized so that a server buffering without a bound would blow far
past that bound.

What each attack must meet comes from RFC 9113 and the server's documented
limits (see squall/protocols/http2/connection.py): the stream limit as
REFUSED_STREAM, connection errors as GOAWAY with the RFC's code, reset
floods (Rapid Reset, MadeYouReset) closed with ENHANCE_YOUR_CALM and never
more than twice the stream limit of apps running, reading paused while the
client does not read, and --timeout-write for clients that never open their
window or never read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from h2_apps import H2_VARIANTS
from h2_client import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    FrameClient,
    H2Client,
    request_headers,
)
from hpack.hpack import encode_integer
from hyperframe.frame import ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame
from support import SquallProcess, wait_until

APPS_DIR = Path(__file__).resolve().parent
STREAM_LIMIT = 100  # the default --http2-max-concurrent-streams
WRITE_TIMEOUT = 1.0
# A well-behaved client's request, on a new connection, during an attack.
PROBE_LIMIT = 1.0
# What an attack may add to the server's resident memory.
MEMORY_LIMIT_KIB = 40 * 1024
# Bounds of every attack loop.
ATTACK_SECONDS = 10.0
ATTACK_BYTES = 64 * 1024 * 1024


@dataclass
class Target:
    process: SquallProcess
    port: int
    wire: str

    def stats(self, timeout: float = 5.0) -> dict[str, int]:
        with H2Client.connect(self.port, timeout=timeout) as client:
            return json.loads(client.get("/stats", timeout=timeout).body)

    def wait_idle(self) -> None:
        """Until no app runs (stubborn ones from an earlier attack may still sleep)."""
        wait_until(lambda: self.stats()["running"] == 0, timeout=10, what="the apps to finish", interval=0.1)


@pytest.fixture(scope="module", params=H2_VARIANTS, ids=["-".join(variant) for variant in H2_VARIANTS])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    loop, wire = request.param
    args = ["h2_apps:app", "--app-dir", str(APPS_DIR), "--port", "0", "--loop", loop, "--http2-impl", wire]
    args += ["--no-access-log", "--timeout-write", str(WRITE_TIMEOUT), "--timeout-keep-alive", "30"]
    with SquallProcess(*args) as process:
        yield Target(process, process.wait_started(), wire)
        assert "Traceback" not in process.output, process.output


@dataclass
class Outcome:
    """What the well-behaved client saw while an attack ran."""

    latencies: list[float] = field(default_factory=list)
    rss_before: int = 0
    rss_peak: int = 0
    stats_after: dict[str, int] = field(default_factory=dict)

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_before


def under_attack(target: Target, attack: Callable[[], Any], min_probes: int = 3) -> tuple[Any, Outcome]:
    """Run `attack` in a thread while probing; return its result and what the probes saw.

    Asserts that every probe was answered within PROBE_LIMIT and that the
    server's memory grew by less than MEMORY_LIMIT_KIB.
    """
    target.wait_idle()
    before = json.loads(_probe(target.port)[1])
    outcome = Outcome(rss_before=before["rss_kib"], rss_peak=before["rss_kib"])
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(attack())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="h2-attacker")
    thread.start()
    probes = 0
    while thread.is_alive() or probes < min_probes:
        latency, body = _probe(target.port)
        outcome.latencies.append(latency)
        outcome.rss_peak = max(outcome.rss_peak, json.loads(body)["rss_kib"])
        probes += 1
    thread.join(ATTACK_SECONDS)
    if errors:
        raise errors[0]
    outcome.stats_after = json.loads(_probe(target.port)[1])
    outcome.rss_peak = max(outcome.rss_peak, outcome.stats_after["rss_kib"])
    slow = [round(latency, 3) for latency in outcome.latencies if latency >= PROBE_LIMIT]
    assert not slow, f"well-behaved requests took {slow} s during the attack"
    assert outcome.rss_growth < MEMORY_LIMIT_KIB, f"the server grew by {outcome.rss_growth} KiB"
    return result[0], outcome


def _probe(port: int) -> tuple[float, bytes]:
    started = time.monotonic()
    try:
        with H2Client.connect(port, timeout=PROBE_LIMIT * 2) as client:
            response = client.get("/stats", timeout=PROBE_LIMIT * 2)
    except (OSError, AssertionError) as exc:
        raise AssertionError(f"a well-behaved client was not answered during the attack: {exc!r}") from None
    assert response.status == 200
    return time.monotonic() - started, response.body


class Deadline:
    def __init__(self, seconds: float = ATTACK_SECONDS) -> None:
        self.end = time.monotonic() + seconds

    def __bool__(self) -> bool:
        return time.monotonic() < self.end


def closed_by_server(client: FrameClient, timeout: float = 5.0) -> None:
    """Read until the server closes the connection (a reset counts)."""
    client.wait_closed(timeout)


# -- the stream limit --------------------------------------------------------------------------


def test_stream_beyond_the_limit_is_refused(target: Target) -> None:
    def attack() -> dict[int, Any]:
        with FrameClient.connect(target.port) as client:
            # All in one write: the limit counts streams open at once.
            client.send(*[client.headers(2 * i + 1, request_headers("GET", "/sleep?0.5")) for i in range(STREAM_LIMIT + 1)])
            refused = client.response(2 * STREAM_LIMIT + 1)
            results = {2 * i + 1: client.response(2 * i + 1) for i in range(STREAM_LIMIT)}
            client.request(2 * STREAM_LIMIT + 3, "/")
            results[0] = client.response(2 * STREAM_LIMIT + 3)
            return {"refused": refused, **results}

    results, outcome = under_attack(target, attack)
    assert results["refused"].reset == REFUSED_STREAM
    answered = [stream_id for stream_id, result in results.items() if stream_id and result.ended and result.status == 200]
    assert len(answered) == STREAM_LIMIT
    assert results[0].body == b"ok"  # and the connection goes on once they are done


# -- header blocks ---------------------------------------------------------------------------------


def literal_with_indexing(name: bytes, value: bytes) -> bytes:
    """An HPACK literal field that enters the dynamic table (RFC 7541 6.2.1), new name, no Huffman."""
    return b"\x40" + bytes(encode_integer(len(name), 7)) + name + bytes(encode_integer(len(value), 7)) + value


def test_hpack_bomb(target: Target) -> None:
    """One 4 KB entry in the dynamic table, referenced 4000 times per request: 16 MB of headers from 8 KB."""

    def attack() -> list[int]:
        codes = []
        deadline = Deadline()
        for _ in range(20):
            if not deadline:
                break
            with FrameClient.connect(target.port) as client:
                block = client.block(request_headers("GET", "/")) + literal_with_indexing(b"x-bomb", b"b" * 4000)
                block += b"\xbe" * 4000  # indexed field 62: the newest dynamic entry
                client.send(HeadersFrame(1, data=block, flags=["END_STREAM", "END_HEADERS"]))
                goaway = client.wait_goaway()
                codes.append(goaway.error_code)
                closed_by_server(client)
        return codes

    calls = target.stats()["calls"]
    codes, outcome = under_attack(target, attack)
    assert codes and set(codes) <= {ENHANCE_YOUR_CALM, PROTOCOL_ERROR, 0x9}, codes  # 0x9: COMPRESSION_ERROR
    assert outcome.stats_after["calls"] == calls  # the app never saw one


def test_header_list_over_the_limit(target: Target) -> None:
    """Plain fields, 100 KB of them (the limit is 64 KB), in a HEADERS and CONTINUATION frames."""
    with FrameClient.connect(target.port) as client:
        block = client.block(request_headers("GET", "/", extra=[(f"x-field-{i}", "v" * 1000) for i in range(100)]))
        frames = [HeadersFrame(1, data=block[:16000], flags=["END_STREAM"])]
        frames += [ContinuationFrame(1, data=block[i : i + 16000]) for i in range(16000, len(block), 16000)]
        frames[-1].flags.add("END_HEADERS")
        calls = target.stats()["calls"]
        client.send(*frames)
        result = client.wait(lambda: client.rst_codes().get(1) or next((f for f in client.frames if isinstance(f, GoAwayFrame)), None), what="an error")
        if isinstance(result, GoAwayFrame):
            assert result.error_code in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR), result
        else:
            assert result in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR, REFUSED_STREAM), result
    assert target.stats()["calls"] == calls


@pytest.mark.parametrize("size", [16384, 0], ids=["full", "empty"])
def test_continuation_flood(target: Target, size: int) -> None:
    """A HEADERS frame without END_HEADERS, then CONTINUATION frames without end."""

    def attack() -> tuple[int, int]:
        with FrameClient.connect(target.port) as client:
            client.send(client.headers(1, request_headers("GET", "/"), end_headers=False))
            filler = literal_with_indexing(b"x-c", b"c" * 100) * (size // 106)
            frame = ContinuationFrame(1, data=filler).serialize()
            sent = 0
            deadline = Deadline()
            client.sock.settimeout(2)
            while deadline and sent < ATTACK_BYTES and client.try_send(frame * 16):
                sent += len(frame) * 16
            code = client.goaway_or_reset()
            closed_by_server(client)
            return code, sent

    calls = target.stats()["calls"]
    (code, sent), outcome = under_attack(target, attack)
    assert code in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM, None), code
    assert sent < ATTACK_BYTES
    assert outcome.stats_after["calls"] == calls


# -- frame size -------------------------------------------------------------------------------------


def test_frame_over_max_frame_size(target: Target) -> None:
    def attack() -> list[int]:
        codes = []
        with FrameClient.connect(target.port) as client:
            client.request(1, "/size", method="POST", end_stream=False)
            client.send(DataFrame(1, data=b"d" * 16385))
            codes.append(client.wait_goaway().error_code)
            closed_by_server(client)
        with FrameClient.connect(target.port) as client:
            # A HEADERS frame announcing 16 MB and 64 KB of it: refused from its 9-byte header, not buffered.
            client.send(b"\xff\xff\xff\x01\x05\x00\x00\x00\x01" + bytes(65536))
            codes.append(client.wait_goaway().error_code)
            closed_by_server(client)
        return codes

    codes, _ = under_attack(target, attack)
    assert codes == [FRAME_SIZE_ERROR, FRAME_SIZE_ERROR]


# -- reset floods -----------------------------------------------------------------------------------


def reset_flood(target: Target, make_frames: Callable[[FrameClient, int], list[Any]], streams: int = 20000) -> tuple[int | None, int]:
    """Open streams in batches with `make_frames(client, stream_id)` until the server says GOAWAY; (its code, streams opened)."""
    with FrameClient.connect(target.port) as client:
        client.sock.settimeout(2)
        opened = 0
        deadline = Deadline()
        stream_id = 1
        while opened < streams and deadline:
            batch = []
            for _ in range(50):
                batch.extend(make_frames(client, stream_id))
                stream_id += 2
            if not client.try_send(*batch):
                break
            opened += 50
            client.pump(0)
            if any(isinstance(frame, GoAwayFrame) for frame in client.frames):
                break
        code = client.goaway_or_reset()
        closed_by_server(client)
        return code, opened


def test_rapid_reset(target: Target) -> None:
    """CVE-2023-44487: open a stream and cancel it at once, again and again."""

    def frames(client: FrameClient, stream_id: int) -> list[Any]:
        return [client.headers(stream_id, request_headers("GET", "/stubborn?0.8")), RstStreamFrame(stream_id, error_code=CANCEL)]

    target.stats()  # (a connection, so that /stats/reset below is not the first of anything)
    with H2Client.connect(target.port) as client:
        client.get("/stats/reset")
    (code, opened), outcome = under_attack(target, lambda: reset_flood(target, frames))
    assert code == ENHANCE_YOUR_CALM
    assert opened < 20000
    assert outcome.stats_after["peak"] <= 2 * STREAM_LIMIT, outcome.stats_after


def _zero_window_update(stream_id: int) -> bytes:
    """WINDOW_UPDATE with an increment of 0, which hyperframe refuses to build."""
    return b"\x00\x00\x04\x08\x00" + stream_id.to_bytes(4, "big") + bytes(4)


MADE_YOU_RESET = {
    # DATA on a stream the client already ended: the server must reset it (STREAM_CLOSED).
    "data after END_STREAM": lambda client, stream_id: [
        client.headers(stream_id, request_headers("GET", "/stubborn?0.8")),
        DataFrame(stream_id, data=b"x", flags=["END_STREAM"]),
    ],
    # WINDOW_UPDATE of 0 on an open stream: PROTOCOL_ERROR on the stream (the h2 wire makes it a
    # connection error, which ends the flood at once).
    "WINDOW_UPDATE of 0": lambda client, stream_id: [
        client.headers(stream_id, request_headers("POST", "/stubborn?0.8"), end_stream=False),
        _zero_window_update(stream_id),
    ],
    # A malformed request (an uppercase field name): PROTOCOL_ERROR on the stream, or the connection.
    "malformed request": lambda client, stream_id: [
        client.headers(stream_id, request_headers("GET", "/stubborn?0.8", extra=[("X-Upper", "1")])),
    ],
    # A WINDOW_UPDATE that takes the stream's send window past 2^31-1: FLOW_CONTROL_ERROR on the stream.
    "window overflow": lambda client, stream_id: [
        client.headers(stream_id, request_headers("GET", "/stubborn?0.8")),
        WindowUpdateFrame(stream_id, window_increment=2**31 - 1),
    ],
}


# What the h2 library makes a connection error rather than a stream error (RFC 9113 5.4 allows it).
H2_CONNECTION_ERRORS = {"WINDOW_UPDATE of 0": PROTOCOL_ERROR, "malformed request": PROTOCOL_ERROR}


@pytest.mark.parametrize("variant", list(MADE_YOU_RESET))
def test_made_you_reset(target: Target, variant: str) -> None:
    """CVE-2025-8671: make the server reset streams, again and again."""
    with H2Client.connect(target.port) as client:
        client.get("/stats/reset")
    (code, opened), outcome = under_attack(target, lambda: reset_flood(target, MADE_YOU_RESET[variant]))
    if target.wire == "h2" and variant in H2_CONNECTION_ERRORS:
        # The h2 wire makes this a connection error, which ends the flood at once.
        assert code == H2_CONNECTION_ERRORS[variant]
    else:
        assert code == ENHANCE_YOUR_CALM
    assert opened < 20000
    assert outcome.stats_after["peak"] <= 2 * STREAM_LIMIT, outcome.stats_after


# -- clients that do not read ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["PING", "SETTINGS"])
def test_control_frame_flood(target: Target, kind: str) -> None:
    """Frames that each want an answer, as fast as the client can send them, never reading the answers.

    Parsing them costs the server CPU: the others must still get their turn.
    (That the server stops reading once its answers back up, and then closes
    the connection, is tested in-process in test_h2_frames.py, where its
    socket buffers can be made small enough to back up quickly.)
    """
    one = PingFrame(0, opaque_data=b"12345678") if kind == "PING" else SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535})
    batch = one.serialize() * 1000

    def attack() -> int:
        sent = 0
        with FrameClient.connect(target.port, ack_settings=False) as client:
            deadline = Deadline(1.0)
            while sent < ATTACK_BYTES and deadline:
                sent += client.flood(batch, 0.2)
        return sent

    sent, _ = under_attack(target, attack)
    assert sent > 0


def closed_after_not_reading(sock: socket.socket, seconds: float) -> int:
    """Read nothing for `seconds`, then read what was buffered: the server must have closed the connection; the bytes read.

    (A server that closes a connection whose client does not read leaves the
    kernel to deliver what it had written, then the end: the client can only
    tell by reading.)
    """
    time.sleep(seconds)  # the server's timeout must pass with nothing read
    sock.settimeout(5)
    received = 0
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
            assert received < ATTACK_BYTES, "the server went on writing once the client read again"
    return received


def test_client_that_never_opens_its_window(target: Target) -> None:
    def attack() -> dict[int, int]:
        with FrameClient.connect(target.port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0}) as client:
            ids = [2 * i + 1 for i in range(50)]
            client.send(*[client.headers(stream_id, request_headers("GET", "/big?10000000")) for stream_id in ids])
            started = time.monotonic()
            client.wait(lambda: all(stream_id in client.rst_codes() for stream_id in ids), timeout=WRITE_TIMEOUT + 5, what="the resets")
            assert time.monotonic() - started >= WRITE_TIMEOUT * 0.9
            return client.rst_codes()

    codes, _ = under_attack(target, attack)
    assert set(codes.values()) == {CANCEL}


def test_client_that_never_reads(target: Target) -> None:
    """Twenty 20 MB responses to a client that opened its windows wide and stopped reading."""

    def attack() -> int:
        with FrameClient.connect(target.port) as client:
            client.send(*[client.headers(2 * i + 1, request_headers("GET", "/big?20000000")) for i in range(20)])
            return closed_after_not_reading(client.sock, WRITE_TIMEOUT + 1.5)

    received, _ = under_attack(target, attack)
    assert received < 20 * 20_000_000
