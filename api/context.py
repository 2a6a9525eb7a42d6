"""What every route needs, built once at start-up and reached through ``Annotated`` dependencies."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request

from api.db import Database
from api.events import EventHub
from api.runs import Services
from api.settings import Settings

if TYPE_CHECKING:  # the executor gives the director a studio, which uses the launch path
    from api.executor import Executor

__all__ = ["LOCAL_USER", "ApiContext", "Ctx", "User", "current_user"]

LOCAL_USER = "local"


@dataclass
class ApiContext:
    """The open services of one API process."""

    settings: Settings
    services: Services
    db: Database
    hub: EventHub
    executor: Executor

    @property
    def clients_pick_thread_ids(self) -> bool:
        """Whether a client may choose a new thread's id: only on a one-user (keyless) server.

        Thread ids are one namespace for every user, so taking an id that another user
        holds could only fail, and the failure would tell that the id is someone's. With
        keys, new threads get ids from the server, and a client that names a thread it does
        not hold gets the same answer whether the id is someone else's or free.
        """
        return not self.settings.api_keys


async def _context(request: Request) -> ApiContext:
    # async, as current_user: FastAPI runs a plain-def dependency in its thread pool, a
    # thread hop on every request for what is an attribute read
    return request.app.state.auteur


Ctx = Annotated[ApiContext, Depends(_context)]


async def current_user(request: Request, ctx: Ctx) -> str:
    """The caller: the user of its API key (``Authorization: Bearer`` or ``x-api-key``).

    With no keys configured the server is local-only and everyone is the local user.
    """
    keys = ctx.settings.api_keys
    if not keys:
        return LOCAL_USER
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.headers.get("x-api-key")
    if token:
        for key, user in keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                return user
    raise HTTPException(
        401,
        "missing or unknown API key: send 'Authorization: Bearer <key>' (or 'x-api-key')",
        headers={"WWW-Authenticate": "Bearer"},
    )


User = Annotated[str, Depends(current_user)]
