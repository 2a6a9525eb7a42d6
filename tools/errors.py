"""Expected failures: a service Auteur depends on is down or refused, and the person can act.

ComfyUI unreachable or failing, the LLM endpoint unavailable, the database down, a plugin
file broken: each says what happened in its message, so the CLI prints one line and the
server logs one line. Anything else is a bug and keeps its traceback.

Example:
    >>> failure_line(DatabaseUnavailable("database unavailable, retrying"))
    'database unavailable, retrying'
    >>> failure_line(ZeroDivisionError("division by zero")) is None
    True
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

__all__ = [
    "DatabaseUnavailable",
    "ExpectedFailure",
    "database_unreachable",
    "failure_line",
    "first_line",
]

# SQLSTATE classes of a lost server: 08 connection exception, 57P01-03 shutdown or starting.
_LOST_SERVER_STATES = ("08", "57P01", "57P02", "57P03")


class ExpectedFailure(RuntimeError):
    """Base of the failures whose message is the whole story (no traceback needed)."""


class DatabaseUnavailable(ExpectedFailure):
    """The database cannot be reached right now; Auteur reconnects (or restarts it) by itself."""


def database_unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the database could not be reached, not that it refused a query."""
    if isinstance(error, DatabaseUnavailable | PoolTimeout):
        return True
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return error.sqlstate is None or error.sqlstate.startswith(_LOST_SERVER_STATES)
    return False


def failure_line(error: BaseException) -> str | None:
    """The one line to show for an expected failure, or None for an unexpected one."""
    if isinstance(error, ExpectedFailure):
        return str(error)
    if database_unreachable(error):
        return f"database unavailable ({first_line(error)})"
    return None


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
