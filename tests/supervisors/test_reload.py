"""`squall --reload`, with each way of noticing changes: watchfiles, and polling when it is missing."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from supervisors.supervised import wait_until
from support import SquallProcess, run_squall

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"%s"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%%d" %% len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


def app_source(version: str) -> str:
    return APP % version


@pytest.fixture(params=["WatchFiles", "StatReload"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The reloader's name in its startup line, and the environment that selects it."""
    # Without bytecode files, two edits within one second can never be
    # served from a stale .pyc.
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    if request.param == "StatReload":
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "watchfiles.py").write_text("raise ImportError('watchfiles is hidden for this test')\n")
        env["PYTHONPATH"] = str(shim)
    return request.param, env


def body(port: int) -> str | None:
    """What the server answers, or None (no server process: the connection waits in the queue)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0).text
    except httpx.HTTPError:
        return None


def test_reload_serves_each_save_and_survives_a_syntax_error(
    tmp_path: Path, backend: tuple[str, dict[str, str]]
) -> None:
    name, env = backend
    app_dir = tmp_path / "project"
    app_dir.mkdir()
    app_file = app_dir / "reloadapp.py"
    app_file.write_text(app_source("one"))
    args = ["reloadapp:app", "--reload", "--reload-dir", str(app_dir), "--reload-delay", "0.1",
            "--port", "0", "--ws", "none", "--lifespan", "off", "--no-access-log"]
    with SquallProcess(*args, cwd=app_dir, env=env) as process:
        port = process.wait_started()
        assert port is not None
        process.wait_for_log(rf"Started reloader process \[\d+\] using {name}")
        wait_until(lambda: body(port) == "one", what="the first version")

        # Files the default excludes leave out change first: only the app's own file is reported.
        (app_dir / ".hidden.py").write_text("x = 1\n")
        (app_dir / "notes.txt").write_text("not code\n")
        app_file.write_text(app_source("two"))
        wait_until(lambda: body(port) == "two", what="the second version")
        changed = process.wait_for_log(r"detected changes in (.*)\. Reloading").group(1)
        assert changed == "'reloadapp.py'"

        app_file.write_text(app_source("three").replace("async def app(", "async def app(:"))
        process.wait_for_log(r'Error importing "reloadapp":\n  File ".*reloadapp\.py", line 2')
        process.wait_for_log(r"\nSyntaxError: ")
        process.wait_for_log(r"exited with code 3; waiting for a change to a watched file")

        app_file.write_text(app_source("four"))
        wait_until(lambda: body(port) == "four", what="the fixed version")

        process.signal(signal.SIGINT)
        assert process.wait() == 0
        assert "Traceback" not in process.output


def test_reload_with_workers_is_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "reloadapp.py").write_text(app_source("one"))
    result = run_squall("reloadapp:app", "--reload", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--reload and --workers are mutually exclusive" in lines[0]
