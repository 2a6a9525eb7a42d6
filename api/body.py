r"""Strict JSON request bodies: what Postgres can store, bounded, parsed off the event loop.

Every router uses :class:`StrictJsonRoute`, so FastAPI's own body parsing goes through
:func:`parse_json` and a bad body is a 422 saying what is wrong before any route runs:
``NaN``/``Infinity`` and numbers beyond a double (``1e999``), which JSON has no way to
write and ``jsonb`` refuses; lone UTF-16 surrogates (``"\ud800"``), which are no Unicode
text; bodies nested deeper than :data:`MAX_DEPTH`, objects with more than
:data:`MAX_KEYS` keys and bodies of more than :data:`MAX_VALUES` values, whose cost
grows with every later copy (validation, the event log, checkpoints). The byte size is
bounded before this, for every route, by :class:`BodyLimit` (``AUTEUR_MAX_BODY_BYTES``).

A body over :data:`INLINE_BYTES` is parsed in a worker thread. ``json.loads`` holds the
GIL while it parses, so that alone would not spare the event loop a body of a million
values: such a body is refused from its bytes before it is parsed, which bounds what any
parse costs (``benchmarks/attack_inputs.py`` measures it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "INLINE_BYTES",
    "MAX_DEPTH",
    "MAX_KEYS",
    "MAX_VALUES",
    "BodyLimit",
    "InvalidJson",
    "StrictJsonRoute",
    "parse_json",
]

MAX_DEPTH = 64
"""The deepest nesting of objects and arrays a body may have."""

MAX_KEYS = 1_000
"""The most keys one JSON object may have."""

MAX_VALUES = 100_000
"""The most values (object members and array items, at every depth) a body may hold."""

INLINE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop (a millisecond at most)."""


class InvalidJson(Exception):
    """A body that is JSON but not JSON this service accepts; the message says why."""


def parse_json(raw: bytes) -> Any:
    """``raw`` as a JSON value, refusing what the service cannot store or should not hold.

    Raises:
        json.JSONDecodeError: Not JSON at all (FastAPI answers it with its position).
        InvalidJson: Non-finite numbers, lone surrogates, or beyond the size bounds.
    """
    if _surely_too_many_values(raw):
        raise InvalidJson(f"the body holds more than {MAX_VALUES} JSON values")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (json.JSONDecodeError, InvalidJson):
        raise
    except RecursionError:
        raise InvalidJson(f"JSON must not be nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as error:  # not UTF-8, or an integer of thousands of digits
        raise InvalidJson(f"the body is not valid JSON: {error}") from None
    _check(value)
    return value


def _surely_too_many_values(raw: bytes) -> bool:
    """Whether a JSON text holds more than :data:`MAX_VALUES` values, told without parsing.

    ``json.loads`` holds the GIL for all of its parse, in a worker thread too, so a body of a
    million values would stall the event loop however it is parsed; this looks at bytes
    only (milliseconds for megabytes). With few commas the parse is cheap and the walk
    counts exactly. Otherwise, once escaped backslashes and quotes are gone every quote
    opens or closes a string, and a member or item holds at most two strings; failing that,
    the commas outside strings are counted, each one between two values.
    """
    if raw.count(b",") <= MAX_VALUES:
        return False
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    if unescaped.count(b'"') // 2 > 2 * MAX_VALUES + 1:
        return True
    return sum(outside.count(b",") for outside in unescaped.split(b'"')[::2]) > MAX_VALUES


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"JSON numbers must be finite: {name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidJson(f"JSON numbers must be finite: {text} is beyond a double")
    return number


def _check(value: Any) -> None:
    """Walk the parsed value (without recursion): depth, key and value counts, strings."""
    if isinstance(value, str):
        _check_text(value, "")
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    values = 0
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            if len(node) > MAX_KEYS:
                raise InvalidJson(
                    f"{_where(path)} has {len(node)} keys; an object may have at most {MAX_KEYS}"
                )
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidJson(f"JSON must not be nested more than {MAX_DEPTH} levels deep")
        values += len(node)
        if values > MAX_VALUES:
            raise InvalidJson(f"the body holds more than {MAX_VALUES} JSON values")
        for key, child in children:
            if isinstance(key, str):
                _check_text(key, path, key=True)
            if isinstance(child, str):
                _check_text(child, _child(path, key))
            elif isinstance(child, dict | list):
                stack.append((child, _child(path, key), depth + 1))


def _check_text(text: str, path: str, *, key: bool = False) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        surrogate = f"\\u{ord(text[error.start]):04x}"
        where = f"in a key of {_where(path)}" if key else f"at {_where(path)}"
        raise InvalidJson(
            f"strings must be valid Unicode (lone surrogate {surrogate} {where})"
        ) from None


def _child(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")


def _where(path: str) -> str:
    return path or "the body"


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            try:
                if len(raw) <= INLINE_BYTES:
                    self._json = parse_json(raw)
                else:
                    self._json = await run_in_threadpool(parse_json, raw)
            except InvalidJson as error:
                raise HTTPException(422, str(error)) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is parsed by :func:`parse_json` (``route_class`` of a router)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, handed a request whose ``json()`` is :func:`parse_json`."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict_handler


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is a 413 with a JSON ``detail``.

    A declared ``Content-Length`` over the limit is answered before the body is read; a
    chunked body is cut off as soon as it passes the limit. Starlette's own limit answers
    plain text, which no client of this API expects.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.detail = (
            f"the request body is larger than the server's limit of {limit} bytes "
            "(AUTEUR_MAX_BODY_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 at once, or pass the request on with its body counted as it arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self.detail)
            return message

        await self.app(scope, limited, send)
