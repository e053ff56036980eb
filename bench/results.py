"""From measurements to what is reported: medians over the rounds, ratios,
and the description of the machine the figures come from."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from statistics import median

from measure import FIGURES, Measurement
from scenarios import SCENARIOS
from servers import REFERENCE, SERVERS


@dataclass
class Row:
    """One server in one scenario, over all rounds."""

    scenario: str
    server: str
    rounds: int = 0
    failures: list[str] = field(default_factory=list)  # one reason per failed round
    figures: dict[str, float] = field(default_factory=dict)  # medians; empty if none completed
    cpu_range: tuple[float, float] | None = None  # lowest and highest CPU µs over the rounds

    @property
    def completed(self) -> bool:
        return bool(self.figures)

    def get(self, figure: str) -> float | None:
        return self.figures.get(figure)


def summarise(measurements: list[Measurement]) -> dict[tuple[str, str], Row]:
    """Rows keyed by (scenario, server), in scenario then server order."""
    rows: dict[tuple[str, str], Row] = {}
    for m in measurements:
        row = rows.setdefault((m.scenario, m.server), Row(m.scenario, m.server))
        row.rounds += 1
        if m.error is not None:
            row.failures.append(m.error.splitlines()[0])
    for (scenario, server), row in rows.items():
        done = [
            m for m in measurements
            if (m.scenario, m.server) == (scenario, server) and m.error is None
        ]  # fmt: skip
        for figure in FIGURES:
            values = [getattr(m, figure) for m in done if getattr(m, figure) is not None]
            if values:
                row.figures[figure] = median(values)
        cpu = [m.cpu_us for m in done if m.cpu_us is not None]
        if cpu:
            row.cpu_range = (min(cpu), max(cpu))
    order = {name: i for i, name in enumerate(SCENARIOS)}
    servers = {name: i for i, name in enumerate(SERVERS)}
    return dict(sorted(rows.items(), key=lambda kv: (order[kv[0][0]], servers[kv[0][1]])))


def ratio(
    rows: dict[tuple[str, str], Row], figure: str, a: tuple[str, str], b: tuple[str, str]
) -> float | None:
    """rows[a]'s figure over rows[b]'s, when both completed."""
    if a not in rows or b not in rows:
        return None
    x, y = rows[a].get(figure), rows[b].get(figure)
    return x / y if x is not None and y else None


def to_reference(rows: dict[tuple[str, str], Row], row: Row, figure: str) -> float | None:
    """A row's figure over Uvicorn's in the same scenario."""
    return ratio(rows, figure, (row.scenario, row.server), (row.scenario, REFERENCE))


# --- the machine -------------------------------------------------------------------

VERSIONED = (
    "squall",
    "uvicorn",
    "granian",
    "h2corn",
    "hypercorn",
    "uvloop",
    "httptools",
    "h11",
    "websockets",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _tool_version(command: list[str]) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else None


def environment(pinning: tuple[int, int] | None, command: str) -> dict:
    """What the page says about where and with what the figures were taken."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "pinning": list(pinning) if pinning else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in VERSIONED},
        "h2load": _tool_version(["h2load", "--version"]),
        "command": command,
        "load_average_before": os.getloadavg()[0],
    }
