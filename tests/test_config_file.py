"""The config file and where settings come from: the real `squall` command in a temporary directory.

Precedence is command line > environment > file > defaults; the file is
--config FILE ($SQUALL_CONFIG), else [tool.squall] in ./pyproject.toml, else
./squall.toml.  Most tests ask --print-config or --check-config, which exit
by themselves; a few start the server and send it a real request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import LoggedProcess, SquallProcess, run_squall

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"from %s" % __name__.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """A working directory with two apps, each saying its module name."""
    (tmp_path / "filed.py").write_text(APP)
    (tmp_path / "other.py").write_text(APP)
    return tmp_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SQUALL_", "UVICORN_")) or name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def print_config(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """--print-config's lines as {name: (value, source)}."""
    result = run_squall(*args, "--print-config", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    settings = {}
    for line in result.stdout.splitlines():
        setting, _, source = line.partition("  # ")
        name, _, value = setting.partition(" = ")
        settings[name] = (value, source)
    return settings


def assert_usage_error(result: subprocess.CompletedProcess[str], line: str, code: int = 2) -> None:
    """One line, exactly `line`, and the exit status; nothing else printed."""
    output = (result.stderr + result.stdout).strip()
    assert result.returncode == code, output
    assert output == line


# -- values take effect, in order of precedence --------------------------------------------


def test_file_values_are_served(cwd: Path) -> None:
    port = free_port()
    (cwd / "squall.toml").write_text(f'app = "filed:app"\nport = {port}\nheaders = [["x-from", "file"], "x-also:yes"]\nserver_header = false\n')
    with SquallProcess(cwd=cwd) as squall:
        assert squall.wait_started() == port
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert response.text == "from filed"
        assert response.headers["x-from"] == "file"
        assert response.headers["x-also"] == "yes"
        assert "server" not in response.headers
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_environment_overrides_file_and_command_line_overrides_both(cwd: Path) -> None:
    file_port, env_port, cli_port = free_port(), free_port(), free_port()
    (cwd / "squall.toml").write_text(f'app = "filed:app"\nport = {file_port}\ntimeout_keep_alive = 7\n')
    env = {"SQUALL_PORT": str(env_port), "SQUALL_APP": "other:app"}
    with SquallProcess(cwd=cwd, env=env) as squall:
        assert squall.wait_started() == env_port
        assert httpx.get(f"http://127.0.0.1:{env_port}/").text == "from other"
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    settings = print_config(cwd, "filed:app", "--port", str(cli_port), env=env)
    assert settings["port"] == (str(cli_port), "command line")
    assert settings["app"] == ('"filed:app"', "command line")
    assert settings["timeout_keep_alive"] == ("7", "file (squall.toml)")
    settings = print_config(cwd, env=env)
    assert settings["port"] == (str(env_port), "environment (SQUALL_PORT)")
    assert settings["app"] == ('"other:app"', "environment (SQUALL_APP)")


def test_print_config_names_every_setting_and_its_source(cwd: Path) -> None:
    (cwd / "squall.toml").write_text(
        'workers = 2\nreload-dirs = ["."]\nlog_level = "debug"\nssl_keyfile_password = "hunter2"\ntimeout_graceful_streams = 2.5\n'
    )
    settings = print_config(cwd, "filed:app", "--no-access-log", env={"UVICORN_BACKLOG": "64", "SQUALL_HOST": "0.0.0.0"})
    assert settings["app"] == ('"filed:app"', "command line")
    assert settings["access_log"] == ("false", "command line")
    assert settings["host"] == ('"0.0.0.0"', "environment (SQUALL_HOST)")
    assert settings["backlog"] == ("64", "environment (UVICORN_BACKLOG)")
    assert settings["workers"] == ("2", "file (squall.toml)")
    assert settings["reload_dirs"] == ('["."]', "file (squall.toml)")
    assert settings["log_level"] == ('"debug"', "file (squall.toml)")
    assert settings["ssl_keyfile_password"] == ('"********"', "file (squall.toml)")
    assert settings["timeout_graceful_streams"] == ('"2.5"', "file (squall.toml)")  # the option takes a string
    assert settings["timeout_keep_alive"] == ("5", "default")
    assert settings["uds"] == ("(not set)", "default")
    # Every option of --help is there, and nothing about the command itself.
    help_text = run_squall("--help").stdout
    for name in settings:
        assert f"--{name.replace('_', '-')}" in help_text or name in ("app", "reload_dirs", "reload_includes", "reload_excludes", "headers")
    assert not {"config", "print_config", "check_config", "version", "help"} & set(settings)


def test_print_config_does_not_import_the_app(cwd: Path) -> None:
    (cwd / "loud.py").write_text("raise SystemExit('imported!')\n")
    settings = print_config(cwd, "loud:app")
    assert settings["app"] == ('"loud:app"', "command line")


def test_print_config_shows_web_concurrency(cwd: Path) -> None:
    settings = print_config(cwd, "filed:app", env={"WEB_CONCURRENCY": "3"})
    assert settings["workers"] == ("3", "environment (WEB_CONCURRENCY)")


# -- which file ------------------------------------------------------------------------------


def test_pyproject_table_wins_over_squall_toml(cwd: Path) -> None:
    (cwd / "squall.toml").write_text("port = 1111\nbacklog = 11\n")
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.squall]\nport = 2222\n')
    settings = print_config(cwd, "filed:app")
    assert settings["port"] == ("2222", "file (pyproject.toml [tool.squall])")
    assert settings["backlog"] == ("2048", "default")  # squall.toml is not read at all


