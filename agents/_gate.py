"""The approval gate: the decisions a person can send, and the interrupt that waits for one.

Every gate uses LangChain's human-in-the-loop shape (``action_requests`` and
``review_configs``) so agent-chat-ui and Agent Inbox render it unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langgraph.config import get_config
from langgraph.types import interrupt
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "Approve",
    "Confirmation",
    "Decision",
    "Edit",
    "GateRequest",
    "Inpaint",
    "Reject",
    "canonical_resume",
    "confirm",
    "review",
]

GATE_DECISIONS = ("approve", "edit", "reject")


class Approve(BaseModel):
    """Accept the proposal as it is."""

    type: Literal["approve"]


class EditedAction(BaseModel):
    """The proposal as the person edited it."""

    name: str
    args: dict[str, Any]


class Edit(BaseModel):
    """Replace the proposal with an edited version."""

    type: Literal["edit"]
    edited_action: EditedAction


class Inpaint(BaseModel):
    """Repaint a region of one image: the mask (white = repaint) is a stored PNG's key.

    The image is a keyframe (``shot`` and ``position``, at the frames gate) or a reference
    sheet (``entity`` and ``look``, at the references gate).
    """

    shot: str | None = None
    position: Literal["start", "end"] | None = None
    entity: str | None = None
    look: str | None = None
    mask: str = Field(pattern=r"^[0-9a-f]{64}\.png$")
    source: str | None = Field(
        None, description="Key of the candidate painted on; the chosen one when absent."
    )

    @model_validator(mode="after")
    def _one_image(self) -> Inpaint:
        named = [
            pair
            for pair in ((self.shot, self.position), (self.entity, self.look))
            if pair != (None, None)
        ]
        if len(named) != 1 or None in named[0]:
            raise ValueError(
                "an inpaint names one image: a keyframe (shot and position) or a reference "
                "sheet (entity and look)"
            )
        return self


class OwnImage(BaseModel):
    """An image of the person's own (a stored PNG's key) for one reference sheet.

    The model describes it and proposes the look's description from it, replaced or merged.
    """

    entity: str
    look: str
    file: str = Field(pattern=r"^[0-9a-f]{64}\.png$")


class Reject(BaseModel):
    """Send the proposal back with conversational feedback (or one request of the stage's).

    ``inpaint`` repaints a region of one image; ``references`` (entity id → file key) picks
    other reference images for those entities; ``own_image`` puts an image of the person's
    own in a reference sheet's place, to be described.
    """

    type: Literal["reject"]
    message: str = Field(min_length=1)
    inpaint: Inpaint | None = None
    references: dict[str, str] | None = Field(None, min_length=1)
    own_image: OwnImage | None = None

    @model_validator(mode="after")
    def _one_request(self) -> Reject:
        asked = [self.inpaint, self.references, self.own_image]
        if sum(request is not None for request in asked) > 1:
            raise ValueError(
                "a reject makes one request: inpaint, references or own_image, not several"
            )
        return self


Decision = Annotated[Approve | Edit | Reject, Field(discriminator="type")]


class Resume(BaseModel):
    """The resume value of a gate: LangChain's human-in-the-loop response shape."""

    decisions: list[Decision] = Field(min_length=1, max_length=1)


_resume_adapter = TypeAdapter(Resume)

_INBOX_TYPES = ("accept", "edit", "response", "ignore")


def canonical_resume(raw: object) -> object:
    """A resume value in the shape :class:`Resume` reads; other values are returned as given.

    Agent Inbox (and LangGraph's older ``HumanInterrupt`` clients) answer with a list of
    ``{"type": "accept" | "edit" | "response" | "ignore", "args": ...}``: accept approves,
    response is feedback, and edit carries ``{"action": stage, "args": artifact}``.

    Raises:
        ValueError: For ``ignore``: a gate is decided by the person, never skipped.
    """
    if not (
        isinstance(raw, list)
        and len(raw) == 1
        and isinstance(raw[0], dict)
        and raw[0].get("type") in _INBOX_TYPES
    ):
        return raw
    kind, args = raw[0]["type"], raw[0].get("args")
    if kind == "ignore":
        raise ValueError(
            "a gate cannot be ignored: accept it, edit it or respond with what to change"
        )
    if kind == "accept":
        return {"decisions": [{"type": "approve"}]}
    if kind == "response":
        return {"decisions": [{"type": "reject", "message": args}]}
    action = args if isinstance(args, dict) else {}
    edited = {"name": action.get("action"), "args": action.get("args")}
    return {"decisions": [{"type": "edit", "edited_action": edited}]}


@functools.cache
def _schema_of(artifact: type[BaseModel]) -> dict[str, Any]:
    """An artifact's JSON schema, made once per type (read only).

    Pydantic builds it anew at every call, and a gate's payload is made again each time the
    gate's node runs.
    """
    return artifact.model_json_schema()


def _action(name: str, args: dict[str, Any], description: str) -> dict[str, Any]:
    """One of LangChain's HITL ``action_requests``.

    The arguments are also under ``arguments``, the name Agent Inbox reads them by (it shows
    no fields to edit otherwise).
    """
    return {"name": name, "args": args, "arguments": args, "description": description}


@dataclass(frozen=True)
class GateRequest:
    """What a gate asks the person to review."""

    stage: str
    artifact: type[BaseModel]
    proposal: dict[str, Any]
    description: str
    problems: list[str]
    draft_error: str | None = None
    check: Callable[[Approve | Edit | Reject, dict[str, Any]], None] | None = None
    stale: list[dict[str, Any]] = field(default_factory=list)
    scene: int | None = None

    @property
    def allowed_decisions(self) -> list[str]:
        """Every decision, except approve when the draft failed (there is nothing to approve)."""
        if self.draft_error is None:
            return list(GATE_DECISIONS)
        return [decision for decision in GATE_DECISIONS if decision != "approve"]

    def payload(self, *, error: str | None) -> dict[str, Any]:
        """The interrupt payload: LangChain's HITL request plus Auteur's own fields."""
        configurable = get_config().get("configurable", {})
        return {
            "action_requests": [_action(self.stage, self.proposal, self.description)],
            "review_configs": [
                {
                    "action_name": self.stage,
                    "allowed_decisions": self.allowed_decisions,
                    "args_schema": _schema_of(self.artifact),
                }
            ],
            "stage": self.stage,
            "scene": self.scene,
            "artifact_type": self.artifact.__name__,
            "thread_id": configurable.get("thread_id"),
            "project_id": configurable.get("project_id"),
            "problems": self.problems,
            "stale": self.stale,
            "draft_error": self.draft_error,
            "error": error,
        }

    def parse(self, raw: object) -> Approve | Edit | Reject:
        """Validate a resume value; an edit must name this stage and fit the artifact schema.

        Raises:
            ValueError: What is wrong with the decision, in words the person can act on.
        """
        decision = _read_resume(raw)
        if decision.type not in self.allowed_decisions:
            raise ValueError(
                f"there is no valid {self.stage} to approve ({self.draft_error}); give feedback "
                "to draft it again, or edit it yourself"
            )
        if isinstance(decision, Edit):
            if decision.edited_action.name != self.stage:
                raise ValueError(
                    f"the edit names '{decision.edited_action.name}' but this gate "
                    f"reviews '{self.stage}'"
                )
            try:
                self.artifact.model_validate(decision.edited_action.args)
            except ValidationError as error:
                raise ValueError(f"the edited {self.stage} is not valid: {error}") from None
        if self.check is not None:
            self.check(decision, self.proposal)
        return decision


def _read_resume(raw: object) -> Approve | Edit | Reject:
    """The one decision a resume value carries, in any shape :func:`canonical_resume` reads.

    Raises:
        ValueError: The value is no decision, with the shapes that are.
    """
    try:
        return _resume_adapter.validate_python(canonical_resume(raw)).decisions[0]
    except ValidationError as error:
        raise ValueError(
            "a decision must look like {'decisions': [{'type': 'approve'}]}, "
            "[{'type': 'accept'}] (Agent Inbox's), "
            "{'decisions': [{'type': 'edit', 'edited_action': {'name': ..., 'args': {...}}}]} "
            f"or {{'decisions': [{{'type': 'reject', 'message': '...'}}]}}: {error}"
        ) from None


@dataclass(frozen=True)
class Confirmation:
    """A question before an agent acts for the person: go ahead, change the arguments, or not.

    Shown as LangChain's human-in-the-loop request, as a gate is; ``confirm`` in the payload
    tells it from a gate (it reviews an action, not an artifact).
    """

    action: str
    args: dict[str, Any]
    description: str

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> Confirmation:
        """The confirmation a payload of :meth:`payload` asks."""
        request = payload["action_requests"][0]
        return cls(request["name"], request["args"], request.get("description", ""))

    def payload(self, *, error: str | None) -> dict[str, Any]:
        """The interrupt payload."""
        return {
            "action_requests": [_action(self.action, self.args, self.description)],
            "review_configs": [
                {"action_name": self.action, "allowed_decisions": list(GATE_DECISIONS)}
            ],
            "stage": self.action,
            "confirm": True,
            "error": error,
        }

    def parse(self, raw: object) -> Approve | Edit | Reject:
        """Validate a resume value; an edit must name this action.

        Raises:
            ValueError: What is wrong with the answer.
        """
        decision = _read_resume(raw)
        if isinstance(decision, Edit) and decision.edited_action.name != self.action:
            raise ValueError(
                f"the edit names '{decision.edited_action.name}' but this asks about "
                f"'{self.action}'"
            )
        return decision


def confirm(request: Confirmation) -> Approve | Edit | Reject:
    """Ask the person before acting, until they answer validly (as :func:`review` does)."""
    return _until_valid(request)


def review(request: GateRequest) -> Approve | Edit | Reject:
    """Stop at the gate until the person sends a valid decision.

    An invalid decision does not pass: the gate interrupts again with the same proposal
    and an ``error`` saying what was wrong (earlier answers are replayed on resume, which
    is how LangGraph matches several interrupts in one node).
    """
    return _until_valid(request)


def _until_valid(request: GateRequest | Confirmation) -> Approve | Edit | Reject:
    error: str | None = None
    while True:
        raw = interrupt(request.payload(error=error))
        try:
            return request.parse(raw)
        except ValueError as problem:
            error = str(problem)
