"""Honour the client address, scheme and host reported by trusted reverse proxies.

A proxy in front of the server terminates the client connection, so the
socket peer we see is the proxy, not the client. Proxies report the original
client in ``Forwarded`` (RFC 7239) or the older ``X-Forwarded-For`` /
``X-Forwarded-Proto`` headers. Anybody can send those headers, so they are
only believed when the connection comes from a host listed in
``--forwarded-allow-ips``.

The parsing helpers are sans-I/O and stdlib-only so they can be unit tested
(and reused) without a running server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = [
    "ProxyHeadersMiddleware",
    "TrustedHosts",
    "client_from_x_forwarded_for",
    "parse_forwarded",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedHosts:
    """The set of peers whose proxy headers we believe.

    Entries may be IP addresses, CIDR networks, ``*`` (trust everybody) or any
    other string, which is matched literally. Literal matching is how Unix
    socket paths (and any other non-IP peer name a server reports) are trusted,
    so an entry that fails to parse as an address or network is kept as a
    literal rather than rejected.
    """

    __slots__ = ("always_trust", "_exact", "_literals", "_v4_networks", "_v6_networks", "_cache", "_entries")

    # Headers are attacker controlled, so the cache of slow-path answers must
    # be bounded; clearing it when full is crude but O(1) and good enough when
    # the same few peers repeat.
    _CACHE_LIMIT = 1024

    def __init__(self, trusted_hosts: Iterable[str] | str) -> None:
        if isinstance(trusted_hosts, str):
            entries = trusted_hosts.split(",")
        else:
            # List items are not split on commas: a socket path may contain one.
            entries = list(trusted_hosts)

        self.always_trust = False
        addresses: set[str] = set()
        literals: set[str] = set()
        v4_networks: list[ipaddress.IPv4Network] = []
        v6_networks: list[ipaddress.IPv6Network] = []
        kept: list[str] = []

        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            kept.append(entry)
            if entry == "*":
                self.always_trust = True
                continue
            candidate = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                pass
            else:
                # Keep both spellings: the canonical one matches what sockets
                # report, the raw one makes an exact textual match free.
                addresses.add(str(address))
                addresses.add(entry)
                continue
            if "/" in candidate:
                try:
                    # strict=False: "10.1.2.3/8" can only mean 10.0.0.0/8;
                    # keeping it as a never-matching literal would silently
                    # distrust the proxy the user meant to allow.
                    network = ipaddress.ip_network(candidate, strict=False)
                except ValueError:
                    pass
                else:
                    if network.num_addresses == 1:
                        addresses.add(str(network.network_address))
                    elif isinstance(network, ipaddress.IPv4Network):
                        v4_networks.append(network)
                    else:
                        v6_networks.append(network)
                    continue
            literals.add(entry)

        self._entries = tuple(kept)
        self._literals = frozenset(literals)
        # One set lookup answers the common "127.0.0.1 in trusted" case.
        self._exact = frozenset(addresses | literals)
        self._v4_networks = tuple(v4_networks)
        self._v6_networks = tuple(v6_networks)
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: object) -> bool:
        if self.always_trust:
            return True
        if not isinstance(host, str):
            return False
        if host in self._exact:
            return True
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        result = self._match_address(host)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def trusts_literal(self, name: str) -> bool:
        """Whether *name* is trusted as a non-IP literal (e.g. a socket path).

        Used for Unix socket connections, where there is no peer address and
        an IP entry such as ``127.0.0.1`` must not accidentally match.
        """
        return self.always_trust or name in self._literals

    def _match_address(self, host: str) -> bool:
        # Slow path: the host may be a non-canonical spelling of a listed
        # address, an IPv4-mapped IPv6 address from a dual-stack socket, or
        # inside a listed network.
        try:
            address: _IPAddress = ipaddress.ip_address(host)
        except ValueError:
            return False  # Not an IP; literals were already checked exactly.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            if self._match_ip(address.ipv4_mapped):
                return True
        return self._match_ip(address)

    def _match_ip(self, address: _IPAddress) -> bool:
        if str(address) in self._exact:
            return True
        networks = self._v4_networks if address.version == 4 else self._v6_networks
        return any(address in network for network in networks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._entries)!r})"


def _split_node(node: str) -> tuple[str, int]:
    """Split ``host``, ``host:port`` or ``[v6]:port`` into (host, port).

    The port is 0 when absent or not numeric (RFC 7239 allows obfuscated
    ports like ``_abc``). Bare IPv6 addresses (several colons, no brackets)
    are returned whole, as X-Forwarded-For commonly carries them that way.
    """
    node = node.strip()
    port = ""
    if node.startswith("["):
        end = node.find("]")
        if end != -1:
            rest = node[end + 1 :]
            node = node[1:end]
            if rest.startswith(":"):
                port = rest[1:]
    elif node.count(":") == 1:
        node, port = node.split(":")
    # isascii() guards against int() accepting non-ASCII digits like "٣".
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        return node, int(port)
    return node, 0


def client_from_x_forwarded_for(value: str, trusted: TrustedHosts) -> str | None:
    """Pick the client address out of an ``X-Forwarded-For`` chain.

    Each proxy appends the address it received the request from, so the chain
    is only trustworthy from the right: walk leftwards past our own trusted
    proxies and stop at the first address that is not one of them. Anything
    further left was supplied by that untrusted party and may be forged. If
    every hop is trusted, the leftmost is the best we know.
    Returns None when the header holds no addresses.
    """
    hosts = [host for host, _ in map(_split_node, value.split(",")) if host]
    for host in reversed(hosts):
        if host not in trusted:
            return host
    return hosts[0] if hosts else None


# --- RFC 7239 Forwarded -----------------------------------------------------

# token = 1*tchar. Unquoted values additionally accept ":", "[" and "]":
# strictly `for=1.2.3.4:80` must be quoted, but proxies send it bare, and
# these characters are not separators so accepting them cannot make us
# misread where an element ends.
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_PAIR_RE = re.compile(
    rf"[ \t]*([{_TCHAR}]+)[ \t]*=[ \t]*"
    rf"(?:([{_TCHAR}:\[\]]+)"
    # quoted-string: qdtext or a backslash quoted-pair; no control characters.
    r'|"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)")'
    r"[ \t]*"
)
_OWS_RE = re.compile(r"[ \t]*")
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _parse_forwarded_elements(value: str) -> list[dict[str, str] | None]:
    """Parse a Forwarded header, keeping a ``None`` placeholder where an
    element was malformed so callers can tell "skipped" from "absent"."""
    elements: list[dict[str, str] | None] = []
    current: dict[str, str] = {}
    malformed = False
    pos = 0
    end = len(value)
    while True:
        match = _PAIR_RE.match(value, pos)
        if match is not None:
            name = match[1].lower()
            raw = match[2]
            if raw is None:
                raw = match[3]
                if "\\" in raw:
                    raw = _ESCAPE_RE.sub(r"\1", raw)
            if name in current:
                malformed = True  # RFC 7239: a parameter may occur once per element.
            current[name] = raw
            pos = match.end()
        else:
            pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]

        char = value[pos] if pos < end else ","
        if char == ";":
            pos += 1
            continue
        if char != ",":
            # Junk: drop this element and resume at the next comma. The search
            # deliberately ignores quotes: an unterminated quote must not be
            # able to swallow the elements our own proxies appended after it.
            malformed = True
            comma = value.find(",", pos)
            pos = end if comma == -1 else comma
        if malformed:
            elements.append(None)
        elif current:
            elements.append(current)
        # else: an empty list element (", ,"), which the list syntax allows.
        if pos >= end:
            return elements
        current = {}
        malformed = False
        pos += 1


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 ``Forwarded`` header into one dict per element.

    Parameter names are lowercased; quoted values are unquoted and unescaped;
    values are otherwise returned verbatim (``unknown``, ``_obfuscated`` and
    ``[v6]:port`` nodes included). Malformed elements are skipped; this
    never raises.
    """
    return [element for element in _parse_forwarded_elements(value) if element is not None]


