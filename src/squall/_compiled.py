"""Which hot path is in use: the compiled extension (squall._speedups) or pure Python.

The extension is optional (built at install time when a C compiler is there);
SQUALL_NO_EXTENSIONS=1 forces the pure-Python path.  Read once, at import.
"""

from __future__ import annotations

import os
from types import ModuleType

speedups: ModuleType | None = None
if os.environ.get("SQUALL_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from squall import _speedups as speedups
    except ImportError:
        speedups = None

HOT_PATH = "compiled hot path" if speedups is not None else "pure Python"
