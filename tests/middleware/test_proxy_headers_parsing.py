"""Unit tests for squall.middleware.proxy_headers (no sockets involved)."""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

import pytest

from squall.middleware.proxy_headers import (
    ProxyHeadersMiddleware,
    TrustedHosts,
    client_from_x_forwarded_for,
    parse_forwarded,
)


# --- TrustedHosts ---------------------------------------------------------------


def test_trusted_single_address() -> None:
    trusted = TrustedHosts("127.0.0.1")
    assert "127.0.0.1" in trusted
    assert "127.0.0.2" not in trusted
    assert "::1" not in trusted
    assert None not in trusted
    assert "" not in trusted


def test_trusted_comma_separated_string_with_spaces() -> None:
    trusted = TrustedHosts(" 127.0.0.1 , ::1,,10.0.0.0/8 ")
    assert "127.0.0.1" in trusted
    assert "::1" in trusted
    assert "10.20.30.40" in trusted
    assert "11.0.0.1" not in trusted


def test_trusted_list_items_are_not_split_on_commas() -> None:
    trusted = TrustedHosts(["/run/a,b.sock", "127.0.0.1"])
    assert "/run/a,b.sock" in trusted
    assert "/run/a" not in trusted
    assert "127.0.0.1" in trusted


def test_trusted_empty_trusts_nobody() -> None:
    for trusted in (TrustedHosts(""), TrustedHosts([]), TrustedHosts([" ", ""])):
        assert "127.0.0.1" not in trusted
        assert None not in trusted


def test_trusted_wildcard_trusts_everything() -> None:
    trusted = TrustedHosts("*")
    assert trusted.always_trust
    for host in ("1.2.3.4", "::1", "unknown", "/tmp/sock", "", None):
        assert host in trusted
    assert trusted.trusts_literal("/anything")


def test_trusted_wildcard_among_other_entries() -> None:
    assert "8.8.8.8" in TrustedHosts(["127.0.0.1", "*"])


def test_trusted_ipv4_network() -> None:
    trusted = TrustedHosts(["192.168.0.0/16"])
    assert "192.168.0.1" in trusted
    assert "192.168.255.255" in trusted
    assert "192.169.0.1" not in trusted
    assert "::1" not in trusted
    assert "example.com" not in trusted


def test_trusted_ipv6_network() -> None:
    trusted = TrustedHosts(["2001:db8::/32"])
    assert "2001:db8::1" in trusted
    assert "2001:db8:ffff::abcd" in trusted
    assert "2001:db9::1" not in trusted
    assert "10.0.0.1" not in trusted


def test_trusted_network_with_host_bits_is_accepted() -> None:
    # "10.1.2.3/8" can only mean 10.0.0.0/8.
    trusted = TrustedHosts(["10.1.2.3/8"])
    assert "10.200.0.1" in trusted
    assert "11.0.0.1" not in trusted


def test_trusted_single_address_network_is_exact() -> None:
    trusted = TrustedHosts(["10.0.0.1/32", "2001:db8::1/128"])
    assert "10.0.0.1" in trusted
    assert "10.0.0.2" not in trusted
    assert "2001:db8::1" in trusted
    assert "2001:db8::2" not in trusted


def test_trusted_ipv6_spellings_are_normalized() -> None:
    trusted = TrustedHosts(["0:0:0:0:0:0:0:1", "2001:DB8::A"])
    assert "::1" in trusted
    assert "0:0::1" in trusted
    assert "2001:db8::a" in trusted
    assert "2001:0db8:0000:0000:0000:0000:0000:000a" in trusted
    assert "::2" not in trusted


def test_trusted_bracketed_ipv6_entry() -> None:
    trusted = TrustedHosts(["[::1]"])
    assert "::1" in trusted


def test_trusted_ipv4_mapped_ipv6_peer() -> None:
    # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d.
    trusted = TrustedHosts(["127.0.0.1", "10.0.0.0/8"])
    assert "::ffff:127.0.0.1" in trusted
    assert "::ffff:10.9.8.7" in trusted
    assert "::ffff:11.0.0.1" not in trusted


def test_trusted_literals() -> None:
    trusted = TrustedHosts(["/tmp/squall.sock", "unix:/run/app.sock", "10.0.0.0/33", "proxy.internal"])
    assert "/tmp/squall.sock" in trusted
    assert "unix:/run/app.sock" in trusted
    # Not a valid network, so it is kept as a literal rather than rejected.
    assert "10.0.0.0/33" in trusted
    assert "10.0.0.1" not in trusted
    assert "proxy.internal" in trusted
    assert "/tmp/squall.sock2" not in trusted
    assert "/TMP/SQUALL.SOCK" not in trusted


