"""The official ``langgraph-sdk`` client against Auteur over a real socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from api.settings import SAMPLE_INPUT

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}


@pytest.fixture
def alice(api_url: str) -> Any:
    return get_client(url=api_url, api_key="alice-key")


@pytest.fixture
def bob(api_url: str) -> Any:
    return get_client(url=api_url, api_key="bob-key")


async def _to_gate(client: Any, thread_id: str, payload: dict[str, Any]) -> list[Any]:
    parts = []
    async for part in client.runs.stream(
        thread_id, "full_video", stream_mode=["updates", "custom"], **payload
    ):
        parts.append(part)
    return parts


async def test_stream_to_the_first_gate_and_approve(alice: Any) -> None:
    thread = await alice.threads.create()
    parts = await _to_gate(alice, thread["thread_id"], {"input": SAMPLE})

    assert parts[0].event == "metadata"
    assert any(p.event == "custom" and p.data["stage"] == "treatment" for p in parts)
    interrupts = [p for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert interrupts
    gate = interrupts[-1].data["__interrupt__"][0]["value"]
    assert gate["stage"] == "treatment"
    state = await alice.threads.get(thread["thread_id"])
    assert state["status"] == "interrupted"

    parts = await _to_gate(alice, thread["thread_id"], {"command": {"resume": APPROVE}})

    gate = [p for p in parts if p.event == "updates" and "__interrupt__" in p.data][-1]
    assert gate.data["__interrupt__"][0]["value"]["stage"] == "script"
    runs = await alice.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["interrupted", "interrupted"]


async def test_other_users_get_404(alice: Any, bob: Any) -> None:
    thread = await alice.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bob.threads.get(thread["thread_id"])
    assert refused.value.response.status_code == 404
