"""LISTEN/NOTIFY fan-out: wakes run streams, workers, cancellations and the approval feed.

One dedicated connection per process listens on Auteur's channels; a notification carries
only an id (the run, or the owner of an approval), and whoever wakes reads the durable
tables. After the connection drops, it reconnects with backoff and wakes every waiter, so
nothing notified while it was down is missed: the tables, not the notifications, are the
source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import psycopg

from api.db import APPROVALS_CHANNEL, CANCEL_CHANNEL, EVENTS_CHANNEL, RUNS_CHANNEL
from tools.errors import first_line

__all__ = ["EventHub", "wait_for"]

log = logging.getLogger(__name__)

_CHANNELS = (EVENTS_CHANNEL, RUNS_CHANNEL, CANCEL_CHANNEL, APPROVALS_CHANNEL)
_FIRST_DELAY_S = 0.1  # the reconnection backoff starts here and doubles up to 5 s


class _Signal:
    """A wake-up many coroutines can wait on.

    Each firing sets the current event and starts a new one. Take :attr:`current` *before*
    reading the tables, then wait on it: a firing in between is not lost.
    """

    def __init__(self) -> None:
        self.current = asyncio.Event()

    def fire(self) -> None:
        self.current.set()
        self.current = asyncio.Event()


async def wait_for(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds pass."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


class EventHub:
    """Per-process listener; ``wait_*`` return on a matching notification or a timeout."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._runs: dict[str, _Signal] = defaultdict(_Signal)
        self._run_statuses: dict[str, _Signal] = defaultdict(_Signal)
        self._owners: dict[str, _Signal] = defaultdict(_Signal)
        self._queue = _Signal()
        self._cancel_handlers: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening; returns once the first connection listens."""
        self._task = asyncio.create_task(self._listen_forever(), name="auteur-listen")
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(run_id)`` when any process asks a run to stop."""
        self._cancel_handlers.append(handler)

    def run_news(self, run_id: str) -> asyncio.Event:
        """Set on news of a run: an event logged, its status changed."""
        return self._runs[run_id].current

    def run_status_news(self, run_id: str) -> asyncio.Event:
        """Set when a run may have ended: it finished, or was cancelled (not on its events)."""
        return self._run_statuses[run_id].current

    def queue_news(self) -> asyncio.Event:
        """Set when a run is queued or finishes (a worker may claim the next)."""
        return self._queue.current

    def approval_news(self, owner: str) -> asyncio.Event:
        """Set on a change in ``owner``'s approval queue."""
        return self._owners[owner].current

    def forget_run(self, run_id: str) -> None:
        """Drop the wake-up of a run nobody streams any more."""
        self._runs.pop(run_id, None)

    def forget_run_status(self, run_id: str) -> None:
        """Drop the wake-up of a run's end nobody waits for any more."""
        self._run_statuses.pop(run_id, None)

    async def _listen_forever(self) -> None:
        delay = _FIRST_DELAY_S
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    for channel in (
                        EVENTS_CHANNEL,
                        RUNS_CHANNEL,
                        CANCEL_CHANNEL,
                        APPROVALS_CHANNEL,
                    ):
                        await conn.execute(f"LISTEN {channel}")
                    self._ready.set()
                    self._wake_everyone()  # catch up on whatever was notified while down
                    delay = _FIRST_DELAY_S
                    async for notify in conn.notifies():
                        self._dispatch(notify.channel, notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database restarted or the network dropped
                if delay == _FIRST_DELAY_S:  # once per outage, not once per attempt
                    log.warning(
                        "event listener lost its connection (%s); reconnecting", first_line(error)
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == EVENTS_CHANNEL:
            if payload in self._runs:
                self._runs[payload].fire()
        elif channel == RUNS_CHANNEL:
            self._queue.fire()
            self._fire_run(payload)
        elif channel == CANCEL_CHANNEL:
            for handler in self._cancel_handlers:
                handler(payload)
            self._fire_run(payload)
        elif channel == APPROVALS_CHANNEL and payload in self._owners:
            self._owners[payload].fire()

    def _fire_run(self, run_id: str) -> None:
        for signals in (self._runs, self._run_statuses):
            if run_id in signals:
                signals[run_id].fire()

    def _wake_everyone(self) -> None:
        self._queue.fire()
        for signals in (self._runs, self._run_statuses, self._owners):
            for signal in signals.values():
                signal.fire()
