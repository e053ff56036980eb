"""Squall: a fast, strict ASGI server that runs anything Uvicorn runs."""

from squall.config import Config
from squall.main import run
from squall.server import Server

__version__ = "0.1.0"
__all__ = ["Config", "Server", "run", "__version__"]
