"""What the benchmark prints and writes: console tables, docs/benchmarks.md
(from page_template.md) and the chart it shows."""

from __future__ import annotations

import string
from pathlib import Path

from _harness import BENCH_DIR
from results import Row, ratio, to_reference
from scenarios import SCENARIOS, Scenario
from servers import CEILING, FLOOR, REFERENCE, SAME_SETTINGS, SERVERS, Launch

# --- numbers -------------------------------------------------------------------------


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"x{value:.2f}"


def _unit(scenario: Scenario) -> str:
    return "msg" if scenario.kind == "websocket" else "req"


def _cpu(row: Row) -> str:
    cpu = _number(row.get("cpu_us"), "{:.1f}")
    if row.cpu_range and row.rounds > 1:
        low, high = row.cpu_range
        cpu += f" ({low:.1f}–{high:.1f})"
    return cpu


def _failure(row: Row) -> str:
    """Empty for a row whose rounds all completed."""
    if not row.failures:
        return ""
    reason = row.failures[0]
    if row.completed:
        return f"failed in {len(row.failures)} of {row.rounds} rounds: {reason}"
    return f"cannot complete: {reason}"


def _columns(scenario: Scenario) -> list[tuple[str, str, str]]:
    """(title, figure, format) of a scenario's table."""
    if scenario.kind == "idle":
        return [
            ("KiB/connection", "idle_kib", "{:.1f}"),
            ("RSS MiB", "rss_mib", "{:.1f}"),
        ]
    unit = _unit(scenario)
    return [
        (f"{unit}/s", "rate", "{:,.0f}"),
        (f"CPU µs/{unit}", "cpu_us", "{:.1f}"),
        ("p50 ms", "p50_ms", "{:.2f}"),
        ("p99 ms", "p99_ms", "{:.2f}"),
        ("RSS MiB", "rss_mib", "{:.1f}"),
    ]


def _main_figure(scenario: Scenario) -> str:
    return "idle_kib" if scenario.kind == "idle" else "cpu_us"


# --- console ---------------------------------------------------------------------------


def print_tables(rows: dict[tuple[str, str], Row]) -> None:
    for scenario in SCENARIOS.values():
        mine = [row for key, row in rows.items() if key[0] == scenario.name]
        if not mine:
            continue
        columns = _columns(scenario)
        main = _main_figure(scenario)
        print(f"\n{scenario.title} ({scenario.name})")
        header = f"{'server':<12}" + "".join(f"{title:>16}" for title, _, _ in columns)
        print(header + f"{'vs ' + REFERENCE:>16}")
        for row in mine:
            line = f"{row.server:<12}"
            if row.completed:
                line += "".join(f"{_number(row.get(key), form):>16}" for _, key, form in columns)
                line += f"{_ratio(to_reference(rows, row, main)):>16}"
            if row.failures:
                line += "  " + _failure(row)
            print(line)


# --- the page --------------------------------------------------------------------------


def _table(rows: dict[tuple[str, str], Row], scenario: Scenario) -> list[str]:
    mine = [row for key, row in rows.items() if key[0] == scenario.name]
    columns = _columns(scenario)
    ratios: list[tuple[str, str, str]] = []  # (title, figure, scenario compared with)
    if REFERENCE in scenario.servers:
        if scenario.kind == "idle":
            ratios.append(("vs Uvicorn", "idle_kib", ""))
        else:
            ratios.append(("CPU vs Uvicorn", "cpu_us", ""))
            ratios.append((f"{_unit(scenario)}/s vs Uvicorn", "rate", ""))
    if scenario.compare_to:
        ratios.append(
            (f"CPU vs own {SCENARIOS[scenario.compare_to].label}", "cpu_us", scenario.compare_to)
        )
    titles = ["Server", *(title for title, _, _ in columns), *(title for title, _, _ in ratios)]
    lines = [
        "| " + " | ".join(titles) + " |",
        "| --- |" + " ---: |" * (len(titles) - 1),
    ]
    notes = []
    for row in mine:
        name = SERVERS[row.server].title
        if not row.completed:
            lines.append(f"| {name} | {_failure(row)} |" + " |" * (len(titles) - 2))
            continue
        cells = [
            _cpu(row) if key == "cpu_us" else _number(row.get(key), form)
            for _, key, form in columns
        ]
        for _, figure, other in ratios:
            if other:
                value = ratio(rows, figure, (scenario.name, row.server), (other, row.server))
            else:
                value = to_reference(rows, row, figure)
            cells.append(_ratio(value))
        bold = "**" if row.server == "squall" else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + " |")
        if row.failures:
            notes.append(f"- {name}: {_failure(row)}")
    return lines + ([""] + notes if notes else [])


