"""``kill -9`` of the server inside the director: one production, each gate decided once.

The director chats over the wire with a configured model (the OpenAI test double plays the
sample conversation's script with real tool calls; the production it starts replays the
sample recordings). The server is killed, from the double as the request arrives, while

(a) the director waits for its own model on the first turn,
(b) it follows the production it started, as the production asks for its first treatment,
(c) it passes the person's feedback ("Make it funnier", said in the chat) on: as the
    production asks for its redraft,
(d) it passes the decision of its own interrupt (the gate's buttons) on: likewise,

and restarted; the restarted server resumes the cut-off runs by itself. After each restart
there is still exactly one production, the director waits at the production's gate it
relays, each gate was shown once and decided only by what the person said, and no model
request was made twice but the one cut off.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import SAMPLE_CONVERSATION, SAMPLE_RECORDINGS
from tests.doubles.openai_server import (
    OpenAIServer,
    play_conversation,
    replay_recordings,
    run_openai_server,
)
from tests.servers import auteur_serve, free_port, model_env

pytestmark = pytest.mark.slow

PROMPTS = Path(__file__).parents[2] / "prompts"
DIRECTOR = "chat"
"""The director's task: its system prompt is ``prompts/director/chat.md``."""
TREATMENT = "draft_treatments"
OPENINGS = {path.read_text().splitlines()[0]: path.stem for path in PROMPTS.glob("*/*.md")}


def _task(body: dict[str, Any]) -> tuple[str, int]:
    """A model request's task (its prompt file) and revision (earlier assistant turns)."""
    messages = body["messages"]
    system = next(m["content"] for m in messages if m["role"] == "system")
    task = next(t for opening, t in OPENINGS.items() if system.startswith(opening))
    return task, sum(m["role"] == "assistant" for m in messages)


class Killer:
    """Kills the server process as the next model request of its plan arrives."""

    def __init__(self, model: OpenAIServer) -> None:
        self.plan: list[tuple[str, int]] = []
        """(task, revision) of each request to kill the server in, in order."""
        self.killed_in: list[tuple[str, int]] = []
        self._server: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        model.on_request = self._on_request

    @property
    def server(self) -> subprocess.Popen[str]:
        assert self._server is not None
        return self._server

    def serving(self, server: subprocess.Popen[str]) -> None:
        """``server`` is the one answering now (a restart's request may come before this)."""
        with self._changed:
            self._server = server
            self._changed.notify_all()

    def _on_request(self, body: dict[str, Any]) -> None:
        asked = _task(body)
        with self._changed:
            if not self.plan or self.plan[0] != asked:
                return
            # a resumed run may ask before the restart is known here: kill the live server
            alive = self._changed.wait_for(
                lambda: self._server is not None and self._server.poll() is None, timeout=120
            )
            assert alive, "no live server to kill"
            self.plan.pop(0)
            self.server.send_signal(signal.SIGKILL)
            self.killed_in.append(asked)


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with run_openai_server() as server:
        server.responder = play_conversation(
            SAMPLE_CONVERSATION, otherwise=replay_recordings(SAMPLE_RECORDINGS, PROMPTS)
        )
        yield server


def _env(database_url: str, model: OpenAIServer) -> dict[str, str]:
    return model_env(database_url, model.base_url, prefix="auteur-director-kill-")