def test_trusts_literal_ignores_ip_entries() -> None:
    trusted = TrustedHosts(["127.0.0.1", "/tmp/s.sock", "10.0.0.0/8"])
    assert trusted.trusts_literal("/tmp/s.sock")
    assert not trusted.trusts_literal("127.0.0.1")
    assert not trusted.trusts_literal("10.0.0.1")


def test_trusted_non_string_host_is_not_trusted() -> None:
    trusted = TrustedHosts(["127.0.0.1"])
    assert 12345 not in trusted
    assert b"127.0.0.1" not in trusted


def test_trusted_cache_is_bounded_and_answers_stay_correct() -> None:
    trusted = TrustedHosts(["10.0.0.0/8"])
    for i in range(TrustedHosts._CACHE_LIMIT * 3):
        host = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        assert host in trusted
        assert f"11.0.{(i >> 8) & 255}.{i & 255}" not in trusted
        assert len(trusted._cache) <= TrustedHosts._CACHE_LIMIT
    # Repeated lookups (served from the cache) agree with the first answer.
    assert "10.1.2.3" in trusted and "10.1.2.3" in trusted
    assert "12.1.2.3" not in trusted and "12.1.2.3" not in trusted


def test_trusted_repr_lists_entries() -> None:
    assert repr(TrustedHosts("127.0.0.1, *")) == "TrustedHosts(['127.0.0.1', '*'])"


# --- X-Forwarded-For ------------------------------------------------------------

