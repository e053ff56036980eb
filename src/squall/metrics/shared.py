"""Figures shared between a supervisor and its workers (--workers): one JSON file per worker.

Each worker writes its snapshot to `<directory>/<pid>.json` at every probe
tick when it changed, and once more when it stops; the supervisor (which
made the directory) reads them when scraped.  A worker that exits has its
counters folded into the supervisor's running total and its file removed,
so that the totals never go down when workers come and go.  Writes are
atomic (a temporary file renamed over the old one): a reader never sees
half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from squall.metrics.recorder import Snapshot

SUFFIX = ".json"


def write_snapshot(directory: str, pid: int, snapshot: Snapshot) -> None:
    path = Path(directory) / f"{pid}{SUFFIX}"
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(snapshot.to_json()))
    os.replace(partial, path)


def _read(path: Path) -> Snapshot | None:
    try:
        return Snapshot.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone meanwhile, or not one of ours


class SharedFigures:
    """The supervisor's side: the sum over live workers' files and the workers that left."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.retired = Snapshot()
        # Folding an exited worker's file (the supervisor's thread) and
        # reading them all (the metrics thread) must not interleave: a
        # worker's counts would be missed or counted twice in one scrape.
        self._lock = threading.Lock()

    def worker_exited(self, pid: int) -> None:
        path = self.directory / f"{pid}{SUFFIX}"
        with self._lock:
            snapshot = _read(path)
            if snapshot is not None:
                self.retired.add_counters(snapshot)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def total(self) -> Snapshot:
        with self._lock:
            total = Snapshot()
            total.add_counters(self.retired)
            for path in sorted(self.directory.glob("*" + SUFFIX)):
                snapshot = _read(path)
                if snapshot is not None:
                    total.add_counters(snapshot)
                    total.add_gauges(snapshot)
        return total
