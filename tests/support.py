"""Helpers for tests: real Squall servers, in this process or as a subprocess.

`running_server(app, **options)` starts `squall.Server` in a background thread
(signals are only handled in the main thread, so it is stopped with
`should_exit`), waits until it listens, and yields a `RunningServer` with its
port and URL.  `SquallProcess` runs the `squall` command itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from squall import Config, Server

START_TIMEOUT = 10.0
TESTS_DIR = Path(__file__).resolve().parent
T = TypeVar("T")


@dataclass
class RunningServer:
    server: Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw TCP connection to the server."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock


@contextlib.contextmanager
def running_server(app: Any, **options: Any) -> Iterator[RunningServer]:
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("lifespan", "off")
    options.setdefault("ws", "none")
    options.setdefault("log_config", None)
    config = Config(app, **options)
    server = Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="squall-test-server")
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if errors:
            raise errors[0]
        if not thread.is_alive():
            raise RuntimeError("The server stopped before it started listening.")
        if time.monotonic() > deadline:
            raise TimeoutError("The server did not start listening in time.")
        time.sleep(0.01)
    try:
        yield RunningServer(server, thread)
    finally:
        server.should_exit = True
        stop_timeout = START_TIMEOUT + (config.timeout_graceful_shutdown or 10)
        thread.join(stop_timeout)
        if errors:
            raise errors[0]
        if thread.is_alive():
            raise AssertionError(f"the server did not stop within {stop_timeout}s of should_exit")


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes the connection.

    A reset instead of an orderly close is an error: the server dropped the
    connection, or closed it with data of ours unread, and a response it
    sent may be lost with it.
    """
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError as exc:
            received = b"".join(chunks)
            raise AssertionError(f"the connection was reset after {len(received)} bytes: {received[:200]!r}") from exc
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until `marker` has been seen (or the connection closes)."""
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


SQUALL = [sys.executable, "-m", "squall"]
STARTED_RE = re.compile(r"Squall running on (?:https?://\S+:(\d+)|unix socket (\S+))")


class LoggedProcess:
    """A command in a subprocess, with its output (stdout and stderr) collected as it comes.

    Use as a context manager: on exit the process is killed if still
    running.  `wait_for_log` polls the collected output instead of sleeping.
    """

    # Default deadline of the waits, in seconds.
    timeout = START_TIMEOUT

    def __init__(
        self,
        argv: list[str],
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        new_session: bool = False,
    ) -> None:
        # `new_session`: the process leads a process group of its own, which
        # `interrupt_group` sends SIGINT to, as a terminal does on Ctrl+C.
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=pass_fds,
            start_new_session=new_session,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_for_matches(self, pattern: str, count: int = 1, timeout: float | None = None) -> list[re.Match[str]]:
        """Wait until `pattern` has matched `count` times in the output; return the matches."""
        regex = re.compile(pattern)
        timeout = self.timeout if timeout is None else timeout

        def matches() -> list[re.Match[str]]:
            found = list(regex.finditer(self.output))
            if len(found) < count and self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"the process exited while waiting for {pattern!r}:\n{self.output}")
            return found if len(found) >= count else []

        try:
            return wait_until(matches, timeout, repr(pattern), interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output}") from None

    def wait_for_log(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        return self.wait_for_matches(pattern, 1, timeout)[0]

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def interrupt_group(self) -> None:
        """Ctrl+C: SIGINT to every process of the group (start it with `new_session=True`)."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float | None = None) -> int:
        timeout = self.timeout if timeout is None else timeout
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def __enter__(self) -> LoggedProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


class SquallProcess(LoggedProcess):
    """The `squall` command (as `python -m squall`) in a subprocess.

    `tests/` is on its PYTHONPATH, as it is on pytest's: a test app may
    import the test helpers.
    """

    def __init__(
        self,
        *args: str,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        new_session: bool = False,
    ) -> None:
        paths = [str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {"PYTHONPATH": os.pathsep.join(paths), **(env or {})}
        super().__init__([*SQUALL, *args], cwd=cwd, env=env, pass_fds=pass_fds, new_session=new_session)

    def wait_started(self, timeout: float | None = None) -> int | None:
        """Wait for the startup line; return the TCP port it names."""
        match = self.wait_for_log(STARTED_RE.pattern, timeout)
        return int(match.group(1)) if match.group(1) else None

    def __enter__(self) -> SquallProcess:
        return self


def run_squall(*args: str, cwd: str | Path | None = None, timeout: float = 20.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `squall` to completion (for commands expected to exit by themselves)."""
    return subprocess.run(
        [*SQUALL, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str = "the condition", interval: float = 0.005) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_past_duplicate_window(first_signal_at: float) -> None:
    """Before a second Ctrl+C in a test: a SIGINT within server.DUPLICATE_SIGNAL_SECONDS
    of the first is taken for the same keypress delivered twice, not a second one."""
    from squall.server import DUPLICATE_SIGNAL_SECONDS

    wait_until(lambda: time.monotonic() - first_signal_at > DUPLICATE_SIGNAL_SECONDS + 0.1, 2.0, "a person's second keypress")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise TimeoutError(f"Nothing answered on {host}:{port}")


# Where the code that reads requests off the wire lives: an app must never
# run with one of these below it on the stack.
# The wire layers' modules.  Compiled modules (squall._compiled.COMPILED_MODULES,
# h1_reader.py among them) leave no frame on the stack: on the compiled path
# the check sees the Python parsers below them (h11, llhttp's callbacks, HTTP/2),
# on the pure-Python path (SQUALL_NO_EXTENSIONS=1, make test's second run) all.
_WIRE_LAYER_FILES = ("h1_reader.py", "h1_body.py", "httptools_impl.py", "h11_impl.py", "frames.py", "h2_wire.py")


def how_the_app_runs() -> dict[str, bool]:
    """Called by an app before it first waits: how the server started it.

    `task`: it runs in an asyncio Task (anyio and the like need one);
    `eager`: its task was started eagerly (asyncio's eager tasks, Python
    3.12+): the app runs from the callback that started it, not in a later
    loop turn;
    `under_parser`: a wire layer's frame is below it on the stack.
    """
    task = asyncio.current_task()
    eager = task in getattr(asyncio.tasks, "_eager_tasks", ())
    under_parser = False
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.basename(frame.f_code.co_filename)
        if filename in _WIRE_LAYER_FILES and "squall" in frame.f_code.co_filename:
            under_parser = True
        frame = frame.f_back
    return {"task": isinstance(task, asyncio.Task), "eager": eager, "under_parser": under_parser}


async def probe_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with `how_the_app_runs()`, seen before its first wait."""
    if scope["type"] == "lifespan":
        await lifespan_with_a_task_factory(receive, send)
        return
    seen: dict[str, Any] = how_the_app_runs()
    if scope["path"] == "/anyio":
        import anyio

        with anyio.CancelScope():
            seen["thread"] = await anyio.to_thread.run_sync(lambda: 7)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen["body"] = len(body)
    response = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(response))]})
    await send({"type": "http.response.body", "body": response})


# What the app's own task factory made tasks of: the coroutines' qualified names,
# read as each task is made (a compiled coroutine forgets its name once done).
factory_tasks: list[str] = []


async def lifespan_with_a_task_factory(receive: Any, send: Any) -> None:
    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        factory_tasks.append(coro.__qualname__)
        return task

    await receive()
    asyncio.get_running_loop().set_task_factory(factory)
    await send({"type": "lifespan.startup.complete"})
    await receive()
    asyncio.get_running_loop().set_task_factory(None)
    await send({"type": "lifespan.shutdown.complete"})
