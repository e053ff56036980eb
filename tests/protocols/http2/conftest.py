"""Fixtures of the HTTP/2 tests.

`h2_serve` starts an in-process server under each event loop with
Squall's HTTP/2 wire layer, and under one loop with the h2 library's.
HTTP/2 does not go through the HTTP/1.1 parser once the connection is
handed over, so only the tests of the handover itself (prior-knowledge
sniffing, h2c upgrade, ALPN) also run under each `--http` implementation,
with `serve`.
`ca` and `tls_files` are a trustme CA and its certificate for 127.0.0.1
(`h2_client.client_ssl` makes a client context trusting it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from h2_apps import H2_VARIANTS
from support import RunningServer, running_server


@pytest.fixture(params=H2_VARIANTS, ids=["-".join(variant) for variant in H2_VARIANTS])
def h2_variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def h2_serve(h2_variant: tuple[str, str]) -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """`with h2_serve(app, **options) as server:` under each (loop, wire layer) pair."""
    loop, wire = h2_variant

    def start(app: Any, **options: Any) -> contextlib.AbstractContextManager[RunningServer]:
        options.setdefault("loop", loop)
        options.setdefault("http2_impl", wire)
        return running_server(app, **options)

    return start


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server's certificate and key, and the CA, as PEM files."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("h2-tls")
    paths = {name: str(directory / f"{name}.pem") for name in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    return paths

