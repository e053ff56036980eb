"""What reading costs in system calls under asyncio's own loop, watched with strace.

asyncio's TCP transport reads with `sock.recv(256 KiB)`; a block that size is
above glibc's mmap threshold, so until Squall shrank the reads each one of
them also mapped, shrank and unmapped memory: three more system calls per
small WebSocket message.  uvloop reads into a buffer of its own and is not
concerned.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import support
from websockets.sync.client import connect

MESSAGES = 300

ECHO_APP = """
async def app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"]})
"""


def _attach_strace(pid: int, output: Path) -> subprocess.Popen[str]:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (Debian package strace; `make test` installs it as root)")
    tracer = subprocess.Popen(
        ["strace", "-f", "-e", "trace=mmap,mremap,munmap,recvfrom", "-o", str(output), "-p", str(pid)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    line = tracer.stderr.readline()  # "strace: Process N attached", or why it could not
    if "attached" not in line:
        tracer.kill()
        tracer.wait()
        pytest.skip(f"strace cannot attach to a process here: {line.strip()}")
    return tracer


@pytest.mark.parametrize("ws", ["websockets", "wsproto"])
def test_a_websocket_message_costs_one_read_and_no_memory_mapping(tmp_path: Path, ws: str) -> None:
    (tmp_path / "echo_app.py").write_text(ECHO_APP)
    argv = ("echo_app:app", "--port", "0", "--loop", "asyncio", "--http", "h11", "--ws", ws, "--lifespan", "off")
    with support.SquallProcess(*argv, cwd=tmp_path) as squall:
        port = squall.wait_started()
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as websocket:
            tracer = _attach_strace(squall.proc.pid, tmp_path / "trace")
            try:
                for number in range(MESSAGES):
                    websocket.send(f"message {number}")
                    assert websocket.recv(timeout=5) == f"message {number}"
            finally:
                tracer.send_signal(signal.SIGINT)  # detaches, having written every call seen
                tracer.wait(timeout=10)
    calls = [re.match(r"(?:\d+ +)?(\w+)\(", line) for line in (tmp_path / "trace").read_text().splitlines()]
    names = [match.group(1) for match in calls if match]
    # Every message was read: the trace saw the whole exchange.
    assert names.count("recvfrom") >= MESSAGES
    mappings = len(names) - names.count("recvfrom")
    assert mappings < MESSAGES // 10, f"{mappings} mmap/mremap/munmap calls for {MESSAGES} messages"
