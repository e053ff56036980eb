"""Turn "package.module:attribute.path" into the object it names."""

from __future__ import annotations

import importlib
from typing import Any


class ImportFromStringError(Exception):
    """The import string is malformed, or what it names cannot be loaded.

    `__cause__` holds the original exception when importing the module raised.
    """


def import_from_string(import_str: Any) -> Any:
    if not isinstance(import_str, str):
        return import_str

    module_str, sep, attrs_str = import_str.partition(":")
    if not sep or not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in the form "<module>:<attribute>", e.g. "main:app".'
        )

    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        # Only our own module missing is "not found"; a missing dependency
        # inside the user's module is an error in their code, shown as such.
        if exc.name != module_str and not module_str.startswith(f"{exc.name}."):
            raise ImportFromStringError(
                f'Error importing "{module_str}": {type(exc).__name__}: {exc}'
            ) from exc
        raise ImportFromStringError(
            f'Could not import module "{module_str}" (is the current directory, or --app-dir, the folder that holds it?)'
        ) from None
    except Exception as exc:
        raise ImportFromStringError(f'Error importing "{module_str}": {type(exc).__name__}: {exc}') from exc

    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise ImportFromStringError(f'Attribute "{attrs_str}" not found in module "{module_str}".') from None
    return instance
