"""Shared fixtures: the real embedded Postgres, LangGraph savers and stores, test doubles.

Graph tests run against every checkpointer fixture (in-memory and Postgres), as
LangGraph's own tests do; the Postgres one is the real embedded server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agents.base import Context
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from graphs.persistence import (
    Persistence,
    embedded_database_url,
    open_persistence,
    stop_embedded_server,
)
from tests.doubles.fixtures import openai_server
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

# Tests read what the commands print in-process; Rich fixes a console's width when the
# console is made, on import of the command's module. One wide terminal for every console,
# whichever test (or test worker) imports the module first.
os.environ["COLUMNS"] = "200"

__all__ = ["openai_server"]

# Under the seconds a blocking frames stage held the loop, above load noise: debug mode stats
# source files for every traceback it keeps, and a loaded 2-core CI saw 0.9 s steps.
SLOW_CALLBACK_S = 1.0


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The embedded Postgres (pgvector) for the whole session, or AUTEUR_TEST_DATABASE_URL.

    Its data folder is outside pytest's private temp folder: the server runs as its own
    system user when the tests run as root, and must be able to reach the folder.
    """
    if url := os.environ.get("AUTEUR_TEST_DATABASE_URL"):
        yield url
        return
    data_dir = Path(tempfile.mkdtemp(prefix="auteur-test-"))
    yield embedded_database_url(data_dir)
    stop_embedded_server(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def persistence(database_url: str) -> AsyncIterator[Persistence]:
    async with open_persistence(database_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def memory_store() -> InMemoryStore:
    """One in-memory store for the session: its generation cache is shared, as Postgres's is."""
    return InMemoryStore()


@pytest.fixture(params=["memory", "postgres"])
def saver_and_store(
    request: pytest.FixtureRequest, persistence: Persistence, memory_store: InMemoryStore
) -> tuple[Any, Any]:
    """(checkpointer, store): LangGraph's in-memory pair, or the real Postgres pair."""
    if request.param == "memory":
        return InMemorySaver(), memory_store
    return persistence.checkpointer, persistence.store


@pytest.fixture(scope="session")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture
def offline_context(files_dir: Path) -> Context:
    """The default run context: offline sample model, draft renderer, local files."""
    return Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=DraftBackend(),
        files=LocalFileStore(files_dir),
    )


@pytest.fixture
def http_context(offline_context: Context, openai_server: Any) -> Context:
    """The run context with the OpenAI-compatible test server as every agent's model."""
    return Context(
        models=ModelProvider(
            api_key="test-key", base_url=openai_server.base_url, recordings=SAMPLE_RECORDINGS
        ),
        backend=offline_context.backend,
        files=offline_context.files,
    )


@pytest.fixture(scope="session")
def sample_input() -> dict[str, Any]:
    import json

    return json.loads(SAMPLE_INPUT.read_text())


class _SlowCallbacks(logging.Handler):
    """Keeps asyncio's debug-mode reports of a callback that held the loop too long."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing "):  # "Executing <Task ...> took 0.412 seconds"
            self.reports.append(message)


@pytest.fixture
async def loop_kept_free(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail the test if a task it starts holds the event loop longer than ``SLOW_CALLBACK_S``.

    Runs the loop in asyncio's debug mode, which logs every such callback; CPU and file work
    that blocks (Pillow, hashing, ffmpeg, JSON, embedding) belongs in a worker thread, or
    every other run served by the process stalls meanwhile. The graph's nodes and the clients
    run in tasks of their own; the test's own steps (compiling, starting and stopping test
    servers) are not held to it.
    """
    loop = asyncio.get_running_loop()
    debug, duration = loop.get_debug(), loop.slow_callback_duration
    logger, handler = logging.getLogger("asyncio"), _SlowCallbacks()
    logger.addHandler(handler)
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    try:
        yield
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = duration
        logger.removeHandler(handler)
    own = f"coro=<{request.node.originalname}()"
    # the session's database watch is no task of the test's (it shares the loop, and the GIL
    # with the test's worker threads)
    reports = [
        report
        for report in handler.reports
        if own not in report and "name='auteur-database-watch'" not in report
    ]
    held = "\n".join(report[:400] for report in reports)
    assert not reports, f"callbacks held the event loop:\n{held}"
