"""The command line's config file: find it, read its TOML, check its keys and types.

Only the `squall` command reads a file (`squall.run` and `Config` never do).
The file is `--config FILE` ($SQUALL_CONFIG), else the `[tool.squall]` table
of `./pyproject.toml` when it has one, else `./squall.toml`.  Its keys are
the command's parameter names (`timeout_keep_alive`, or `timeout-keep-alive`),
so an option added to the command is a file key too.  The values found here
become click's `default_map`: the command line and the environment still win,
and click's own types (choices, paths) and then `Config` validate them, as
they do the command line's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

PYPROJECT = "pyproject.toml"
SQUALL_TOML = "squall.toml"
TABLE = "[tool.squall]"

# Settings given as (name, value) pairs in the file, besides "Name:Value" strings.
PAIR_SETTINGS = frozenset({"headers"})


@dataclass
class ConfigFile:
    """A config file's settings, by parameter name, ready to be click's `default_map`."""

    path: str  # as the user would name it: the --config argument, or relative to the working directory
    in_pyproject: bool
    values: dict[str, Any]

    @property
    def where(self) -> str:
        """Where the settings live: the file, and the table in a pyproject.toml."""
        return f"{self.path} {TABLE}" if self.in_pyproject else self.path

    @property
    def prefix(self) -> str:
        """What a message about one of its keys starts with."""
        return f"{self.path}: {TABLE}" if self.in_pyproject else f"{self.path}:"


class ConfigFileError(click.UsageError):
    """The file cannot be used: one line naming the file (and the key), exit status 2."""


def find(given: str | None) -> tuple[str, dict[str, Any], bool] | None:
    """The file to read and its settings table: (path, table, in_pyproject), or None without one."""
    if given is not None:
        document = _read(given)
        if Path(given).name == PYPROJECT:
            return given, _tool_table(given, document) or {}, True
        return given, document, False
    if Path(PYPROJECT).is_file():
        table = _tool_table(PYPROJECT, _read(PYPROJECT))
        if table is not None:
            return PYPROJECT, table, True
    if Path(SQUALL_TOML).is_file():
        return SQUALL_TOML, _read(SQUALL_TOML), False
    return None


def load(given: str | None, params: Iterable[click.Parameter]) -> ConfigFile | None:
    """Find and read the config file; check every key names one of `params`, of the right type."""
    found = find(given)
    if found is None:
        return None
    path, table, in_pyproject = found
    config_file = ConfigFile(path, in_pyproject, {})
    by_name = {param.name: param for param in params if param.name}
    for key, value in table.items():
        name = key.replace("-", "_")
        param = by_name.get(name)
        if param is None:
            import difflib  # only for this message

            close = difflib.get_close_matches(name, by_name, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigFileError(f"{config_file.prefix} unknown key {key!r}{hint}")
        if name in config_file.values:  # `timeout-keep-alive` and `timeout_keep_alive`
            raise ConfigFileError(f"{config_file.prefix} {key!r} sets {name} a second time")
        config_file.values[name] = _checked(config_file, key, param, value)
    return config_file


def _read(path: str) -> dict[str, Any]:
    # Imported only when there is a file to read: every server process pays
    # for a module in memory.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)".
        raise ConfigFileError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: invalid TOML: not UTF-8 (at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror}") from None


def _tool_table(path: str, document: dict[str, Any]) -> dict[str, Any] | None:
    table = document.get("tool", {}).get("squall") if isinstance(document.get("tool"), dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigFileError(f"{path}: tool.squall must be a table ({TABLE}), not {table!r}")
    return table


def _checked(config_file: ConfigFile, key: str, param: click.Parameter, value: Any) -> Any:
    """`value` as click takes it from a default_map, or a one-line error naming the key.

    TOML has types, so they are checked strictly: `port = "80"` is a mistake
    the file's author should hear about, not a string click would convert.
    """

    def wrong(expected: str, got: Any) -> ConfigFileError:
        return ConfigFileError(f"{config_file.prefix} {key} must be {expected}, not {_toml_kind(got)} {got!r}")

    if param.multiple or param.nargs != 1:
        items = value if isinstance(value, list) else [value]
        checked = []
        for item in items:
            if param.name in PAIR_SETTINGS and isinstance(item, list):
                if len(item) != 2 or not all(isinstance(part, str) for part in item):
                    raise wrong('a "name:value" string or a [name, value] pair of strings', item)
                item = f"{item[0]}:{item[1]}"
            checked.append(_scalar(param, item, wrong, list_item=True))
        return checked
    return _scalar(param, value, wrong)


def _scalar(param: click.Parameter, value: Any, wrong: Any, list_item: bool = False) -> Any:
    kind = param.type

    def expected(one: str, many: str) -> str:
        return f"a list of {many}" if list_item else one

    if isinstance(param, click.Option) and param.is_flag or isinstance(kind, click.types.BoolParamType):
        if not isinstance(value, bool):
            raise wrong(expected("true or false", "booleans"), value)
    elif isinstance(kind, click.types.IntParamType):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(expected("an integer", "integers"), value)
    elif isinstance(kind, click.types.FloatParamType):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(expected("a number", "numbers"), value)
    elif isinstance(kind, click.types.StringParamType) and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # `timeout_graceful_streams = 2.5`: the option takes a string
    elif not isinstance(value, str):
        raise wrong(expected("a string", "strings"), value)
    return value


def _toml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "the boolean"
    if isinstance(value, (int, float)):
        return "the number"
    if isinstance(value, str):
        return "the string"
    if isinstance(value, list):
        return "the array"
    if isinstance(value, dict):
        return "the table"
    return "the value"
