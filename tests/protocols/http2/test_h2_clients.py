"""Real HTTP/2 clients against the server: curl (prior knowledge, h2c upgrade,
ALPN over https), nghttp, h2load and httpx.

A test whose tool is missing skips and says so (`make test-tools` installs
Debian's curl-compatible nghttp2-client; curl comes with the system).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from h2_apps import app
from h2_client import client_ssl

TOOL_TIMEOUT = 30


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make test-tools installs it)")
    return path


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, f"{argv} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def curl(*args: str) -> tuple[str, dict[str, Any] | str]:
    """curl's HTTP version and the body (JSON-decoded when it is)."""
    result = run(tool("curl"), "--silent", "--show-error", "--noproxy", "*", "--max-time", "10", "--write-out", "\n%{http_version}", *args)
    body, _, version = result.stdout.rpartition("\n")
    try:
        return version, json.loads(body)
    except ValueError:
        return version, body


def test_curl_prior_knowledge(h2_serve: Any, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * 1_000_000)
    with h2_serve(app) as server:
        version, scope = curl("--http2-prior-knowledge", "-H", "Cookie: a=1", "-H", "Cookie: b=2", f"{server.url}/scope?q=1")
        assert version == "2"
        assert isinstance(scope, dict) and scope["http_version"] == "2" and scope["query_string"] == "q=1"
        assert ["cookie", "a=1; b=2"] in scope["headers"]
        version, size = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}", f"{server.url}/size")
        assert (version, size) == ("2", 1_000_000)


def test_curl_upgrade(h2_serve: Any) -> None:
    with h2_serve(app) as server:
        version, scope = curl("--http2", f"{server.url}/scope")
    assert version == "2"
    assert isinstance(scope, dict) and scope["http_version"] == "2"


@pytest.mark.parametrize(("flag", "expected"), [("--http2", "2"), ("--http1.1", "1.1")])
def test_curl_https_alpn(h2_serve: Any, tls_files: dict[str, str], flag: str, expected: str) -> None:
    with h2_serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        version, scope = curl(flag, "--cacert", tls_files["ca"], f"https://127.0.0.1:{server.port}/scope")
    assert version == expected
    assert isinstance(scope, dict) and (scope["http_version"], scope["scheme"]) == (expected, "https")


def test_nghttp_concurrent_requests(h2_serve: Any, tmp_path: Path) -> None:
    nghttp = tool("nghttp")
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"n" * 300_000)
    with h2_serve(app) as server:
        urls = [f"{server.url}/big?{100_000 * (i + 1)}" for i in range(5)]
        # -n: discard the bodies, -s: the statistics, which list one line per stream.
        result = run(nghttp, "-n", "-s", *urls)
        assert len(re.findall(r"^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+200\s+\S+\s+/big\?", result.stdout, re.MULTILINE)) == 5, result.stdout
        result = run(nghttp, "-d", str(upload), f"{server.url}/size")
        assert result.stdout.strip() == "300000"
        # -u: h2c upgrade.
        result = run(nghttp, "-u", "-v", f"{server.url}/scope")
        assert "HTTP Upgrade response" in result.stdout and ":status: 200" in result.stdout


def test_h2load(h2_serve: Any, tls_files: dict[str, str]) -> None:
    h2load = tool("h2load")
    with h2_serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as tls_server, h2_serve(app) as server:
        for url in (f"{server.url}/", f"https://127.0.0.1:{tls_server.port}/"):
            result = run(h2load, "-n", "400", "-c", "4", "-m", "20", url)
            assert "requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
            assert "Application protocol: h2" in result.stdout, result.stdout


def test_httpx(h2_serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    pytest.importorskip("h2", reason="httpx speaks HTTP/2 only with the h2 package")
    with h2_serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as tls_server, h2_serve(app) as server:
        with httpx.Client(http2=True, verify=client_ssl(ca, None), trust_env=False) as client:
            response = client.get(f"https://127.0.0.1:{tls_server.port}/scope")
            assert response.http_version == "HTTP/2"
            assert response.json()["http_version"] == "2"
            posted = client.post(f"https://127.0.0.1:{tls_server.port}/echo", content=b"e" * 200_000)
            assert posted.content == b"e" * 200_000
        # Cleartext: prior knowledge.
        with httpx.Client(http1=False, http2=True, trust_env=False) as client:
            response = client.get(f"{server.url}/scope")
            assert response.http_version == "HTTP/2"
            assert response.json()["http_version"] == "2"
