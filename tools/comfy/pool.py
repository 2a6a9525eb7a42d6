"""A pool of ComfyUI servers: each job goes to the least busy one and is retried on failure.

A job is an API-format prompt plus the images its loader nodes take. The pool asks every
server for its queue depth (``GET /prompt``), counts its own jobs in flight on each (the depth
lags: images are uploaded before the prompt is queued), and sends the job to the least loaded
server that answers — on a tie, the one it used least recently, so jobs run one after another
still take turns. The pool takes one job more per server than it runs (:data:`QUEUE_AHEAD`), so
each server has its next prompt queued while the last one's output is being fetched. A failed
attempt (node error, interruption, lost server, deadline) is retried
with exponential backoff, long enough by default (4 + 8 + 16 + 32 s) to outlast a ComfyUI
restart, each retry announced as a progress message ("frame 4: ComfyUI at http://gpu1:8188
unreachable, retrying in 8 s (3/5)"); then :class:`ComfyJobFailed` says what happened. A retry
goes back to the server the failed attempt ran on while it answers: its cache holds the nodes
that already ran. A prompt the server refuses (validation) is not retried: it would fail the
same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tools.comfy import ATTEMPTS, BACKOFF_S
from tools.comfy.client import (
    ComfyClient,
    ComfyError,
    ComfyUnavailableError,
    JobEvent,
    JobResult,
)
from tools.errors import ExpectedFailure

__all__ = ["ATTEMPTS", "BACKOFF_S", "QUEUE_AHEAD", "ComfyJobFailed", "ComfyPool", "ImageInput"]

QUEUE_AHEAD = 1  # prompts kept waiting on each server beyond those it runs


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
    """ComfyUI servers used as one: least loaded first, retried with backoff.

    Args:
        urls: The servers.
        timeout_s: Deadline of a job from its start on a server.
        queue_timeout_s: How long a job may wait in a server's queue before it starts.
        attempts: Tries per job.
        backoff_s: Wait before the second try; each further wait doubles.
        slots_per_server: Jobs one server runs at once (a GPU that fits two models, say).
        queue_ahead: Jobs more per server waiting in its queue, so that it starts the next
            the moment one ends rather than after this side has downloaded and stored the
            output and uploaded the next job's images (at 1 s jobs, a server with nothing
            queued idled 15-30 % of a stage). With the slots it sets :attr:`capacity`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 600.0,
        queue_timeout_s: float = 3600.0,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        slots_per_server: int = 1,
        queue_ahead: int = QUEUE_AHEAD,
    ) -> None:
        if not urls:
            raise ValueError("a ComfyUI pool needs at least one server URL")
        if slots_per_server < 1:
            raise ValueError(f"slots_per_server must be at least 1, got {slots_per_server}")
        if queue_ahead < 0:
            raise ValueError(f"queue_ahead must be at least 0, got {queue_ahead}")
        self.clients = [
            ComfyClient(url, timeout_s=timeout_s, queue_timeout_s=queue_timeout_s) for url in urls
        ]
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.slots_per_server = slots_per_server
        self.queue_ahead = queue_ahead
        self._in_flight = [0] * len(self.clients)
        self._last_used = [0] * len(self.clients)
        self._picks = 0

    @property
    def capacity(self) -> int:
        """Jobs the pool takes at once: servers x (slots per server + queued ahead)."""
        return len(self.clients) * (self.slots_per_server + self.queue_ahead)

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _claim(self, prefer: ComfyClient | None) -> AsyncIterator[ComfyClient]:
        """A server for one attempt, counted in flight there until the attempt ends.

        ``prefer`` (where the previous attempt ran) if it answers; else the least loaded —
        the larger of its queue depth and this pool's jobs in flight there — and on a tie
        the least recently used.

        Raises:
            ComfyUnavailableError: No server answered.
        """
        depths = await asyncio.gather(
            *(client.queue_remaining() for client in self.clients), return_exceptions=True
        )
        answering = [n for n, depth in enumerate(depths) if isinstance(depth, int)]
        if not answering:
            servers = ", ".join(client.base_url for client in self.clients)
            reasons = "; ".join(str(depth) for depth in depths)
            raise ComfyUnavailableError(f"no ComfyUI server answered: {reasons}", server=servers)
        if prefer is not None and self.clients.index(prefer) in answering:
            chosen = self.clients.index(prefer)
        else:
            chosen = min(
                answering,
                key=lambda n: (max(depths[n], self._in_flight[n]), self._last_used[n], n),
            )
        self._picks += 1
        self._last_used[chosen] = self._picks
        self._in_flight[chosen] += 1
        try:
            yield self.clients[chosen]
        finally:
            self._in_flight[chosen] -= 1

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
        ran_on: ComfyClient | None = None
        for attempt in range(1, self.attempts + 1):
            if last is not None:
                wait = self.backoff_s * 2 ** (attempt - 2)
                await say(_retrying(label, last, wait, attempt, self.attempts))
                await asyncio.sleep(wait)
            try:
                async with self._claim(ran_on) as client:
                    ran_on = client
                    filled = await _with_uploads(client, prompt, images)
                    return await client.run(filled, on_event=on_event)
            except ComfyError as error:
                last = error
                if isinstance(error, ComfyUnavailableError):
                    ran_on = None
                if not error.retryable:
                    raise ComfyJobFailed(f"{label}: ComfyUI refused the job: {error}") from error
        raise ComfyJobFailed(
            f"{label} failed {self.attempts} times on ComfyUI; last error: {last}. "
            "Resume the run to try again."
        ) from last


def _retrying(label: str, error: ComfyError, wait: float, attempt: int, attempts: int) -> str:
    if isinstance(error, ComfyUnavailableError):
        return (
            f"{label}: ComfyUI at {error.server} unreachable, retrying in {wait:g} s "
            f"({attempt}/{attempts})"
        )
    return f"retrying {label} ({attempt}/{attempts}) in {wait:g} s: {error}"


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
