"""Uvicorn's logger names, as other names for Squall's own loggers.

Apps and libraries written for Uvicorn log through
`logging.getLogger("uvicorn.error")`, and attach filters and handlers to
`uvicorn.access` (to drop health checks from the access log, say).  Under
Squall, `logging.getLogger("uvicorn.error")` returns the very logger object
that `logging.getLogger("squall.error")` returns, and likewise for
`uvicorn`, `uvicorn.access` and `uvicorn.asgi`.  So whatever is set on
either name (level, handlers, filters, `disabled`) is set on both, records
logged under either are formatted alike, and Squall's access records pass
through the filters an app put on `uvicorn.access`.  Nothing of Uvicorn is
imported: if the app imports Uvicorn itself, Uvicorn's modules get these
objects too.  docs/migrating.md says why this beats forwarding records.

Logging configurations name loggers, and `dictConfig` (with the default
`disable_existing_loggers`) disables every existing logger it does not
name, by name: a configuration naming only `uvicorn.access` would disable
`squall.access`, the same object.  So configurations are translated before
they are applied: logger sections under a Uvicorn name move to the Squall
name, and `uvicorn.logging.*Formatter` becomes `squall.logging.*Formatter`
(Squall's own formatters, same arguments), and after they are applied a
logger that the configuration named under either of its names is enabled
again.  Squall applies its own `--log-config` this way, and `install()`
makes `logging.config.dictConfig` do the same for an app's own calls
(through `logging.config.dictConfigClass`, the documented hook for this).
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable, Iterable
from configparser import RawConfigParser
from typing import Any

import squall.logging as squall_logging

# Uvicorn's name -> Squall's, parents before children.
ALIASES: dict[str, str] = {
    "uvicorn": "squall",
    "uvicorn.error": "squall.error",
    "uvicorn.access": "squall.access",
    "uvicorn.asgi": "squall.asgi",
}
_UVICORN_FORMATTERS = "uvicorn.logging."
_SQUALL_FORMATTERS = "squall.logging."


def install() -> None:
    """Make each Uvicorn logger name resolve to Squall's logger.  Idempotent.

    A logger already created under a Uvicorn name (Uvicorn imported before
    Squall started) is replaced; its filters and handlers move to Squall's,
    and its child loggers are re-attached below Squall's.
    """
    manager = logging.Logger.manager
    # The lock `logging.getLogger` itself holds while it changes the registry.
    with logging._lock:  # type: ignore[attr-defined]
        changed = False
        for alias, name in ALIASES.items():
            ours = logging.getLogger(name)
            found = manager.loggerDict.get(alias)
            if found is ours:
                continue
            manager.loggerDict[alias] = ours
            if isinstance(found, logging.Logger):
                _adopt(ours, found)
            changed = True
        if changed:
            _reattach_children(manager)
            manager._clear_cache()  # type: ignore[attr-defined]  # effective levels may have changed
    _hook_dict_config()


def _adopt(ours: logging.Logger, old: logging.Logger) -> None:
    for log_filter in old.filters:
        if log_filter not in ours.filters:
            ours.addFilter(log_filter)
    for handler in old.handlers:
        if handler not in ours.handlers:
            ours.addHandler(handler)
    if ours.level == logging.NOTSET and old.level != logging.NOTSET:
        ours.setLevel(old.level)


def _reattach_children(manager: logging.Manager) -> None:
    """Point every logger below a Uvicorn name at its nearest registered ancestor."""
    for key, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or key in ALIASES:
            continue
        if any(key.startswith(alias + ".") for alias in ALIASES):
            logger.parent = _nearest_ancestor(manager, key)


def _nearest_ancestor(manager: logging.Manager, name: str) -> logging.Logger:
    while "." in name:
        name = name.rpartition(".")[0]
        found = manager.loggerDict.get(name)
        if isinstance(found, logging.Logger):
            return found
    return manager.root  # type: ignore[attr-defined, no-any-return]


# -- logging configurations ------------------------------------------------------


def translate_dict_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with Uvicorn's logger and formatter names turned into Squall's (a copy)."""
    result = dict(config)
    loggers = config.get("loggers")
    if isinstance(loggers, dict):
        result["loggers"] = {_squall_logger_name(name, loggers): section for name, section in loggers.items()}
    formatters = config.get("formatters")
    if isinstance(formatters, dict):
        result["formatters"] = {name: _translate_formatter(section) for name, section in formatters.items()}
    return result


