"""Noticing changes with watchfiles (inotify, FSEvents...): no polling, no scanning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from threading import Event

from watchfiles import Change, watch

from squall.supervisors.basereload import BaseReload

# How often watch() comes back with nothing, so the reloader can notice the
# server process exiting on its own.
POLL_MS = 500


class WatchFilesReload(BaseReload):
    backend = "WatchFiles"

    def watch(self, stop: Event) -> Iterator[list[Path]]:
        def accept(change: Change, path: str) -> bool:
            return self.file_filter.watches(Path(path))

        for changes in watch(
            *self.config.reload_dirs,
            watch_filter=accept,
            # --reload-delay: how long to wait for more changes after one, so
            # that an editor saving several files restarts the server once.
            step=max(int(self.config.reload_delay * 1000), 1),
            stop_event=stop,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            yield sorted({Path(path) for _, path in changes})