def _ratio_summary(rows: dict[tuple[str, str], Row]) -> list[str]:
    """Scenarios down, servers across: CPU per request relative to Uvicorn's."""
    servers = [name for name in SERVERS if any(key[1] == name for key in rows)]
    lines = [
        "| Scenario | " + " | ".join(SERVERS[name].title for name in servers) + " |",
        "| --- |" + " ---: |" * len(servers),
    ]
    for scenario in SCENARIOS.values():
        if not any(key[0] == scenario.name for key in rows):
            continue
        cells = []
        for name in servers:
            row = rows.get((scenario.name, name))
            if row is None:
                cells.append("")
            elif not row.completed:
                cells.append("cannot complete")
            else:
                cells.append(_ratio(to_reference(rows, row, _main_figure(scenario))))
        lines.append(f"| {scenario.title} | " + " | ".join(cells) + " |")
    return lines


def _list(ratios: list[tuple[str, float]]) -> str:
    return ", ".join(f"{label} x{value:.2f}" for label, value in ratios)


def _findings(rows: dict[tuple[str, str], Row]) -> list[str]:
    """Sentences that quote ratios only: absolute rates depend on the machine."""
    sentences = []
    for ours, theirs in SAME_SETTINGS:
        found = [
            (s.label, r)
            for s in SCENARIOS.values()
            if (r := ratio(rows, _main_figure(s), (s.name, ours), (s.name, theirs))) is not None
        ]
        if found:
            sentences.append(
                f"- {SERVERS[ours].title} against {SERVERS[theirs].title}, CPU per request "
                f"(memory per connection for idle connections): {_list(found)}."
            )
    for reference in (CEILING, FLOOR):
        found = [
            (s.label, r)
            for s in SCENARIOS.values()
            if (r := ratio(rows, "cpu_us", (s.name, reference), (s.name, "squall"))) is not None
        ]
        if found:
            sentences.append(f"- The {SERVERS[reference].title}'s CPU per request against Squall's: {_list(found)}.")
    for scenario in SCENARIOS.values():
        if not scenario.compare_to:
            continue
        found = [
            (SERVERS[server].title, r)
            for (name, server), row in rows.items()
            if name == scenario.name
            and (r := ratio(rows, "cpu_us", (name, server), (scenario.compare_to, server)))
            is not None
        ]
        if found:
            listed = ", ".join(f"{title} x{value:.2f}" for title, value in found)
            sentences.append(
                f"- CPU per request in the {scenario.label} scenario, against the same "
                f"server's in the {SCENARIOS[scenario.compare_to].label} one: {listed}."
            )
    failed = [
        f"{SERVERS[row.server].title} ({SCENARIOS[row.scenario].label})"
        for row in rows.values()
        if not row.completed
    ]
    if failed:
        sentences.append(f"- Cannot complete: {', '.join(failed)}; the tables say why.")
    return sentences


def _environment(env: dict, settings: dict) -> list[str]:
    versions = ", ".join(f"{name} {v}" for name, v in env["versions"].items() if v)
    pinning = (
        f"server pinned to CPU {env['pinning'][0]}, load generator to CPU {env['pinning'][1]}"
        if env["pinning"]
        else "nothing pinned (fewer than two CPUs)"
    )
    load = f"{env['load_average_before']:.1f} before the run"
    if "load_average_after" in env:
        load += f", {env['load_average_after']:.1f} after"
    lines = [
        f"- **Date**: {env['date']}; the run took {env.get('elapsed_seconds', 0) / 60:.1f} min",
        f"- **Machine**: {env['cpu']}, {env['cpu_count']} CPUs, {env['platform']}; {pinning}",
        f"- **Load average**: {load}",
        f"- **Python**: {env['python']}",
        f"- **Versions**: {versions}; {env['h2load'] or 'h2load'}",
        f"- **Command**: `{env['command']}` ({settings['rounds']} interleaved "
        f"round{'s' if settings['rounds'] != 1 else ''}, counts x{settings['scale']:g})",
    ]
    return lines


def _servers_section() -> list[str]:
    lines = []
    for spec in SERVERS.values():
        command = spec.command(Launch(port=8000))
        shown = " ".join([*(f"{name}={value}" for name, value in spec.env), "python", *command[1:]])
        shown = shown.replace(str(BENCH_DIR), "bench")
        lines.append(f"- **{spec.title}**: `{shown}`")
    return lines