def test_pyproject_without_the_table_falls_back_to_squall_toml(cwd: Path) -> None:
    (cwd / "squall.toml").write_text("port = 1111\n")
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.other]\nport = 2222\n')
    assert print_config(cwd, "filed:app")["port"] == ("1111", "file (squall.toml)")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_config_option_wins_over_both(cwd: Path, how: str) -> None:
    (cwd / "squall.toml").write_text("port = 1111\n")
    (cwd / "pyproject.toml").write_text("[tool.squall]\nport = 2222\n")
    (cwd / "conf").mkdir()
    (cwd / "conf" / "prod.toml").write_text("port = 3333\n")
    args, env = (["--config", "conf/prod.toml"], None) if how == "option" else ([], {"SQUALL_CONFIG": "conf/prod.toml"})
    assert print_config(cwd, "filed:app", *args, env=env)["port"] == ("3333", "file (conf/prod.toml)")


def test_config_option_reads_the_table_of_a_pyproject(cwd: Path) -> None:
    (cwd / "sub").mkdir()
    (cwd / "sub" / "pyproject.toml").write_text("[tool.squall]\nport = 4444\n")
    assert print_config(cwd, "filed:app", "--config", "sub/pyproject.toml")["port"] == ("4444", "file (sub/pyproject.toml [tool.squall])")


def test_no_file_means_defaults(cwd: Path) -> None:
    settings = print_config(cwd, "filed:app")
    assert settings["port"] == ("8000", "default")
    assert all(source in ("default", "command line") for _, source in settings.values())


# -- --check-config ----------------------------------------------------------------------------


def test_check_config_ok(cwd: Path) -> None:
    (cwd / "squall.toml").write_text('app = "filed:app"\nworkers = 2\nhttp = "h11"\n')
    result = run_squall("--check-config", cwd=cwd)
    assert (result.returncode, result.stdout.strip()) == (0, "configuration OK"), result.stderr


@pytest.mark.parametrize(
    ("files", "args", "line", "code"),
    [
        ({"squall.toml": 'app = "filed:nope"\n'}, [], 'Error: Attribute "nope" not found in module "filed".', 3),
        ({"broken.py": "raise ValueError('boom')\n"}, ["broken:app"], 'Error: Error importing "broken": ValueError: boom', 3),
        ({"squall.toml": 'ssl_certfile = "missing.pem"\n'}, ["filed:app"], "Error: squall.toml: ssl_certfile = \"missing.pem\": 'missing.pem' does not exist", 2),
        ({}, ["filed:app", "--ssl-certfile", "missing.pem"], "Error: --ssl-certfile 'missing.pem' does not exist", 3),
        ({}, [], "Error: Missing argument 'APP'.", 2),
    ],
)
def test_check_config_failures_are_one_line(cwd: Path, files: dict[str, str], args: list[str], line: str, code: int) -> None:
    for name, text in files.items():
        (cwd / name).write_text(text)
    assert_usage_error(run_squall(*args, "--check-config", cwd=cwd), line, code)


# -- mistakes in the file or the environment: one line, exit 2, nothing listens -------------------


