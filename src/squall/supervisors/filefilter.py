"""Which files --reload watches: --reload-include / --reload-exclude globs.

A pattern without a "/" is matched against a name (`*.py`, `.*`); one with a
"/" against the end of the path below the watched directory
(`templates/*.html`).  An exclude that names an existing directory excludes
everything in it.  A file is watched when an include matches it, and no
exclude matches it or any directory between it and the watched directory,
so the default `.*` keeps `.git/` and `.venv/` out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path, PurePath


def _matches(path: PurePath, pattern: str) -> bool:
    if "/" in pattern:
        return path.match(pattern)
    return fnmatch.fnmatch(path.name, pattern)


class FileFilter:
    def __init__(self, roots: Sequence[Path], includes: Sequence[str], excludes: Sequence[str]) -> None:
        self.roots = [Path(root).resolve() for root in roots]
        self.includes = list(includes)
        self.excluded_dirs = [Path(p).resolve() for p in excludes if Path(p).is_dir()]
        self.excludes = [p for p in excludes if not Path(p).is_dir()]

    def _relative(self, path: Path) -> PurePath:
        for root in self.roots:
            if path.is_relative_to(root):
                return path.relative_to(root)
        return PurePath(path.name)

    def _excluded(self, path: Path) -> bool:
        if any(path.is_relative_to(d) for d in self.excluded_dirs):
            return True
        relative = self._relative(path)
        # The path itself, and every directory between it and its root.
        candidates = [relative, *relative.parents][:-1]
        return any(_matches(candidate, pattern) for candidate in candidates for pattern in self.excludes)

    def watches(self, path: Path) -> bool:
        """Whether a change to the file `path` (absolute) should restart the server."""
        if self._excluded(path):
            return False
        relative = self._relative(path)
        return any(_matches(relative, pattern) for pattern in self.includes)

    def descends(self, directory: Path) -> bool:
        """Whether a directory walk should look inside `directory` (absolute) at all."""
        return not self._excluded(directory)
