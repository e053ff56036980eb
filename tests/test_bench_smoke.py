"""The benchmark suite (bench/) runs end to end, with tiny counts, so that it
cannot rot between two benchmark runs. No figure is judged: timings belong
to `make bench`, never to the test suite."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SERVERS = ("squall", "uvicorn", "floor")  # floor: bench/asgi_floor.py, the benchmark's own
SCALE = 0.002  # about one request per connection where `make bench` sends 30,000


def planned() -> dict[str, dict]:
    """Each scenario's kind, title, servers and scaled count, from bench/scenarios.py
    itself (imported in a child process: bench/ modules are not a package)."""
    code = (
        "import json, scenarios\n"
        "print(json.dumps({s.name: {'kind': s.kind, 'title': s.title, 'servers': s.servers, "
        f"'count': s.scaled({SCALE})}} for s in scenarios.SCENARIOS.values()}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.timeout(150)
def test_every_scenario_gives_figures_for_squall_and_uvicorn(tmp_path: Path) -> None:
    if shutil.which("h2load") is None:
        pytest.skip(
            "h2load is not installed (Debian package nghttp2-client; `make test-tools` installs it)"
        )
    plan = planned()
    result = subprocess.run(
        [
            sys.executable, str(BENCH / "run.py"), "--servers", ",".join(SERVERS),
            "--rounds", "1", "--scale", str(SCALE), "--timeout", "30",
            "--output", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=140,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    data = json.loads((tmp_path / "benchmarks.json").read_text())
    measured = {(m["scenario"], m["server"]): m for m in data["measurements"]}
    expected = {
        (name, server)
        for name, scenario in plan.items()
        for server in scenario["servers"]
        if server in SERVERS
    }
    assert set(measured) == expected
    assert len(data["measurements"]) == len(expected)  # one round: one each

    page = (tmp_path / "benchmarks.md").read_text()
    for (name, server), m in measured.items():
        kind = plan[name]["kind"]
        assert m["error"] is None, f"{server} failed {name}: {m['error']}"
        assert m["count"] == plan[name]["count"], (name, server)
        assert m["rss_mib"] > 0, (name, server)
        if kind == "idle":
            assert m["idle_kib"] is not None, (name, server)
        else:
            assert m["rate"] > 0 and m["cpu_us"] >= 0, (name, server, m)
            assert 0 < m["p50_ms"] <= m["p99_ms"], (name, server, m)

    assert "![Server CPU time per request" in page
    assert "| Scenario | Squall | Uvicorn | ASGI floor |" in page  # the floor beside the others
    for scenario in plan.values():
        assert f"### {scenario['title']}\n" in page
    chart = (tmp_path / "benchmarks.png").read_bytes()
    assert chart.startswith(b"\x89PNG\r\n\x1a\n") and len(chart) > 10_000

    # A server that could not complete a scenario keeps its row, which says why.
    failed = next(m for m in data["measurements"] if m["scenario"] == "json" and m["server"] == "uvicorn")
    failed.update({figure: None for figure in ("count", "seconds", "rate", "cpu_us", "p50_ms", "p99_ms", "rss_mib")})
    failed["error"] = "uvicorn is not running (exit code 1):\nthe rest of its output"
    (tmp_path / "failed.json").write_text(json.dumps(data))
    rendered = subprocess.run(
        [
            sys.executable, str(BENCH / "run.py"),
            "--from-json", str(tmp_path / "failed.json"), "--output", str(tmp_path / "failed"),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    page = (tmp_path / "failed" / "benchmarks.md").read_text()
    assert "cannot complete: uvicorn is not running (exit code 1):" in page


@pytest.mark.timeout(300)
def test_instruction_counts_come_out_for_squall_and_uvicorn() -> None:
    """`make bench-instructions` (bench/instructions.py) with a tiny count: a figure for each server, none judged."""
    for tool, package in (("valgrind", "valgrind"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {package}; `make test-tools` installs it)")
    result = subprocess.run(
        [
            sys.executable, str(BENCH / "instructions.py"), "--servers", "squall,uvicorn",
            "--scenarios", "hello", "--count", "200",
        ],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    row = re.search(r"^\| Plaintext hello \| ([\d,]+) \(x([\d.]+)\) \| ([\d,]+) \(x1\.00\) \|$", result.stdout, re.MULTILINE)
    assert row is not None, result.stdout
    squall, ratio, uvicorn = int(row[1].replace(",", "")), float(row[2]), int(row[3].replace(",", ""))
    assert squall > 1000 and uvicorn > 1000
    assert ratio == pytest.approx(squall / uvicorn, abs=0.006)


@pytest.mark.timeout(120)
def test_a_server_that_fails_is_a_result_and_the_others_still_take_their_turns() -> None:
    """A server that cannot start gets an error instead of figures; the one beside it is measured in full."""
    if shutil.which("h2load") is None:
        pytest.skip("h2load is not installed (Debian package nghttp2-client; `make test-tools` installs it)")
    code = (
        "import json, sys\n"
        "from dataclasses import asdict, replace\n"
        "from measure import Settings, measure\n"
        "from scenarios import SCENARIOS\n"
        "from servers import SERVERS\n"
        "broken = replace(SERVERS['squall'], name='broken',\n"
        "                 build=lambda launch: [sys.executable, '-c', 'raise SystemExit(3)'])\n"
        "settings = Settings(scale=0.02, server_cpu=None, client_cpu=None, timeout=30)\n"
        "measured = measure(SCENARIOS['hello'], [broken, SERVERS['squall']], 1, settings)\n"
        "print(json.dumps([asdict(m) for m in measured]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr[-3000:]
    broken, squall = json.loads(result.stdout)
    assert broken["server"] == "broken" and broken["cpu_us"] is None
    assert "broken exited with 3" in broken["error"]
    assert squall["error"] is None
    assert squall["count"] == 600  # 30,000 x 0.02, in five parts of 120
    assert 0 < squall["p50_ms"] <= squall["p99_ms"] and squall["cpu_us"] > 0
