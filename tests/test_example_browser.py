"""The bundled example app in a real browser: Debian's Chromium, headless.

The `squall` command serves examples/app.py; Chromium opens its page, a
message is typed into the input and sent with the button, and the test waits
for the server's echo to appear in the page's list.  This covers what the
protocol tests cannot: a browser's own handshake (its headers, its
permessage-deflate offer, its masking) against every `--ws` implementation
on both HTTP implementations, over http:// and over https://, where the
browser loads the page over HTTP/2 (ALPN h2: the navigation's
`nextHopProtocol`) and opens the WebSocket with wss.  The https certificate
is a trustme one; Chromium accepts it by its public key's hash
(`--ignore-certificate-errors-spki-list`), and nothing else.

Chromium is driven over the Chrome DevTools Protocol (CDP) with the
`websockets` client, so no Playwright, Selenium or Node is needed.  One
browser serves every case of the module; each case gets a fresh tab and a
fresh server.  Without Chromium the tests skip (`make test-tools` installs
Debian's package).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import inspect
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support import SquallProcess
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

WS_IMPLS = ["websockets", "websockets-sansio", "wsproto"]
HTTP_IMPLS = ["h11", "httptools"]

# Generous next to the second or so a case takes, for a loaded CI machine.
BROWSER_START_TIMEOUT = 20.0
CDP_TIMEOUT = 10.0
ECHO_TIMEOUT = 10.0

CHROMIUM_FLAGS = [
    "--headless",
    # Containers usually run as root, where the sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    # /dev/shm is often tiny in containers; shared memory then goes to /tmp.
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    # Nothing but the page under test should open connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Chromium on Linux honours http_proxy & co.; the server is local.
    "--no-proxy-server",
    # Port 0: Chromium picks a free one and writes it to DevToolsActivePort.
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
]


# websockets 15+ honours the proxy variables too; older releases had no proxy
# support, nor this argument.
NO_PROXY: dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    """A headless Chromium and one CDP connection to it.

    Commands for a tab are sent on the browser's own connection with the
    tab's `sessionId` ("flattened" sessions), so one socket serves every tab.
    """

    def __init__(self, binary: str, flags: list[str] = []) -> None:  # noqa: B006 (never mutated)
        # The profile (a fresh one: no state from earlier runs) and the log
        # of what Chromium prints, removed together at the end.
        self.workdir = Path(tempfile.mkdtemp(prefix="squall-chromium-"))
        self.profile = self.workdir / "profile"
        self._log = (self.workdir / "chromium.log").open("w+b")
        # A session of its own, so that the renderer, GPU and utility
        # processes can all be killed with the browser's process group.
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        self.connection: ClientConnection | None = None
        # websockets wants its connection used as a context manager (newer
        # releases warn otherwise); it lives as long as the browser does.
        self._stack = contextlib.ExitStack()
        try:
            self.connection = self._stack.enter_context(
                connect(
                    self._devtools_url(),
                    max_size=None,  # CDP replies can be large
                    open_timeout=CDP_TIMEOUT,
                    close_timeout=2,
                    **NO_PROXY,
                )
            )
        except BaseException:
            self.close()
            raise

    def _devtools_url(self) -> str:
        """Chromium writes its port and the browser target's path to
        DevToolsActivePort in the profile once it listens; poll for it
        (reading the file is simpler than draining Chromium's stderr)."""
        active_port = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + BROWSER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(FileNotFoundError):
                lines = active_port.read_text().splitlines()
                if len(lines) >= 2 and lines[0].isdigit():  # not a half-written file
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise TimeoutError(f"Chromium did not open its DevTools port in time:\n{self.output()}")

    def output(self, limit: int = 4000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a CDP command and return its result; events in between
        (none are enabled, but attaching to a tab sends some) are skipped."""
        assert self.connection is not None
        message_id = next(self._ids)
        command: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        self.connection.send(json.dumps(command))
        deadline = time.monotonic() + CDP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no CDP reply to {method} within {CDP_TIMEOUT:g} s")
            reply = json.loads(self.connection.recv(timeout=remaining))
            if reply.get("id") != message_id:
                continue
            if "error" in reply:
                raise CDPError(f"{method}: {reply['error']}")
            return reply["result"]

    @contextlib.contextmanager
    def tab(self) -> Iterator[Tab]:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        try:
            session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            yield Tab(self, session)
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        """Ask Chromium to quit, then kill whatever is left of its process
        group: a crashed or hung browser must not outlive the tests."""
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.call("Browser.close")
        with contextlib.suppress(Exception):
            self._stack.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        # Even after a clean exit, a child may linger for a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], timeout: float = ECHO_TIMEOUT) -> Any:
        """Evaluate `expression` until `done(value)`; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression!r} still gives {value!r} after {timeout:g} s")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A trustme certificate for 127.0.0.1 and its key, as files, and its public key's hash for Chromium."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("browser-tls")
    paths = {"cert": str(directory / "cert.pem"), "key": str(directory / "key.pem")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    public_key = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_key()
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    paths["spki"] = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return paths


@pytest.fixture(scope="module")
def browser(tls_files: dict[str, str]) -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (make test-tools installs Debian's chromium package)")
    instance = Browser(binary, [f"--ignore-certificate-errors-spki-list={tls_files['spki']}"])
    try:
        yield instance
    finally:
        instance.close()


STATUS = "document.getElementById('status').textContent"
MESSAGES = "Array.from(document.querySelectorAll('#messages li'), (item) => item.textContent)"


# How the browser reaches the page over each scheme (ALPN offers h2 over TLS).
PAGE_PROTOCOL = {"http": "http/1.1", "https": "h2"}
NEXT_HOP = "performance.getEntriesByType('navigation')[0].nextHopProtocol"


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("http", HTTP_IMPLS)
@pytest.mark.parametrize("ws", WS_IMPLS)
def test_typed_message_is_echoed_in_the_page(browser: Browser, tls_files: dict[str, str], ws: str, http: str, scheme: str) -> None:
    # Non-ASCII, so that the text frames' UTF-8 goes both ways.
    message = f"Hello from Chromium over --ws {ws} --http {http} ({scheme}) ✓ — ünïcødé"
    args = ["app:app", "--app-dir", str(EXAMPLES), "--host", "127.0.0.1", "--port", "0"]
    if scheme == "https":
        # Debug logging tells whether the WebSocket went over HTTP/2 (RFC 8441).
        args += ["--ssl-certfile", tls_files["cert"], "--ssl-keyfile", tls_files["key"], "--log-level", "debug"]
    with SquallProcess(*args, "--ws", ws, "--http", http, cwd=ROOT) as server:
        port = server.wait_started()
        with browser.tab() as tab:
            tab.navigate(f"{scheme}://127.0.0.1:{port}/")
            # Waiting for "open" makes the send below take the page's normal
            # path rather than its queue for messages typed while connecting.
            tab.wait_for(f"document.getElementById('status') && {STATUS}", lambda status: status == "open")
            assert tab.evaluate(NEXT_HOP) == PAGE_PROTOCOL[scheme]

            tab.evaluate("document.getElementById('message').focus()")
            tab.call("Input.insertText", {"text": message})  # typed, with the input events
            assert tab.evaluate("document.getElementById('message').value") == message
            tab.evaluate("document.getElementById('send').click()")

            items = tab.wait_for(MESSAGES, lambda items: len(items) > 0)
            assert items == [message]
            assert tab.evaluate("document.getElementById('message').value") == ""
            assert tab.evaluate(STATUS) == "open"

        # Closing the tab closed the WebSocket; the server must stop cleanly
        # and must not have logged an error for any of it.
        server.signal(signal.SIGINT)
        assert server.wait() == 0, server.output
    assert "Traceback" not in server.output, server.output
    assert "ERROR" not in server.output, server.output
    # Over https the page is HTTP/2, and Chromium opens its WebSocket on that connection.
    assert ("WebSocket over HTTP/2 on stream" in server.output) is (scheme == "https"), server.output
