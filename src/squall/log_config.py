"""Applying `--log-config` / `Config(log_config=...)`: a dict, a .json, .yaml
or .ini file, or an INI configuration already parsed or open.

Everything goes through `squall.logger_aliases`, so a configuration written
for Uvicorn (its formatter classes, its logger names) works unchanged.
"""

from __future__ import annotations

import configparser
import json
import logging.config
import os
from typing import IO, Any

from squall import logger_aliases
from squall.logging import with_colours

LogConfig = dict[str, Any] | str | os.PathLike[str] | configparser.RawConfigParser | IO[Any]


class LogConfigError(Exception):
    """The configuration cannot be read or applied; the message names it."""


def apply_log_config(log_config: LogConfig, use_colors: bool | None) -> None:
    if isinstance(log_config, dict):
        _apply_dict(with_colours(log_config, use_colors), "log_config")
    elif isinstance(log_config, configparser.RawConfigParser):
        _apply_ini(log_config, "log_config")
    elif hasattr(log_config, "readline"):
        parser = configparser.ConfigParser()
        parser.read_file(log_config)  # type: ignore[arg-type]
        _apply_ini(parser, "log_config")
    else:
        _apply_file(os.fspath(log_config))  # type: ignore[arg-type]


def _apply_file(path: str) -> None:
    where = f"--log-config {path!r}"
    if not os.path.isfile(path):
        raise LogConfigError(f"{where} does not exist")
    try:
        if path.endswith(".json"):
            with open(path) as f:
                config = json.load(f)
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise LogConfigError(f"{where}: YAML needs PyYAML: pip install 'squall[standard]'") from None
            with open(path) as f:
                config = yaml.safe_load(f)
        else:
            parser = configparser.ConfigParser()
            with open(path) as f:
                parser.read_file(f)
            _apply_ini(parser, where)
            return
    except LogConfigError:
        raise
    except Exception as exc:  # a syntax error in the file
        raise LogConfigError(f"{where} could not be read: {exc}") from exc
    if not isinstance(config, dict):
        raise LogConfigError(f"{where} does not hold a dictConfig mapping")
    _apply_dict(config, where)


def _apply_dict(config: dict[str, Any], where: str) -> None:
    try:
        logger_aliases.dict_config(config)
    except Exception as exc:
        raise LogConfigError(f"{where} could not be applied: {exc}") from exc


def _apply_ini(parser: configparser.RawConfigParser, where: str) -> None:
    try:
        named = logger_aliases.translate_file_config(parser)
        logging.config.fileConfig(parser, disable_existing_loggers=False)
    except Exception as exc:
        raise LogConfigError(f"{where} could not be applied: {exc}") from exc
    logger_aliases.reenable(named)
