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

import asyncio
import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from typing_extensions import TypedDict

from agents.artifacts import Project, input_hash
from prompts import RenderedPrompt
from tools import ledger, tracing
from tools.comfy_tools import MediaBackend
from tools.discovery import WorkflowDiscovery
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider, StructuredOutputError, generate_structured
from tools.plugins import Registry, discover, is_concrete
from tools.storage import FileStore, MediaFile, record

__all__ = [
    "Context",
    "Decision",
    "GateRequest",
    "Generation",
    "ProductionAgent",
    "ProductionState",
    "Step",
    "Turn",
    "check_decision",
    "conversation_messages",
    "feedback_at",
    "load_agents",
    "progress",
    "project_of",
    "review",
]

GATE_DECISIONS = ("approve", "edit", "reject")

ArtifactT = TypeVar("ArtifactT", bound=BaseModel)


@dataclass(kw_only=True)
class Context:
    """What every run needs that is not state: models, the generation backend, storage.

    ``discovery`` searches the workflow catalogue by meaning for each media task; without
    one (no database: the offline test context, ``langgraph dev``) a task takes the
    catalogue's first workflow of its category.
    """

    models: ModelProvider
    backend: MediaBackend | DraftBackend  # a plain DraftBackend runs as comfy_tools.DraftMedia
    files: FileStore
    discovery: WorkflowDiscovery | None = None


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
    inpaint: NotRequired[dict[str, Any]]  # a frames-gate reject that repaints one region
    references: NotRequired[dict[str, str]]  # a frames-gate reject: entity id -> file key


class Generation(TypedDict):
    """The record of one model call: which prompt (name and version) produced what.

    ``langfuse_version`` is the prompt's version in Langfuse when it came from there;
    ``scene`` is the scene a per-scene call drafted.
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


class ProductionState(TypedDict):
    """State shared by every workflow type and agent subgraph.

    Artifacts are stored as JSON (``model_dump(mode="json")``) under their stage name.
    """

    project: dict[str, Any]
    treatment: NotRequired[dict[str, Any]]
    script: NotRequired[dict[str, Any]]
    master_script: NotRequired[dict[str, Any]]
    assets: NotRequired[dict[str, Any]]
    shots: NotRequired[dict[str, Any]]
    frames: NotRequired[dict[str, Any]]
    clips: NotRequired[dict[str, Any]]
    video: NotRequired[dict[str, Any]]
    drafts: NotRequired[Annotated[dict[str, Any], _merge]]
    draft_errors: NotRequired[Annotated[dict[str, str | None], _merge]]
    conversation: NotRequired[Annotated[list[Turn], _append_unseen]]
    approved: NotRequired[Annotated[list[str], _append_unseen]]
    generations: NotRequired[Annotated[list[Generation], _append_unseen]]
    asset_extraction: NotRequired[dict[str, Any]]


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


class Inpaint(BaseModel):
    """Repaint a region of one keyframe: the mask (white = repaint) is a stored PNG's key."""

    shot: str
    position: Literal["start", "end"]
    mask: str = Field(pattern=r"^[0-9a-f]{64}\.png$")
    source: str | None = Field(
        None, description="Key of the candidate painted on; the chosen one when absent."
    )


