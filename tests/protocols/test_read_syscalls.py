"""What reading costs in system calls under asyncio's own loop, watched with strace.

asyncio's TCP transport reads with `sock.recv(256 KiB)`; a block that size is
above glibc's mmap threshold, so until Squall shrank the reads each one of
them also mapped, shrank and unmapped memory: three more system calls per
small WebSocket message.  uvloop reads into a buffer of its own and is not
concerned.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import support
from support import wait_until
from websockets.sync.client import connect

MESSAGES = 300

# The app makes a getppid(2) call, which nothing else in the server makes,
# just before it answers the first message and just after it has the last
# one: the trace between the two is the exchange itself, without the start.
ECHO_APP = """
import os

async def app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        count += 1
        if count == 1 or count == %d:
            os.getppid()
        if count == 1:
            with open("server.pid", "w") as file:  # for the test, to stop the server under strace
                file.write(str(os.getpid()))
        await send({"type": "websocket.send", "text": message["text"]})
""" % MESSAGES


@pytest.mark.parametrize("ws", ["websockets", "wsproto"])
def test_a_websocket_message_costs_one_read_and_no_memory_mapping(tmp_path: Path, ws: str) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (Debian package strace; `make test` installs it as root)")
    (tmp_path / "echo_app.py").write_text(ECHO_APP)
    trace = tmp_path / "trace"
    argv = ["echo_app:app", "--port", "0", "--loop", "asyncio", "--http", "h11", "--ws", ws, "--lifespan", "off"]
    # The server runs under strace (a tracer may always trace its own child;
    # attaching to another process can be refused).
    strace = ["strace", "-f", "-e", "trace=mmap,mremap,munmap,recvfrom,getppid", "-o", str(trace)]
    with support.LoggedProcess([*strace, *support.SQUALL, *argv], cwd=tmp_path) as squall:
        started = wait_until(lambda: support.STARTED_RE.search(squall.output) or _refused(squall), what="the start")
        if isinstance(started, str):
            pytest.skip(f"strace cannot trace a process here: {started}")
        port = int(started.group(1))
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as websocket:
            for number in range(MESSAGES):
                websocket.send(f"message {number}")
                assert websocket.recv(timeout=5) == f"message {number}"
        # To the server itself: strace, with its output in a file, blocks the fatal signals.
        os.kill(int((tmp_path / "server.pid").read_text()), signal.SIGINT)
        squall.wait(timeout=10)  # strace ends with the server
    calls = [re.match(r"(?:\d+ +)?(\w+)\(", line) for line in trace.read_text().splitlines()]
    names = [match.group(1) for match in calls if match]
    first, last = (index for index, name in enumerate(names) if name == "getppid")
    exchange = names[first:last]
    # Every message between the markers was read: the trace saw the exchange.
    assert exchange.count("recvfrom") >= MESSAGES - 1
    mappings = len(exchange) - exchange.count("recvfrom") - 1
    assert mappings < MESSAGES // 10, f"{mappings} mmap/mremap/munmap calls for {MESSAGES} messages"


def _refused(process: support.LoggedProcess) -> str | None:
    """strace's own complaint, when it could not start tracing (ptrace refused)."""
    if process.proc.poll() is not None and "strace:" in process.output:
        return process.output.strip().splitlines()[-1]
    return None
