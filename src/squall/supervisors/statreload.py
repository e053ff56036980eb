"""Noticing changes by polling modification times: works everywhere, needs nothing installed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from threading import Event

from squall.supervisors.basereload import BaseReload

# A --reload-delay of 0 would rescan the tree in a busy loop.
MIN_INTERVAL = 0.05


class StatReload(BaseReload):
    backend = "StatReload"

    def watch(self, stop: Event) -> Iterator[list[Path]]:
        interval = max(self.config.reload_delay, MIN_INTERVAL)
        before = self._snapshot()
        while not stop.wait(interval):
            after = self._snapshot()
            yield sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
            before = after

    def _snapshot(self) -> dict[Path, int]:
        """Every watched file's modification time, in nanoseconds (two saves in one second differ)."""
        mtimes: dict[Path, int] = {}
        for root in self.config.reload_dirs:
            for dirpath, dirnames, filenames in os.walk(root):
                here = Path(dirpath)
                dirnames[:] = [name for name in dirnames if self.file_filter.descends(here / name)]
                for name in filenames:
                    path = here / name
                    if self.file_filter.watches(path):
                        with contextlib.suppress(FileNotFoundError):  # deleted while walking
                            mtimes[path] = path.stat().st_mtime_ns
        return mtimes
