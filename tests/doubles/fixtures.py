"""Pytest fixtures for the test doubles; ``tests/conftest.py`` imports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.doubles.openai_server import OpenAIServer, run_openai_server

__all__ = ["openai_server"]


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A scripted OpenAI-compatible chat-completions server on 127.0.0.1, one per test."""
    with run_openai_server() as server:
        yield server