LOCAL = TrustedHosts(["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("  1.2.3.4  ", "1.2.3.4"),
        ("1.2.3.4, 10.0.0.1", "1.2.3.4"),
        ("1.2.3.4,10.0.0.1,10.0.0.2", "1.2.3.4"),
        # The leftmost entry is client supplied; the first untrusted hop wins.
        ("6.6.6.6, 1.2.3.4, 10.0.0.1", "1.2.3.4"),
        ("127.0.0.1, 1.2.3.4", "1.2.3.4"),
        # Every hop trusted: the leftmost is the best we know.
        ("10.0.0.3, 10.0.0.2, 127.0.0.1", "10.0.0.3"),
        ("127.0.0.1", "127.0.0.1"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("1.2.3.4:5678, 10.0.0.1:80", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:db8::1, ::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("[2001:db8::1]:4711, [::1]:80", "2001:db8::1"),
        ("2001:db8::5, 2001:db8:ffff::1", "2001:db8::5"),
        ("1.2.3.4,,10.0.0.1", "1.2.3.4"),
        ("1.2.3.4, , ", "1.2.3.4"),
        ("unknown, 10.0.0.1", "unknown"),
        ("_hidden", "_hidden"),
        ("::ffff:1.2.3.4, ::ffff:10.0.0.1", "::ffff:1.2.3.4"),
    ],
)
def test_x_forwarded_for(value: str, expected: str) -> None:
    assert client_from_x_forwarded_for(value, LOCAL) == expected


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_x_forwarded_for_empty(value: str) -> None:
    assert client_from_x_forwarded_for(value, LOCAL) is None


def test_x_forwarded_for_wildcard_returns_leftmost() -> None:
    assert client_from_x_forwarded_for("1.1.1.1, 2.2.2.2, 3.3.3.3", TrustedHosts("*")) == "1.1.1.1"


def test_x_forwarded_for_nothing_trusted_returns_rightmost() -> None:
    assert client_from_x_forwarded_for("1.1.1.1, 2.2.2.2", TrustedHosts([])) == "2.2.2.2"


# --- Forwarded ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("for=192.0.2.60", [{"for": "192.0.2.60"}]),
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ("For=1.2.3.4;PROTO=https;Host=example.com", [{"for": "1.2.3.4", "proto": "https", "host": "example.com"}]),
        ('for="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        ('for="_gazonk"', [{"for": "_gazonk"}]),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        ("for=192.0.2.43,for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        ("for=unknown, for=_hidden", [{"for": "unknown"}, {"for": "_hidden"}]),
        # Quoted strings may hold separators and escapes.
        ('for="a,b;c=d"', [{"for": "a,b;c=d"}]),
        (r'for="\"quoted\" \\ back"', [{"for": '"quoted" \\ back'}]),
        (r'for="\x"', [{"for": "x"}]),
        ('for=""', [{"for": ""}]),
        ('host="example.com:8080";proto=https', [{"host": "example.com:8080", "proto": "https"}]),
        ('for="caf\xe9"', [{"for": "caf\xe9"}]),  # obs-text (latin-1 decoded header)
        # Leniency: whitespace around separators, bare host:port and [v6]:port.
        ("for=1.2.3.4 ; proto=https , for=5.6.7.8", [{"for": "1.2.3.4", "proto": "https"}, {"for": "5.6.7.8"}]),
        ("for = 1.2.3.4", [{"for": "1.2.3.4"}]),
        ("for=1.2.3.4:80", [{"for": "1.2.3.4:80"}]),
        ("for=[::1]:80", [{"for": "[::1]:80"}]),
        # Empty list elements and empty pairs are allowed.
        (", ,for=1.2.3.4,", [{"for": "1.2.3.4"}]),
        ("for=1.2.3.4;;proto=http;", [{"for": "1.2.3.4", "proto": "http"}]),
        (";for=1.2.3.4", [{"for": "1.2.3.4"}]),
        ("x-ext=1;for=1.2.3.4", [{"x-ext": "1", "for": "1.2.3.4"}]),
        # Malformed elements are skipped, the rest is kept.
        ("for=1.2.3.4 garbage, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("garbage, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("for, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("for=, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("=x, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("for==x, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("for=a;for=b, for=c", [{"for": "c"}]),
        ("for=a;FOR=b", []),
        ('for="unterminated, for=5.6.7.8', [{"for": "5.6.7.8"}]),
        ('for="a"b, for=5.6.7.8', [{"for": "5.6.7.8"}]),
        ('for="a\x01b", for=5.6.7.8', [{"for": "5.6.7.8"}]),
        ("for=a/b, for=5.6.7.8", [{"for": "5.6.7.8"}]),
        ("for=1.2.3.4, garbage", [{"for": "1.2.3.4"}]),
        ("for=1.2.3.4; garbage; proto=https", []),
    ],
)
def test_parse_forwarded(value: str, expected: list[dict[str, str]]) -> None:
    assert parse_forwarded(value) == expected


def test_parse_forwarded_never_raises() -> None:
    rng = random.Random(7239)
    alphabet = 'for=proto;by,host"\\ \t[]:_.1a\x00\xff'
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        result = parse_forwarded(value)
        assert isinstance(result, list)
        assert all(isinstance(element, dict) and element for element in result)


# --- ProxyHeadersMiddleware -------------------------------------------------------


class RecordingApp:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append((scope, receive, send))

    @property
    def scope(self) -> dict[str, Any]:
        assert len(self.calls) == 1
        return self.calls[0][0]


async def _receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _send(message: Any) -> None:
    pass


def make_scope(
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    type: str = "http",
    client: tuple[str, int] | None = ("127.0.0.1", 5000),
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
) -> dict[str, Any]:
    return {
        "type": type,
        "scheme": "ws" if type == "websocket" else "http",
        "client": client,
        "server": server,
        "headers": headers or [],
        "path": "/",
    }


def run(scope: dict[str, Any], trusted_hosts: Any = "127.0.0.1") -> dict[str, Any]:
    app = RecordingApp()
    middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted_hosts)
    asyncio.run(middleware(scope, _receive, _send))
    assert app.calls[0][1] is _receive and app.calls[0][2] is _send
    return app.scope


def test_default_trusts_localhost_only() -> None:
    app = RecordingApp()
    middleware = ProxyHeadersMiddleware(app)
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")])
    asyncio.run(middleware(scope, _receive, _send))
    assert app.scope["client"] == ("1.2.3.4", 0)
    assert "127.0.0.1" in middleware.trusted_hosts
    assert "::1" not in middleware.trusted_hosts


def test_no_proxy_headers_leaves_scope_untouched() -> None:
    scope = make_scope([(b"host", b"example.com"), (b"accept", b"*/*")])
    before = copy.deepcopy(scope)
    result = run(scope)
    assert result is scope
    assert result == before


def test_x_forwarded_for_and_proto_from_trusted_peer() -> None:
    scope = run(make_scope([(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]))
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"


@pytest.mark.parametrize("client", [("8.8.8.8", 1234), ("127.0.0.2", 1), ("::1", 2)])
def test_untrusted_peer_changes_nothing(client: tuple[str, int]) -> None:
    headers = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=5.6.7.8;proto=https"),
    ]
    scope = make_scope(headers, client=client)
    before = copy.deepcopy(scope)
    assert run(scope) == before


def test_untrusted_websocket_peer_changes_nothing() -> None:
    scope = make_scope([(b"x-forwarded-proto", b"https")], type="websocket", client=("8.8.8.8", 1))
    assert run(scope)["scheme"] == "ws"


def test_x_forwarded_for_chain_skips_trusted_proxies() -> None:
    scope = make_scope([(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.2")], client=("10.0.0.1", 1))
    assert run(scope, ["10.0.0.0/8"])["client"] == ("1.2.3.4", 0)


def test_x_forwarded_for_chain_all_trusted() -> None:
    scope = make_scope([(b"x-forwarded-for", b"10.0.0.3, 10.0.0.2")], client=("10.0.0.1", 1))
    assert run(scope, ["10.0.0.0/8"])["client"] == ("10.0.0.3", 0)


def test_x_forwarded_for_repeated_header_lines_are_joined() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"10.0.0.2")]
    scope = make_scope(headers, client=("10.0.0.1", 1))
    assert run(scope, "10.0.0.0/8")["client"] == ("1.2.3.4", 0)


def test_x_forwarded_for_ipv6_with_port() -> None:
    scope = run(make_scope([(b"x-forwarded-for", b"[2001:db8::1]:4711")]))
    assert scope["client"] == ("2001:db8::1", 0)


def test_empty_x_forwarded_for_keeps_client() -> None:
    scope = run(make_scope([(b"x-forwarded-for", b" , ")]))
    assert scope["client"] == ("127.0.0.1", 5000)


def test_wildcard_trusts_any_peer() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2")], client=("203.0.113.9", 1))
    assert run(scope, "*")["client"] == ("1.1.1.1", 0)


def test_cidr_trusted_peer() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=("172.16.5.4", 1))
    assert run(scope, ["172.16.0.0/12"])["client"] == ("1.2.3.4", 0)


def test_ipv6_trusted_peer() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=("::1", 1))
    assert run(scope, ["::1"])["client"] == ("1.2.3.4", 0)


def test_ipv4_mapped_trusted_peer() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=("::ffff:127.0.0.1", 1))
    assert run(scope)["client"] == ("1.2.3.4", 0)


def test_tuple_entries_are_accepted() -> None:
    headers = [[b"x-forwarded-for", b"1.2.3.4"], [b"x-forwarded-proto", b"https"]]
    scope = run(make_scope(headers))  # type: ignore[arg-type]
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"


def test_trusted_hosts_instance_is_used_as_is() -> None:
    trusted = TrustedHosts(["127.0.0.1"])
    middleware = ProxyHeadersMiddleware(RecordingApp(), trusted)
    assert middleware.trusted_hosts is trusted


@pytest.mark.parametrize(
    ("scope_type", "proto", "expected"),
    [
        ("http", "https", "https"),
        ("http", "HTTPS", "https"),
        ("http", " https ", "https"),
        ("http", "http", "http"),
        ("http", "wss", "https"),
        ("http", "ws", "http"),
        ("http", "ftp", "http"),
        ("http", "", "http"),
        ("http", "https, http", "http"),
        ("http", "http, https", "https"),
        ("websocket", "https", "wss"),
        ("websocket", "wss", "wss"),
        ("websocket", "http", "ws"),
        ("websocket", "ws", "ws"),
        ("websocket", "gopher", "ws"),
    ],
)
def test_x_forwarded_proto_scheme_mapping(scope_type: str, proto: str, expected: str) -> None:
    scope = make_scope([(b"x-forwarded-proto", proto.encode())], type=scope_type)
    assert run(scope)["scheme"] == expected


def test_x_forwarded_proto_http_downgrades_https_scope() -> None:
    scope = make_scope([(b"x-forwarded-proto", b"http")])
    scope["scheme"] = "https"
    assert run(scope)["scheme"] == "http"


def test_x_forwarded_proto_alone_keeps_client() -> None:
    scope = run(make_scope([(b"x-forwarded-proto", b"https")]))
    assert scope["client"] == ("127.0.0.1", 5000)
    assert scope["scheme"] == "https"


def test_forwarded_sets_client_and_scheme() -> None:
    scope = run(make_scope([(b"forwarded", b"for=1.2.3.4;proto=https;host=example.com")]))
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"
    # host replaces the Host header, which is where apps read it; the
    # server stays our own socket.
    assert dict(scope["headers"])[b"host"] == b"example.com"
    assert scope["server"] == ("127.0.0.1", 8000)


def test_forwarded_host_replaces_the_host_header() -> None:
    headers = [(b"host", b"backend:8000"), (b"forwarded", b'host="example.com:8443";proto=https'), (b"accept", b"*/*")]
    scope = run(make_scope(headers))
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"example.com:8443"]
    assert (b"accept", b"*/*") in scope["headers"]


