"""WebSocket echo benchmark: Squall against Uvicorn on bench/app.py's /ws.

For each round, each `--ws` implementation and each server (interleaved:
squall, uvicorn, squall, ...):

1. start `python -m <server> app:app --app-dir bench --ws IMPL ...` on a free
   port of 127.0.0.1, pinned to one CPU (the load generator gets another);
2. run the load generator, this same script in `loadgen` mode, as its own
   process: it opens `--connections` WebSockets, warms the server up with an
   untimed batch of messages, then sends a fixed total of `--messages` small
   text messages, one at a time per connection, each sent as soon as the
   previous echo came back;
3. the load generator reads the server's user+sys CPU time from /proc just
   before the first measured message and just after the last echo (so the
   handshakes, the warm-up and the closing handshakes are not counted), and
   its RSS while the connections are still open;
4. the server is stopped.

    python bench/ws_bench.py --ws all --rounds 5 --messages 100000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import socket
import sys
import time
from dataclasses import asdict, dataclass
from statistics import median

from _harness import (
    HOST,
    Server,
    ServerError,
    cpu_seconds,
    pinning_cpus,
    rss_bytes,
    run_tool,
    add_server_arguments,
    print_table,
)
from http_bench import cpu_model

WS_IMPLS = ("websockets", "websockets-sansio", "wsproto")


@dataclass
class Result:
    ws: str
    server: str
    messages: int  # echoes received in the measured run
    seconds: float  # duration of the measured run
    messages_per_second: float
    cpu_us_per_message: float  # server user+sys CPU time / messages
    p50_ms: float  # round-trip time of one message, send to echo
    p99_ms: float
    rss_mib: float  # server RSS after the measured run, connections open
    server_cpu_percent: (
        float  # server CPU time / wall time: ~100 if it is the bottleneck
    )
    load_cpu_percent: float  # the same for the load generator: must stay well below 100


# --- load generator ------------------------------------------------------------
#
# A raw asyncio Protocol rather than a WebSocket library: every message is
# the same pre-built, pre-masked frame, and the echo is recognised by
# comparing bytes, so the generator spends a few µs per message and the
# server, not the client, is what limits the rate.

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA


class LoadError(RuntimeError):
    pass


def _frame_header(opcode: int, length: int, masked: bool) -> bytes:
    first = 0x80 | opcode  # FIN: every message is a single frame
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 1 << 16:
        return bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """A masked frame, as a client must send them (RFC 6455 5.3)."""
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return _frame_header(opcode, len(payload), True) + mask + masked


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked frame, as a server sends them."""
    return _frame_header(opcode, len(payload), False) + payload


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Remove the complete server frames at the start of `buffer`; return
    their (opcode, payload). Only used off the fast path (see data_received)."""
    frames = []
    while len(buffer) >= 2:
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        if buffer[1] & 0x80:
            raise LoadError("the server sent a masked frame")
        start = 2
        if length == 126:
            start, length = 4, int.from_bytes(buffer[2:4], "big")
        elif length == 127:
            start, length = 10, int.from_bytes(buffer[2:10], "big")
        if len(buffer) < start + length:
            break
        if not buffer[0] & 0x80:
            raise LoadError("the server fragmented an echo")
        frames.append((opcode, bytes(buffer[start : start + length])))
        del buffer[: start + length]
    return frames


class Run:
    """The shared state of all connections: how many messages are still to
    be sent in the current phase, and the round trips measured."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        frame: bytes,
        echo: bytes,
        pong_mask: bytes,
    ):
        self.loop = loop
        self.frame = frame  # what every connection sends
        self.echo = echo  # what it expects back, byte for byte
        self.pong_mask = pong_mask
        self.to_send = 0
        self.in_flight = 0
        self.done: asyncio.Future[None] | None = None
        self.round_trips: list[int] | None = None  # ns; None while warming up
        self.error: BaseException | None = (
            None  # the first failure, even between phases
        )

    def start_phase(
        self, messages: int, connections: list[EchoClient], record: bool
    ) -> asyncio.Future[None]:
        if self.error is not None:
            raise self.error
        self.to_send = messages
        self.done = self.loop.create_future()
        self.round_trips = [] if record else None
        if messages == 0:  # e.g. --warmup 0
            self.done.set_result(None)
        for connection in connections:
            if self.to_send == 0:
                break
            connection.send_next()
        return self.done

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class EchoClient(asyncio.Protocol):
    def __init__(self, run: Run, host_header: str):
        self.run = run
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET /ws HTTP/1.1\r\n"
            b"Host: " + host_header.encode() + b"\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"\r\n"
        )  # no Sec-WebSocket-Extensions: permessage-deflate stays off
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = run.loop.create_future()
        self.closed = run.loop.create_future()
        self.closing = False
        self.sent_at = 0

    # Handshake and close.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Small frames in a ping-pong: Nagle's algorithm must not hold them
        # back (asyncio and uvloop set this already; make sure of it).
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.request)

    def _handshake_response(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
        if not status.startswith("HTTP/1.1 101"):
            error = LoadError(f"handshake refused: {status}")
        elif headers.get("sec-websocket-accept") != accept:
            error = LoadError("wrong Sec-WebSocket-Accept in the handshake response")
        elif self.buffer:
            error = LoadError("the server sent data before any message")
        else:
            self.upgraded.set_result(None)
            return
        self.upgraded.set_exception(error)

    def close(self) -> asyncio.Future[None]:
        """Start the closing handshake (code 1000); the future resolves when
        the server's close frame has arrived (or the connection is lost)."""
        self.closing = True
        self.transport.write(
            client_frame(_OP_CLOSE, (1000).to_bytes(2, "big"), self.run.pong_mask)
        )
        return self.closed

    def connection_lost(self, exc: Exception | None) -> None:
        error = LoadError(f"connection lost: {exc or 'closed by the server'}")
        if not self.upgraded.done():
            self.upgraded.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.closing:
            self.run.fail(error)

    # Messages.

    def send_next(self) -> None:
        run = self.run
        run.to_send -= 1
        run.in_flight += 1
        self.sent_at = time.perf_counter_ns()
        self.transport.write(run.frame)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.buffer += data
            self._handshake_response()
            return
        run = self.run
        # Fast path: with one message in flight per connection, a read is
        # almost always exactly the echo.
        if not self.buffer and data == run.echo:
            self._echoed()
            return
        self.buffer += data
        try:
            frames = parse_frames(self.buffer)
            for opcode, payload in frames:
                if opcode == _OP_CLOSE:
                    if not self.closing:
                        raise LoadError(
                            f"the server closed the connection: {payload!r}"
                        )
                    self.closed.set_result(None)
                    self.transport.close()
                elif opcode == _OP_PING:  # the server's keepalive
                    self.transport.write(client_frame(_OP_PONG, payload, run.pong_mask))
                elif opcode == _OP_PONG:
                    pass
                elif server_frame(opcode, payload) == run.echo:
                    self._echoed()
                else:
                    raise LoadError(
                        f"unexpected frame: opcode {opcode}, {payload[:60]!r}"
                    )
        except LoadError as exc:
            run.fail(exc)
            self.transport.close()

    def _echoed(self) -> None:
        run = self.run
        if run.round_trips is not None:
            run.round_trips.append(time.perf_counter_ns() - self.sent_at)
        run.in_flight -= 1
        if run.to_send > 0:
            self.send_next()
        elif run.in_flight == 0 and not run.done.done():
            run.done.set_result(None)


async def load(options: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    mask = os.urandom(4)
    # The message: ASCII text of the requested size.
    payload = (b"squall echo benchmark " * (options.size // 22 + 1))[: options.size]
    # One masking key for every frame would be wrong against a proxy (RFC
    # 6455 10.3 wants unpredictable keys), but there is none here, and the
    # server unmasks the same number of bytes whatever the key.
    run = Run(
        loop,
        client_frame(_OP_TEXT, payload, mask),
        server_frame(_OP_TEXT, payload),
        mask,
    )
    host_header = f"{HOST}:{options.port}"

    async def open_one() -> EchoClient:
        _, client = await loop.create_connection(
            lambda: EchoClient(run, host_header), HOST, options.port
        )
        await client.upgraded
        return client

    clients = await asyncio.wait_for(
        asyncio.gather(*(open_one() for _ in range(options.connections))), options.stall
    )
    try:
        await asyncio.wait_for(
            run.start_phase(options.warmup, clients, record=False), options.stall
        )

        cpu_before, load_cpu_before = (
            cpu_seconds(options.server_pid),
            time.process_time(),
        )
        started = time.perf_counter()
        await asyncio.wait_for(
            run.start_phase(options.messages, clients, record=True), options.deadline
        )
        seconds = time.perf_counter() - started
        cpu_used = cpu_seconds(options.server_pid) - cpu_before
        load_cpu = time.process_time() - load_cpu_before
        rss = rss_bytes(options.server_pid)
    finally:
        # A clean closing handshake, so that neither server logs an abnormal
        # closure; bounded, since after a failure a server may not answer.
        closing = [
            client.close() for client in clients if not client.transport.is_closing()
        ]
        if closing:
            await asyncio.wait(closing, timeout=5)
        for client in clients:
            client.transport.close()

    round_trips = sorted(run.round_trips)
    count = len(round_trips)
    return {
        "messages": count,
        "seconds": seconds,
        "server_cpu_seconds": cpu_used,
        "load_cpu_seconds": load_cpu,
        "p50_ms": round_trips[count // 2] / 1e6,
        "p99_ms": round_trips[min(count - 1, count * 99 // 100)] / 1e6,
        "rss_bytes": rss,
    }


def loadgen_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ws_bench.py loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument(
        "--deadline", type=float, required=True, help="limit of the measured run"
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="limit of connecting and warming up"
    )
    options = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # the same code runs on asyncio's loop, only slower
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    try:
        report = loop.run_until_complete(load(options))
    except (LoadError, OSError, asyncio.TimeoutError) as exc:
        print(f"load generator: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    json.dump(report, sys.stdout)
    return 0


# --- one measurement -------------------------------------------------------------


def measure(ws: str, label: str, module: str, args: argparse.Namespace, cpus) -> Result:
    server_cpu, load_cpu = cpus if cpus else (None, None)
    command = [
        sys.executable, os.path.abspath(__file__), "loadgen",
        "--connections", str(args.connections),
        "--messages", str(args.messages),
        "--warmup", str(args.warmup),
        "--size", str(args.size),
        "--deadline", str(args.timeout),
    ]  # fmt: skip
    with Server(
        module, http=args.http, loop=args.loop, ws=ws, cpu=server_cpu
    ) as server:
        try:
            output = run_tool(
                [*command, "--port", str(server.port), "--server-pid", str(server.pid)],
                cpu=load_cpu,
                timeout=args.timeout + 60,  # the load generator's own limits come first
            ).stdout
            server.cpu_seconds()  # raises if the server died in the meantime
        except ServerError as exc:
            raise ServerError(
                f"{label} --ws {ws}: {exc}\n{label}'s output:\n{server.output()}"
            ) from None
    run = json.loads(output)
    messages, seconds = run["messages"], run["seconds"]
    return Result(
        ws=ws,
        server=label,
        messages=messages,
        seconds=seconds,
        messages_per_second=messages / seconds,
        cpu_us_per_message=run["server_cpu_seconds"] / messages * 1e6,
        p50_ms=run["p50_ms"],
        p99_ms=run["p99_ms"],
        rss_mib=run["rss_bytes"] / 2**20,
        server_cpu_percent=run["server_cpu_seconds"] / seconds * 100,
        load_cpu_percent=run["load_cpu_seconds"] / seconds * 100,
    )


# --- reporting -------------------------------------------------------------------

COLUMNS = [
    # (title, Result attribute, format)
    ("msg/s", "messages_per_second", "{:,.0f}"),
    ("CPU µs/msg", "cpu_us_per_message", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("RSS MiB", "rss_mib", "{:.1f}"),
    ("server CPU%", "server_cpu_percent", "{:.0f}"),
    ("load CPU%", "load_cpu_percent", "{:.0f}"),
]


def summarise(results: list[Result]) -> list[dict]:
    """Per (implementation, server), the median of every column over the rounds."""
    keys = list(dict.fromkeys((r.ws, r.server) for r in results))  # first-seen order
    summary = []
    for ws, server in keys:
        mine = [r for r in results if (r.ws, r.server) == (ws, server)]
        row = {"ws": ws, "server": server, "rounds": len(mine)}
        for _, key, _ in COLUMNS:
            row[key] = median(getattr(r, key) for r in mine)
        row["p50_ms"] = median(r.p50_ms for r in mine)
        summary.append(row)
    return summary


# --- main ----------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ws",
        choices=(*WS_IMPLS, "all"),
        default="all",
        help="--ws implementation of both servers; all: each in turn (default all)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (default 5)"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=100_000,
        help="echoed messages per measured run, over all connections (default 100000)",
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="concurrent WebSockets (default 50)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10_000,
        help="untimed warm-up messages before each measured run (default 10000)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=32,
        help="bytes of text in each message (default 32)",
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="limit for any one measured run, in seconds (default 300)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write all results to FILE")
    args = parser.parse_args(argv)
    if (
        min(args.rounds, args.messages, args.connections, args.size) < 1
        or args.warmup < 0
    ):
        parser.error("--rounds, --messages, --connections and --size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    impls = list(WS_IMPLS) if args.ws == "all" else [args.ws]
    modules = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not modules:
        sys.exit("--servers names no server")
    labels = [
        name
        if modules[:i].count(name) == 0
        else f"{name}#{modules[:i].count(name) + 1}"
        for i, name in enumerate(modules)
    ]
    cpus = pinning_cpus()

    pinning = (
        f"server on CPU {cpus[0]}, load on CPU {cpus[1]}" if cpus else "not pinned"
    )
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} CPUs, {pinning}")
    print(
        f"load: {args.messages:,} echoed messages of {args.size} bytes over "
        f"{args.connections} connections (after {args.warmup:,} untimed)"
    )
    print(f"servers: --http {args.http} --loop {args.loop} --ws {', '.join(impls)}")

    results: list[Result] = []
    started = time.monotonic()
    for number in range(1, args.rounds + 1):
        # Every implementation in every round, so that a slow spell of the
        # machine does not land on one implementation only.
        round_results = [
            measure(ws, label, module, args, cpus)
            for ws in impls
            for label, module in zip(labels, modules, strict=True)
        ]
        results += round_results
        print_table(
            f"Round {number}/{args.rounds}",
            [asdict(r) for r in round_results],
            ["ws", "server"],
            COLUMNS,
        )

    summary = summarise(results)
    print_table(
        f"Medians over {args.rounds} rounds", summary, ["ws", "server"], COLUMNS
    )

    ratios = {}
    if len(labels) >= 2:
        # The first server against the second: squall/uvicorn by default.
        name = f"{labels[0]}/{labels[1]}"
        print()
        for ws in impls:
            a, b = (
                next(
                    row for row in summary if row["ws"] == ws and row["server"] == label
                )
                for label in labels[:2]
            )
            ratios[ws] = {
                "name": name,
                "cpu_us_per_message": a["cpu_us_per_message"] / b["cpu_us_per_message"],
                "messages_per_second": a["messages_per_second"]
                / b["messages_per_second"],
            }
            print(
                f"--ws {ws}: {name} CPU µs/message x{ratios[ws]['cpu_us_per_message']:.2f} "
                f"(lower is better), msg/s x{ratios[ws]['messages_per_second']:.2f} (higher is better)"
            )
    print(f"\nfinished in {time.monotonic() - started:.0f} s")

    if args.json:
        report = {
            "settings": vars(args),
            "environment": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpu": cpu_model(),
                "cpu_count": os.cpu_count(),
                "pinned": {"server": cpus[0], "load_generator": cpus[1]}
                if cpus
                else None,
            },
            "results": [asdict(r) for r in results],
            "medians": summary,
            "ratios": ratios,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["loadgen"]:
        sys.exit(loadgen_main(sys.argv[2:]))
    try:
        sys.exit(main())
    except ServerError as exc:
        sys.exit(f"error: {exc}")
