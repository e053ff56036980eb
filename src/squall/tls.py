"""TLS: building the server's SSLContext, and describing a connection to the app.

`create_ssl_context` checks the files itself before OpenSSL sees them: for a
bad certificate, a bad key and a wrong password alike, OpenSSL only says
"PEM lib", which tells the user nothing.

`describe_tls_connection` builds the ASGI `tls` extension (asgiref's TLS
spec, version 0.2) for one connection.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import weakref
from typing import Any

logger = logging.getLogger("squall.error")

_CERTIFICATE_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
_PRIVATE_KEY_RE = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
# PKCS#8 says so in its label, the older PKCS#1 form in a header line.
_ENCRYPTED_KEY_RE = re.compile(r"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED")

# The certificate each context serves, as PEM, for the extension's
# `server_cert`: Python offers no way to read it back from a connection.
_server_certs: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()
_cipher_ids: weakref.WeakKeyDictionary[ssl.SSLContext, dict[str, int]] = weakref.WeakKeyDictionary()


def create_ssl_context(
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None,
    password: str | None,
    ssl_version: int,
    cert_reqs: int,
    ca_certs: str | os.PathLike[str] | None,
    ciphers: str | None,
) -> ssl.SSLContext:
    """The server-side context; raises `ConfigError` with one line a user can act on."""
    from squall.config import ConfigError

    if not certfile:
        raise ConfigError("--ssl-keyfile was given without --ssl-certfile: TLS needs both")
    cert_text = _read("--ssl-certfile", certfile)
    server_cert = _first_certificate(cert_text)
    if server_cert is None:
        raise ConfigError(f"--ssl-certfile {os.fspath(certfile)!r} holds no PEM certificate")
    if keyfile:
        key_option, key_path, key_text = "--ssl-keyfile", keyfile, _read("--ssl-keyfile", keyfile)
    else:
        key_option, key_path, key_text = "--ssl-certfile", certfile, cert_text
    if not _PRIVATE_KEY_RE.search(key_text):
        hint = "" if keyfile else " (and no --ssl-keyfile was given)"
        raise ConfigError(f"{key_option} {os.fspath(key_path)!r} holds no PEM private key{hint}")
    encrypted = _ENCRYPTED_KEY_RE.search(key_text) is not None

    try:
        ctx = ssl.SSLContext(ssl_version)
    except ValueError as exc:
        raise ConfigError(f"--ssl-version {ssl_version} is not a protocol this Python supports") from exc

    def get_password() -> str:
        # Called by OpenSSL only for an encrypted key. Without a password it
        # would otherwise prompt on the terminal, hanging a server that runs
        # unattended.
        if password is None:
            raise ConfigError(f"{key_option} {os.fspath(key_path)!r} is encrypted: pass its password with --ssl-keyfile-password")
        return password

    try:
        ctx.load_cert_chain(certfile, keyfile or None, get_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                f"{key_option} {os.fspath(key_path)!r} does not match the certificate in --ssl-certfile {os.fspath(certfile)!r}"
            ) from exc
        if encrypted:
            raise ConfigError(f"--ssl-keyfile-password is wrong for {key_option} {os.fspath(key_path)!r}") from exc
        raise ConfigError(f"Could not load the TLS certificate or key: {exc}") from exc

    try:
        ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    except ValueError as exc:
        raise ConfigError(f"--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required), not {cert_reqs}") from exc
    if ca_certs:
        _read("--ssl-ca-certs", ca_certs)
        try:
            ctx.load_verify_locations(ca_certs)
        except ssl.SSLError as exc:
            raise ConfigError(f"--ssl-ca-certs {os.fspath(ca_certs)!r} holds no usable PEM certificate ({exc.reason})") from exc
    elif ctx.verify_mode != ssl.CERT_NONE:
        logger.warning(
            "--ssl-cert-reqs %d asks clients for certificates, but without --ssl-ca-certs none can be verified:"
            " every client that sends one will be refused.",
            cert_reqs,
        )
    if ciphers:
        try:
            ctx.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"--ssl-ciphers {ciphers!r} selects no usable cipher") from exc
    _server_certs[ctx] = server_cert
    return ctx


def _read(option: str, path: str | os.PathLike[str]) -> str:
    """The file's text (PEM is ASCII); reading it is the only reliable readability test."""
    from squall.config import ConfigError

    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except FileNotFoundError:
        raise ConfigError(f"{option} {os.fspath(path)!r} does not exist", setting=option.lstrip("-").replace("-", "_")) from None
    except IsADirectoryError:
        raise ConfigError(f"{option} {os.fspath(path)!r} is a directory, not a file", setting=option.lstrip("-").replace("-", "_")) from None
    except OSError as exc:
        raise ConfigError(f"{option} {os.fspath(path)!r} is not readable: {exc.strerror}", setting=option.lstrip("-").replace("-", "_")) from None