@pytest.mark.parametrize("host", [b'"exa mple.com"', b'"evil.example/x"', b'"user@example.com"', b'"[::1"', b"example.com:123456"])
def test_forwarded_host_that_is_not_a_host_is_ignored(host: bytes) -> None:
    scope = run(make_scope([(b"host", b"backend"), (b"forwarded", b"host=" + host)]))
    assert scope["headers"][0] == (b"host", b"backend")


def test_forwarded_host_comes_from_the_clients_hop() -> None:
    value = b"for=6.6.6.6;host=forged.example, for=1.2.3.4;host=example.com, for=10.0.0.2;host=internal"
    scope = run(make_scope([(b"host", b"backend"), (b"forwarded", value)], client=("10.0.0.1", 1)), "10.0.0.0/8")
    assert dict(scope["headers"])[b"host"] == b"example.com"


def test_forwarded_host_from_untrusted_peer_is_ignored() -> None:
    scope = run(make_scope([(b"host", b"backend"), (b"forwarded", b"host=example.com")]), "10.0.0.0/8")
    assert dict(scope["headers"])[b"host"] == b"backend"


def test_forwarded_wins_over_x_forwarded() -> None:
    headers = [
        (b"x-forwarded-for", b"9.9.9.9"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=1.2.3.4;proto=http"),
    ]
    scope = run(make_scope(headers))
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "http"


def test_forwarded_without_proto_ignores_x_forwarded_proto() -> None:
    headers = [(b"x-forwarded-proto", b"https"), (b"forwarded", b"for=1.2.3.4")]
    scope = run(make_scope(headers))
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "http"


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b'for="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", 4711)),
        (b'for="[2001:db8:cafe::17]"', ("2001:db8:cafe::17", 0)),
        (b'for="1.2.3.4:8080"', ("1.2.3.4", 8080)),
        (b"for=1.2.3.4:8080", ("1.2.3.4", 8080)),
        (b'for="1.2.3.4:_port"', ("1.2.3.4", 0)),
        (b'for="1.2.3.4:99999"', ("1.2.3.4", 0)),
        (b"for=_hidden", ("_hidden", 0)),
        (b"for=unknown", ("unknown", 0)),
        (b"FOR=1.2.3.4", ("1.2.3.4", 0)),
    ],
)
def test_forwarded_for_nodes(value: bytes, client: tuple[str, int]) -> None:
    assert run(make_scope([(b"forwarded", value)]))["client"] == client


