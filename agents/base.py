"""The production-agent base: registry, shared state, run context and the approval gate.

A production agent is one file in ``agents/``: a subclass of :class:`ProductionAgent` that
drafts one artifact. Subclassing registers it; :func:`load_agents` imports the folder.
Every agent's subgraph is ``draft_<stage>`` → ``approve_<stage>``: the gate stops the run
with :func:`langgraph.types.interrupt` and goes on with the person's decision — approve,
edit (validated, applied as given) or reject with feedback (the stage is drafted again
with the conversation so far).

Example:
    ```python
    class StoryboardCritic(ProductionAgent):
        name = "storyboard_critic"
        stage = "critique"
        artifact = Critique

        async def propose(self, state, runtime):
            ...  # return a Critique
    ```
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NotRequired

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from agents.artifacts import Project, input_hash
from prompts import RenderedPrompt
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider, generate_structured
from tools.plugins import Registry, discover, is_concrete
from tools.storage import FileStore, MediaFile

__all__ = [
    "Context",
    "Decision",
    "GateRequest",
    "ProductionAgent",
    "ProductionState",
    "Turn",
    "conversation_messages",
    "feedback_at",
    "load_agents",
    "progress",
    "project_of",
    "review",
]

GATE_DECISIONS = ("approve", "edit", "reject")


@dataclass(kw_only=True)
class Context:
    """What every run needs that is not state: models, the generation backend, storage."""

    models: ModelProvider
    backend: DraftBackend
    files: FileStore


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


class ProductionState(TypedDict):
    """State shared by every workflow type and agent subgraph.

    Artifacts are stored as JSON (``model_dump(mode="json")``) under their stage name.
    """

    project: dict[str, Any]
    script: NotRequired[dict[str, Any]]
    assets: NotRequired[dict[str, Any]]
    shots: NotRequired[dict[str, Any]]
    frames: NotRequired[dict[str, Any]]
    clips: NotRequired[dict[str, Any]]
    video: NotRequired[dict[str, Any]]
    drafts: NotRequired[Annotated[dict[str, Any], _merge]]
    conversation: NotRequired[Annotated[list[Turn], _append_unseen]]
    approved: NotRequired[Annotated[list[str], _append_unseen]]


# --- progress and conversation ---------------------------------------------------------------


def progress(runtime: Runtime[Context], stage: str, message: str, **extra: object) -> None:
    """Stream a progress event (``custom`` stream mode) carrying ``stage`` and ``message``."""
    runtime.stream_writer({"stage": stage, "message": message, **extra})


def feedback_at(state: ProductionState, stage: str) -> list[str]:
    """Every piece of feedback the person gave at ``stage``, oldest first."""
    return [
        turn["content"]
        for turn in state.get("conversation", [])
        if turn["stage"] == stage and turn["role"] == "user"
    ]


def conversation_messages(state: ProductionState, stage: str) -> list[BaseMessage]:
    """The conversation so far at ``stage``, as chat messages after the task prompt.

    Each earlier draft is an assistant message, each piece of feedback a user message, so
    a regenerated draft sees what it proposed and what the person said about it.
    """
    messages: list[BaseMessage] = []
    for turn in state.get("conversation", []):
        if turn["stage"] != stage:
            continue
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


# --- the approval gate -----------------------------------------------------------------------


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


class Reject(BaseModel):
    """Send the proposal back with conversational feedback."""

    type: Literal["reject"]
    message: str = Field(min_length=1)


Decision = Annotated[Approve | Edit | Reject, Field(discriminator="type")]


class Resume(BaseModel):
    """The resume value of a gate: LangChain's human-in-the-loop response shape."""

    decisions: list[Decision] = Field(min_length=1, max_length=1)


_resume_adapter = TypeAdapter(Resume)