def _scenarios_section() -> list[str]:
    lines = ["| Scenario | Load | Count | Servers |", "| --- | --- | ---: | --- |"]
    for s in SCENARIOS.values():
        if s.kind == "idle":
            load = "connections opened one by one, one request each, then left idle"
        elif s.kind == "websocket":
            load = f"`ws_load.py`, {s.connections} WebSockets to `/ws`"
        else:
            load = f"`h2load{' --h1' if s.kind == 'http1' else ''} -c {s.connections}"
            load += f" -m {s.streams}" if s.streams > 1 else ""
            load += f" -d {s.upload}B-file" if s.upload else ""
            load += f"` on `{s.path}`"
        servers = ", ".join(SERVERS[name].title for name in s.servers)
        lines.append(f"| {s.title} | {load} | {s.count:,} | {servers} |")
    return lines


def write_page(
    path: Path,
    rows: dict[tuple[str, str], Row],
    env: dict,
    settings: dict,
    chart: str | None,
    note: str | None,
) -> None:
    results = _environment(env, settings)
    if note:
        results += ["", f"> {note}"]
    if chart:
        results += ["", f"![Server CPU time per request, per scenario]({chart})"]
    results += [
        "",
        "### What the figures say",
        "",
        *(_findings(rows) or ["- Nothing to compare: too few servers completed."]),
        "",
        "### CPU time per request, relative to Uvicorn",
        "",
        "Lower is better; for idle connections, memory per connection.",
        "",
        *_ratio_summary(rows),
    ]
    for scenario in SCENARIOS.values():
        if any(key[0] == scenario.name for key in rows):
            results += ["", f"### {scenario.title}", "", *_table(rows, scenario)]
    template = string.Template((BENCH_DIR / "page_template.md").read_text())
    path.write_text(
        template.substitute(
            results="\n".join(results),
            servers="\n".join(_servers_section()),
            scenarios="\n".join(_scenarios_section()),
        )
    )


# --- the chart -------------------------------------------------------------------------

COLOURS = {
    "squall": "#1f5fbf",
    "squall-pure": "#7fa8e6",
    "uvicorn": "#e07b00",
    "uvicorn-h11": "#f2b766",
    "granian": "#2e9e4f",
    "h2corn": "#8e44ad",
    "hypercorn": "#7f7f7f",
    "floor": "#b5a642",
}


def write_chart(path: Path, rows: dict[tuple[str, str], Row]) -> None:
    """Grouped bars of CPU µs per request, one group per scenario and one bar
    per server, on a log scale (the scenarios' costs span two orders of
    magnitude); the raw ceiling is a black line across its group, and a
    server that cannot complete a scenario is a red cross."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import ScalarFormatter

    scenarios = [
        s for s in SCENARIOS.values() if s.kind != "idle" and any(k[0] == s.name for k in rows)
    ]
    servers = [name for name in COLOURS if any(key[1] == name for key in rows)]
    width = 0.8 / max(len(servers), 1)
    figure, axes = pyplot.subplots(figsize=(13, 5.5), dpi=100)
    axes.set_yscale("log")
    for i, scenario in enumerate(scenarios):
        for j, server in enumerate(servers):
            row = rows.get((scenario.name, server))
            x = i - 0.4 + width * (j + 0.5)
            if row is not None and row.completed:
                axes.bar(x, row.get("cpu_us"), width, color=COLOURS[server])
            elif row is not None:  # at the foot of the axes, whatever the scale
                axes.plot(
                    x, 0.03, marker="x", color="red", markersize=8, mew=2,
                    transform=axes.get_xaxis_transform(),
                )  # fmt: skip
        ceiling = rows.get((scenario.name, CEILING))
        if ceiling is not None and ceiling.completed:
            axes.hlines(ceiling.get("cpu_us"), i - 0.45, i + 0.45, colors="black", linewidth=2)
    axes.set_xticks(range(len(scenarios)))
    axes.set_xticklabels([s.label for s in scenarios])
    # Plain numbers on the log axis, not powers of ten.
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes.tick_params(axis="y", which="minor", labelsize=7)
    axes.set_ylabel("server CPU µs per request (log scale)")
    axes.set_title("Server CPU time per request (per message for WebSocket): lower is better")
    axes.grid(axis="y", which="both", alpha=0.3)
    legend = [Patch(color=COLOURS[name], label=SERVERS[name].title) for name in servers]
    legend.append(Line2D([], [], color="black", linewidth=2, label=SERVERS[CEILING].title))
    legend.append(
        Line2D([], [], color="red", marker="x", mew=2, linestyle="none", label="cannot complete")
    )
    axes.legend(handles=legend, fontsize=8, ncol=3, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
