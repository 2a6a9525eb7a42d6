"""ComfyUI over its real protocol: one server (:mod:`.client`) and a pool of them (:mod:`.pool`).

The retry defaults live here and every other name loads its module on first use: the
settings read ``ATTEMPTS`` and ``BACKOFF_S`` in every command, and the HTTP and websocket
clients behind the rest take a tenth of a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.comfy.client import (
        ComfyClient,
        ComfyError,
        ComfyExecutionError,
        ComfyRejectedError,
        ComfyTimeoutError,
        ComfyUnavailableError,
        JobEvent,
        JobResult,
        OutputFile,
    )
    from tools.comfy.pool import ComfyJobFailed, ComfyPool, ImageInput

__all__ = [
    "ATTEMPTS",
    "BACKOFF_S",
    "ComfyClient",
    "ComfyError",
    "ComfyExecutionError",
    "ComfyJobFailed",
    "ComfyPool",
    "ComfyRejectedError",
    "ComfyTimeoutError",
    "ComfyUnavailableError",
    "ImageInput",
    "JobEvent",
    "JobResult",
    "OutputFile",
]

ATTEMPTS = 5
BACKOFF_S = 4.0  # the first wait; doubling, the four waits add up to 60 s

_POOL_NAMES = frozenset({"ComfyJobFailed", "ComfyPool", "ImageInput"})


def __getattr__(name: str) -> Any:
    """One of the client's or the pool's names, importing its module on first use."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{'pool' if name in _POOL_NAMES else 'client'}")
    return getattr(module, name)