class Reject(BaseModel):
    """Send the proposal back with conversational feedback (or an inpainting request).

    ``references`` (entity id → file key) picks other reference images for those entities.
    """

    type: Literal["reject"]
    message: str = Field(min_length=1)
    inpaint: Inpaint | None = None
    references: dict[str, str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_request(self) -> Reject:
        if self.inpaint is not None and self.references is not None:
            raise ValueError("a reject either inpaints or picks references, not both")
        return self


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
    draft_error: str | None = None
    check: Callable[[Approve | Edit | Reject, dict[str, Any]], None] | None = None

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
            "action_requests": [
                {"name": self.stage, "args": self.proposal, "description": self.description}
            ],
            "review_configs": [
                {
                    "action_name": self.stage,
                    "allowed_decisions": self.allowed_decisions,
                    "args_schema": self.artifact.model_json_schema(),
                }
            ],
            "stage": self.stage,
            "thread_id": configurable.get("thread_id"),
            "project_id": configurable.get("project_id"),
            "problems": self.problems,
            "draft_error": self.draft_error,
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


# --- steps and agents ------------------------------------------------------------------------


_generations: ContextVar[list[Generation]] = ContextVar("auteur_generations")


class Step(ABC):
    """One draft → approval-gate pair: drafts one artifact and stops for the person.

    Subclasses set ``stage`` (the state key and gate name) and ``artifact`` (the Pydantic
    model) and implement :meth:`propose`. A single-step agent *is* its step; an agent with
    several steps lists them in :meth:`ProductionAgent.steps`.
    """

    stage: ClassVar[str]
    artifact: ClassVar[type[BaseModel]]

    def __init__(self, *, agent: str) -> None:
        self.agent = agent

    @abstractmethod
    async def propose(self, state: ProductionState, runtime: Runtime[Context]) -> BaseModel:
        """Draft the stage's artifact from the state (feedback included in the conversation)."""

    def summary(self, artifact: BaseModel) -> str:
        """One line describing a proposal, shown at the gate."""
        return f"Review the proposed {self.stage}."

    def problems(self, artifact: BaseModel, state: ProductionState) -> list[str]:
        """Rules the proposal still breaks, shown at the gate (never passed silently)."""
        return []

    def on_approval(self, artifact: BaseModel, state: ProductionState) -> dict[str, Any]:
        """Further state updates an approval makes besides storing the artifact."""
        return {}

    def check_decision(self, decision: BaseModel, proposal: dict[str, Any]) -> None:
        """Stage-specific checks of a valid decision against the proposal; raise ValueError.

        By default only plain feedback is understood (no inpainting, no references).
        """
        if isinstance(decision, Reject) and decision.inpaint is not None:
            raise ValueError(f"the {self.stage} gate cannot inpaint")
        if isinstance(decision, Reject) and decision.references is not None:
            raise ValueError(f"the {self.stage} gate has no reference images to pick")

    @property
    def draft_node(self) -> str:
        """Name of the node that drafts."""
        return f"draft_{self.stage}"

    @property
    def gate_node(self) -> str:
        """Name of the approval-gate node."""
        return f"approve_{self.stage}"

    async def draft(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: propose the artifact and remember it as this stage's draft.

        The update carries a :class:`Generation` record for every model call the proposal
        made, so the run shows which prompt version produced each draft.
        """
        progress(runtime, self.stage, f"drafting {self.stage}")
        records: list[Generation] = []
        token = _generations.set(records)
        try:
            proposal = await self.propose(state, runtime)
        except StructuredOutputError as error:
            progress(runtime, self.stage, f"no valid {self.stage}: {error}")
            return {"drafts": {self.stage: None}, "draft_errors": {self.stage: str(error)}}
        finally:
            _generations.reset(token)
        return {
            "drafts": {self.stage: proposal.model_dump(mode="json")},
            "draft_errors": {self.stage: None},
            "conversation": [
                Turn(
                    id=str(uuid.uuid4()),
                    stage=self.stage,
                    role="assistant",
                    content=proposal.model_dump_json(),
                )
            ],
            "generations": records,
        }

    def make_gate(self, next_node: str) -> Callable[..., Command]:
        """The approval-gate node; approval goes to ``next_node``, feedback back to the draft."""

        def gate(state: ProductionState) -> Command:
            proposal = state["drafts"][self.stage]
            if proposal is None:
                failure = state["draft_errors"][self.stage]
                request = GateRequest(
                    stage=self.stage,
                    artifact=self.artifact,
                    proposal={},
                    description=f"No valid {self.stage} could be drafted. Give feedback or edit.",
                    problems=[],
                    draft_error=failure,
                    check=self.check_decision,
                )
            else:
                proposed = self.artifact.model_validate(proposal)
                request = GateRequest(
                    stage=self.stage,
                    artifact=self.artifact,
                    proposal=proposal,
                    description=self.summary(proposed),
                    problems=self.problems(proposed, state),
                    check=self.check_decision,
                )
            decision = review(request)
            if isinstance(decision, Reject):
                feedback = Turn(
                    id=str(uuid.uuid4()), stage=self.stage, role="user", content=decision.message
                )
                if decision.inpaint is not None:
                    feedback["inpaint"] = decision.inpaint.model_dump()
                if decision.references is not None:
                    feedback["references"] = decision.references
                return Command(goto=self.draft_node, update={"conversation": [feedback]})
            accepted = decision.edited_action.args if isinstance(decision, Edit) else proposal
            artifact = self.artifact.model_validate(accepted)
            return Command(
                goto=next_node,
                update={
                    self.stage: artifact.model_dump(mode="json"),
                    "approved": [self.stage],
                    **self.on_approval(artifact, state),
                },
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
        artifact: type[ArtifactT] | None = None,
        follow_up: Sequence[BaseMessage] = (),
        with_conversation: bool = True,
        scene: int | None = None,
    ) -> ArtifactT:
        """Ask the agent's model for an artifact, memoised by the exact input.

        The result is kept in the store under the hash of (model, prompt, conversation,
        and the scene when one is asked for), so a resumed or replayed node never pays
        twice for the same generation. The request holds one of the endpoint's slots.

        Args:
            runtime: The node's runtime (models, store, stream writer).
            prompt: The rendered task prompt.
            state: The run's state; its conversation at this stage follows the prompt.
            task: The task name (selects the offline recording, names the call).
            artifact: The schema of the answer; the step's artifact by default.
            follow_up: Messages after the conversation (e.g. a repair request).
            with_conversation: Whether to send the conversation so far at this stage.
            scene: The one scene this call drafts (selects the offline recording of it).
        """
        schema = artifact or self.artifact
        messages: list[BaseMessage] = [
            SystemMessage(prompt.system),
            HumanMessage(prompt.user),
            *(conversation_messages(state, self.stage) if with_conversation else ()),
            *follow_up,
        ]
        models = runtime.context.models
        key = input_hash(
            models.describe(),
            self.agent,
            task,
            *([] if scene is None else [scene]),
            [m.model_dump(include={"type", "content"}) for m in messages],
        )
        record = Generation(
            id=key,
            stage=self.stage,
            agent=self.agent,
            task=task,
            prompt=prompt.name,
            prompt_version=prompt.version,
            langfuse_version=prompt.langfuse_version,
            model=models.model_name(self.agent),
            cached=False,
        )
        if scene is not None:
            record["scene"] = scene
        namespace = ("generations", "llm")
        if runtime.store is not None and (hit := await runtime.store.aget(namespace, key)):
            _record(Generation(**{**record, "cached": True}))
            return schema.model_validate(hit.value["artifact"])

        async def on_retry(message: str) -> None:
            progress(runtime, self.stage, message)

        with (
            ledger.attribute_to(agent=self.agent, stage=self.stage),
            tracing.link_prompt(prompt.name, prompt.langfuse_version),
        ):
            result = await generate_structured(
                models.chat_model(agent=self.agent, task=task, scene=scene),
                schema,
                messages,
                on_retry=on_retry,
                label=f"{self.stage} ({task})" if scene is None else f"{self.stage} scene {scene}",
                slots=models.slots(),
            )
        _record(record)
        if runtime.store is not None:
            value = {"artifact": result.model_dump(mode="json"), **record}
            await runtime.store.aput(namespace, key, value, index=False)
        return result

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

        A resumed, retried or replayed node finds the earlier result and makes nothing, and
        of two identical jobs at once only one is made (the other waits for it). The
        cache is shared by every user, and a hit counts as producing the file (it is
        :func:`~tools.storage.record`-ed, so the run's owner may read it): ``key`` hashes every
        input, files by content key, and a run can only name files its owner holds, so a hit
        is the file this run would have made itself.
        """
        namespace = ("generations", "media")
        files = runtime.context.files
        async with _making(key):  # a concurrent identical job waits, then finds this one's file
            if runtime.store is not None and (hit := await runtime.store.aget(namespace, key)):
                cached = MediaFile.model_validate(hit.value["file"])
                if await asyncio.to_thread(files.exists, cached.key):
                    return record(cached)
            data = await make()
            file = await asyncio.to_thread(
                files.put, data, extension=extension, media_type=media_type
            )
            if runtime.store is not None:
                await runtime.store.aput(
                    namespace, key, {"file": file.model_dump(mode="json")}, index=False
                )
            return file


@dataclass
class _Making:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


_in_flight: dict[str, _Making] = {}


@contextlib.asynccontextmanager
async def _making(key: str) -> AsyncIterator[None]:
    """Hold the media generation ``key`` while making it: its twins wait for the cache.

    Keyed by the input hash alone, across runs: a twin in another run only waits, then makes
    its own file when its store or file store lacks this one.
    """
    making = _in_flight.setdefault(key, _Making())
    making.users += 1
    try:
        async with making.lock:
            yield
    finally:
        making.users -= 1
        if not making.users:
            del _in_flight[key]


def _record(generation: Generation) -> None:
    records = _generations.get(None)
    if records is not None:
        records.append(generation)


class ProductionAgent(Step):
    """A production agent: one or more steps, each ending in the shared approval gate.

    Subclasses set ``name`` (the plugin name); a single-step agent also sets ``stage`` and
    ``artifact`` and implements :meth:`propose`. An agent with several steps overrides
    :meth:`steps`; its first step is itself.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    after_approval: ClassVar[str] = END
    registry: ClassVar[Registry[ProductionAgent]] = Registry("agent")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if is_concrete(cls):
            ProductionAgent.registry.add(cls.name, cls)

    def __init__(self) -> None:
        super().__init__(agent=self.name)

    def steps(self) -> Sequence[Step]:
        """The agent's steps in order; each is approved before the next drafts."""
        return (self,)

    def build(self) -> StateGraph:
        """The agent's uncompiled subgraph: each step's draft and gate, one after another.

        The subgraph starts after the last step whose artifact the state already holds
        (e.g. a screenplay given as input skips straight to the step after the script).
        """
        steps = self.steps()
        graph = StateGraph(ProductionState, context_schema=Context)
        following = [step.draft_node for step in steps[1:]] + [self.after_approval]
        for step, next_node in zip(steps, following, strict=True):
            graph.add_node(step.draft_node, step.draft)
            graph.add_node(
                step.gate_node,
                step.make_gate(next_node),
                destinations=(step.draft_node, next_node),
            )
            graph.add_edge(step.draft_node, step.gate_node)
        if len(steps) == 1:
            graph.add_edge(START, self.draft_node)
        else:
            graph.add_conditional_edges(
                START, self._first_step, [step.draft_node for step in steps]
            )
        return graph

    def _first_step(self, state: ProductionState) -> str:
        steps = self.steps()
        given = [i for i, step in enumerate(steps) if step.stage in state]
        start = min(given[-1] + 1, len(steps) - 1) if given else 0
        return steps[start].draft_node


def check_decision(gate: dict[str, Any], raw: object) -> Approve | Edit | Reject:
    """Validate a decision against a gate's payload, as the gate itself will.

    Lets a service refuse a bad decision before it resumes anything.

    Raises:
        ValueError: What is wrong with the decision (or the gate is not Auteur's).
    """
    stage = gate.get("stage")
    steps = [
        step
        for name in ProductionAgent.registry.names()
        for step in ProductionAgent.registry.get(name)().steps()
    ]
    step = next((s for s in steps if s.stage == stage), None)
    if step is None:
        raise ValueError(f"the gate's stage {stage!r} belongs to no registered agent")
    request = GateRequest(
        stage=step.stage,
        artifact=step.artifact,
        proposal=gate["action_requests"][0]["args"],
        description="",
        problems=[],
        draft_error=gate.get("draft_error"),
        check=step.check_decision,
    )
    return request.parse(raw)


def project_of(state: ProductionState) -> Project:
    """The validated project configuration of a run."""
    return Project.model_validate(state["project"])


def load_agents() -> Registry[ProductionAgent]:
    """Import every module in ``agents/`` and return the filled registry."""
    discover("agents")
    return ProductionAgent.registry