def _first_certificate(text: str) -> str | None:
    """The first certificate in *text*, re-encoded as canonical PEM, if it parses."""
    match = _CERTIFICATE_RE.search(text)
    if match is None:
        return None
    try:
        pem = ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(match[0]))
        # Loading it as a CA certificate is how the stdlib lets us ask
        # OpenSSL whether this is a certificate at all.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
    except (ValueError, ssl.SSLError):
        return None
    return pem


# --- the ASGI `tls` extension --------------------------------------------------

# TLS protocol names as OpenSSL reports them -> the wire version numbers.
_TLS_VERSIONS = {"SSLv3": 0x0300, "TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def describe_tls_connection(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI `tls` extension: computed once per connection, shared by its requests.

    A client certificate that fails verification fails the handshake, so a
    connection that gets here never has a `client_cert_error`.
    """
    context = ssl_object.context
    leaf = ssl_object.getpeercert(binary_form=True)
    chain = _client_chain(ssl_object, leaf) if leaf else []
    cipher = ssl_object.cipher()
    return {
        "server_cert": _server_certs.get(context),
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain],
        "client_cert_name": _subject_name(leaf) if leaf else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_suite(context, cipher[0]) if cipher else None,
    }


def _client_chain(ssl_object: ssl.SSLObject, leaf: bytes) -> list[bytes]:
    """The certificates the client sent, its own first (DER).

    Python 3.13 added `get_unverified_chain`; before it only the client's own
    certificate is available.  Some 3.13 releases raise AttributeError from
    it rather than returning a list, hence the fallback.
    """
    try:
        sent = ssl_object.get_unverified_chain()  # type: ignore[attr-defined]
    except AttributeError:
        return [leaf]
    chain = [der for der in sent if isinstance(der, bytes)]
    return chain if chain[:1] == [leaf] else [leaf, *chain]


def _cipher_suite(context: ssl.SSLContext, name: str) -> int | None:
    """The IANA number of an OpenSSL cipher name: OpenSSL's cipher id is it, plus flags in the high bits."""
    ids = _cipher_ids.get(context)
    if ids is None:
        ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
        _cipher_ids[context] = ids
    return ids.get(name)


# --- RFC 4514 names ---------------------------------------------------------------
#
# getpeercert() gives the subject as OpenSSL's long attribute names without
# their OIDs or string types, which is not enough for RFC 4514, so the name
# is read from the certificate's DER.  OpenSSL has already parsed and
# verified the certificate; any surprise still yields None, not an error.

# RFC 4514 section 3: the attribute types that have a short name.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# ASN.1 string tags -> codecs.
_STRING_TYPES = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString, as everybody reads it
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
_SEQUENCE, _SET, _OID, _VERSION = 0x30, 0x31, 0x06, 0xA0


def _subject_name(der: bytes) -> str | None:
    """The certificate subject as an RFC 4514 string (most specific RDN first)."""
    try:
        rdns = _subject_rdns(der)
    except (IndexError, ValueError):
        return None
    return ",".join("+".join(f"{kind}={value}" for kind, value in rdn) for rdn in reversed(rdns))


def _subject_rdns(der: bytes) -> list[list[tuple[str, str]]]:
    _, certificate, _ = _element(der, 0, _SEQUENCE)
    _, pos, _ = _element(der, certificate, _SEQUENCE)  # tbsCertificate
    tag, _, end = _element(der, pos)
    if tag == _VERSION:
        pos = end
    for _ in range(4):  # serialNumber, signature, issuer, validity
        pos = _element(der, pos)[2]
    _, pos, name_end = _element(der, pos, _SEQUENCE)
    rdns = []
    while pos < name_end:
        _, attribute, pos = _element(der, pos, _SET)
        rdn = []
        while attribute < pos:
            _, inner, attribute = _element(der, attribute, _SEQUENCE)
            _, oid_start, value_start = _element(der, inner, _OID)
            oid = _decode_oid(der[oid_start:value_start])
            value_tag, content, value_end = _element(der, value_start)
            rdn.append(_attribute(oid, value_tag, der[content:value_end], der[value_start:value_end]))
        rdns.append(rdn)
    return rdns


def _element(der: bytes, pos: int, expected: int | None = None) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER element at *pos*."""
    tag = der[pos]
    if expected is not None and tag != expected:
        raise ValueError(f"expected tag 0x{expected:02x}, found 0x{tag:02x}")
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    end = pos + length
    if end > len(der):
        raise ValueError("truncated DER element")
    return tag, pos, end


def _decode_oid(raw: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _attribute(oid: str, tag: int, content: bytes, encoded: bytes) -> tuple[str, str]:
    short = _SHORT_NAMES.get(oid)
    codec = _STRING_TYPES.get(tag)
    if short is None or codec is None:
        # RFC 4514 2.4: other types are the dotted OID and '#' + the value's BER in hex.
        return short or oid, "#" + encoded.hex()
    return short, _escape(content.decode(codec))


def _escape(value: str) -> str:
    """RFC 4514 2.4 escaping of a string value."""
    out = []
    for i, char in enumerate(value):
        if char in '"+,;<>\\' or (char in " #" and i == 0) or (char == " " and i == len(value) - 1):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)
