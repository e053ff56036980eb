"""Binding listening sockets: TCP (IPv4, IPv6, names), Unix sockets, inherited fds.

A Unix socket's file is ours to remove when we stop listening, but only if it
is still the file we bound: another server may have replaced it since.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from squall.config import Config

logger = logging.getLogger("squall.error")


def bind_socket(config: Config) -> socket.socket:
    from squall.config import ConfigError

    if config.fd is not None:
        # A duplicate: closing our socket must leave the caller's descriptor open.
        try:
            sock = socket.socket(fileno=os.dup(config.fd))
        except OSError as exc:
            raise ConfigError(f"--fd {config.fd} is not an open socket: {exc.strerror}") from exc
        sock.setblocking(False)
        return sock

    if config.uds:
        path = config.uds
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise ConfigError(f"--uds {path!r} exists and is not a socket")
            os.unlink(path)  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o666)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"Could not bind to the Unix socket {path!r}: {exc.strerror}") from exc
        sock.listen(config.backlog)
        sock.setblocking(False)
        return sock

    try:
        infos = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {config.host!r} could not be resolved: {exc.strerror}") from exc
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # Listen on IPv6 only when asked for an IPv6 address, like the host says.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Could not bind to {format_host_port(config.host, config.port)}: {exc.strerror}") from exc
    sock.listen(config.backlog)
    sock.setblocking(False)
    return sock


UnixSocketFile = tuple[str, int, int]  # path, device, inode


def unix_socket_file(sock: socket.socket) -> UnixSocketFile | None:
    """What identifies the file a bound Unix socket made, to remove it later; None for other sockets."""
    if sock.family != getattr(socket, "AF_UNIX", None):
        return None
    path = sock.getsockname()
    if not isinstance(path, str) or not path or path.startswith("\0"):
        return None  # unnamed, or in the abstract namespace: no file
    try:
        info = os.stat(path)
    except OSError:
        return None
    return path, info.st_dev, info.st_ino


def remove_unix_socket_file(identity: UnixSocketFile | None) -> None:
    """Remove the socket file, unless it has gone or is now another one."""
    if identity is None:
        return
    path, device, inode = identity
    try:
        info = os.stat(path)
        if (info.st_dev, info.st_ino) == (device, inode) and stat.S_ISSOCK(info.st_mode):
            os.unlink(path)
    except OSError:
        pass


def format_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_socket(sock: socket.socket, is_ssl: bool) -> str:
    """A URL-like description of where a bound socket listens, for the startup log."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return f"unix socket {sock.getsockname()}"
    scheme = "https" if is_ssl else "http"
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{format_host_port(host, port)}"


# SO_ATTACH_FILTER (Linux) with a classic BPF program that sees the TCP header
# at offset 0: drop a segment whose flags have SYN set and ACK clear, keep
# every other.  (code, jt, jf, k) per instruction, as in `struct sock_filter`.
_SO_ATTACH_FILTER = 26
_DROP_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]: the flags byte
    (0x54, 0, 0, 0x12),  # and #(SYN | ACK)
    (0x15, 0, 1, 0x02),  # jeq #SYN: next, else skip one
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret: keep all of it
)


def refuse_new_connections(sock: socket.socket) -> bool:
    """Have the kernel ignore new connection attempts on a TCP listener, keeping its queue.

    Closing a listener resets the connections queued on it, and no accept()
    loop can empty the queue right up to the close: a handshake may complete
    in between.  With this filter a client's SYN is dropped instead; the
    handshakes already under way complete, the queue can be drained for good,
    and the client's SYN retransmitted a second later finds the port closed
    (connection refused).  Linux only; False where it does not apply.
    """
    if not sys.platform.startswith("linux") or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    import ctypes
    import struct

    program = b"".join(struct.pack("HBBI", *instruction) for instruction in _DROP_SYN)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HP", len(_DROP_SYN), ctypes.addressof(buffer))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True
