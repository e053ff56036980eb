"""Unit tests for squall.protocols.proxy_protocol (no sockets involved)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import ipaddress
import random
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest


def _load_module() -> Any:
    # Prefer the real package; fall back to loading the file directly so these
    # parser tests do not depend on the rest of the server being importable.
    try:
        return importlib.import_module("squall.protocols.proxy_protocol")
    except Exception:
        path = Path(__file__).resolve().parents[2] / "src" / "squall" / "protocols" / "proxy_protocol.py"
        spec = importlib.util.spec_from_file_location("_squall_proxy_protocol_under_test", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look the module up
        spec.loader.exec_module(module)
        return module


proxy_protocol = _load_module()
ProxyInfo = proxy_protocol.ProxyInfo
ProxyProtocolError = proxy_protocol.ProxyProtocolError
parse_proxy_header = proxy_protocol.parse_proxy_header

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PAYLOAD = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def v2(
    family: int = 0x11,
    addresses: bytes = b"",
    *,
    command: int = 0x1,
    version: int = 0x2,
    tlvs: bytes = b"",
    length: int | None = None,
) -> bytes:
    body = addresses + tlvs
    if length is None:
        length = len(body)
    return V2_SIGNATURE + struct.pack("!BBH", (version << 4) | command, family, length) + body


def v2_inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) + struct.pack("!HH", sport, dport)


def v2_inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport)
    )


def v2_unix(src: bytes, dst: bytes) -> bytes:
    return struct.pack("!108s108s", src, dst)


def _v6(address: str) -> str:
    """The canonical text of an IPv6 address, as this Python writes it (3.13
    writes IPv4-mapped addresses in dotted form, earlier versions in hex)."""
    return str(ipaddress.IPv6Address(address))


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


# --- API basics -------------------------------------------------------------------


def test_error_is_a_value_error() -> None:
    assert issubclass(ProxyProtocolError, ValueError)


def test_proxy_info_is_frozen_and_comparable() -> None:
    info = ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2))
    assert info == ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2))
    assert hash(info) == hash(ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.source = None  # type: ignore[misc]


def test_empty_input_needs_more() -> None:
    assert parse_proxy_header(b"") is None


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01", b"G", b"proxy TCP4", b"\n", b"\x00"],
)
def test_non_proxy_input_fails_on_first_byte(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data)


# --- version 1 --------------------------------------------------------------------

V1_VALID = [
    (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        ProxyInfo(("192.168.0.1", 56324), ("192.168.0.11", 443)),
    ),
    (b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", ProxyInfo(("0.0.0.0", 0), ("255.255.255.255", 65535))),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 0443\r\n", ProxyInfo(("1.2.3.4", 80), ("5.6.7.8", 443))),
    (b"PROXY TCP6 2001:db8::1 ::1 4711 80\r\n", ProxyInfo(("2001:db8::1", 4711), ("::1", 80))),
    # Addresses are reported in canonical form.
    (b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 0:0::1 1 2\r\n", ProxyInfo(("2001:db8::1", 1), ("::1", 2))),
    (b"PROXY TCP6 ::ffff:1.2.3.4 ::ffff:5.6.7.8 1 2\r\n", ProxyInfo((_v6("::ffff:1.2.3.4"), 1), (_v6("::ffff:5.6.7.8"), 2))),
    (
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        ProxyInfo(
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
        ),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyInfo(None, None)),
    # Whatever follows UNKNOWN is ignored, even if it is not valid.
    (b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n", ProxyInfo(None, None)),
    (b"PROXY UNKNOWN anything at all\r\n", ProxyInfo(None, None)),
]


@pytest.mark.parametrize(("header", "info"), V1_VALID)
def test_v1_valid(header: bytes, info: Any) -> None:
    assert parse_proxy_header(header) == (info, len(header))


@pytest.mark.parametrize(("header", "info"), V1_VALID)
def test_v1_leaves_following_bytes(header: bytes, info: Any) -> None:
    data = header + PAYLOAD
    result = parse_proxy_header(data)
    assert result == (info, len(header))
    assert data[result[1] :] == PAYLOAD


@pytest.mark.parametrize(("header", "info"), V1_VALID)
def test_v1_byte_by_byte(header: bytes, info: Any) -> None:
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, header[:end]
    assert parse_proxy_header(header) == (info, len(header))


def test_v1_payload_with_crlf_in_first_packet() -> None:
    header = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    assert parse_proxy_header(header + b"\r\n\r\n") == (ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2)), len(header))


def test_v1_accepts_bytearray_and_memoryview() -> None:
    header = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    expected = (ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2)), len(header))
    assert parse_proxy_header(bytearray(header + b"x")) == expected
    assert parse_proxy_header(memoryview(header + b"x")) == expected
    assert parse_proxy_header(bytearray(header[:10])) is None


def test_v1_maximum_length_is_107_bytes() -> None:
    prefix = b"PROXY UNKNOWN "
    longest = prefix + b"x" * (107 - len(prefix) - 2) + b"\r\n"
    assert len(longest) == 107
    assert parse_proxy_header(longest) == (ProxyInfo(None, None), 107)
    too_long = prefix + b"x" * (108 - len(prefix) - 2) + b"\r\n"
    with pytest.raises(ProxyProtocolError, match="longer"):
        parse_proxy_header(too_long)


def test_v1_no_crlf_within_limit_fails_at_107_bytes() -> None:
    data = b"PROXY UNKNOWN " + b"x" * 200
    assert parse_proxy_header(data[:106]) is None
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data[:107])
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data)


def test_v1_cr_at_limit_without_lf_fails() -> None:
    data = b"PROXY UNKNOWN " + b"x" * (106 - 14) + b"\r"
    assert len(data) == 107
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data)
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data + b"\n")


V1_INVALID = [
    b"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY\r\n",
    b"PROXY \r\n",
    b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY UNKNOWNX\r\n",
    b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
    # Wrong or bad addresses.
    b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
    b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
    b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
    b"PROXY TCP6 [::1] ::1 1 2\r\n",
    b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
    b"PROXY TCP6 ::g ::1 1 2\r\n",
    b"PROXY TCP4 1.2.3.\xb4 5.6.7.8 1 2\r\n",
    # Bad ports.
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa3 2\r\n",
    # Line endings.
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
    b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
    b"PROXY UNKNOWN\n\r\n",
]


@pytest.mark.parametrize("header", V1_INVALID)
def test_v1_invalid(header: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(header)
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(header + PAYLOAD)


@pytest.mark.parametrize("header", V1_INVALID)
def test_v1_invalid_byte_by_byte_never_succeeds(header: bytes) -> None:
    # Feeding incrementally must end in an error, never in a result.
    with pytest.raises(ProxyProtocolError):
        for end in range(1, len(header) + 1):
            assert parse_proxy_header(header[:end]) is None


@pytest.mark.parametrize(
    "prefix",
    [b"PX", b"PROXX", b"PROXY FOO", b"PROXY TCP44", b"PROXY TCP ", b"PROXY UNKNOWN\n", b"PROXY TC\rP", b"PROXY  "],
)
def test_v1_invalid_prefix_fails_early(prefix: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(prefix)


# --- version 2 --------------------------------------------------------------------

V2_VALID = [
    (v2(0x11, v2_inet("192.168.0.1", "10.0.0.1", 56324, 443)), ProxyInfo(("192.168.0.1", 56324), ("10.0.0.1", 443))),
    (v2(0x12, v2_inet("1.2.3.4", "5.6.7.8", 53, 5353)), ProxyInfo(("1.2.3.4", 53), ("5.6.7.8", 5353))),
    (v2(0x11, v2_inet("0.0.0.0", "255.255.255.255", 0, 65535)), ProxyInfo(("0.0.0.0", 0), ("255.255.255.255", 65535))),
    (
        v2(0x21, v2_inet6("2001:db8::1", "2001:db8::2", 4711, 8443)),
        ProxyInfo(("2001:db8::1", 4711), ("2001:db8::2", 8443)),
    ),
    (v2(0x22, v2_inet6("::1", "::ffff:1.2.3.4", 1, 2)), ProxyInfo(("::1", 1), (_v6("::ffff:1.2.3.4"), 2))),
    (
        v2(0x31, v2_unix(b"/run/client.sock", b"/run/haproxy.sock")),
        ProxyInfo(("/run/client.sock", 0), ("/run/haproxy.sock", 0)),
    ),
    (v2(0x32, v2_unix(b"", b"/x")), ProxyInfo(("", 0), ("/x", 0))),
    (v2(0x31, v2_unix(b"a" * 108, b"b" * 108)), ProxyInfo(("a" * 108, 0), ("b" * 108, 0))),
    # TLVs (ALPN, authority, ...) follow the addresses and are skipped.
    (
        v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), tlvs=tlv(0x01, b"h2") + tlv(0x02, b"example.com")),
        ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2)),
    ),
    (
        v2(0x21, v2_inet6("::1", "::2", 1, 2), tlvs=tlv(0x04, b"\x00" * 300)),
        ProxyInfo(("::1", 1), ("::2", 2)),
    ),
    # UNSPEC: use the real endpoints; any payload is skipped.
    (v2(0x00), ProxyInfo(None, None)),
    (v2(0x00, tlvs=b"\x01\x02\x03"), ProxyInfo(None, None)),
    # LOCAL: the family and payload are ignored, whatever they are.
    (v2(0x00, command=0x0), ProxyInfo(None, None)),
    (v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), command=0x0), ProxyInfo(None, None)),
    (v2(0x11, command=0x0), ProxyInfo(None, None)),
    (v2(0xFF, b"junk", command=0x0), ProxyInfo(None, None)),
]


@pytest.mark.parametrize(("header", "info"), V2_VALID)
def test_v2_valid(header: bytes, info: Any) -> None:
    assert parse_proxy_header(header) == (info, len(header))


@pytest.mark.parametrize(("header", "info"), V2_VALID)
def test_v2_leaves_following_bytes(header: bytes, info: Any) -> None:
    data = header + PAYLOAD
    result = parse_proxy_header(data)
    assert result == (info, len(header))
    assert data[result[1] :] == PAYLOAD


@pytest.mark.parametrize(("header", "info"), V2_VALID)
def test_v2_byte_by_byte(header: bytes, info: Any) -> None:
    for end in range(len(header)):
        assert parse_proxy_header(header[:end]) is None, header[:end]
    assert parse_proxy_header(header) == (info, len(header))


def test_v2_accepts_bytearray_and_memoryview() -> None:
    header = v2(0x21, v2_inet6("2001:db8::1", "::1", 1, 2))
    expected = (ProxyInfo(("2001:db8::1", 1), ("::1", 2)), len(header))
    assert parse_proxy_header(bytearray(header + PAYLOAD)) == expected
    assert parse_proxy_header(memoryview(header + PAYLOAD)) == expected
    assert parse_proxy_header(memoryview(header)[:20]) is None


def test_v2_payload_starting_like_a_header_is_not_consumed() -> None:
    header = v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2))
    result = parse_proxy_header(header + header)
    assert result is not None and result[1] == len(header)


def test_v2_waits_for_declared_length() -> None:
    header = v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), tlvs=b"\x00" * 1000)
    assert parse_proxy_header(header[:-1]) is None
    assert parse_proxy_header(header) is not None


def test_v2_maximum_declared_length() -> None:
    header = v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), tlvs=b"\x00" * (65535 - 12))
    assert parse_proxy_header(header[:-1]) is None
    assert parse_proxy_header(header) == (ProxyInfo(("1.2.3.4", 1), ("5.6.7.8", 2)), 16 + 65535)


def test_v2_unix_path_with_non_utf8_bytes() -> None:
    header = v2(0x31, v2_unix(b"/tmp/\xff.sock", b"/s"))
    result = parse_proxy_header(header)
    assert result is not None
    info, _ = result
    assert info.source is not None and info.source[0].startswith("/tmp/")
    assert info.destination == ("/s", 0)


V2_INVALID = [
    # Signature damaged at various places.
    b"\r\n\r\n\x01\r\nQUIT\n" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    b"\r\n\r\n\x00\r\nQUIT\r" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    b"\r\r\r\n\x00\r\nQUIT\n" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    b"\r\n\r\n\x00\r\nquit\n" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    # Unsupported versions (v1 in the binary format, v3, v0, v15).
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), version=0x1),
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), version=0x3),
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), version=0x0),
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), version=0xF),
    # Unknown commands.
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), command=0x2),
    v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), command=0xF),
    # Undefined family/transport combinations.
    v2(0x01, b""),
    v2(0x02, b""),
    v2(0x10, v2_inet("1.2.3.4", "5.6.7.8", 1, 2)),
    v2(0x13, v2_inet("1.2.3.4", "5.6.7.8", 1, 2)),
    v2(0x20, v2_inet6("::1", "::2", 1, 2)),
    v2(0x33, v2_unix(b"/a", b"/b")),
    v2(0x41, b"\x00" * 32),
    v2(0xF1, b"\x00" * 32),
    # Address block shorter than the family requires.
    v2(0x11, b"\x00" * 11),
    v2(0x11, b""),
    v2(0x21, v2_inet("1.2.3.4", "5.6.7.8", 1, 2)),
    v2(0x21, b"\x00" * 35),
    v2(0x31, b"\x00" * 215),
    v2(0x32, v2_inet6("::1", "::2", 1, 2)),
]


@pytest.mark.parametrize("header", V2_INVALID)
def test_v2_invalid(header: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(header)
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(header + PAYLOAD + b"\x00" * 300)


@pytest.mark.parametrize("header", V2_INVALID)
def test_v2_invalid_fails_without_waiting_for_payload(header: bytes) -> None:
    # Everything wrong above is visible in the fixed 16-byte header.
    with pytest.raises(ProxyProtocolError):
        for end in range(1, 17):
            assert parse_proxy_header(header[:end]) is None


def test_v2_bad_signature_fails_at_first_wrong_byte() -> None:
    assert parse_proxy_header(V2_SIGNATURE[:4]) is None
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(V2_SIGNATURE[:4] + b"\x01")


def test_v2_bad_version_fails_at_13th_byte() -> None:
    assert parse_proxy_header(V2_SIGNATURE) is None
    with pytest.raises(ProxyProtocolError, match="version"):
        parse_proxy_header(V2_SIGNATURE + b"\x11")


def test_v2_large_truncated_length_waits() -> None:
    # A valid fixed header announcing a long payload needs more data, not an error.
    header = v2(0x11, v2_inet("1.2.3.4", "5.6.7.8", 1, 2), length=12 + 40000)
    assert parse_proxy_header(header) is None


# --- robustness -------------------------------------------------------------------


def test_random_input_only_raises_proxy_protocol_error() -> None:
    rng = random.Random(0xC0FFEE)
    seeds = [header for header, _ in V1_VALID + V2_VALID]
    for _ in range(5000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            data[position] = rng.randrange(256)
        data = data[: rng.randint(0, len(data))]
        try:
            result = parse_proxy_header(bytes(data))
        except ProxyProtocolError:
            continue
        if result is not None:
            info, consumed = result
            assert 0 < consumed <= len(data)
            assert isinstance(info, ProxyInfo)