def _squall_logger_name(name: str, named: Iterable[str]) -> str:
    target = ALIASES.get(name, name)
    # Named under both names (the same logger): leave each section as written.
    return name if target != name and target in named else target


def _translate_formatter(section: Any) -> Any:
    if not isinstance(section, dict):
        return section
    translated = dict(section)
    for key in ("()", "class"):
        value = section.get(key)
        if isinstance(value, str):
            translated[key] = squall_formatter_path(value)
    return translated


def squall_formatter_path(path: str) -> str:
    """"uvicorn.logging.AccessFormatter" -> "squall.logging.AccessFormatter"; others unchanged."""
    if path.startswith(_UVICORN_FORMATTERS):
        name = path[len(_UVICORN_FORMATTERS):]
        if hasattr(squall_logging, name):
            return _SQUALL_FORMATTERS + name
    return path


def translate_file_config(parser: RawConfigParser) -> list[str]:
    """Translate an INI (`fileConfig`) configuration in place; return the logger names it configures."""
    named: list[str] = []
    logger_keys = [key.strip() for key in parser.get("loggers", "keys", fallback="").split(",") if key.strip()]
    qualnames = {key: parser.get(f"logger_{key}", "qualname", fallback=None) for key in logger_keys if key != "root"}
    present = {name for name in qualnames.values() if name}
    for key, qualname in qualnames.items():
        if not qualname:
            continue
        target = _squall_logger_name(qualname, present)
        if target != qualname:
            parser.set(f"logger_{key}", "qualname", target)
        named.append(target)
    formatter_keys = [key.strip() for key in parser.get("formatters", "keys", fallback="").split(",") if key.strip()]
    for key in formatter_keys:
        section = f"formatter_{key}"
        value = parser.get(section, "class", fallback=None)
        if value:
            parser.set(section, "class", squall_formatter_path(value))
    return named


def reenable(named: Iterable[str]) -> None:
    """Enable again each aliased logger that a configuration named under either of its names.

    `dictConfig` and `fileConfig` keep the loggers they name (and their
    children) enabled, but disable the other existing ones by name, which
    catches a logger under its other name.
    """
    named = set(named)
    manager = logging.Logger.manager
    for alias, name in ALIASES.items():
        logger = manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger) and logger.disabled and (_kept(alias, named) or _kept(name, named)):
            logger.disabled = False


def _kept(name: str, named: set[str]) -> bool:
    return name in named or any(name.startswith(parent + ".") for parent in named)


def dict_config(config: dict[str, Any], configurator: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """`logging.config.dictConfig(config)`, with Uvicorn's names understood."""
    translated = translate_dict_config(config)
    (configurator or _wrapped_configurator)(translated).configure()
    if not translated.get("incremental"):
        reenable(translated.get("loggers") or ())


# The dictConfig implementation in place before ours (normally logging's own).
_wrapped_configurator: Callable[[dict[str, Any]], Any] = logging.config.DictConfigurator


class _AliasAwareDictConfigurator:
    """Installed as `logging.config.dictConfigClass`: any `dictConfig` call in
    the process (the app's own, too) goes through `dict_config`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def configure(self) -> None:
        dict_config(self.config, _wrapped_configurator)


def _hook_dict_config() -> None:
    global _wrapped_configurator
    current = logging.config.dictConfigClass
    if current is _AliasAwareDictConfigurator:
        return
    _wrapped_configurator = current
    logging.config.dictConfigClass = _AliasAwareDictConfigurator  # type: ignore[misc, assignment]
