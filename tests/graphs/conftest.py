"""Fixtures of the graph tests that run on the ComfyUI test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from tests.doubles.comfy_server import ComfyServer, comfy_server
from tools.comfy import ComfyPool
from tools.comfy_tools import ComfyBackend
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

__all__ = ["comfy_context", "comfy_server"]


@pytest.fixture
async def comfy_context(comfy_server: ComfyServer, tmp_path: Path) -> AsyncIterator[Context]:
    """The offline model, a ComfyUI backend on the test server, files in a fresh folder."""
    pool = ComfyPool([comfy_server.url], timeout_s=60, attempts=3, backoff_s=0)
    yield Context(
        models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
        backend=ComfyBackend(pool, scale=1),
        files=LocalFileStore(tmp_path / "files"),
    )
    await pool.aclose()
