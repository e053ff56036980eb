"""Supervisors: processes that run servers in child processes.

`Multiprocess` for --workers; for --reload, `ChangeReload` is
`WatchFilesReload` when watchfiles is installed, else `StatReload`.
"""

from __future__ import annotations

from squall.supervisors.basereload import BaseReload
from squall.supervisors.multiprocess import Multiprocess
from squall.supervisors.statreload import StatReload

ChangeReload: type[BaseReload]
try:
    from squall.supervisors.watchfilesreload import WatchFilesReload
except ImportError:  # watchfiles is optional
    ChangeReload = StatReload
else:
    ChangeReload = WatchFilesReload

__all__ = ["BaseReload", "ChangeReload", "Multiprocess", "StatReload"]
