"""Where each of the command's settings came from, for --print-config and for error messages.

Click records it (`ctx.get_parameter_source`): the command line, the
environment (SQUALL_<NAME>, else UVICORN_<NAME>), the config file (given to
click as its `default_map`), or the default.  This module turns that into
words, and a mistake in a value into one line naming the variable or the
file key that holds it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
from click.core import ParameterSource

from squall.config_file import ConfigFile

# Where Config looks when the option is not given at all.
FALLBACK_ENVIRONMENT = {"workers": "WEB_CONCURRENCY", "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}
# Shown by --print-config as set or not, never as they are.
SECRET_SETTINGS = frozenset({"ssl_keyfile_password"})
NOT_SET = "(not set)"


def envvar_of(param: click.Parameter) -> str | None:
    """The variable the parameter's value was read from: click takes the first non-empty one."""
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    return next((name for name in names if os.environ.get(name)), None)


def toml_value(value: Any) -> str:
    """`value` as it would be written in squall.toml."""
    if value is None:
        return NOT_SET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def setting_lines(ctx: click.Context, settings: list[click.Parameter], config_file: ConfigFile | None) -> list[str]:
    """--print-config: `name = value  # source`, one line per setting."""
    lines = []
    for param in settings:
        assert param.name is not None
        value = ctx.params.get(param.name)
        source = ctx.get_parameter_source(param.name)
        if source == ParameterSource.COMMANDLINE:
            where = "command line"
        elif source == ParameterSource.ENVIRONMENT:
            where = f"environment ({envvar_of(param)})"
        elif source == ParameterSource.DEFAULT_MAP and config_file is not None:
            where = f"file ({config_file.where})"
        elif value is None and os.environ.get(FALLBACK_ENVIRONMENT.get(param.name, "")):
            variable = FALLBACK_ENVIRONMENT[param.name]
            where = f"environment ({variable})"
            value = param.type_cast_value(ctx, os.environ[variable])
        else:
            where = "default"
        if param.name in SECRET_SETTINGS and value:
            shown = '"********"'
        elif isinstance(value, tuple) and not value:
            shown = "[]"
        else:
            shown = toml_value(value)
        lines.append(f"{param.name} = {shown}  # {where}")
    return lines


def _flag_of(param: click.Parameter) -> str:
    return param.opts[0] if param.opts else param.name or ""


def located(ctx: click.Context, param: click.Parameter, message: str, config_file: ConfigFile | None) -> str | None:
    """`message` about `param`'s value, reworded to name the variable or file key it came from;
    None when the value came from the command line (whose messages already name the option)."""
    assert param.name is not None
    source = ctx.get_parameter_source(param.name)
    flag = _flag_of(param)
    # "--port must be ..." -> " must be ..."; click's own messages are left whole.
    rest = message[len(flag):] if message.startswith(flag + " ") else " " + message
    if source == ParameterSource.ENVIRONMENT:
        variable = envvar_of(param)
        if variable is None:
            return None
        raw = os.environ[variable]
        if rest.startswith(" " + repr(raw)):  # click's "'abc' is not a valid integer."
            return f"{variable}={rest[1:]}"
        return f"{variable}={raw!r}:{rest}"
    if source == ParameterSource.DEFAULT_MAP and config_file is not None:
        raw_value = config_file.values.get(param.name)
        return f"{config_file.prefix} {param.name} = {toml_value(raw_value)}:{rest}"
    return None
