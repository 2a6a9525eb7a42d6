"""Whole runs traced to a Langfuse double: ``auteur demo`` as a process, and runs over the API.

The Langfuse SDK in the process under test exports to a receiver on 127.0.0.1 standing in
for Langfuse; the tests read what arrived.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from api.settings import SAMPLE_INPUT
from tests.api.conftest import api_settings, serve
from tests.doubles.langfuse_server import LangfuseServer, run_langfuse_server
from tests.servers import GATE_SCENES, GATES
from tools import tracing

pytestmark = pytest.mark.slow

AUTEUR = str(Path(sys.executable).parent / "auteur")
THREAD = re.compile(r"Thread: ([0-9a-f-]{36})")
_OWN_VARIABLES = ("OPENAI_", "AUTEUR_", "LANGFUSE_")


@pytest.fixture
def langfuse() -> Iterator[LangfuseServer]:
    with run_langfuse_server() as server:
        yield server
    tracing.configure(None)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A scratch folder the embedded server's own system user can reach (not pytest's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="auteur-trace-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.long
def test_demo_exports_every_stage_with_the_session_id(
    langfuse: LangfuseServer, open_dir: Path
) -> None:
    # A database of its own: the shared test database holds memoised generations of the
    # sample brief, which a run would reuse instead of calling the model.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)},
        "AUTEUR_DATA_DIR": str(open_dir / "data"),
        "DATABASE_URL": "",
        "COLUMNS": "200",
        "TERM": "dumb",
        **langfuse.env(),
    }

    done = subprocess.run(
        [AUTEUR, "demo", "--auto-approve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    thread_id = THREAD.search(done.stdout).group(1)
    assert f"trace: {langfuse.base_url}/trace/" in done.stdout
    assert "Spent:" in done.stdout
    assert langfuse.spans
    assert {span.attributes.get("session.id") for span in langfuse.spans} == {thread_id}
    assert {span.attributes.get("user.id") for span in langfuse.spans} == {"local"}
    names = {span.name for span in langfuse.spans}
    drafts = {f"draft_{stage}" for stage in GATES}
    for stage in GATES:
        assert {f"draft_{stage}", f"approve_{stage}"} <= names, stage
    drafted = Counter(s.name.removeprefix("draft_") for s in langfuse.spans if s.name in drafts)
    assert drafted == Counter(GATES)  # a draft per gate: the scene cycle's once per scene
    generations = [
        s for s in langfuse.spans if s.attributes["langfuse.observation.type"] == "generation"
    ]
    assert generations
    for generation in generations:
        usage = generation.attribute_json("langfuse.observation.usage_details")
        assert usage["input"] > 0
        assert usage["output"] > 0
    # a score per gate: the scene cycle's once per scene, saying which
    decided = Counter((s["metadata"]["stage"], s["metadata"].get("scene")) for s in langfuse.scores)
    assert decided == Counter(zip(GATES, GATE_SCENES, strict=True))
    events = {span.name for span in langfuse.spans if span.name.startswith("decision at ")}
    assert {"decision at treatment", "decision at scene 2 frames"} <= events, events
    roots = {span.name for span in langfuse.spans if span.parent_span_id is None}
    assert "resume at scene 2 clips" in roots, roots
    assert {score["value"] for score in langfuse.scores} == {"approve"}


async def test_api_runs_store_their_trace_url_and_cost(
    langfuse: LangfuseServer, database_url: str
) -> None:
    settings = api_settings(
        database_url,
        langfuse_public_key=langfuse.public_key,
        langfuse_secret_key=langfuse.secret_key,
        langfuse_base_url=langfuse.base_url,
    )
    with serve(settings) as url:
        client = get_client(url=url, api_key="alice-key")
        project = await client.http.post("/projects", json={"name": "Eggs", "brief": "Two eggs."})
        thread = await client.threads.create(metadata={"project_id": project["project_id"]})
        sample = json.loads(SAMPLE_INPUT.read_text())
        # A title of its own, so no generation memoised by another test is reused.
        sample["config"]["title"] = f"Eggs {uuid.uuid4().hex[:8]}"
        first = await client.runs.wait(thread["thread_id"], "full_video", input=sample)
        approve = {"decisions": [{"type": "approve"}]}
        await client.runs.wait(thread["thread_id"], "full_video", command={"resume": approve})
        runs = await client.runs.list(thread["thread_id"])
        listed = await client.http.get(f"/projects/{project['project_id']}/runs")
        tracing.flush()

    assert first["__interrupt__"][0]["value"]["stage"] == "treatment"
    resumed, started = runs
    for run in runs:
        assert run["trace_url"].startswith(f"{langfuse.base_url}/trace/")
        assert run["cost"]["totals"]["llm_calls"] == 1
        assert run["cost"]["totals"]["cost_usd"] == 0
    assert [r["stage"] for r in started["cost"]["by_agent_stage"]] == ["treatment"]
    assert [r["stage"] for r in resumed["cost"]["by_agent_stage"]] == ["script"]
    assert {r["run_id"]: (r["trace_url"], r["cost"]) for r in listed} == {
        r["run_id"]: (r["trace_url"], r["cost"]) for r in runs
    }
    trace_ids = {run["trace_url"].rsplit("/", 1)[1] for run in runs}
    assert {span.trace_id for span in langfuse.spans} == trace_ids
    assert {span.attributes["session.id"] for span in langfuse.spans} == {thread["thread_id"]}
    assert {span.attributes["user.id"] for span in langfuse.spans} == {"alice"}
    roots = {s.name for s in langfuse.spans if s.parent_span_id is None}
    assert roots == {"start", "resume at treatment"}
    [score] = langfuse.scores
    assert (score["value"], score["metadata"]) == ("approve", {"stage": "treatment"})
    assert score["traceId"] == resumed["trace_url"].rsplit("/", 1)[1]
    assert _run_id_of(langfuse, score["traceId"]) == resumed["run_id"]


def _run_id_of(langfuse: LangfuseServer, trace_id: str) -> Any:
    [root] = [s for s in langfuse.spans if s.trace_id == trace_id and s.parent_span_id is None]
    return json.loads(root.attributes["langfuse.trace.metadata.run_id"])
