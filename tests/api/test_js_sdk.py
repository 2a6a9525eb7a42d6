"""The official JS SDK, ``@langchain/langgraph-sdk`` from npm, as the official web clients use it.

``tests/js/official_sdk.mjs`` walks a production from its brief through the bodies those
clients send — agent-chat-ui's streamed resume, Agent Inbox's respond, edit and accept — and
their state, history and search calls — and chats with the director as agent-chat-ui does;
this test serves it and checks what it saw.
``scripts/test.sh`` installs the SDK (``npm ci`` in ``tests/js``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from api.settings import SAMPLE_INPUT

SCRIPT = Path(__file__).parents[1] / "js" / "official_sdk.mjs"


def test_the_js_sdk_walks_a_production_as_the_official_clients_do(api_url: str) -> None:
    done = subprocess.run(
        ["node", str(SCRIPT), api_url, "alice-key", str(SAMPLE_INPUT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["first"] == "treatment"
    assert {"messages", "values", "custom"} <= set(seen["events"])
    assert seen["afterApprove"] == seen["afterResponse"] == "script"
    assert seen["afterEdit"] == "master_script"
    assert seen["approved"] == ["treatment", "script", "master_script"]
    assert seen["title"] == "Edited in the inbox"
    assert ["ai", "treatment"] in seen["messages"] and ["human", None] in seen["messages"]
    assert seen["history"] == 2 and seen["listed"]
    assert "Invalid assistant: 'agent'" in seen["invalidAssistant"]
    # the director: a chat starts the production, its gates come as the chat's interrupts
    assert "directorError" not in seen
    assert (seen["directorGate"], seen["directorNext"]) == ("treatment", "script")
    assert seen["productionNext"] == "master_script"
