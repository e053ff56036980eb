"""Autobahn|Testsuite's fuzzingclient against every `--ws` implementation.

Cases 1-10 and 12-13 (13: permessage-deflate with every parameter set) are
run against an echo app, and every case must come out OK, NON-STRICT or
INFORMATIONAL.  The suite is Python 2.7 only: `tests/autobahn/install.sh`
(run by `make test-tools`) installs it, and without a Python 2.7 these
tests skip and say why.

The three runs go at once, each against its own `squall` process: wstest
spends much of each case waiting, so they overlap well even on two cores.
The first test to need a result starts them all; each test then reports on
its own implementation.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import SquallProcess

HERE = Path(__file__).resolve().parent
FUZZINGCLIENT = HERE.parents[1] / "autobahn" / "fuzzingclient.py"
WS_IMPLS = ["websockets", "websockets-sansio", "wsproto"]
# The whole suite must fit in `make test`; a run over this is a failure in itself.
RUN_TIMEOUT = 20 * 60.0


def _load_fuzzingclient() -> ModuleType:
    # By path: tests/autobahn is no package, and `autobahn` is a real PyPI name.
    spec = importlib.util.spec_from_file_location("squall_autobahn_fuzzingclient", FUZZINGCLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzzingclient = _load_fuzzingclient()


def _run_one(ws: str, wstest: str, outdir: Path) -> tuple[dict[str, dict], float]:
    args = ["ws_helpers:echo", "--app-dir", str(HERE), "--port", "0", "--ws", ws, "--lifespan", "off", "--no-access-log"]
    with SquallProcess(*args) as server:
        port = server.wait_started()
        started = time.monotonic()
        results = fuzzingclient.run_fuzzingclient(
            f"ws://127.0.0.1:{port}", outdir, fuzzingclient.ALL_CASES, agent=f"squall-{ws}", timeout=RUN_TIMEOUT, wstest=wstest
        )
        return results, time.monotonic() - started


@pytest.fixture(scope="module")
def autobahn_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, concurrent.futures.Future[Any]]]:
    try:
        wstest = fuzzingclient.ensure_wstest()
    except fuzzingclient.FuzzingClientError as exc:
        pytest.skip(f"Autobahn|Testsuite could not be installed: {exc}")
    if wstest is None:
        pytest.skip("Autobahn|Testsuite needs Python 2.7 and none was found (see tests/autobahn/install.sh)")
    outdir = tmp_path_factory.mktemp("autobahn")
    with concurrent.futures.ThreadPoolExecutor(len(WS_IMPLS)) as pool:
        yield {ws: pool.submit(_run_one, ws, wstest, outdir / ws) for ws in WS_IMPLS}


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("ws", WS_IMPLS)
def test_autobahn_fuzzingclient(autobahn_runs: dict[str, concurrent.futures.Future[Any]], ws: str) -> None:
    results, elapsed = autobahn_runs[ws].result()
    groups = {case.split(".", 1)[0] for case in results}
    assert groups == {str(n) for n in (*range(1, 11), 12, 13)}, sorted(groups)
    bad = fuzzingclient.failures(results)
    timing = ", ".join(f"{g}.*={ms / 1000:.0f}s" for g, ms in fuzzingclient.durations_by_group(results).items())
    print(f"--ws {ws}: {len(results)} cases in {elapsed:.0f}s ({timing})")
    assert not bad, f"--ws {ws}: {len(bad)} of {len(results)} cases failed:\n" + "\n".join(bad)