@dataclass(frozen=True)
class GateRequest:
    """What a gate asks the person to review."""

    stage: str
    artifact: type[BaseModel]
    proposal: dict[str, Any]
    description: str
    problems: list[str]

    def payload(self, *, error: str | None) -> dict[str, Any]:
        """The interrupt payload: LangChain's HITL request plus Auteur's own fields."""
        configurable = get_config().get("configurable", {})
        return {
            "action_requests": [
                {"name": self.stage, "args": self.proposal, "description": self.description}
            ],
            "review_configs": [
                {
                    "action_name": self.stage,
                    "allowed_decisions": list(GATE_DECISIONS),
                    "args_schema": self.artifact.model_json_schema(),
                }
            ],
            "stage": self.stage,
            "thread_id": configurable.get("thread_id"),
            "project_id": configurable.get("project_id"),
            "problems": self.problems,
            "error": error,
        }

    def parse(self, raw: object) -> Approve | Edit | Reject:
        """Validate a resume value; an edit must name this stage and fit the artifact schema.

        Raises:
            ValueError: What is wrong with the decision, in words the person can act on.
        """
        try:
            decision = _resume_adapter.validate_python(raw).decisions[0]
        except ValidationError as error:
            raise ValueError(
                "a decision must look like {'decisions': [{'type': 'approve'}]}, "
                "{'decisions': [{'type': 'edit', 'edited_action': {'name': ..., 'args': {...}}}]} "
                f"or {{'decisions': [{{'type': 'reject', 'message': '...'}}]}}: {error}"
            ) from None
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
        return decision


def review(request: GateRequest) -> Approve | Edit | Reject:
    """Stop at the gate until the person sends a valid decision.

    An invalid decision does not pass: the gate interrupts again with the same proposal
    and an ``error`` saying what was wrong (earlier answers are replayed on resume, which
    is how LangGraph matches several interrupts in one node).
    """
    error: str | None = None
    while True:
        raw = interrupt(request.payload(error=error))
        try:
            return request.parse(raw)
        except ValueError as problem:
            error = str(problem)


# --- the agent base --------------------------------------------------------------------------


