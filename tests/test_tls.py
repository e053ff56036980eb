"""TLS end to end: HTTPS, mutual TLS, the ASGI `tls` extension, and startup errors.

Certificates come from trustme.  Every test talks to a real server over a
real socket; the startup-error tests run the `squall` command.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support import run_squall

# IANA numbers of the TLS 1.3 suites, independent of how the server maps them.
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302, "TLS_CHACHA20_POLY1305_SHA256": 0x1303}


class ScopeApp:
    """Answers with the scope's scheme, client and `tls` extension as JSON."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(_describe(scope))})
            await send({"type": "websocket.close"})
            return
        self.calls += 1
        body = json.dumps(_describe(scope)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _describe(scope: dict[str, Any]) -> dict[str, Any]:
    return {"scheme": scope["scheme"], "client": scope["client"], "tls": scope["extensions"].get("tls")}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, server_cert: trustme.LeafCert, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    paths = {name: str(directory / f"{name}.pem") for name in ("cert", "key", "ca")}
    server_cert.cert_chain_pems[0].write_to_path(paths["cert"])
    server_cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    return paths


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


def raw_https_get(port: int, ctx: ssl.SSLContext) -> tuple[dict[str, Any], str]:
    """GET / over a plain ssl socket: the JSON body, and the cipher the client negotiated."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            cipher = sock.cipher()
    assert cipher is not None
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return json.loads(body), cipher[0]


def pem_of(cert: trustme.LeafCert) -> str:
    """The certificate as the stdlib renders PEM, which is what the extension holds."""
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode()))


def test_https_scope_and_tls_extension(serve: Any, ca: trustme.CA, server_cert: trustme.LeafCert, tls_files: dict[str, str]) -> None:
    with serve(ScopeApp(), ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        with httpx.Client(verify=client_context(ca)) as client:
            response = client.get(f"https://127.0.0.1:{server.port}/")
        assert response.status_code == 200
        assert response.json()["scheme"] == "https"

        body, cipher = raw_https_get(server.port, client_context(ca))
    tls = body["tls"]
    assert tls["server_cert"] == pem_of(server_cert)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == TLS13_SUITES[cipher]


def test_tls12_version_and_cipher_suite_numbers(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    ctx = client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with serve(ScopeApp(), ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        body, _ = raw_https_get(server.port, ctx)
    assert body["tls"]["tls_version"] == 0x0303
    assert body["tls"]["cipher_suite"] == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def test_mutual_tls_accepted(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    client_cert = ca.issue_cert(
        "client.example.org", common_name="Jane Doe, \"ops\"", organization_name="Example+Co", organization_unit_name="#infra"
    )
    options = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": tls_files["ca"]}
    with serve(ScopeApp(), ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"], **options) as server:
        with httpx.Client(verify=client_context(ca, client_cert)) as client:
            response = client.get(f"https://127.0.0.1:{server.port}/")
    assert response.status_code == 200
    tls = response.json()["tls"]
    assert tls["client_cert_chain"][0] == pem_of(client_cert)
    assert all(pem.startswith("-----BEGIN CERTIFICATE-----") for pem in tls["client_cert_chain"])
    subject = x509.load_pem_x509_certificate(client_cert.cert_chain_pems[0].bytes()).subject
    assert tls["client_cert_name"] == subject.rfc4514_string()
    # Most specific first, with RFC 4514 escapes.
    assert tls["client_cert_name"].startswith('CN=Jane Doe\\, \\"ops\\",OU=\\#infra,O=Example\\+Co')
    assert tls["client_cert_error"] is None


@pytest.mark.parametrize("who", ["no certificate", "unknown CA"])
def test_mutual_tls_refused(serve: Any, ca: trustme.CA, tls_files: dict[str, str], who: str) -> None:
    app = ScopeApp()
    stranger = trustme.CA().issue_cert("client.example.org")
    ctx = client_context(ca, stranger if who == "unknown CA" else None)
    options = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": tls_files["ca"]}
    with serve(app, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"], **options) as server:
        with httpx.Client(verify=ctx) as client, pytest.raises(httpx.TransportError):
            client.get(f"https://127.0.0.1:{server.port}/")
        # The server is still serving clients that do present a good certificate.
        with httpx.Client(verify=client_context(ca, ca.issue_cert("client.example.org"))) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200
    assert app.calls == 1


def test_optional_client_certificate(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    client_cert = ca.issue_cert("client.example.org")
    options = {"ssl_cert_reqs": ssl.CERT_OPTIONAL, "ssl_ca_certs": tls_files["ca"]}
    with serve(ScopeApp(), ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"], **options) as server:
        url = f"https://127.0.0.1:{server.port}/"
        with httpx.Client(verify=client_context(ca)) as client:
            anonymous = client.get(url).json()["tls"]
        with httpx.Client(verify=client_context(ca, client_cert)) as client:
            identified = client.get(url).json()["tls"]
    assert anonymous["client_cert_chain"] == [] and anonymous["client_cert_name"] is None
    assert identified["client_cert_chain"][0] == pem_of(client_cert)
    assert identified["client_cert_name"] is not None


def test_encrypted_key_with_password(
    serve: Any, ca: trustme.CA, server_cert: trustme.LeafCert, tls_files: dict[str, str], tmp_path: Path
) -> None:
    keyfile = tmp_path / "encrypted.pem"
    keyfile.write_bytes(_encrypted_key(server_cert, b"s3cret"))
    with serve(ScopeApp(), ssl_certfile=tls_files["cert"], ssl_keyfile=str(keyfile), ssl_keyfile_password="s3cret") as server:
        with httpx.Client(verify=client_context(ca)) as client:
            assert client.get(f"https://127.0.0.1:{server.port}/").json()["scheme"] == "https"


def test_wss_scheme_and_tls_extension(serve: Any, ca: trustme.CA, tls_files: dict[str, str]) -> None:
    from websockets.sync.client import connect

    with serve(ScopeApp(), ws="websockets", ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context(ca), open_timeout=5) as websocket:
            body = json.loads(websocket.recv(timeout=5))
    assert body["scheme"] == "wss"
    assert body["tls"]["tls_version"] == 0x0304


def _encrypted_key(cert: trustme.LeafCert, password: bytes) -> bytes:
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password)
    )


# --- startup errors, through the command line ----------------------------------------


@pytest.fixture(scope="module")
def bad_files(ca: trustme.CA, server_cert: trustme.LeafCert, tls_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("bad-tls")
    files = dict(tls_files)
    files["missing"] = str(directory / "missing.pem")
    files["directory"] = str(directory)
    files["garbage"] = str(directory / "garbage.pem")
    Path(files["garbage"]).write_text("not a certificate\n")
    files["other_key"] = str(directory / "other-key.pem")
    ca.issue_cert("other.example.org").private_key_pem.write_to_path(files["other_key"])
    files["encrypted_key"] = str(directory / "encrypted.pem")
    Path(files["encrypted_key"]).write_bytes(_encrypted_key(server_cert, b"s3cret"))
    files["unreadable"] = str(directory / "unreadable.pem")
    Path(files["unreadable"]).write_text(Path(tls_files["cert"]).read_text())
    os.chmod(files["unreadable"], 0)
    (directory / "app.py").write_text("async def app(scope, receive, send):\n    pass\n")
    return files


STARTUP_ERRORS = {
    "missing certificate": (["--ssl-certfile", "{missing}", "--ssl-keyfile", "{key}"], "does not exist"),
    "certificate is a directory": (["--ssl-certfile", "{directory}", "--ssl-keyfile", "{key}"], "is a directory"),
    "unreadable certificate": (["--ssl-certfile", "{unreadable}", "--ssl-keyfile", "{key}"], "is not readable"),
    "not a certificate": (["--ssl-certfile", "{garbage}", "--ssl-keyfile", "{key}"], "holds no PEM certificate"),
    "missing key": (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{missing}"], "does not exist"),
    "not a key": (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{garbage}"], "holds no PEM private key"),
    "key does not match": (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{other_key}"], "does not match the certificate"),
    "wrong password": (
        ["--ssl-certfile", "{cert}", "--ssl-keyfile", "{encrypted_key}", "--ssl-keyfile-password", "wrong"],
        "--ssl-keyfile-password is wrong",
    ),
    "no password": (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{encrypted_key}"], "is encrypted"),
    "bad CA file": (
        ["--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--ssl-cert-reqs", "2", "--ssl-ca-certs", "{garbage}"],
        "--ssl-ca-certs",
    ),
}


@pytest.mark.parametrize("case", list(STARTUP_ERRORS))
def test_startup_error_is_one_clear_line(case: str, bad_files: dict[str, str]) -> None:
    if case == "unreadable certificate" and os.geteuid() == 0:
        pytest.skip("root can read a file without read permission")
    template, expected = STARTUP_ERRORS[case]
    port = _free_port()
    args = [arg.format(**bad_files) for arg in template]
    result = run_squall("app:app", "--app-dir", bad_files["directory"], "--port", str(port), *args)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
