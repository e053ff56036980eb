"""Squall: a fast, strict ASGI server that runs anything Uvicorn runs."""

# First: whether compiled modules may be imported at all (SQUALL_NO_EXTENSIONS).
import squall._compiled  # noqa: F401  isort: skip
from squall.config import Config
from squall.main import run
from squall.server import Server

__version__ = "0.1.0"
__all__ = ["Config", "Server", "run", "__version__"]
