"""Shared fixtures: the real embedded Postgres, LangGraph savers and stores, test doubles.

Graph tests run against every checkpointer fixture (in-memory and Postgres), as
LangGraph's own tests do; the Postgres one is the real embedded server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
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

# What one step of the event loop may take (see loop_kept_free): a blocking frames stage spent
# seconds of CPU in one, a test's steps at most 0.15 s on an idle machine.
SLOW_STEP_CPU_S = 0.5
SLOW_STEP_WALL_S = 3.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most ``long`` tests first, each file's tests kept together in order.

    pytest-xdist hands whole files (``--dist=loadfile``) to the test processes in this order
    (``--no-loadscope-reorder``; its own order puts files with the fewest tests last, and
    those are the longest, so one process was left with a whole production at the end).
    """
    weight = Counter(item.path for item in items if item.get_closest_marker("long"))
    items.sort(key=lambda item: -weight[item.path])


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


class _LoopSteps:
    """Times every step the event loop runs, and keeps those that held it too long.

    A step is a callback of the loop: mostly one stretch of a task between two awaits. It is
    timed by the loop thread's own CPU time as well as by the clock, so that on a loaded
    machine the waits for a core or for the GIL are not taken for the step's own work.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.held: list[str] = []
        self._thread = threading.get_ident()
        self._collected_cpu = 0.0
        self._collecting_since: float | None = None

    def collecting(self, phase: str, info: dict[str, Any]) -> None:
        """A :data:`gc.callbacks` hook: the CPU the collector spends on the loop's thread.

        A full collection of a long-lived test process's heap can take half a second; it is
        the interpreter's pause, not a step's own work, so it is not counted against steps.
        """
        del info
        if threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._collecting_since = time.thread_time()
        elif self._collecting_since is not None:
            self._collected_cpu += time.thread_time() - self._collecting_since
            self._collecting_since = None

    def run(self, handle: asyncio.Handle, run: Callable[[asyncio.Handle], None]) -> None:
        if getattr(handle, "_loop", None) is not self.loop:
            run(handle)
            return
        cpu, wall, collected = time.thread_time(), time.monotonic(), self._collected_cpu
        run(handle)
        cpu = time.thread_time() - cpu - (self._collected_cpu - collected)
        wall = time.monotonic() - wall
        if cpu > SLOW_STEP_CPU_S or wall > SLOW_STEP_WALL_S:
            callback = handle._callback  # type: ignore[attr-defined]
            task = getattr(callback, "__self__", None)
            what = repr(task) if isinstance(task, asyncio.Task) else repr(handle)
            self.held.append(f"{what[:400]} took {cpu:.3f} s of CPU, {wall:.3f} s in all")


@pytest.fixture
async def loop_kept_free(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """Fail the test if a task it starts holds the event loop too long.

    CPU and file work that blocks (Pillow, hashing, ffmpeg, JSON, embedding) belongs in a
    worker thread, or every other run served by the process stalls meanwhile: a step may
    spend at most ``SLOW_STEP_CPU_S`` of CPU, or ``SLOW_STEP_WALL_S`` waiting (on a
    subprocess or a socket). The graph's nodes and the clients run in tasks of their own; the
    test's own steps (compiling, starting and stopping test servers) are not held to it.
    """
    steps = _LoopSteps(asyncio.get_running_loop())
    run = asyncio.Handle._run  # type: ignore[attr-defined]
    monkeypatch.setattr(asyncio.Handle, "_run", lambda handle: steps.run(handle, run))
    gc.callbacks.append(steps.collecting)
    yield
    gc.callbacks.remove(steps.collecting)
    monkeypatch.undo()
    own = f"coro=<{request.node.originalname}()"
    # the session's database watch is no task of the test's (it shares the loop, and the GIL
    # with the test's worker threads)
    watch = "name='auteur-database-watch'"
    held = [step for step in steps.held if own not in step and watch not in step]
    assert not held, "steps held the event loop:\n" + "\n".join(held)
