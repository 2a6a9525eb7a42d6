"""The run state: the channels every run has, and the schema built from the agents' declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

__all__ = [
    "Generation",
    "ProductionState",
    "Turn",
    "conversation_messages",
    "feedback_at",
    "latest_feedback",
    "state_schema",
    "turns_at",
]


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


def _append_unseen(left: list[Any], right: list[Any]) -> list[Any]:
    """Append the items of ``right`` not already in ``left``.

    A finished subgraph hands its parent its whole list (what it received plus what it
    added); plain concatenation would repeat the received part. Turns are unique by id.
    """
    seen = {_identity(item) for item in left}
    return left + [item for item in right if _identity(item) not in seen]


def _identity(item: Any) -> Any:
    return item["id"] if isinstance(item, dict) else item


class Turn(TypedDict):
    """One turn of the conversation at a stage: a draft or the person's feedback."""

    id: str
    stage: str
    role: Literal["assistant", "user"]
    content: str
    scene: NotRequired[int]  # the scene in production when it was said (none: the whole film)
    inpaint: NotRequired[dict[str, Any]]  # a frames-gate reject that repaints one region
    references: NotRequired[dict[str, str]]  # a frames-gate reject: entity id -> file key
    own_image: NotRequired[dict[str, Any]]  # a references-gate reject: a sheet's own image


class Generation(TypedDict):
    """The record of one model call: which prompt (name and version) produced what.

    ``langfuse_version`` is the prompt's version in Langfuse when it came from there;
    ``scene`` is the scene a per-scene call drafted. Every call is recorded, failed or not:
    ``outcome`` is ``valid``, ``invalid`` (a repair followed, or the draft failed) or
    ``error`` (no answer: ``error`` says why); ``structured_output`` is how the artifact was
    asked for. A cached record is an answer reused from the store, not a call.
    """

    id: str
    stage: str
    agent: str
    task: str
    prompt: str
    prompt_version: str
    langfuse_version: int | None
    model: str
    cached: bool
    scene: NotRequired[int]
    outcome: NotRequired[Literal["valid", "invalid", "error"]]
    structured_output: NotRequired[str]
    input_tokens: NotRequired[int]
    output_tokens: NotRequired[int]
    error: NotRequired[str]


class ProductionState(TypedDict):
    """The channels every run has, whatever its agents.

    Artifacts are stored as JSON (``model_dump(mode="json")``) under their artifact key;
    their channels are added by :func:`state_schema` from what the agents declare, so an
    agent's artifact always has a channel to land in.
    """

    project: dict[str, Any]
    scene: NotRequired[int]
    """The one scene in production (a scene cycle's, ``regenerate_scene``'s): per-scene steps
    draft that scene's part; gates say it in their payload; the conversation at a stage is the
    scene's own."""
    drafts: NotRequired[Annotated[dict[str, Any], _merge]]
    draft_errors: NotRequired[Annotated[dict[str, str | None], _merge]]
    conversation: NotRequired[Annotated[list[Turn], _append_unseen]]
    approved: NotRequired[Annotated[list[str], _append_unseen]]
    generations: NotRequired[Annotated[list[Generation], _append_unseen]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """The production as a chat (what each stage drafted, each decision): chat clients such
    as agent-chat-ui show a thread's ``messages``; the agents read ``conversation``."""


def turns_at(state: ProductionState, stage: str) -> list[Turn]:
    """The conversation at ``stage`` about the scene in production (or the whole film)."""
    scene = state.get("scene")
    return [
        turn
        for turn in state.get("conversation", [])
        if turn["stage"] == stage and turn.get("scene") == scene
    ]


def feedback_at(state: ProductionState, stage: str) -> list[str]:
    """Every piece of feedback the person gave at ``stage``, oldest first."""
    return [turn["content"] for turn in turns_at(state, stage) if turn["role"] == "user"]


def latest_feedback(state: ProductionState, stage: str) -> Turn | None:
    """The stage's last turn when it is the person's (the draft is a response to it)."""
    turns = turns_at(state, stage)
    return turns[-1] if turns and turns[-1]["role"] == "user" else None


def conversation_messages(state: ProductionState, stage: str) -> list[BaseMessage]:
    """The conversation so far at ``stage``, as chat messages after the task prompt.

    Each earlier draft is an assistant message, each piece of feedback a user message, so
    a regenerated draft sees what it proposed and what the person said about it.
    """
    messages: list[BaseMessage] = []
    for turn in turns_at(state, stage):
        if turn["role"] == "assistant":
            messages.append(AIMessage(turn["content"]))
        else:
            messages.append(
                HumanMessage(
                    f"Feedback from the director: {turn['content']}\n"
                    "Revise your previous answer accordingly and answer with the whole "
                    "revised JSON object."
                )
            )
    return messages


_schemas: dict[tuple[str, ...], type] = {}


def state_schema(keys: Iterable[str]) -> type:
    """:class:`ProductionState` plus a channel for each artifact or bookkeeping key.

    LangGraph drops an update to a key its state schema lacks, so every agent subgraph and
    every workflow graph is built on this schema with every registered agent's keys.
    """
    extra = tuple(sorted(set(keys) - set(ProductionState.__annotations__)))
    if extra not in _schemas:
        fields = {
            **ProductionState.__annotations__,
            **dict.fromkeys(extra, NotRequired[dict[str, Any]]),
        }
        _schemas[extra] = TypedDict("ProductionState", fields)  # type: ignore[operator]
    return _schemas[extra]
