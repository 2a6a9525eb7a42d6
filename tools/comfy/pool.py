"""A pool of ComfyUI servers: each job goes to the shortest queue and is retried on failure.

A job is an API-format prompt plus the images its loader nodes take. The pool asks every
server for its queue depth (``GET /prompt``), uploads the images to the least busy one that
answers, and runs the prompt there. A failed attempt (node error, interruption, lost server,
deadline) is retried with backoff — each retry announced as a progress message such as
"retrying frame 4 (2/3)" — up to three attempts, then :class:`ComfyJobFailed` says what
happened. A prompt the server refuses (validation) is not retried: it would fail the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tools.comfy.client import ComfyClient, ComfyError, JobEvent, JobResult
from tools.errors import ExpectedFailure

__all__ = ["ATTEMPTS", "ComfyJobFailed", "ComfyPool", "ImageInput"]

ATTEMPTS = 3


class ComfyJobFailed(ExpectedFailure):
    """A job failed on every attempt (or was refused); the run can be resumed later."""


@dataclass(frozen=True)
class ImageInput:
    """An image for a loader node: which node field takes it, and its PNG bytes."""

    node: str
    field: str
    data: bytes


OnProgress = Callable[[str], Awaitable[None]]


class ComfyPool:
    """ComfyUI servers used as one: least-queued first, three attempts per job."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 600.0,
        attempts: int = ATTEMPTS,
        backoff_s: float = 1.0,
    ) -> None:
        if not urls:
            raise ValueError("a ComfyUI pool needs at least one server URL")
        self.clients = [ComfyClient(url, timeout_s=timeout_s) for url in urls]
        self.attempts = attempts
        self.backoff_s = backoff_s

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.aclose()

    async def pick(self) -> ComfyClient:
        """The reachable server with the fewest queued prompts (the first one on a tie).

        Raises:
            ComfyError: No server answered.
        """
        depths = await asyncio.gather(
            *(client.queue_remaining() for client in self.clients), return_exceptions=True
        )
        answering = [(depth, n) for n, depth in enumerate(depths) if isinstance(depth, int)]
        if not answering:
            reasons = "; ".join(str(d) for d in depths)
            raise ComfyError(f"no ComfyUI server answered: {reasons}")
        return self.clients[min(answering)[1]]

    async def run(
        self,
        prompt: dict[str, Any],
        images: Sequence[ImageInput] = (),
        *,
        label: str,
        on_progress: OnProgress | None = None,
    ) -> JobResult:
        """Run one job to completion, retrying failures.

        Args:
            prompt: The API-format prompt, inputs already filled in.
            images: Images to upload and set on their loader nodes.
            label: What the job makes, for messages ("frame 3/12").
            on_progress: Receives progress lines ("frame 3/12 — 40 %", "retrying …").

        Raises:
            ComfyJobFailed: Refused by the server, or failed on every attempt.
        """

        async def say(message: str) -> None:
            if on_progress is not None:
                await on_progress(message)

        async def on_event(event: JobEvent) -> None:
            if event.kind == "progress" and event.maximum:
                await say(f"{label} — {round(100 * event.value / event.maximum)} %")
            elif event.kind == "cached":
                return
            elif event.kind in ("queued", "done"):
                await say(f"{label} — {event.kind} on {event.server}")

        last: ComfyError | None = None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await say(f"retrying {label} ({attempt}/{self.attempts}): {last}")
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 2))
            try:
                client = await self.pick()
                filled = await _with_uploads(client, prompt, images)
                return await client.run(filled, on_event=on_event)
            except ComfyError as error:
                last = error
                if not error.retryable:
                    raise ComfyJobFailed(f"{label}: ComfyUI refused the job: {error}") from error
        raise ComfyJobFailed(
            f"{label} failed {self.attempts} times on ComfyUI; last error: {last}. "
            "Resume the run to try again."
        ) from last


async def _with_uploads(
    client: ComfyClient, prompt: dict[str, Any], images: Sequence[ImageInput]
) -> dict[str, Any]:
    """A copy of ``prompt`` whose loader fields name the images uploaded to ``client``.

    Names are content hashes, so the same image uploaded twice is the same input file and a
    repeated prompt stays cacheable on the server.
    """
    filled = {node_id: {**node, "inputs": dict(node["inputs"])} for node_id, node in prompt.items()}
    for image in images:
        name = f"auteur_{hashlib.sha256(image.data).hexdigest()[:24]}.png"
        filled[image.node]["inputs"][image.field] = await client.upload_image(image.data, name)
    return filled
