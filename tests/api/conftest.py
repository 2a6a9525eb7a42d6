"""The API served by uvicorn on 127.0.0.1 (a real socket), on the real embedded Postgres."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from langgraph_sdk import get_client

from api.app import create_app
from api.settings import Settings

KEYS = {"alice-key": "alice", "bob-key": "bob", "carol-key": "carol"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(settings: Settings, *, execute: bool = True) -> Iterator[str]:
    """Run the app under uvicorn in a thread; yield its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, execute=execute),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def api_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test server: the test database, a data folder of its own, offline."""
    data_dir = Path(tempfile.mkdtemp(prefix="auteur-api-"))
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        openai_api_key=None,
        api_keys=KEYS,
        **overrides,
    )


@pytest.fixture(scope="module")
def api_url(database_url: str) -> Iterator[str]:
    with serve(api_settings(database_url)) as url:
        yield url


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's server, as alice."""
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": "Bearer alice-key"}, timeout=120
    ) as client:
        yield client


@pytest.fixture
def alice(api_url: str) -> Any:
    """The official Python SDK's client of the module's server, as alice."""
    return get_client(url=api_url, api_key="alice-key")


@pytest.fixture
def bob(api_url: str) -> Any:
    """The official Python SDK's client of the module's server, as bob."""
    return get_client(url=api_url, api_key="bob-key")
