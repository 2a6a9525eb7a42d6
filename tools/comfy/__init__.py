"""ComfyUI over its real protocol: one server (:mod:`.client`) and a pool of them (:mod:`.pool`)."""

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
from tools.comfy.pool import ATTEMPTS, BACKOFF_S, ComfyJobFailed, ComfyPool, ImageInput

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