def test_forwarded_chain_skips_trusted_proxies() -> None:
    value = b'for=6.6.6.6;proto=http, for=1.2.3.4;proto=https, for="[2001:db8:ffff::2]";proto=http'
    scope = make_scope([(b"forwarded", value)], client=("2001:db8:ffff::1", 1))
    scope = run(scope, ["2001:db8:ffff::/48"])
    assert scope["client"] == ("1.2.3.4", 0)
    # proto comes from the client's own hop, not the inner proxies' hops.
    assert scope["scheme"] == "https"


def test_forwarded_chain_all_trusted_uses_leftmost() -> None:
    value = b"for=10.0.0.3;proto=https, for=10.0.0.2;proto=http"
    scope = run(make_scope([(b"forwarded", value)], client=("10.0.0.1", 1)), "10.0.0.0/8")
    assert scope["client"] == ("10.0.0.3", 0)
    assert scope["scheme"] == "https"


def test_forwarded_repeated_header_lines_are_joined() -> None:
    headers = [(b"forwarded", b"for=1.2.3.4;proto=https"), (b"forwarded", b"for=10.0.0.2")]
    scope = run(make_scope(headers, client=("10.0.0.1", 1)), "10.0.0.0/8")
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"


def test_forwarded_element_without_for_keeps_peer_and_applies_proto() -> None:
    scope = run(make_scope([(b"forwarded", b"proto=https;host=example.com")]))
    assert scope["client"] == ("127.0.0.1", 5000)
    assert scope["scheme"] == "https"