def _chat(http: httpx.Client, director: str, text: str) -> dict[str, Any]:
    """A chat turn of the person's, as a background run of the director's thread."""
    body = {"assistant_id": "director", "input": {"messages": [{"type": "human", "content": text}]}}
    answer = http.post(f"/threads/{director}/runs", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _answer(http: httpx.Client, director: str, decision: dict[str, Any]) -> dict[str, Any]:
    """The person's decision at the director's interrupt (the shown gate's buttons)."""
    body = {"assistant_id": "director", "command": {"resume": decision}}
    answer = http.post(f"/threads/{director}/runs", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _shown(http: httpx.Client, director: str, run: dict[str, Any]) -> dict[str, Any]:
    """What the director waits at once its (resumed) run ends: its one interrupt's value."""
    http.get(f"/threads/{director}/runs/{run['run_id']}/join", timeout=180)
    thread = http.get(f"/threads/{director}").json()
    state = http.get(f"/threads/{director}/state").json()
    assert thread["status"] == "interrupted", (thread["status"], state["values"])
    [interrupt] = state["interrupts"]
    return interrupt["value"]


def _productions(http: httpx.Client, director: str) -> list[str]:
    """The threads the director started (alice's threads naming it in their metadata)."""
    body = {"metadata": {"director_thread": director}, "limit": 100}
    return [t["thread_id"] for t in http.post("/threads/search", json=body).json()]


def _gates(http: httpx.Client, production: str) -> list[tuple[Any, ...]]:
    """The production's gates, oldest first: stage, status, who decided, how, the feedback."""
    rows = []
    for status in ("pending", "decided", "stale"):
        page = http.get("/approvals", params={"status": status, "limit": 200}).json()
        rows += [a for a in page["items"] if a["thread_id"] == production]
    return [
        (
            a["stage"],
            a["status"],
            a["decided_by"],
            a["decision"]["decisions"][0]["type"] if a["decision"] else None,
            a["feedback"],
        )
        for a in sorted(rows, key=lambda a: a["created_at"])
    ]


def _pending_id(http: httpx.Client, production: str) -> str:
    page = http.get("/approvals", params={"status": "pending", "limit": 200}).json()
    [gate] = [a for a in page["items"] if a["thread_id"] == production]
    return gate["approval_id"]


def _said(http: httpx.Client, director: str) -> list[str]:
    """The director thread's messages, as text."""
    messages = http.get(f"/threads/{director}/state").json()["values"]["messages"]
    return [m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in messages]


def _asked(model: OpenAIServer) -> Counter[str]:
    """The model requests the double received, by task."""
    return Counter(_task(body)[0] for body in model.requests)


@pytest.mark.long
def test_a_kill_inside_the_director_starts_and_decides_nothing_twice(
    database_url: str, model: OpenAIServer
) -> None:
    env, port = _env(database_url, model), free_port()
    killer = Killer(model)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": "Bearer alice-key"},
        timeout=60,
    )
    with ExitStack() as servers:

        def restart_once_killed() -> None:
            assert killer.server.wait(timeout=180) == -signal.SIGKILL, killer.plan
            # the restarted server resumes the cut-off runs by itself: the leases lapse
            killer.serving(servers.enter_context(auteur_serve(env, port)))

        killer.serving(servers.enter_context(auteur_serve(env, port)))
        director = http.post("/threads", json={}).json()["thread_id"]

        # (a) killed as the director asks its model, (b) as the production it started drafts
        killer.plan = [(DIRECTOR, 0), (TREATMENT, 0)]
        run = _chat(http, director, "Start the sample film")
        restart_once_killed()
        restart_once_killed()
        shown = _shown(http, director, run)
        assert killer.killed_in == [(DIRECTOR, 0), (TREATMENT, 0)]
        production = shown["production"]["thread_id"]
        assert _productions(http, director) == [production]
        assert shown["stage"] == "treatment"
        assert shown["production"]["approval_id"] == _pending_id(http, production)
        assert _gates(http, production) == [("treatment", "pending", None, None, None)]
        # the cut-off requests were asked again, nothing else twice
        assert _asked(model) == {DIRECTOR: 2, TREATMENT: 2}
        first = shown["action_requests"][0]["args"]

        # (c) feedback said in the chat: killed as the production redrafts
        killer.plan = [(TREATMENT, 1)]
        run = _chat(http, director, "Make it funnier")
        restart_once_killed()
        shown = _shown(http, director, run)
        assert killer.killed_in[-1] == (TREATMENT, 1)
        assert _productions(http, director) == [production]
        assert shown["stage"] == "treatment" and shown["production"]["thread_id"] == production
        assert shown["production"]["approval_id"] == _pending_id(http, production)
        assert shown["action_requests"][0]["args"] != first
        assert _gates(http, production) == [
            ("treatment", "decided", "alice", "reject", "Make it funnier"),
            ("treatment", "pending", None, None, None),
        ]
        assert _asked(model) == {DIRECTOR: 3, TREATMENT: 4}
        said = _said(http, director)
        assert said.count("Sent to the treatment gate.") == 1, said
        assert not [s for s in said if "already decided elsewhere" in s], said

        # (d) the relayed gate's own buttons: killed as the production redrafts again
        killer.plan = [(TREATMENT, 2)]
        darker = {"decisions": [{"type": "reject", "message": "Darker, please"}]}
        run = _answer(http, director, darker)
        restart_once_killed()
        shown = _shown(http, director, run)
        assert killer.killed_in[-1] == (TREATMENT, 2)
        assert _productions(http, director) == [production]
        assert shown["stage"] == "treatment"
        assert shown["production"]["approval_id"] == _pending_id(http, production)
        assert _gates(http, production) == [
            ("treatment", "decided", "alice", "reject", "Make it funnier"),
            ("treatment", "decided", "alice", "reject", "Darker, please"),
            ("treatment", "pending", None, None, None),
        ]
        assert _asked(model) == {DIRECTOR: 3, TREATMENT: 6}
        said = _said(http, director)
        assert said.count("Darker, please") == 1, said
        assert not [s for s in said if "already decided elsewhere" in s], said
        assert killer.plan == []
