from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from tools.comfy.client import ComfyUnavailableError
from tools.errors import DatabaseUnavailable, database_unreachable, failure_line
from tools.llm import LLMUnavailableError
from tools.plugins import PluginError


@pytest.mark.parametrize(
    "error",
    [
        DatabaseUnavailable("database unavailable, retrying"),
        PoolTimeout("couldn't get a connection after 30.00 sec"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
    ],
)
def test_a_lost_database_is_unreachable(error: Exception) -> None:
    assert database_unreachable(error)
    assert failure_line(error).startswith("database unavailable")


@pytest.mark.parametrize(
    "error",
    [
        errors.DeadlockDetected("deadlock detected"),
        errors.QueryCanceled("canceling statement due to statement timeout"),
        errors.UniqueViolation("duplicate key"),
        KeyError("x"),
    ],
)
def test_a_query_the_database_refused_is_not(error: Exception) -> None:
    assert not database_unreachable(error)
    assert failure_line(error) is None


@pytest.mark.parametrize(
    "error",
    [
        ComfyUnavailableError(
            "http://gpu1:8188/object_info: ConnectError('refused')", server="http://gpu1:8188"
        ),
        LLMUnavailableError("the LLM endpoint stayed unreachable"),
        PluginError("plugin graphs/broken.py failed to load"),
    ],
)
def test_a_service_failure_is_its_message(error: Exception) -> None:
    assert failure_line(error) == str(error)