# --- ASGI middleware ----------------------------------------------------------

_FORWARDED = b"forwarded"
_X_FORWARDED_FOR = b"x-forwarded-for"
_X_FORWARDED_PROTO = b"x-forwarded-proto"
_PROXY_HEADERS = frozenset((_FORWARDED, _X_FORWARDED_FOR, _X_FORWARDED_PROTO))

# proto value -> is it secure? Anything else is ignored rather than letting a
# proxy put an arbitrary string into scope["scheme"].
_PROTO_IS_SECURE = {"http": False, "ws": False, "https": True, "wss": True}


def _set_scheme(scope: Scope, proto: str) -> None:
    secure = _PROTO_IS_SECURE.get(proto.strip().lower())
    if secure is None:
        return
    if scope["type"] == "websocket":
        scope["scheme"] = "wss" if secure else "ws"
    else:
        scope["scheme"] = "https" if secure else "http"


# RFC 7239 `host` is a Host header value: a name, IPv4 or [IPv6] address and
# an optional port.  Anything else is ignored rather than handed to the app.
_HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def _set_host(scope: Scope, host: str) -> None:
    if _HOST_RE.fullmatch(host) is None:
        return
    headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
    headers.append((b"host", host.encode("ascii")))
    scope["headers"] = headers


class ProxyHeaders:
    """Rewriting ``scope["client"]`` and ``scope["scheme"]`` from proxy headers.

    ``Forwarded`` wins over the ``X-Forwarded-*`` pair when present: a proxy
    that emits it may pass client-supplied X-Forwarded-* through untouched.
    Its ``host`` parameter replaces the request's ``Host`` header, which is
    where apps read the host the client asked for (to build absolute URLs,
    say); ``scope["server"]`` still describes our own listening socket.

    Squall's connections use it directly (`--proxy-headers`): whether the
    peer is trusted is decided once per connection, and each scope is
    rewritten as it is built, before any middleware sees it.
    """

    def __init__(self, trusted_hosts: list[str] | str | TrustedHosts = "127.0.0.1") -> None:
        self.trusted_hosts = trusted_hosts if isinstance(trusted_hosts, TrustedHosts) else TrustedHosts(trusted_hosts)

    def trusts_peer(self, client: tuple[str, int] | None, server: Any) -> bool:
        """Whether a connection from `client` to `server` comes from a trusted proxy."""
        if client is not None:
            return client[0] in self.trusted_hosts
        # Unix socket connection: there is no peer address, only our own
        # socket path in scope["server"], which can be trusted literally.
        if self.trusted_hosts.always_trust:
            return True
        return bool(server) and isinstance(server[0], str) and self.trusted_hosts.trusts_literal(server[0])

    def apply(self, scope: Scope) -> None:
        """Rewrite `scope` (from a trusted peer) as its proxy headers say."""
        forwarded = x_forwarded_for = x_forwarded_proto = None
        # One pass; nothing is allocated unless a proxy header is present.
        # Repeated header lines are joined with "," as HTTP list semantics say.
        for name, value in scope["headers"]:
            if name in _PROXY_HEADERS:
                text = value.decode("latin-1")
                if name == _FORWARDED:
                    forwarded = text if forwarded is None else f"{forwarded},{text}"
                elif name == _X_FORWARDED_FOR:
                    x_forwarded_for = text if x_forwarded_for is None else f"{x_forwarded_for},{text}"
                else:
                    x_forwarded_proto = text if x_forwarded_proto is None else f"{x_forwarded_proto},{text}"

        if forwarded is not None:
            self._apply_forwarded(scope, forwarded)
            return
        if x_forwarded_for is not None:
            host = client_from_x_forwarded_for(x_forwarded_for, self.trusted_hosts)
            if host is not None:
                scope["client"] = (host, 0)
        if x_forwarded_proto is not None:
            # With several values, only the rightmost was certainly written
            # by the proxy talking to us; the rest may be client supplied.
            _set_scheme(scope, x_forwarded_proto.rsplit(",", 1)[-1])

    def _apply_forwarded(self, scope: Scope, value: str) -> None:
        trusted = self.trusted_hosts
        client: tuple[str, int] | None = None
        # The element describing the original client's hop: its `proto` is
        # the scheme the client used.
        selected: dict[str, str] | None = None
        # Same walk as X-Forwarded-For: right to left, past our own proxies.
        for element in reversed(_parse_forwarded_elements(value)):
            if element is None:
                # A hop we cannot read. Treat it as RFC 7239's "unknown" so
                # garbage can never make the client look like a trusted proxy,
                # nor expose forgeable elements further left.
                selected = None
                client = ("unknown", 0)
                if "unknown" in trusted:
                    continue
                break
            selected = element
            node = element.get("for")
            if node is None:
                # The proxy did not say who its client was: keep the nearest
                # address we do know (the last trusted hop, or the peer).
                break
            host, port = _split_node(node)
            client = (host, port)
            if host not in trusted:
                break
        if client is not None:
            scope["client"] = client
        if selected is not None:
            proto = selected.get("proto")
            if proto is not None:
                _set_scheme(scope, proto)
            host = selected.get("host")
            if host is not None:
                _set_host(scope, host)


class ProxyHeadersMiddleware(ProxyHeaders):
    """`ProxyHeaders` as ASGI middleware, for apps served some other way.

    The scope is modified in place; the server builds a fresh one per request.
    """

    def __init__(self, app: ASGIApp, trusted_hosts: list[str] | str | TrustedHosts = "127.0.0.1") -> None:
        super().__init__(trusted_hosts)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if (scope_type == "http" or scope_type == "websocket") and self.trusts_peer(scope.get("client"), scope.get("server")):
            self.apply(scope)
        await self.app(scope, receive, send)
