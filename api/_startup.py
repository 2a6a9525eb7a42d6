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


# Collect the youngest objects after this many new ones (CPython's default: 700).
YOUNG_COLLECTION_THRESHOLD = 5_000


@contextmanager
def libraries_loading() -> Iterator[None]:
    """Pause the garbage collector while the service's libraries load, then freeze them.

    LangGraph, LangChain, FastAPI and their models are a few hundred thousand objects that
    live as long as the process; scanning them again and again as they load took a quarter
    of every command's start-up.

    Then the collector runs less often than CPython's default (see
    :data:`YOUNG_COLLECTION_THRESHOLD`). Every run that stops at a gate leaves its
    subgraph's whole loop in a reference cycle, about 500 objects that only the collector
    frees: LangGraph's runner (``PregelRunner.atick``) keeps the interrupt's traceback in a
    closure cell of its own frame, and that traceback holds the frame. With the default
    threshold they lived long enough to reach the oldest generation, so full collections
    freed them in pauses of up to 170 ms and collecting took 9-10% of the API process's
    CPU; at 5,000 the middle generation frees them, taking 5.6% of its CPU in pauses of at
    most 90 ms (``gc.callbacks``, 600 runs parked at a gate; 2,000 took 6.5%, 10,000 6.5%
    in pauses of up to 160 ms).
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()


def load_settings() -> Settings:
    """The settings from the environment (their module imported under the pause)."""
    with libraries_loading():
        from api.settings import Settings

    return Settings()
