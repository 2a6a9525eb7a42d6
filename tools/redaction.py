"""Keeping configured secrets out of everything that leaves the process.

An upstream error can quote a key back (an OpenAI-compatible proxy that echoes the
``Authorization`` header), and that text travels on into exceptions, run errors, events,
logs and HTTP answers. Rather than cleaning each message where it is made, the process
registers its secrets once (:func:`register`) and the boundaries redact: the service tables
(:mod:`api.db`, :mod:`graphs.persistence`), every log record (:func:`install_log_redaction`)
and every HTTP answer (the API's middleware).

Example:
    >>> register("sk-live-123")
    >>> redact("401: Incorrect API key provided: Bearer sk-live-123")
    '401: Incorrect API key provided: Bearer [redacted]'

"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

__all__ = [
    "MASK",
    "in_json",
    "install_log_redaction",
    "redact",
    "redact_json",
    "register",
    "secrets",
]

MASK = "[redacted]"

_secrets: set[str] = set()
_installed = False


def register(*values: str | None) -> None:
    """Add secrets to redact from now on, process-wide (empty values are ignored)."""
    _secrets.update(value for value in values if value)


def secrets() -> frozenset[str]:
    """The registered secrets."""
    return frozenset(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`MASK` (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with every string (keys included) passed through :func:`redact`."""
    if not _secrets:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): redact_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def in_json(text: str) -> bool:
    """Whether a registered secret is in JSON ``text``, as written or as JSON escapes it.

    JSON escapes a string character by character, so a string that holds a secret holds its
    escaped form once written: a serialized value can be checked at C speed before any walk.
    """
    return any(form in text for secret in _secrets for form in _written(secret))


@cache
def _written(secret: str) -> frozenset[str]:
    """How JSON text can hold ``secret``: as is, escaped to ASCII, escaped only as JSON must."""
    return frozenset(
        {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    )


def install_log_redaction() -> None:
    """Redact every log record the process creates, whatever logger or handler it goes to.

    A record factory rather than a filter on the root handler: uvicorn's loggers do not
    propagate to the root, and a record that reaches no handler goes to ``lastResort``; the
    factory sees them all. A message that holds a secret is formatted here, and an exception's
    traceback is rendered here, so no handler ever formats the unredacted originals.
    Idempotent.
    """
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _secrets:
            message = record.getMessage()
            if (clean := redact(message)) != message:  # others keep their args for formatters
                record.msg, record.args = clean, ()
            if record.exc_info:
                record.exc_text = redact(formatter.formatException(record.exc_info))
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacted_record)
