"""Sans-I/O parser for the HAProxy PROXY protocol, versions 1 and 2.

A load balancer speaking the PROXY protocol prefixes each TCP connection with
a small header naming the real client and the address it connected to, before
any application bytes. The server feeds everything received so far to
:func:`parse_proxy_header` until it returns a result, then hands the bytes
after the header to the HTTP parser.

Reference: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass

__all__ = [
    "V1_MAX_LENGTH",
    "V1_SIGNATURE",
    "V2_SIGNATURE",
    "ProxyInfo",
    "ProxyProtocolError",
    "parse_proxy_header",
]

V1_SIGNATURE = b"PROXY "
# The longest legal v1 line ("PROXY TCP6" with two full IPv6 addresses and
# ports), CRLF included. Senders must fit; we refuse to buffer more.
V1_MAX_LENGTH = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

# signature, version/command, family/transport, length of what follows
_V2_HEADER = struct.Struct("!12sBBH")
_V2_HEADER_LENGTH = _V2_HEADER.size  # 16
_V2_LOCAL = 0x0
_V2_PROXY = 0x1
# The only family/transport bytes the spec defines; it requires receivers to
# reject anything else. Values: the address block size for that family.
_V2_ADDRESS_LENGTHS = {
    0x00: 0,  # UNSPEC: no addresses, use the real connection endpoints
    0x11: 12,  # TCP over IPv4
    0x12: 12,  # UDP over IPv4
    0x21: 36,  # TCP over IPv6
    0x22: 36,  # UDP over IPv6
    0x31: 216,  # Unix stream
    0x32: 216,  # Unix datagram
}
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")
_V2_UNIX = struct.Struct("!108s108s")


class ProxyProtocolError(ValueError):
    """The connection does not start with a valid PROXY protocol header."""


@dataclass(frozen=True)
class ProxyInfo:
    """Endpoints reported by the proxy.

    Both are None for v1 ``UNKNOWN``, v2 ``LOCAL`` and v2 ``UNSPEC``, meaning
    "use the real socket endpoints". Unix addresses are reported as
    ``(path, 0)``; an unnamed client socket gives an empty path.
    """

    source: tuple[str, int] | None
    destination: tuple[str, int] | None


_UNKNOWN = ProxyInfo(None, None)


def parse_proxy_header(data: bytes) -> tuple[ProxyInfo, int] | None:
    """Parse a PROXY protocol header at the start of *data*.

    Returns None while *data* is still a prefix of a possibly valid header,
    otherwise ``(info, consumed)`` where ``consumed`` is the header length;
    bytes after it belong to the application protocol.
    Raises ProxyProtocolError as soon as the input cannot become valid.
    Accepts any bytes-like object (e.g. a bytearray receive buffer).
    """
    if not data:
        return None
    first = data[0]
    if first == V1_SIGNATURE[0]:
        return _parse_v1(data)
    if first == V2_SIGNATURE[0]:
        return _parse_v2(data)
    raise ProxyProtocolError("connection does not start with a PROXY protocol header")


# --- version 1: one text line ---------------------------------------------------


def _parse_v1(data: bytes) -> tuple[ProxyInfo, int] | None:
    # Never look beyond the maximum length: a peer trickling bytes without a
    # CRLF must not make us buffer or scan without bound.
    head = bytes(data[:V1_MAX_LENGTH])
    line_end = head.find(b"\r\n")
    if line_end == -1:
        _check_v1_prefix(head)
        if len(head) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 header longer than {V1_MAX_LENGTH} bytes")
        return None

    line = head[:line_end]
    if not line.startswith(V1_SIGNATURE):
        raise ProxyProtocolError("bad PROXY v1 signature")
    if b"\r" in line or b"\n" in line:
        raise ProxyProtocolError("stray CR or LF in PROXY v1 header")
    fields = line[len(V1_SIGNATURE) :].split(b" ")
    protocol = fields[0]
    consumed = line_end + 2
    if protocol == b"UNKNOWN":
        # The spec says receivers must ignore whatever follows UNKNOWN.
        return _UNKNOWN, consumed
    if protocol == b"TCP4":
        version = 4
    elif protocol == b"TCP6":
        version = 6
    else:
        raise ProxyProtocolError(f"unsupported PROXY v1 protocol {protocol!r}")
    # Exactly single spaces: "PROXY TCP4 src dst sport dport".
    if len(fields) != 5:
        raise ProxyProtocolError("PROXY v1 header must have 4 fields after the protocol")
    source = _v1_address(fields[1], version)
    destination = _v1_address(fields[2], version)
    source_port = _v1_port(fields[3])
    destination_port = _v1_port(fields[4])
    return ProxyInfo((source, source_port), (destination, destination_port)), consumed


def _check_v1_prefix(head: bytes) -> None:
    """Fail early on an incomplete v1 line that can no longer become valid,
    rather than waiting for up to 107 bytes of garbage."""
    size = min(len(head), len(V1_SIGNATURE))
    if head[:size] != V1_SIGNATURE[:size]:
        raise ProxyProtocolError("bad PROXY v1 signature")
    if b"\n" in head:
        raise ProxyProtocolError("stray LF in PROXY v1 header")
    carriage_return = head.find(b"\r")
    if carriage_return != -1 and carriage_return != len(head) - 1:
        raise ProxyProtocolError("stray CR in PROXY v1 header")
    rest = head[len(V1_SIGNATURE) :]
    space = rest.find(b" ")
    protocol = rest if space == -1 else rest[:space]
    protocol = protocol.rstrip(b"\r")
    complete = space != -1 or rest.endswith(b"\r")
    if complete and protocol not in (b"TCP4", b"TCP6", b"UNKNOWN"):
        raise ProxyProtocolError(f"unsupported PROXY v1 protocol {protocol!r}")
    if not complete and not any(name.startswith(protocol) for name in (b"TCP4", b"TCP6", b"UNKNOWN")):
        raise ProxyProtocolError(f"unsupported PROXY v1 protocol {protocol!r}")


def _v1_address(raw: bytes, version: int) -> str:
    try:
        text = raw.decode("ascii")
        # ipaddress accepts IPv6 scope ids ("fe80::1%eth0"); the protocol doesn't.
        if "%" in text:
            raise ValueError(text)
        address = ipaddress.ip_address(text)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise ProxyProtocolError(f"bad address {raw!r} in PROXY v1 header") from None
    if address.version != version:
        raise ProxyProtocolError(f"address {raw!r} is not IPv{version} in PROXY v1 header")
    return str(address)


def _v1_port(raw: bytes) -> int:
    # bytes.isdigit() is ASCII-only, so no sign, spaces or exotic digits.
    if not (0 < len(raw) <= 5 and raw.isdigit()) or int(raw) > 65535:
        raise ProxyProtocolError(f"bad port {raw!r} in PROXY v1 header")
    return int(raw)


# --- version 2: binary ------------------------------------------------------------


def _parse_v2(data: bytes) -> tuple[ProxyInfo, int] | None:
    size = min(len(data), len(V2_SIGNATURE))
    if bytes(data[:size]) != V2_SIGNATURE[:size]:
        raise ProxyProtocolError("bad PROXY v2 signature")
    if len(data) > len(V2_SIGNATURE):
        _check_v2_version_command(data[len(V2_SIGNATURE)])
    if len(data) < _V2_HEADER_LENGTH:
        return None

    _, version_command, family, length = _V2_HEADER.unpack(bytes(data[:_V2_HEADER_LENGTH]))
    command = version_command & 0x0F
    total = _V2_HEADER_LENGTH + length

    if command == _V2_PROXY:
        # Validate what we can from the fixed header before waiting for up to
        # 64 KiB of payload that would be rejected anyway.
        address_length = _V2_ADDRESS_LENGTHS.get(family)
        if address_length is None:
            raise ProxyProtocolError(f"unsupported PROXY v2 address family/protocol 0x{family:02x}")
        if length < address_length:
            raise ProxyProtocolError("PROXY v2 address block too short")

    if len(data) < total:
        return None
    if command == _V2_LOCAL or family == 0x00:
        # LOCAL: health checks etc. from the proxy itself; the spec says use
        # the real endpoints and ignore the family and any payload.
        return _UNKNOWN, total

    # Anything past the addresses is TLVs (ALPN, SNI, ...), which we skip.
    body = bytes(data[_V2_HEADER_LENGTH:total])
    address_family = family >> 4
    if address_family == 0x1:
        src, dst, src_port, dst_port = _V2_INET.unpack_from(body)
        source = (str(ipaddress.IPv4Address(src)), src_port)
        destination = (str(ipaddress.IPv4Address(dst)), dst_port)
    elif address_family == 0x2:
        src, dst, src_port, dst_port = _V2_INET6.unpack_from(body)
        source = (str(ipaddress.IPv6Address(src)), src_port)
        destination = (str(ipaddress.IPv6Address(dst)), dst_port)
    else:
        src, dst = _V2_UNIX.unpack_from(body)
        source = (_unix_path(src), 0)
        destination = (_unix_path(dst), 0)
    return ProxyInfo(source, destination), total


def _check_v2_version_command(byte: int) -> None:
    if byte >> 4 != 2:
        raise ProxyProtocolError(f"unsupported PROXY protocol version {byte >> 4}")
    if byte & 0x0F not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyProtocolError(f"unsupported PROXY v2 command {byte & 0x0F}")


def _unix_path(raw: bytes) -> str:
    # Paths are NUL-padded to 108 bytes; decode like the OS would.
    return os.fsdecode(raw.split(b"\x00", 1)[0])
