"""Building the server's SSLContext, with errors a user can act on."""

from __future__ import annotations

import os
import ssl


def create_ssl_context(
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None,
    password: str | None,
    ssl_version: int,
    cert_reqs: int,
    ca_certs: str | os.PathLike[str] | None,
    ciphers: str | None,
) -> ssl.SSLContext:
    from squall.config import ConfigError

    if not certfile:
        raise ConfigError("--ssl-keyfile was given without --ssl-certfile: TLS needs both")
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile), ("--ssl-ca-certs", ca_certs)):
        if path and not os.access(path, os.R_OK):
            reason = "does not exist" if not os.path.exists(path) else "is not readable"
            raise ConfigError(f"{option} {os.fspath(path)!r} {reason}")

    ctx = ssl.SSLContext(ssl_version)
    try:
        ctx.load_cert_chain(certfile, keyfile, (lambda: password) if password else None)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ConfigError(f"--ssl-keyfile does not match the certificate in --ssl-certfile ({exc.reason})") from exc
        if "bad decrypt" in str(exc).lower() or "BAD_DECRYPT" in str(exc):
            raise ConfigError("--ssl-keyfile-password is wrong for --ssl-keyfile") from exc
        raise ConfigError(f"Could not load the TLS certificate or key: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Could not load the TLS certificate or key: {exc}") from exc
    ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    if ca_certs:
        try:
            ctx.load_verify_locations(ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--ssl-ca-certs could not be loaded: {exc}") from exc
    if ciphers:
        try:
            ctx.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"--ssl-ciphers {ciphers!r} selects no usable cipher") from exc
    return ctx


# TLS protocol names as OpenSSL reports them -> the numbers the ASGI TLS
# extension uses (the TLS wire version).
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def describe_tls_connection(ssl_object: ssl.SSLObject) -> dict[str, object]:
    """The ASGI `tls` extension: computed once per connection, shared by its requests."""
    chain: list[str] = []
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": _subject_name(ssl_object.getpeercert()),
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": cipher[0] if cipher else None,
    }


def _subject_name(cert: dict | None) -> str | None:  # type: ignore[type-arg]
    if not cert or "subject" not in cert:
        return None
    parts = [f"{key}={value}" for rdn in cert["subject"] for key, value in rdn]
    return ",".join(reversed(parts)) or None
