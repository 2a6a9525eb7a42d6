"""``kill -9`` of the server inside every agent's draft: every gate still waits for the person.

One production through ``auteur serve``: for each gate — the scene cycle's in scene 1 and
again in scene 2 — the server is killed while the stage is being drafted — while it waits
for the model or for a line to be spoken (the kill comes from the model's test double as
the request arrives), between two frames or clips, or as the scene's instances are drawn —
and restarted. The restarted server resumes the run in the same scene; the stage's gate
must then be pending, shown once and decided only by the person's own request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from tests.doubles.openai_server import OpenAIServer, replay_recordings, run_openai_server
from tests.servers import GATE_SCENES, GATES, auteur_serve, free_port, model_env

pytestmark = pytest.mark.slow

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}
PROMPTS = Path(__file__).parents[2] / "prompts"
# Where each stage's draft is caught: the model call it waits for, or its first media job.
LLM_TASKS = {
    "treatment": "draft_treatments",
    "script": "draft_script",
    "master_script": "write_master_scene",
    "assets": "extract_assets",
    "shots": "list_scene_shots",
}
SPEECH = "speech"
"""The casting samples and the dialogue are caught at their first line to speak."""
SPOKEN = {"casting": SPEECH, "dialogue": SPEECH}
FIRST_JOB = {
    # the draft backend's sheets and instances say nothing while drawn: caught as they start
    "references": "drafting references",
    "instances": "drafting instances",
    "frames": "frame 1/",
    "clips": "clip 1/",
}
KILL_IN = LLM_TASKS | SPOKEN
FROM_CACHE = {("dialogue", 1): "drafting dialogue"}
"""Drafts with nothing to ask the model: scene 1's lines are each speaker's first, spoken
already as the casting's samples, so they come from the generation cache; caught as they
start."""


def _model_task(stage: str, scene: int | None) -> str | None:
    """The model task the double kills the server in, for the draft of this gate."""
    return None if (stage, scene) in FROM_CACHE else KILL_IN.get(stage)


def _stream_marker(stage: str, scene: int | None) -> str | None:
    """What the run's event stream says when the test kills the server, for this gate."""
    return FROM_CACHE.get((stage, scene)) or FIRST_JOB.get(stage)


class Killer:
    """Kills the current server process when a given model task is asked for."""

    def __init__(self, model: OpenAIServer) -> None:
        self.server: subprocess.Popen[str] | None = None
        self.task: str | None = None
        self.killed_in: list[str] = []
        self._lock = threading.Lock()  # the scenes of a stage ask at once
        self._system_openings = {
            path.read_text().splitlines()[0]: path.stem for path in PROMPTS.glob("*/*.md")
        }
        model.on_request = self._on_request
        model.on_speech = lambda _body: self._kill_in(SPEECH)

    def _on_request(self, body: dict[str, Any]) -> None:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        self._kill_in(next(t for o, t in self._system_openings.items() if system.startswith(o)))

    def _kill_in(self, task: str) -> None:
        with self._lock:
            if self.server is not None and task == self.task:
                self.task = None
                self.server.send_signal(signal.SIGKILL)
                self.killed_in.append(task)


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with run_openai_server() as server:
        server.responder = replay_recordings(SAMPLE_RECORDINGS, PROMPTS)
        yield server


def _env(database_url: str, model: OpenAIServer) -> dict[str, str]:
    return model_env(database_url, model.base_url, prefix="auteur-kill-")


def _approvals(http: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    rows = []
    for status in ("pending", "decided", "stale"):
        page = http.get("/approvals", params={"status": status, "limit": 200}).json()
        rows += [a for a in page["items"] if a["thread_id"] == thread_id]
    return sorted(rows, key=lambda a: a["created_at"])


def _pending_gate(http: httpx.Client, thread_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pending = [a for a in _approvals(http, thread_id) if a["status"] == "pending"]
        if pending:
            [gate] = pending
            return gate
        time.sleep(0.1)
    raise AssertionError("no gate became pending after the restart")


def _kill_at_first_job(
    server: subprocess.Popen[str], http: httpx.Client, run: dict[str, Any], marker: str
) -> None:
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}/stream"
    with http.stream("GET", path, headers={"Last-Event-ID": "-1"}) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and marker in line:
                server.send_signal(signal.SIGKILL)
                return
    raise AssertionError(f"the run ended before '{marker}'")


def _decide(http: httpx.Client, thread_id: str, gate: dict[str, Any], by_queue: bool) -> Any:
    """Approve ``gate`` through the approval queue or the runs API; the run it starts."""
    if by_queue:
        answer = http.post(f"/approvals/{gate['approval_id']}", json=APPROVE)
        assert answer.status_code == 202, answer.text
        return answer.json()["run"]
    body = {"assistant_id": "full_video", "command": {"resume": APPROVE}}
    answer = http.post(f"/threads/{thread_id}/runs", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.long
def test_a_kill_inside_every_draft_leaves_every_gate_to_the_person(
    database_url: str, model: OpenAIServer
) -> None:
    env, port = _env(database_url, model), free_port()
    killer = Killer(model)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": "Bearer alice-key"},
        timeout=60,
    )
    killed_at_job = []
    with ExitStack() as servers:
        server = killer.server = servers.enter_context(auteur_serve(env, port))
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        killer.task = _model_task(GATES[0], GATE_SCENES[0])
        body = {"assistant_id": "full_video", "input": SAMPLE}
        run = http.post(f"/threads/{thread_id}/runs", json=body).json()
        for index, (stage, scene) in enumerate(zip(GATES, GATE_SCENES, strict=True)):
            where = f"{stage} (scene {scene})"
            if marker := _stream_marker(stage, scene):
                _kill_at_first_job(server, http, run, marker)
                killed_at_job.append((stage, scene))
            assert server.wait(timeout=120) == -signal.SIGKILL, f"not killed in {where}"
            # the restarted server resumes the cut-off run by itself
            server = killer.server = servers.enter_context(auteur_serve(env, port))
            gate = _pending_gate(http, thread_id)
            assert gate["stage"] == stage, where
            state = http.get(f"/threads/{thread_id}/state").json()
            approved = state["values"]["approved"]
            if stage in GATES[:index]:  # scene 2's gate: every stage approved in scene 1 kept
                assert approved == list(dict.fromkeys(GATES[:index])), where
            else:
                assert stage not in approved, where
            assert state["values"].get("scene") == scene, where
            shown = state["interrupts"][0]["value"]
            assert (shown["stage"], shown["scene"]) == (stage, scene)
            following = zip(GATES[index + 1 :], GATE_SCENES[index + 1 :], strict=True)
            killer.task = next((_model_task(*gate) for gate in following), None)
            run = _decide(http, thread_id, gate, by_queue=index % 2 == 1)
        http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
        final = http.get(f"/threads/{thread_id}/state").json()
        approvals = _approvals(http, thread_id)
    gates = list(zip(GATES, GATE_SCENES, strict=True))
    assert killer.killed_in == [task for gate in gates if (task := _model_task(*gate))]
    assert killed_at_job == [gate for gate in gates if _stream_marker(*gate)]
    assert len(killer.killed_in) + len(killed_at_job) == len(GATES)  # a kill in every draft
    assert [(a["stage"], a["status"], a["decided_by"]) for a in approvals] == [
        (stage, "decided", "alice") for stage in GATES
    ]
    assert final["values"]["approved"] == list(dict.fromkeys(GATES))
    assert "video" in final["values"]