@pytest.mark.parametrize(
    ("file", "text", "line"),
    [
        ("squall.toml", "worker = 2\n", "Error: squall.toml: unknown key 'worker' (did you mean 'workers'?)"),
        ("pyproject.toml", "[tool.squall]\nworker = 2\n", "Error: pyproject.toml: [tool.squall] unknown key 'worker' (did you mean 'workers'?)"),
        ("squall.toml", "zzz = true\n", "Error: squall.toml: unknown key 'zzz'"),
        ("squall.toml", 'timeout-keep-alive = "5"\n', "Error: squall.toml: timeout-keep-alive must be an integer, not the string '5'"),
        ("squall.toml", 'reload = "yes"\n', "Error: squall.toml: reload must be true or false, not the string 'yes'"),
        ("squall.toml", "reload_dirs = [1]\n", "Error: squall.toml: reload_dirs must be a list of strings, not the number 1"),
        ("squall.toml", 'headers = [["a", "b", "c"]]\n', "Error: squall.toml: headers must be a \"name:value\" string or a [name, value] pair of strings, not the array ['a', 'b', 'c']"),
        ("squall.toml", "port = 70000\n", "Error: squall.toml: port = 70000: must be between 0 and 65535, not 70000"),
        ("squall.toml", 'http = "h2"\n', "Error: squall.toml: http = \"h2\": 'h2' is not one of auto, h11, httptools, nor a \"module:attribute\" import string"),
        ("squall.toml", 'lifespan = "maybe"\n', "Error: squall.toml: lifespan = \"maybe\": 'maybe' is not one of 'auto', 'on', 'off'."),
        ("squall.toml", 'headers = ["nocolon"]\n', "Error: squall.toml: headers = [\"nocolon\"]: 'nocolon' is not of the form Name:Value"),
        ("squall.toml", "port = 80\nport = 81\n", "Error: squall.toml: invalid TOML: Cannot overwrite a value (at line 2, column 10)"),
        ("squall.toml", "port = \n", "Error: squall.toml: invalid TOML: Invalid value (at line 1, column 8)"),
        ("squall.toml", "backlog = 1\nbacklog_ = 2\n", "Error: squall.toml: unknown key 'backlog_' (did you mean 'backlog'?)"),
        ("squall.toml", "timeout_write = 1\ntimeout-write = 2\n", "Error: squall.toml: 'timeout-write' sets timeout_write a second time"),
        ("pyproject.toml", "tool = {squall = 5}\n", "Error: pyproject.toml: tool.squall must be a table ([tool.squall]), not 5"),
    ],
)
def test_file_mistakes_are_one_line_naming_the_key(cwd: Path, file: str, text: str, line: str) -> None:
    (cwd / file).write_text(text)
    assert_usage_error(run_squall("filed:app", "--check-config", cwd=cwd), line)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"SQUALL_PORT": "abc"}, "Error: SQUALL_PORT='abc' is not a valid integer."),
        ({"UVICORN_PORT": "abc"}, "Error: UVICORN_PORT='abc' is not a valid integer."),
        ({"SQUALL_PORT": "70000"}, "Error: SQUALL_PORT='70000': must be between 0 and 65535, not 70000"),
        ({"SQUALL_WORKERS": "0"}, "Error: SQUALL_WORKERS='0': must be at least 1, not 0"),
        ({"SQUALL_LOOP": "tokio"}, "Error: SQUALL_LOOP='tokio' is not one of auto, asyncio, uvloop, none, nor a \"module:attribute\" import string"),
        ({"SQUALL_CONFIG": "nowhere.toml"}, "Error: SQUALL_CONFIG='nowhere.toml': File 'nowhere.toml' does not exist."),
    ],
)
def test_environment_mistakes_are_one_line_naming_the_variable(cwd: Path, env: dict[str, str], line: str) -> None:
    assert_usage_error(run_squall("filed:app", "--check-config", cwd=cwd, env=env), line)


def test_a_mistake_in_the_file_stops_the_server_before_it_listens(cwd: Path) -> None:
    port = free_port()
    (cwd / "squall.toml").write_text(f'app = "filed:app"\nport = {port}\nworkers = 0\n')
    with SquallProcess(cwd=cwd) as squall:
        assert squall.wait() == 2
    assert squall.output.strip() == "Error: squall.toml: workers = 0: must be at least 1, not 0"
    with socket.socket() as probe:  # the port was never taken: nothing listened
        probe.bind(("127.0.0.1", port))


def test_a_mistake_in_the_environment_stops_the_server_before_it_listens(cwd: Path) -> None:
    port = free_port()
    with SquallProcess("filed:app", "--port", str(port), env={"SQUALL_TIMEOUT_WRITE": "soon"}, cwd=cwd) as squall:
        assert squall.wait() == 2
    assert squall.output.strip() == "Error: SQUALL_TIMEOUT_WRITE='soon' is not a valid float."
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_command_line_mistakes_keep_their_wording(cwd: Path) -> None:
    (cwd / "squall.toml").write_text("port = 8001\n")
    assert_usage_error(run_squall("filed:app", "--port", "abc", cwd=cwd), "Error: Invalid value for '--port': 'abc' is not a valid integer.")


# -- the Python API reads no file and no SQUALL_* variable ----------------------------------------


def test_config_and_run_ignore_files_and_the_environment(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import squall

    (cwd / "squall.toml").write_text("port = 1111\nbacklog = 11\n")
    (cwd / "pyproject.toml").write_text("[tool.squall]\nport = 2222\n")
    monkeypatch.setenv("SQUALL_PORT", "3333")
    monkeypatch.setenv("SQUALL_TIMEOUT_KEEP_ALIVE", "9")
    monkeypatch.chdir(cwd)
    config = squall.Config("filed:app", log_config=None)
    assert (config.port, config.backlog, config.timeout_keep_alive) == (8000, 2048, 5)


def test_squall_run_serves_what_it_is_given(cwd: Path) -> None:
    port, other = free_port(), free_port()
    (cwd / "squall.toml").write_text(f'app = "other:app"\nport = {other}\n')
    script = f"import squall\nsquall.run('filed:app', port={port}, lifespan='off')\n"
    with LoggedProcess([sys.executable, "-c", script], cwd=cwd, env={"SQUALL_PORT": str(other)}) as process:
        process.wait_for_log(rf"running on http://127\.0\.0\.1:{port}\b")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "from filed"
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
