"""Riding out a lost database: notice at once, refuse work quickly, restart or reconnect.

A :class:`DatabaseWatch` holds one idle connection of its own and waits on its socket:
when the server dies the socket closes and the watch wakes at once (a ``SELECT 1`` every
few seconds catches a network that fails silently). While the database is down the
:class:`WatchedPool` refuses every checkout at once with :class:`DatabaseUnavailable`
(the API answers 503) instead of letting each caller wait out the pool's timeout. The
watch starts the embedded server again (``restart``), or only reconnects to an external
one; once it answers, the pool drops its broken connections and refills, and work resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg_pool import AsyncConnectionPool

from tools.errors import DatabaseUnavailable, first_line

__all__ = ["DatabaseWatch", "WatchedPool"]

log = logging.getLogger(__name__)

# A connection given back to the pool this recently is handed out again without a ping.
TRUSTED_FOR_S = 1.0


class DatabaseWatch:
    """Whether the database answers, kept current by :meth:`run`.

    Args:
        url: The database to watch.
        restart: Starts the (embedded) server again if it is not running; blocking, run in
            a thread. None for an external server: it is only reconnected to.
        probe_s: How often the idle connection is also probed with a query.
        retry_s: How long to wait between attempts while the database is down.
    """

    def __init__(
        self,
        url: str,
        *,
        restart: Callable[[], None] | None = None,
        probe_s: float = 5.0,
        retry_s: float = 0.25,
    ) -> None:
        self._url = url
        self._restart = restart
        self._probe_s = probe_s
        self._retry_s = retry_s
        self._down_since: float | None = None
        self._reason = ""

    @property
    def up(self) -> bool:
        """False from the moment the database was lost until it answers again."""
        return self._down_since is None

    def raise_if_down(self) -> None:
        """Fail at once while the database is down.

        Raises:
            DatabaseUnavailable: It is down; the message says since when and why.
        """
        if self._down_since is not None:
            down_s = time.monotonic() - self._down_since
            raise DatabaseUnavailable(
                f"database unavailable, retrying (down for {down_s:.0f} s: {self._reason})"
            )

    async def run(self, pool: AsyncConnectionPool) -> None:
        """Watch until cancelled; after an outage, refresh ``pool`` before declaring it up.

        A probe that timed out is tried again on a new connection before it counts: a process
        whose event loop was held (starved of CPU, or a caller blocking it) sees its probe's
        deadline pass before the answer is read. A server that hangs fails the new
        connection's own timeout; one that is gone fails at once.
        """
        timed_out = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=max(round(self._probe_s), 1)
                ) as conn:
                    timed_out = False
                    await self._back(pool)
                    while True:
                        async for _ in conn.notifies(timeout=self._probe_s):
                            pass  # nothing is sent here: a closed socket is what wakes this
                        await asyncio.wait_for(conn.execute("SELECT 1"), self._probe_s)
            except (psycopg.Error, OSError, TimeoutError) as error:
                if isinstance(error, TimeoutError) and not timed_out and self._down_since is None:
                    timed_out = True  # once more, on a new connection, before it counts
                    continue
                self._lost(error)
                await self._start_server()
                await asyncio.sleep(self._retry_s)

    def _lost(self, error: Exception) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._reason = first_line(error)
        action = "restarting the embedded server" if self._restart else "reconnecting"
        log.warning("database unavailable (%s); %s", self._reason, action)

    async def _start_server(self) -> None:
        if self._restart is None:
            return
        try:
            await asyncio.to_thread(self._restart)
        except Exception as error:  # e.g. its old processes still hold it: the next try will do
            log.warning("restarting the embedded database failed (%s); retrying", error)

    async def _back(self, pool: AsyncConnectionPool) -> None:
        if self._down_since is None:
            return
        await pool.check()  # replace the connections the outage broke, now, not after a backoff
        log.warning("database back after %.1f s", time.monotonic() - self._down_since)
        self._down_since = None


class WatchedPool(AsyncConnectionPool):
    """A connection pool that refuses checkouts at once while its watch says the database is down.

    Every user of the database (LangGraph's checkpointer and store, the service tables)
    borrows from this pool, so this one check covers them all. A connection is pinged before
    it is handed out unless it was given back within :data:`TRUSTED_FOR_S` (as HikariCP
    skips its alive check for a connection used moments ago): under load a ping per checkout
    was a third of all statements. An outage makes the watch refuse checkouts at once, and
    when the database is back every pooled connection is pinged again (:meth:`check`).
    """

    def __init__(self, *args: Any, watch: DatabaseWatch, **kwargs: Any) -> None:
        self.watch = watch
        self._given_back: WeakKeyDictionary[Any, float] = WeakKeyDictionary()
        super().__init__(*args, check=self._ping_unless_recent, **kwargs)

    async def getconn(self, timeout: float | None = None) -> Any:
        """A connection, or :class:`DatabaseUnavailable` at once while the database is down."""
        self.watch.raise_if_down()
        return await super().getconn(timeout)

    async def putconn(self, conn: Any) -> None:
        """Take a connection back, noting when (a checkout soon after needs no ping)."""
        self._given_back[conn] = time.monotonic()
        await super().putconn(conn)

    async def check(self) -> None:
        """Ping every pooled connection now, replacing the broken ones; trust none of them."""
        self._given_back.clear()
        await super().check()

    async def _ping_unless_recent(self, conn: Any) -> None:
        given_back = self._given_back.get(conn)
        if given_back is not None and time.monotonic() - given_back < TRUSTED_FOR_S:
            return
        await AsyncConnectionPool.check_connection(conn)
