"""Turn "package.module:attribute.path" into the object it names."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import TracebackType
from typing import Any


class ImportFromStringError(Exception):
    """The import string is malformed, or what it names does not exist.

    A user's typo: one line says it all.
    """


class ImportRaisedError(ImportFromStringError):
    """Importing the module raised: a bug in the user's code (or a missing dependency of it).

    `exception` is what it raised, its traceback starting at the first frame
    of the user's code, to be shown with the message.
    """

    def __init__(self, message: str, exception: BaseException) -> None:
        super().__init__(message)
        self.exception = exception


def import_from_string(import_str: Any) -> Any:
    if not isinstance(import_str, str):
        return import_str

    module_str, attrs_str = split_import_string(import_str)
    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        # Only the named module missing is "not found"; a missing dependency
        # inside the user's module is an error in their code, shown as such.
        if not _is_the_module(exc.name, module_str):
            raise ImportRaisedError(f'Error importing "{module_str}":', _without_import_machinery(exc)) from exc
        raise ImportFromStringError(
            f'Could not import module "{module_str}" (is the current directory, or --app-dir, the folder that holds it?)'
        ) from None
    except Exception as exc:
        raise ImportRaisedError(f'Error importing "{module_str}":', _without_import_machinery(exc)) from exc

    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise ImportFromStringError(f'Attribute "{attrs_str}" not found in module "{module_str}".') from None
    return instance


def split_import_string(import_str: str) -> tuple[str, str]:
    """("module", "attribute.path"); raises ImportFromStringError when malformed."""
    module_str, sep, attrs_str = import_str.partition(":")
    if not sep or not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in the form "<module>:<attribute>", e.g. "main:app".'
        )
    return module_str, attrs_str


def check_module_exists(import_str: str) -> None:
    """Raise ImportFromStringError unless the import string is well formed and its module can be found.

    For a supervisor, which must not run the app's code, yet should not
    start N processes that each find out the name is wrong.  The module is
    looked for without importing it or its packages; only when that finds
    nothing are its parent packages imported to make sure (a package may
    extend its `__path__` when imported).
    """
    module_str, _ = split_import_string(import_str)
    if _find_without_importing(module_str):
        return
    try:
        found = importlib.util.find_spec(module_str) is not None
    except ModuleNotFoundError as exc:  # a parent package is missing
        found = not _is_the_module(exc.name, module_str)
    except Exception:
        # A parent package raised while importing: the server process will
        # report it with its traceback.
        return
    if not found:
        raise ImportFromStringError(
            f'Could not import module "{module_str}" (is the current directory, or --app-dir, the folder that holds it?)'
        )


def _find_without_importing(module_str: str) -> bool:
    """Whether the import system's finders know `module_str`, walking down its packages' paths."""
    if module_str in sys.modules:
        return True
    path: list[str] | None = None
    name = ""
    for part in module_str.split("."):
        name = f"{name}.{part}" if name else part
        spec = None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is not None:
                try:
                    spec = find_spec(name, path)
                except Exception:  # a finder that cannot tell: let the import decide
                    return False
                if spec is not None:
                    break
        if spec is None:
            return False
        path = list(spec.submodule_search_locations or [])
    return True


def _is_the_module(missing: str | None, module_str: str) -> bool:
    return missing is not None and (missing == module_str or module_str.startswith(f"{missing}."))


_MACHINERY = tuple(os.path.abspath(path) for path in (importlib.__file__, __file__) if path)


def _without_import_machinery(exc: BaseException) -> BaseException:
    """`exc` with the leading frames of importlib and of this module dropped from its traceback."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith("<frozen importlib") or os.path.abspath(filename) in _MACHINERY):
            break
        tb = tb.tb_next
    return exc.with_traceback(tb)