class ProductionAgent(ABC):
    """A production agent: drafts one artifact and ends in the shared approval gate.

    Subclasses set ``name`` (the plugin name), ``stage`` (the state key and gate name)
    and ``artifact`` (the Pydantic model), and implement :meth:`propose`.
    """

    name: ClassVar[str]
    stage: ClassVar[str]
    artifact: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""
    after_approval: ClassVar[str] = END
    registry: ClassVar[Registry[ProductionAgent]] = Registry("agent")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if is_concrete(cls):
            ProductionAgent.registry.add(cls.name, cls)

    @abstractmethod
    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> BaseModel:
        """Draft the stage's artifact from the state (feedback included in the conversation)."""

    def summary(self, artifact: BaseModel) -> str:
        """One line describing a proposal, shown at the gate."""
        return f"Review the proposed {self.stage}."

    def problems(self, artifact: BaseModel, state: ProductionState) -> list[str]:
        """Rules the proposal still breaks, shown at the gate (never passed silently)."""
        return []

    @property
    def draft_node(self) -> str:
        """Name of the node that drafts."""
        return f"draft_{self.stage}"

    @property
    def gate_node(self) -> str:
        """Name of the approval-gate node."""
        return f"approve_{self.stage}"

    def build(self) -> StateGraph:
        """The agent's uncompiled subgraph: draft, then the approval gate."""
        graph = StateGraph(ProductionState, context_schema=Context)
        graph.add_node(self.draft_node, self.draft)
        graph.add_node(
            self.gate_node,
            self.make_gate(),
            destinations=(self.draft_node, self.after_approval),
        )
        graph.add_edge(START, self.draft_node)
        graph.add_edge(self.draft_node, self.gate_node)
        return graph

    async def draft(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: propose the artifact and remember it as this stage's draft."""
        progress(runtime, self.stage, f"drafting {self.stage}")
        proposal = await self.propose(state, runtime)
        content = proposal.model_dump(mode="json")
        return {
            "drafts": {self.stage: content},
            "conversation": [
                Turn(
                    id=str(uuid.uuid4()),
                    stage=self.stage,
                    role="assistant",
                    content=proposal.model_dump_json(),
                )
            ],
        }

    def make_gate(self) -> Callable[..., Command]:
        """The approval-gate node; approval goes to :attr:`after_approval`."""

        def gate(state: ProductionState) -> Command:
            proposal = state["drafts"][self.stage]
            proposed = self.artifact.model_validate(proposal)
            request = GateRequest(
                stage=self.stage,
                artifact=self.artifact,
                proposal=proposal,
                description=self.summary(proposed),
                problems=self.problems(proposed, state),
            )
            decision = review(request)
            if isinstance(decision, Reject):
                feedback = Turn(
                    id=str(uuid.uuid4()), stage=self.stage, role="user", content=decision.message
                )
                return Command(goto=self.draft_node, update={"conversation": [feedback]})
            accepted = decision.edited_action.args if isinstance(decision, Edit) else proposal
            artifact = self.artifact.model_validate(accepted).model_dump(mode="json")
            return Command(
                goto=self.after_approval, update={self.stage: artifact, "approved": [self.stage]}
            )

        gate.__name__ = self.gate_node
        return gate

    async def generate(
        self,
        runtime: Runtime[Context],
        prompt: RenderedPrompt,
        state: ProductionState,
        *,
        task: str,
        follow_up: Sequence[BaseMessage] = (),
    ) -> BaseModel:
        """Ask the agent's model for the artifact, memoised by the exact input.

        The result is kept in the store under the hash of (model, prompt, conversation),
        so a resumed or replayed node never pays twice for the same generation.
        ``follow_up`` messages go after the conversation (e.g. a repair request).
        """
        messages: list[BaseMessage] = [
            SystemMessage(prompt.system),
            HumanMessage(prompt.user),
            *conversation_messages(state, self.stage),
            *follow_up,
        ]
        model = runtime.context.models.chat_model(agent=self.name, task=task)
        key = input_hash(
            runtime.context.models.describe(),
            self.name,
            task,
            [m.model_dump(include={"type", "content"}) for m in messages],
        )
        namespace = ("generations", "llm")
        if runtime.store is not None and (hit := await runtime.store.aget(namespace, key)):
            return self.artifact.model_validate(hit.value["artifact"])

        async def on_retry(message: str) -> None:
            progress(runtime, self.stage, message)

        artifact = await generate_structured(
            model, self.artifact, messages, on_retry=on_retry, label=f"{self.stage} ({task})"
        )
        if runtime.store is not None:
            await runtime.store.aput(
                namespace,
                key,
                {
                    "artifact": artifact.model_dump(mode="json"),
                    "prompt": prompt.name,
                    "prompt_version": prompt.version,
                },
                index=False,
            )
        return artifact

    async def generate_media(
        self,
        runtime: Runtime[Context],
        key: str,
        make: Callable[[], Awaitable[bytes]],
        *,
        extension: str,
        media_type: str,
    ) -> MediaFile:
        """Produce a media file once per input hash ``key`` and keep it in the file store.

        A resumed, retried or replayed node finds the earlier result and makes nothing.
        """
        namespace = ("generations", "media")
        files = runtime.context.files
        if runtime.store is not None and (hit := await runtime.store.aget(namespace, key)):
            cached = MediaFile.model_validate(hit.value["file"])
            if files.exists(cached.key):
                return cached
        file = files.put(await make(), extension=extension, media_type=media_type)
        if runtime.store is not None:
            await runtime.store.aput(
                namespace, key, {"file": file.model_dump(mode="json")}, index=False
            )
        return file


def project_of(state: ProductionState) -> Project:
    """The validated project configuration of a run."""
    return Project.model_validate(state["project"])


def load_agents() -> Registry[ProductionAgent]:
    """Import every module in ``agents/`` and return the filled registry."""
    discover("agents")
    return ProductionAgent.registry
