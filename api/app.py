"""The FastAPI application: Agent Server-compatible routes plus Auteur's own resources.

The lifespan opens the services (database, checkpointer, store, plugins), starts the event
listener and a background executor, and stops them in reverse order. Every error a client
can cause is a 4xx with ``{"detail": "<what is wrong>"}``, and no answer carries a
configured secret (:class:`RedactSecrets`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.body import BodyLimit
from api.context import ApiContext
from api.db import Database
from api.events import EventHub
from api.executor import Executor
from api.launch import HTTP_STATUS, RunRefused
from api.routes import (
    approvals,
    assistants,
    branches,
    exports,
    files,
    meta,
    projects,
    runs,
    stateless_runs,
    store,
    threads,
    workflows,
)
from api.runs import open_services
from api.settings import Settings
from tools import redaction
from tools.errors import DatabaseUnavailable, database_unreachable, first_line

__all__ = ["WEB_CLIENT", "create_app"]

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web"
"""The web client's static files, served at ``/`` (no build step)."""


async def refuse_nul(request: Request) -> None:
    """Refuse NUL characters anywhere in a request: Postgres cannot store them in text."""
    body = await request.body()
    if (
        "\x00" in request.scope["path"]
        or any("\x00" in f"{key}{value}" for key, value in request.query_params.multi_items())
        or (b"\x00" in body or b"\\u0000" in body)
    ):
        raise HTTPException(
            422, "the request contains a NUL character (\\u0000), which no field accepts"
        )


class RedactSecrets:
    """ASGI middleware: no textual answer (JSON, SSE, text) carries a configured secret.

    The stores are redacted when written; this covers what they do not hold, such as a
    checkpoint's task error in ``/threads/{id}/state`` or an error detail quoting an
    upstream answer. A whole body gets its ``Content-Length`` corrected; a streamed one
    (SSE) is redacted chunk by chunk, and every event is one chunk.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not redaction.secrets():
            await self.app(scope, receive, send)
            return
        textual = False
        held: Message | None = None  # a textual answer's start, until its first chunk

        async def send_redacted(message: Message) -> None:
            nonlocal textual, held
            if message["type"] == "http.response.start":
                textual = _textual(message)
                if textual:
                    held = message
                    return
            elif message["type"] == "http.response.body" and textual:
                text = message.get("body", b"").decode(errors="surrogateescape")
                body = redaction.redact(text).encode(errors="surrogateescape")
                message = {**message, "body": body}
                if held is not None:
                    if not message.get("more_body", False):
                        held = _with_length(held, len(body))
                    await send(held)
                    held = None
            await send(message)

        await self.app(scope, receive, send_redacted)


def _textual(start: Message) -> bool:
    headers = dict(start.get("headers", []))
    kind = headers.get(b"content-type", b"").split(b";")[0].strip()
    return kind.startswith(b"text/") or kind.endswith(b"json")


def _with_length(start: Message, length: int) -> Message:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    return {**start, "headers": [*headers, (b"content-length", str(length).encode())]}


def create_app(settings: Settings, *, execute: bool = True) -> FastAPI:
    """The API app; with ``execute`` it also runs queued runs in the background."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            db = Database(services.persistence.pool)
            hub = EventHub(services.database_url)
            await hub.start()
            executor = Executor(
                services,
                db,
                hub,
                concurrency=settings.worker_concurrency,
                lease_s=settings.run_lease_s,
            )
            app.state.auteur = ApiContext(settings, services, db, hub, executor)
            worker = asyncio.create_task(executor.run_forever()) if execute else None
            try:
                yield
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                await executor.shutdown()
                await hub.stop()

    app = FastAPI(
        title="Auteur",
        description="Agent service for AI film production; LangGraph Agent Server compatible.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul)],
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RedactSecrets)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["content-location", "location", "x-pagination-total", "x-pagination-next"],
    )

    @app.exception_handler(psycopg.Error)
    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(_: Request, error: Exception) -> JSONResponse:
        if not database_unreachable(error):
            raise error  # a query the database refused: a bug, with its traceback
        detail = (
            str(error)
            if isinstance(error, DatabaseUnavailable)
            else f"database unavailable, retrying ({first_line(error)})"
        )
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(RunRefused)
    async def refused(_: Request, error: RunRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=HTTP_STATUS[type(error)])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    for module in (
        meta,
        assistants,
        threads,
        runs,
        stateless_runs,
        store,
        approvals,
        projects,
        branches,
        exports,
        files,
        workflows,
    ):
        app.include_router(module.router)
    app.mount("/", StaticFiles(directory=WEB_CLIENT, html=True), name="web")
    return app
