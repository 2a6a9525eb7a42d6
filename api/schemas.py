"""Request bodies of the HTTP API (the Agent Server's, plus Auteur's own resources)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.artifacts import ProjectConfig

__all__ = [
    "MAX_OFFSET",
    "THREAD_ID_PATTERN",
    "ApprovalDecision",
    "AssistantSearch",
    "CommandBody",
    "FileUpload",
    "ProjectCreate",
    "ProjectUpdate",
    "RunConfig",
    "RunCreate",
    "ThreadCount",
    "ThreadCreate",
    "ThreadHistory",
    "ThreadPatch",
    "ThreadSearch",
    "ThreadStateUpdate",
]

THREAD_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"
"""Ids a client may choose for a thread: URL- and header-safe."""

MAX_OFFSET = 1_000_000
"""The largest pagination offset accepted (beyond it, a 422 rather than a database error)."""

StreamMode = Literal[
    "values",
    "updates",
    "custom",
    "debug",
    "messages",
    "messages-tuple",
    "events",
    "tasks",
    "checkpoints",
]


class _Body(BaseModel):
    # Unknown keys are accepted and ignored: newer SDKs send fields older servers lack.
    model_config = ConfigDict(extra="ignore")


class AssistantSearch(_Body):
    """Filters of ``POST /assistants/search`` and ``/count``."""

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class ThreadCreate(_Body):
    """``POST /threads``."""

    thread_id: str | None = Field(None, pattern=THREAD_ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(_Body):
    """``PATCH /threads/{id}``: metadata merged into the thread's."""

    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(_Body):
    """``POST /threads/search``."""

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = (
        "updated_at"
    )
    sort_order: Literal["asc", "desc"] = "desc"


class ThreadCount(_Body):
    """``POST /threads/count``."""

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadStateUpdate(_Body):
    """``POST /threads/{id}/state``."""

    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint_id: str | None = None


class ThreadHistory(_Body):
    """``POST /threads/{id}/history``; ``before`` is a checkpoint id or a checkpoint (config)."""

    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None

    @field_validator("before")
    @classmethod
    def _checkpoint_id(cls, before: str | dict[str, Any] | None) -> str | None:
        """The checkpoint id ``before`` names, from ``{"configurable": {...}}`` or the dict."""
        if not isinstance(before, dict):
            return before
        checkpoint = before.get("configurable") or before
        checkpoint_id = checkpoint.get("checkpoint_id") if isinstance(checkpoint, dict) else None
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise ValueError(f"checkpoint_id must be a string, not {checkpoint_id!r}")
        return checkpoint_id


class CommandBody(_Body):
    """A run's ``command``: ``resume`` answers the gate the thread waits at."""

    resume: Any = None
    update: dict[str, Any] | None = None
    goto: str | list[str] | None = None


class Configurable(BaseModel):
    """``config.configurable``: what the service reads there (it sets the rest itself)."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None


class CheckpointRef(_Body):
    """A run's ``checkpoint``: where in the thread it starts (agent-chat-ui sends its latest)."""

    checkpoint_id: str | None = Field(None, max_length=200)
    checkpoint_ns: str = ""


class RunConfig(BaseModel):
    """A run's ``config``: the JSON keys of LangChain's ``RunnableConfig``.

    The SDK's ``Config`` sends ``tags``, ``recursion_limit`` and ``configurable``; any other
    key is refused naming it, rather than accepted and failing (or ignored) in the run.
    """

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    run_name: str | None = None
    max_concurrency: int | None = Field(None, ge=1)
    recursion_limit: int | None = Field(None, ge=1)
    configurable: Configurable | None = None


class RunCreate(_Body):
    """The body of every run-creating route."""

    assistant_id: str = Field(min_length=1, max_length=200)
    input: dict[str, Any] | None = None
    command: CommandBody | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    checkpoint_id: str | None = Field(None, max_length=200)
    checkpoint: CheckpointRef | None = None
    interrupt_before: Literal["*"] | list[str] | None = Field(
        None, description="Breakpoints: the workflow's nodes to pause before ('*': every one)."
    )
    interrupt_after: Literal["*"] | list[str] | None = Field(
        None, description="Breakpoints: the workflow's nodes to pause after ('*': every one)."
    )

    @model_validator(mode="after")
    def _input_or_command(self) -> RunCreate:
        """A run either starts from ``input`` or answers with ``command``.

        agent-chat-ui sends ``"input": {}`` beside its resume command; as on the official
        server, the command wins over an empty input. Input *and* a command is refused
        rather than half ignored.
        """
        if self.command is not None and not self.input:
            self.input = None
        if self.input is not None and self.command is not None:
            raise ValueError("send either 'input' or 'command', not both")
        return self

    def named_checkpoint(self) -> str | None:
        """The checkpoint the run is to start from, however the client named it."""
        configurable = self.config.configurable if self.config else None
        return (
            self.checkpoint_id
            or (self.checkpoint.checkpoint_id if self.checkpoint else None)
            or (configurable.checkpoint_id if configurable else None)
        )

    def forked_at(self, checkpoint_id: str, branch: str | None) -> RunCreate:
        """This run from ``checkpoint_id`` (LangGraph forks there), on ``branch`` if given."""
        metadata = {**(self.metadata or {}), **({"branch": branch} if branch else {})}
        return self._at(checkpoint_id).model_copy(update={"metadata": metadata})

    def from_latest(self) -> RunCreate:
        """This run with its checkpoint left out: it starts from the thread's latest."""
        return self._at(None)

    def _at(self, checkpoint_id: str | None) -> RunCreate:
        """This run from ``checkpoint_id`` (the latest when None), named in its config alone."""
        config = self.config or RunConfig()
        named = {"checkpoint_id": checkpoint_id} | ({"checkpoint_ns": ""} if checkpoint_id else {})
        configurable = (config.configurable or Configurable()).model_copy(update=named)
        return self.model_copy(
            update={
                "checkpoint_id": None,
                "checkpoint": None,
                "config": config.model_copy(update={"configurable": configurable}),
            }
        )

    def modes(self) -> list[str]:
        """The stream modes as a list."""
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)


class ProjectCreate(_Body):
    """``POST /projects``; ``config`` is a (partial) :class:`ProjectConfig`."""

    name: str = Field(min_length=1, max_length=200)
    brief: str = Field("", max_length=20_000)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _valid_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return valid_config(config)


class ProjectUpdate(_Body):
    """``PATCH /projects/{id}``: a new name, and configuration merged into the saved one."""

    name: str | None = Field(None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None


def valid_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` checked against :class:`ProjectConfig`, keeping only the keys it gave.

    Raises:
        ValueError: What is wrong, field by field.
    """
    ProjectConfig.model_validate(config)
    return config


class FileUpload(_Body):
    """``POST /files``: an image the person made (an inpainting mask) as a ``data:`` URL."""

    data_url: str = Field(
        pattern=r"^data:image/png;base64,[A-Za-z0-9+/=]+$",
        description="data:image/png;base64,… (bounded by the body limit, AUTEUR_MAX_BODY_BYTES)",
    )


class ApprovalDecision(_Body):
    """A decision in the gate's resume shape: ``{"decisions": [{"type": "approve"}]}``."""

    decisions: list[dict[str, Any]] = Field(min_length=1, max_length=1)
