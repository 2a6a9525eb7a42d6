"""A command's start-up: the service's libraries load with the garbage collector paused.

The commands import what they need when they run (``auteur --help`` loads only typer and
rich); these helpers are how they do it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.settings import Settings

__all__ = ["libraries_loading", "load_settings"]


@contextmanager
def libraries_loading() -> Iterator[None]:
    """Pause the garbage collector while the service's libraries load, then freeze them.

    LangGraph, LangChain, FastAPI and their models are a few hundred thousand objects that
    live as long as the process; scanning them again and again as they load took a quarter
    of every command's start-up.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def load_settings() -> Settings:
    """The settings from the environment (their module imported under the pause)."""
    with libraries_loading():
        from api.settings import Settings

    return Settings()
