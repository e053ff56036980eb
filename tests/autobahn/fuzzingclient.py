"""Drive the Autobahn|Testsuite ``fuzzingclient`` against a WebSocket server.

The test suite itself is Python 2.7 only; ``install.sh`` (next to this file)
puts it in ``<repo>/.autobahn/venv``.  This module is plain Python 3 with no
pytest dependency, so it can be used from fixtures, tests or by hand::

    python tests/autobahn/fuzzingclient.py ws://127.0.0.1:8000 --cases '1.*'

Public API:

* ``find_wstest()`` -- path of the installed ``wstest`` or ``None``.
* ``ensure_wstest()`` -- run ``install.sh`` if needed, then ``find_wstest()``.
* ``run_fuzzingclient(url, outdir, cases, exclude, agent, timeout)`` --
  run the cases and return ``{case_id: {"behavior": ..., "behaviorClose": ...,
  ...}}``.  Cases that were selected but have no result (e.g. the client gave
  up after a refused connection) are reported with behavior ``"MISSING"``.
* ``ALL_CASES``, ``CORE_CASES`` (1-10), ``DEFLATE_QUICK_CASES``: case lists.
* ``failures(results)`` -- ``["case 7.5.1: FAILED", ...]`` for every case
  whose behavior or behaviorClose is not OK / NON-STRICT / INFORMATIONAL.
* ``durations_by_group(results)`` -- total milliseconds per top-level group.
* ``wait_for_port(host, port, timeout)`` -- wait until a TCP port accepts.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
INSTALL_SCRIPT = HERE / "install.sh"

#: Where install.sh puts the Python 2.7 virtualenv (override: AUTOBAHN_DIR).
AUTOBAHN_DIR = Path(os.environ.get("AUTOBAHN_DIR", REPO_ROOT / ".autobahn"))

#: Every case group the suite has (there is no 11.*); 12.* and 13.* are the
#: slow permessage-deflate groups.
ALL_CASES: list[str] = [f"{n}.*" for n in range(1, 11)] + ["12.*", "13.*"]
#: The same without permessage-deflate (fast: well under a minute).
CORE_CASES: list[str] = [f"{n}.*" for n in range(1, 11)]
#: Groups of permessage-deflate cases: 12.x differ in payload data, 13.x in
#: the negotiated parameters (window bits, no_context_takeover).
DEFLATE_GROUPS: list[str] = [f"12.{i}" for i in range(1, 6)] + [f"13.{i}" for i in range(1, 8)]
#: A cheap permessage-deflate subset: every 12.x/13.x variant with 1000
#: messages of 16 B (.1) and 4 KiB (.5), plus 8 KiB sent in 256 B fragments
#: (.11). The full 12.*/13.* sets take ~15x longer (up to 128 KiB messages).
DEFLATE_QUICK_CASES: list[str] = [f"{g}.{n}" for g in DEFLATE_GROUPS for n in (1, 5, 11)]

#: Outcomes that count as a pass.
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
MISSING = "MISSING"

#: fuzzingclient protocol options used unless the caller overrides them.
DEFAULT_OPTIONS: dict[str, object] = {"failByDrop": False}


class FuzzingClientError(RuntimeError):
    """wstest could not be run or produced no usable report."""


class FuzzingClientTimeout(FuzzingClientError):
    """wstest did not finish within the given timeout."""


# --------------------------------------------------------------------------
# locating / installing wstest


def find_wstest() -> str | None:
    """Return the path of a runnable ``wstest``, or ``None``.

    ``$AUTOBAHN_WSTEST`` wins if set; otherwise ``<repo>/.autobahn/venv``.
    """
    override = os.environ.get("AUTOBAHN_WSTEST")
    candidates = [Path(override)] if override else []
    candidates.append(AUTOBAHN_DIR / "venv" / "bin" / "wstest")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def ensure_wstest(timeout: float = 900.0) -> str | None:
    """Install the suite with ``install.sh`` if it is not there yet.

    Returns the ``wstest`` path, or ``None`` when no Python 2.7 exists on
    this machine (install.sh then exits 0 without installing anything).
    Raises FuzzingClientError when the install itself fails.
    """
    found = find_wstest()
    if found:
        return found
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=_py2_env(),
    )
    if proc.returncode != 0:
        raise FuzzingClientError(
            f"install.sh failed with exit code {proc.returncode}:\n{proc.stdout[-4000:]}"
        )
    return find_wstest()


def _py2_env() -> dict[str, str]:
    """Environment for Python 2 child processes (no Python 3 leakage)."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    # cryptography warns about Python 2 on every start-up.
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --------------------------------------------------------------------------
# running


def write_spec(
    path: Path,
    url: str,
    cases: Iterable[str],
    exclude: Iterable[str] = (),
    agent: str = "squall",
    options: Mapping[str, object] | None = None,
    report_dir: str = "./reports/servers",
) -> dict:
    """Write a fuzzingclient spec to *path* and return it."""
    opts = dict(DEFAULT_OPTIONS)
    if options:
        opts.update(options)
    spec = {
        "outdir": report_dir,
        "options": opts,
        "servers": [{"agent": agent, "url": url}],
        "cases": list(cases),
        "exclude-cases": list(exclude),
        "exclude-agent-cases": {},
    }
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return spec


