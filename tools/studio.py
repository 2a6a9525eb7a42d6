"""What the director can do in the studio: start productions, follow them, decide their gates.

The director (``graphs/director.py``) is a chat agent over the person's productions. It
never runs a production inside its own thread: each production is a thread of its own
workflow type, with its own gates, so a gate is decided exactly once wherever it is shown
(the chat, the web client, Agent Inbox, the CLI). :class:`Studio` is the director's view of
that service; the run executor gives each director run one bound to its owner
(``api/studio.py``), and a run without one (``langgraph dev``) says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from tools.errors import ExpectedFailure

__all__ = ["Gate", "Outcome", "Studio", "StudioUnavailableError"]


class StudioUnavailableError(ExpectedFailure):
    """The director runs where there is no studio service (no database, no executor)."""


@dataclass(frozen=True)
class Gate:
    """A production's gate waiting for the person: its approval row, as the queue shows it."""

    approval_id: str
    thread_id: str
    workflow: str
    stage: str
    payload: dict[str, Any]

    @property
    def label(self) -> str:
        """The gate in words: "master script", or "scene 2 frames" in a scene cycle."""
        stage = self.stage.replace("_", " ")
        scene = self.payload.get("scene")
        return stage if scene is None else f"scene {scene} {stage}"


@dataclass(frozen=True)
class Outcome:
    """Where a production stands once its run stops: at a gate, finished, or failed."""

    thread_id: str
    status: Literal["gate", "finished", "failed"]
    gate: Gate | None = None
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Studio(Protocol):
    """The productions of one person, as the director may touch them."""

    async def start(
        self,
        workflow: str,
        *,
        brief: str | None,
        config: dict[str, Any] | None,
        project_id: str | None,
        key: str,
    ) -> tuple[str, str]:
        """Start ``workflow`` on a project (a new one from ``brief`` and ``config`` if none).

        ``key`` makes it idempotent: the same key starts nothing twice. Returns the project
        id and the production's thread id.

        Raises:
            ValueError: An unknown workflow type, or an input it refuses, in words.
        """
        ...

    async def follow(
        self, thread_id: str, on_progress: Callable[[str, str], Awaitable[None] | None]
    ) -> Outcome:
        """Wait until the production's runs stop; ``on_progress(stage, message)`` meanwhile."""
        ...

    async def decide(self, approval_id: str, decision: dict[str, Any], *, key: str) -> bool:
        """Send a decision to a pending gate: True once it is the gate's decision.

        A gate decided elsewhere is not decided again (False); one decided by an earlier try
        of the same ``key`` answers True.

        Raises:
            ValueError: The decision does not fit the gate.
        """
        ...

    async def pending(self, project_id: str | None) -> list[Gate]:
        """The person's pending production gates (of the project, when given)."""
        ...

    async def project(self, project_id: str) -> dict[str, Any]:
        """The project: brief, current artifacts, productions and their status, costs.

        Raises:
            ValueError: No such project of the person's.
        """
        ...
