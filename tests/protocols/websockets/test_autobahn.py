"""Autobahn|Testsuite's fuzzingclient against every `--ws` implementation.

Cases 1-10 and 12-13 (12 and 13: permessage-deflate) run against an echo app,
and every case must come out OK, NON-STRICT or INFORMATIONAL.  The suite is
Python 2.7 only: `tests/autobahn/install.sh` (run by `make test-tools`)
installs it, and without a Python 2.7 these tests skip and say why.

It is slow (the 128 KiB permessage-deflate cases most of all), so:
- the implementations run at once, each against its own `squall` process;
- `--ws websockets-sansio` is the `--ws websockets` class under another
  name: its result is that run's, as long as the class adds nothing;
- `--ws websockets` also runs with every frame left to the library
  (`ws_helpers.LibraryFramesProtocol`), the fallback of its plain-frame
  reader, without groups 12 and 13: with permessage-deflate in use every
  frame goes to the library anyway, so they would repeat the first run;
- `SQUALL_AUTOBAHN_CASES` (e.g. `1.*,2.*`) and `SQUALL_AUTOBAHN_EXCLUDE`
  (e.g. `12.*.10,13.*.10`: wstest reads a pattern with `*` as a prefix) pick
  the cases for a quicker run; without them the whole suite runs.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import SquallProcess
from ws_helpers import LIBRARY_FRAMES

HERE = Path(__file__).resolve().parent
FUZZINGCLIENT = HERE.parents[1] / "autobahn" / "fuzzingclient.py"
WS_IMPLS = ["websockets", "websockets-sansio", LIBRARY_FRAMES, "wsproto"]
# A run that takes longer than this is stuck, not slow.
RUN_TIMEOUT = 40 * 60.0
# The suite has no group 8 or 11.
FULL_GROUPS = {"1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13"}
# Cases a run leaves out (see the module's doc), as wstest patterns and as groups.
LEFT_OUT = {LIBRARY_FRAMES: ["12.*", "13.*"]}


def _left_out_groups(ws: str) -> set[str]:
    return {pattern.split(".", 1)[0] for pattern in LEFT_OUT.get(ws, [])}


def _load_fuzzingclient() -> ModuleType:
    # By path: tests/autobahn is no package, and `autobahn` is a real PyPI name.
    spec = importlib.util.spec_from_file_location("squall_autobahn_fuzzingclient", FUZZINGCLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzzingclient = _load_fuzzingclient()


def _patterns(variable: str) -> list[str]:
    return [pattern.strip() for pattern in os.environ.get(variable, "").split(",") if pattern.strip()]


def _whole_suite() -> bool:
    return not _patterns("SQUALL_AUTOBAHN_CASES") and not _patterns("SQUALL_AUTOBAHN_EXCLUDE")


def _same_as(ws: str) -> str:
    """The implementation whose run stands for `ws`: itself, unless `ws` only renames a class."""
    from squall.config import WS_PROTOCOLS

    module, _, name = (WS_PROTOCOLS.get(ws, ws) or "").partition(":")
    cls = getattr(importlib.import_module(module), name)
    own = set(vars(cls)) - {"__module__", "__qualname__", "__doc__", "__firstlineno__", "__static_attributes__"}
    for other in WS_IMPLS:
        if other != ws and not own and WS_PROTOCOLS[other] == _qualified(cls.__mro__[1]):
            return other
    return ws


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _run(ws: str, wstest: str, outdir: Path) -> tuple[dict[str, dict], float]:
    args = ["ws_helpers:echo", "--app-dir", str(HERE), "--port", "0", "--ws", ws, "--lifespan", "off", "--no-access-log"]
    with SquallProcess(*args) as server:
        port = server.wait_started()
        started = time.monotonic()
        results = fuzzingclient.run_fuzzingclient(
            f"ws://127.0.0.1:{port}",
            outdir,
            _patterns("SQUALL_AUTOBAHN_CASES") or list(fuzzingclient.ALL_CASES),
            _patterns("SQUALL_AUTOBAHN_EXCLUDE") + LEFT_OUT.get(ws, []),
            agent=f"squall-{ws}",
            timeout=RUN_TIMEOUT,
            wstest=wstest,
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
    runs = sorted({_same_as(ws) for ws in WS_IMPLS})
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        futures = {ws: pool.submit(_run, ws, wstest, outdir / ws) for ws in runs}
        yield {ws: futures[_same_as(ws)] for ws in WS_IMPLS}


@pytest.mark.timeout(RUN_TIMEOUT + 120)
@pytest.mark.parametrize("ws", WS_IMPLS)
def test_autobahn_fuzzingclient(autobahn_runs: dict[str, concurrent.futures.Future[Any]], ws: str) -> None:
    results, elapsed = autobahn_runs[ws].result()
    if _whole_suite():
        groups = {case.split(".", 1)[0] for case in results}
        assert groups == FULL_GROUPS - _left_out_groups(ws), sorted(groups)
    assert results, "wstest ran no case"
    bad = fuzzingclient.failures(results)
    timing = ", ".join(f"{g}.*={ms / 1000:.0f}s" for g, ms in fuzzingclient.durations_by_group(results).items())
    run_by = _same_as(ws)
    print(f"--ws {ws}: {len(results)} cases in {elapsed:.0f}s ({timing})" + (f", by the {run_by} run" if run_by != ws else ""))
    assert not bad, f"--ws {ws}: {len(bad)} of {len(results)} cases failed:\n" + "\n".join(bad)


def test_the_alias_shares_a_run_only_while_it_adds_nothing() -> None:
    assert _same_as("websockets-sansio") == "websockets"
    assert _same_as("websockets") == "websockets"
    assert _same_as("wsproto") == "wsproto"
    assert _same_as(LIBRARY_FRAMES) == LIBRARY_FRAMES  # it sets plain_frames