def run_fuzzingclient(
    url: str,
    outdir: Path,
    cases: list[str] | None = None,
    exclude: list[str] | None = None,
    agent: str = "squall",
    timeout: float = 600.0,
    *,
    options: Mapping[str, object] | None = None,
    wstest: str | None = None,
) -> dict[str, dict]:
    """Run ``wstest -m fuzzingclient`` against *url* and return its results.

    *outdir* receives ``spec.json``, ``wstest.log`` and ``reports/servers/``
    (``index.html`` there is the human-readable report).  The result maps each
    case id (``"7.5.1"``) to the ``index.json`` entry for it, which holds at
    least ``behavior`` and ``behaviorClose`` (plus ``duration`` in ms,
    ``remoteCloseCode`` and ``reportfile`` when wstest wrote them).
    """
    wstest = wstest or find_wstest()
    if not wstest:
        raise FuzzingClientError(
            "wstest not found: run tests/autobahn/install.sh (needs Python 2.7)"
        )
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    report_dir = outdir / "reports" / "servers"
    if report_dir.exists():
        shutil.rmtree(report_dir)
    spec_path = outdir / "spec.json"
    write_spec(
        spec_path,
        url,
        ALL_CASES if cases is None else cases,
        exclude or [],
        agent,
        options,
    )
    log_path = outdir / "wstest.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=outdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_py2_env(),
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise FuzzingClientTimeout(
                f"wstest did not finish within {timeout:.0f}s; "
                f"log: {log_path}\n{_tail(log_path)}"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
    index = report_dir / "index.json"
    if rc != 0 or not index.is_file():
        raise FuzzingClientError(
            f"wstest exited with {rc} (report {'present' if index.is_file() else 'missing'}); "
            f"log: {log_path}\n{_tail(log_path)}"
        )
    results = parse_index(index, agent)
    for case_id in _selected_cases(log_path):
        results.setdefault(case_id, {"behavior": MISSING, "behaviorClose": MISSING})
    return dict(sorted(results.items(), key=lambda item: case_key(item[0])))


def parse_index(index: Path, agent: str | None = None) -> dict[str, dict]:
    """Read a fuzzingclient ``index.json`` (``{agent: {case: {...}}}``)."""
    data = json.loads(Path(index).read_text())
    if agent is not None and agent in data:
        per_case = data[agent]
    elif len(data) == 1:
        per_case = next(iter(data.values()))
    elif not data:
        per_case = {}
    else:
        raise FuzzingClientError(
            f"{index}: agent {agent!r} not among {sorted(data)}"
        )
    return {str(case): dict(entry) for case, entry in per_case.items()}


def _selected_cases(log_path: Path) -> list[str]:
    """The expanded case list wstest prints as ``Cases = [...]``."""
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("Cases = "):
            try:
                return [str(c) for c in ast.literal_eval(line[len("Cases = "):])]
            except (ValueError, SyntaxError):
                return []
    return []


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# evaluating


def case_key(case_id: str) -> tuple:
    """Sort key for case ids: ``"9.10.1"`` after ``"9.2.1"``."""
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def failures(results: Mapping[str, Mapping]) -> list[str]:
    """Cases whose behavior or behaviorClose is not a pass.

    Returns lines like ``"case 7.5.1: FAILED"``; when only the closing
    handshake is wrong: ``"case 7.5.1: FAILED (close)"``; when both are wrong
    and differ: ``"case 7.5.1: FAILED (close: UNIMPLEMENTED)"``.
    """
    out = []
    for case_id in sorted(results, key=case_key):
        entry = results[case_id] or {}
        behavior = entry.get("behavior") or MISSING
        close = entry.get("behaviorClose") or MISSING
        bad_behavior = behavior not in PASSING
        bad_close = close not in PASSING
        if bad_behavior and bad_close and close != behavior:
            out.append(f"case {case_id}: {behavior} (close: {close})")
        elif bad_behavior:
            out.append(f"case {case_id}: {behavior}")
        elif bad_close:
            out.append(f"case {case_id}: {close} (close)")
    return out


def durations_by_group(results: Mapping[str, Mapping]) -> dict[str, float]:
    """Sum of wstest's per-case ``duration`` (ms) by top-level group ("9")."""
    groups: dict[str, float] = {}
    for case_id, entry in results.items():
        group = case_id.split(".", 1)[0]
        groups[group] = groups.get(group, 0.0) + float(entry.get("duration") or 0)
    return dict(sorted(groups.items(), key=lambda item: case_key(item[0])))


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until ``host:port`` accepts TCP connections (or raise)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{host}:{port} not accepting connections") from None
            time.sleep(0.05)


# --------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="e.g. ws://127.0.0.1:8000")
    parser.add_argument("--outdir", type=Path, default=Path("autobahn-reports"))
    parser.add_argument("--cases", nargs="+", default=ALL_CASES)
    parser.add_argument("--exclude", nargs="*", default=[])
    parser.add_argument("--agent", default="squall")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    if not ensure_wstest():
        print("autobahn: wstest not available (no Python 2.7)", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = run_fuzzingclient(
        args.url, args.outdir, args.cases, args.exclude, args.agent, args.timeout
    )
    elapsed = time.monotonic() - started
    bad = failures(results)
    for line in bad:
        print(line)
    groups = ", ".join(f"{g}.*={ms / 1000:.1f}s" for g, ms in durations_by_group(results).items())
    print(f"{len(results)} cases in {elapsed:.1f}s ({groups})")
    print(f"{len(results) - len(bad)} passed, {len(bad)} failed")
    print(f"report: {args.outdir.resolve() / 'reports' / 'servers' / 'index.html'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
