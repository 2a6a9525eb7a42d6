"""A model endpoint that quotes the key back: the key reaches no run, thread, event, answer,
log line or trace (its own module, so no other test's server executes the run)."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from pydantic import SecretStr

from api.settings import SAMPLE_INPUT
from tests.api.conftest import api_settings, serve
from tests.doubles.langfuse_server import run_langfuse_server
from tests.doubles.openai_server import ErrorReply, run_openai_server
from tools import tracing
from tools.redaction import MASK

SECRET = "sk-test-" + "f00d" * 8
BOB = {"Authorization": "Bearer bob-key"}


async def test_a_key_quoted_by_the_model_endpoint_leaves_nowhere(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # A brief of its own, so no earlier test's cached generation answers instead of the model.
    sample = json.loads(SAMPLE_INPUT.read_text())
    sample["brief"] += f" ({uuid.uuid4()})"
    with run_openai_server() as llm, run_langfuse_server() as langfuse:
        llm.replies.append(ErrorReply(401, echo_authorization=True))
        settings = api_settings(
            database_url,
            langfuse_public_key=langfuse.public_key,
            langfuse_secret_key=langfuse.secret_key,
            langfuse_base_url=langfuse.base_url,
        ).model_copy(update={"openai_api_key": SecretStr(SECRET), "openai_base_url": llm.base_url})
        with serve(settings) as url:
            async with httpx.AsyncClient(base_url=url, headers=BOB, timeout=120) as http:
                thread = (await http.post("/threads", json={})).json()["thread_id"]
                run = (
                    await http.post(
                        f"/threads/{thread}/runs",
                        json={"assistant_id": "full_video", "input": sample},
                    )
                ).json()
                base = f"/threads/{thread}/runs/{run['run_id']}"
                await http.get(f"{base}/join")
                answers = [
                    await http.get(base),
                    await http.get(f"/threads/{thread}"),
                    await http.get(f"/threads/{thread}/state"),
                    await http.get(f"/threads/{thread}/history"),
                    await http.get(f"{base}/stream", headers={"Last-Event-ID": "-1"}),
                ]
                tracing.flush()
                tracing.configure(None)
        spans = repr(langfuse.spans)

    assert len(llm.requests) == 1  # the one request the double answered with the key
    error = answers[0].json()["error"]
    assert "rejected the request" in error["message"] and MASK in error["message"]
    assert "event: error" in answers[-1].text
    for answer in answers:
        assert answer.status_code == 200 and SECRET not in answer.text, answer.request.url
    assert f"run {run['run_id']} failed" in caplog.text and MASK in caplog.text
    assert SECRET not in caplog.text
    assert "rejected the request" in spans and MASK in spans and SECRET not in spans