def test_forwarded_element_without_for_stops_the_walk() -> None:
    # The proxy did not name its client, so the spoofable element to its left
    # must not be used.
    value = b"for=6.6.6.6, proto=https"
    scope = run(make_scope([(b"forwarded", value)]))
    assert scope["client"] == ("127.0.0.1", 5000)
    assert scope["scheme"] == "https"


def test_forwarded_websocket_scheme() -> None:
    scope = run(make_scope([(b"forwarded", b"for=1.2.3.4;proto=https")], type="websocket"))
    assert scope["scheme"] == "wss"
    scope = run(make_scope([(b"forwarded", b"for=1.2.3.4;proto=http")], type="websocket"))
    assert scope["scheme"] == "ws"


def test_forwarded_unsupported_proto_is_ignored() -> None:
    scope = run(make_scope([(b"forwarded", b"for=1.2.3.4;proto=ftp")]))
    assert scope["scheme"] == "http"
    assert scope["client"] == ("1.2.3.4", 0)


def test_forwarded_malformed_rightmost_element_yields_unknown_client() -> None:
    scope = run(make_scope([(b"forwarded", b"for=6.6.6.6;proto=https, for=1.2.3.4 junk;proto=https")]))
    assert scope["client"] == ("unknown", 0)
    assert scope["scheme"] == "http"


def test_forwarded_unterminated_quote_cannot_hide_proxy_element() -> None:
    # Client sends `for=6.6.6.6, for="x`; our proxy appends its own element.
    value = b'for=6.6.6.6, for="x, for=1.2.3.4'
    assert run(make_scope([(b"forwarded", value)]))["client"] == ("1.2.3.4", 0)
    # Even when the proxy's quote closes the client's, 6.6.6.6 is not believed.
    value = b'for=6.6.6.6, for="x, for="[2001:db8::1]"'
    assert run(make_scope([(b"forwarded", value)]))["client"] == ("unknown", 0)


def test_forwarded_malformed_with_wildcard_walks_to_leftmost() -> None:
    value = b"for=1.1.1.1;proto=https, junk junk, for=2.2.2.2"
    scope = run(make_scope([(b"forwarded", value)], client=("9.9.9.9", 1)), "*")
    assert scope["client"] == ("1.1.1.1", 0)
    assert scope["scheme"] == "https"


def test_forwarded_empty_value_changes_nothing_and_hides_x_forwarded_for() -> None:
    headers = [(b"forwarded", b""), (b"x-forwarded-for", b"9.9.9.9")]
    scope = run(make_scope(headers))
    assert scope["client"] == ("127.0.0.1", 5000)


def test_non_ascii_header_bytes_do_not_crash() -> None:
    headers = [(b"x-forwarded-for", "caf\xe9".encode("latin-1")), (b"forwarded", b'for="\xff\xfe"')]
    scope = run(make_scope(headers))
    assert scope["client"] == ("\xff\xfe", 0)


def test_unix_socket_peer_trusted_by_literal_path() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=None, server=("/tmp/squall.sock", None))
    assert run(scope, ["/tmp/squall.sock"])["client"] == ("1.2.3.4", 0)


def test_unix_socket_peer_untrusted_without_matching_literal() -> None:
    for trusted in (["/tmp/other.sock"], ["127.0.0.1", "::1"]):
        scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=None, server=("/tmp/squall.sock", None))
        assert run(scope, trusted)["client"] is None


def test_unix_socket_peer_ip_server_is_not_literal_match() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=None, server=("127.0.0.1", 8000))
    assert run(scope, ["127.0.0.1"])["client"] is None


def test_unix_socket_peer_trusted_by_wildcard() -> None:
    scope = make_scope([(b"x-forwarded-proto", b"https")], client=None, server=None)
    assert run(scope, "*")["scheme"] == "https"


def test_missing_client_and_server_is_untrusted() -> None:
    scope = make_scope([(b"x-forwarded-for", b"1.2.3.4")], client=None, server=None)
    assert run(scope, ["/tmp/s.sock"])["client"] is None


def test_lifespan_scope_passes_through() -> None:
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    before = copy.deepcopy(scope)
    assert run(scope, "*") == before


def test_app_exception_propagates() -> None:
    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    middleware = ProxyHeadersMiddleware(failing_app)
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(middleware(make_scope(), _receive, _send))
