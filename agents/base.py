"""What an agent author reads: the agent and step base classes, the run context, the registry.

A production agent is one file in ``agents/``: a subclass of :class:`ProductionAgent` that
drafts one artifact. Subclassing registers it; :func:`load_agents` imports the folder.
Every agent's subgraph is ``draft_<stage>`` → ``approve_<stage>``: the gate stops the run
with :func:`langgraph.types.interrupt` and goes on with the person's decision — approve,
edit (validated, applied as given) or reject with feedback (the stage is drafted again
with the conversation so far).

Each step declares the artifacts it reads (``requires``) and provides the one its gate
approves, under its ``stage`` key; the run's state schema is built from these declarations
(:func:`state_schema`), so an approved artifact always lands in the state.

Example:
    ```python
    class StoryboardCritic(ProductionAgent):
        name = "storyboard_critic"
        stage = "critique"
        artifact = Critique
        requires = ("shots",)

        async def propose(self, state, runtime):
            ...  # return a Critique
    ```

The gate (``agents._gate``), the state channels (``agents._state``) and the generation
records (``agents._cache``) live in their own modules.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel

from agents import _cache
from agents._gate import (
    Approve,
    Confirmation,
    Edit,
    GateRequest,
    Reject,
    canonical_resume,
    confirm,
    review,
)
from agents._lineage import Head, stale_after
from agents._state import (
    Generation,
    ProductionState,
    Turn,
    conversation_messages,
    feedback_at,
    latest_feedback,
    turns_at,
)
from agents._state import state_schema as _schema_with
from agents.artifacts import ByScene, Project, input_hash
from prompts import RenderedPrompt
from tools import ledger, tracing
from tools.comfy_tools import MediaBackend
from tools.discovery import WorkflowDiscovery
from tools.draft_renderer import DraftBackend
from tools.llm import Call, ModelProvider, StructuredOutputError, generate_structured
from tools.plugins import Registry, discover, is_concrete
from tools.speech import DraftSpeech, SpeechBackend
from tools.storage import FileStore, MediaFile, record
from tools.studio import Studio

__all__ = [
    "Confirmation",
    "Context",
    "Generation",
    "ProductionAgent",
    "ProductionState",
    "Reject",
    "Step",
    "all_steps",
    "artifact_sources",
    "artifact_types",
    "canonical_resume",
    "check_decision",
    "confirm",
    "conversation_messages",
    "feedback_at",
    "latest_feedback",
    "load_agents",
    "progress",
    "project_of",
    "state_schema",
    "turns_at",
]

ArtifactT = TypeVar("ArtifactT", bound=BaseModel)


@dataclass(kw_only=True)
class Context:
    """What every run needs that is not state: models, generation backends, storage.

    ``discovery`` searches the workflow catalogue by meaning for each media task; without
    one (no database: the offline test context, ``langgraph dev``) a task takes the
    catalogue's first workflow of its category. The run driver gives each run its project's
    ``project_artifacts``.
    """

    models: ModelProvider
    backend: MediaBackend | DraftBackend  # a plain DraftBackend runs as comfy_tools.DraftMedia
    files: FileStore
    discovery: WorkflowDiscovery | None = None
    speech: SpeechBackend = field(default_factory=DraftSpeech)
    """Who speaks the dialogue: the offline draft voice unless a speech endpoint is set."""
    project_artifacts: Mapping[str, Head] = field(default_factory=dict)
    """The project's current artifact versions (what a proposal would make stale)."""
    studio: Studio | None = None
    """The person's productions, for the director (the run executor binds one per run)."""


# --- progress and conversation ---------------------------------------------------------------


def progress(runtime: Runtime[Context], stage: str, message: str, **extra: object) -> None:
    """Stream a progress event (``custom`` stream mode) carrying ``stage`` and ``message``."""
    runtime.stream_writer({"stage": stage, "message": message, **extra})


# --- steps and agents ------------------------------------------------------------------------


class Step(ABC):
    """One draft → approval-gate pair: drafts one artifact and stops for the person.

    Subclasses set ``stage`` (the key of the artifact it provides, and the gate's name),
    ``artifact`` (its Pydantic model) and ``requires`` (the keys of the artifacts it reads:
    provided by an earlier step, the workflow's input or the project), and implement
    :meth:`propose`. A single-step agent *is* its step; an agent with several steps lists
    them in :meth:`ProductionAgent.steps`.
    """

    stage: ClassVar[str]
    artifact: ClassVar[type[BaseModel]]
    requires: ClassVar[tuple[str, ...]] = ()
    from_text: ClassVar[Callable[[str], BaseModel] | None] = None
    """Reads the artifact from text a workflow's input gives under its key (a screenplay)."""
    per_scene: ClassVar[bool] = False
    """Made scene by scene (its artifact a :class:`~agents.artifacts.ByScene`): with a scene
    in production, the step drafts that scene's part from that scene's shots, its gate shows
    the part, and the approval puts it in the whole artifact."""

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

        By default only plain feedback is understood (no inpainting, no references, no
        image of the person's own).
        """
        if isinstance(decision, Reject) and decision.inpaint is not None:
            raise ValueError(f"the {self.stage} gate cannot inpaint")
        if isinstance(decision, Reject) and decision.references is not None:
            raise ValueError(f"the {self.stage} gate has no reference images to pick")
        if isinstance(decision, Reject) and decision.own_image is not None:
            raise ValueError(f"the {self.stage} gate takes no image of yours")

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
        made, valid or not — a draft that found no valid answer too — so the run shows which
        prompt version produced each draft and what every call came to.
        """
        progress(runtime, self.stage, f"drafting {self.stage}")
        with _cache.recording() as records:
            try:
                proposal = await self.propose(self.in_production(state), runtime)
            except StructuredOutputError as error:
                progress(runtime, self.stage, f"no valid {self.stage}: {error}")
                return {
                    "drafts": {self.stage: None},
                    "draft_errors": {self.stage: str(error)},
                    "generations": records,
                    "messages": [self._said(f"No valid {self.stage} could be drafted: {error}")],
                }
        return {
            "drafts": {self.stage: proposal.model_dump(mode="json")},
            "draft_errors": {self.stage: None},
            "conversation": [self._turn(state, "assistant", proposal.model_dump_json())],
            "generations": records,
            "messages": [self._said(self.summary(proposal))],
        }

    def in_production(self, state: ProductionState) -> ProductionState:
        """The state a per-scene step works on: the scene in production's part of its plan.

        The artifacts that plan each scene's work (``ByScene.scene_plan``: the shot list)
        hold only that scene's part. Every other step, and every step outside a scene, sees
        the state as it is.
        """
        scene = state.get("scene")
        if not self.per_scene or scene is None:
            return state
        view: dict[str, Any] = dict(state)
        for key, model in artifact_types().items():
            if issubclass(model, ByScene) and model.scene_plan and state.get(key):  # type: ignore[misc]
                part = model.model_validate(view[key]).in_scene(scene)
                view[key] = part.model_dump(mode="json")
        return view  # type: ignore[return-value]

    def merged(self, state: ProductionState, approved: dict[str, Any]) -> dict[str, Any]:
        """The whole artifact after approving ``approved``: a per-scene step's part put in."""
        so_far = self._made_so_far(state)
        if so_far is None:
            return approved
        scene, whole = so_far
        part = self.artifact.model_validate(approved)
        return whole.with_scene(part, scene).model_dump(mode="json")  # type: ignore[arg-type]

    def adds_a_scene(self, state: ProductionState) -> bool:
        """Whether approving adds the scene in production to the artifact made so far.

        A scene cycle's next scene changes nothing made for the earlier ones, so it makes
        nothing stale.
        """
        so_far = self._made_so_far(state)
        return so_far is not None and not so_far[1].has_scene(so_far[0])

    def _made_so_far(self, state: ProductionState) -> tuple[int, ByScene] | None:
        """The scene in production and the whole artifact approved so far, for a per-scene step.

        None outside a scene, for a step made whole, or before the artifact's first approval.
        """
        scene, whole = state.get("scene"), state.get(self.stage)  # type: ignore[misc]
        if not self.per_scene or scene is None or whole is None:
            return None
        made = self.artifact.model_validate(whole)
        assert isinstance(made, ByScene)
        return scene, made

    def _turn(
        self, state: ProductionState, role: Literal["assistant", "user"], content: str
    ) -> Turn:
        """A turn of the conversation at this stage, about the scene in production if any."""
        turn = Turn(id=str(uuid.uuid4()), stage=self.stage, role=role, content=content)
        if (scene := state.get("scene")) is not None:
            turn["scene"] = scene
        return turn

    @property
    def label(self) -> str:
        """The stage in words (``master script``)."""
        return self.stage.replace("_", " ")

    def _said(self, text: str) -> AIMessage:
        """What the stage says in the production's chat (``messages``), under its name."""
        return AIMessage(content=text, name=self.stage)

    def make_gate(self, next_node: str) -> Callable[..., Awaitable[Command]]:
        """The approval-gate node; approval goes to ``next_node``, feedback back to the draft.

        The node only validates and hashes JSON (no files, no models), so it runs on the
        event loop: LangGraph hands a sync node to a thread, and that hop cost more CPU than
        the gate's own work (``benchmarks/gate_capacity.py``).
        """

        async def gate(state: ProductionState, runtime: Runtime[Context]) -> Command:
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
                    scene=state.get("scene"),
                )
            else:
                proposed = self.artifact.model_validate(proposal)
                request = GateRequest(
                    stage=self.stage,
                    artifact=self.artifact,
                    proposal=proposal,
                    description=self.summary(proposed),
                    problems=self.problems(proposed, self.in_production(state)),
                    check=self.check_decision,
                    scene=state.get("scene"),
                    stale=[]
                    if self.adds_a_scene(state)
                    else stale_after(
                        self.stage,
                        self.merged(state, proposal),
                        runtime.context.project_artifacts,
                    ),
                )
            decision = review(request)
            if isinstance(decision, Reject):
                feedback = self._turn(state, "user", decision.message)
                if decision.inpaint is not None:
                    feedback["inpaint"] = decision.inpaint.model_dump()
                if decision.references is not None:
                    feedback["references"] = decision.references
                if decision.own_image is not None:
                    feedback["own_image"] = decision.own_image.model_dump()
                said = HumanMessage(content=decision.message)
                return Command(
                    goto=self.draft_node, update={"conversation": [feedback], "messages": [said]}
                )
            accepted = decision.edited_action.args if isinstance(decision, Edit) else proposal
            verb = "Edited and approved" if isinstance(decision, Edit) else "Approved"
            artifact = self.artifact.model_validate(accepted)
            update = {
                self.stage: artifact.model_dump(mode="json"),
                "approved": [self.stage],
                "messages": [HumanMessage(content=f"{verb} the {self.label}.")],
                **self.on_approval(artifact, state),
            }
            update[self.stage] = self.merged(state, update[self.stage])
            return Command(goto=next_node, update=update)

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
        image: str | None = None,
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
            image: An image the model looks at with the task (a ``data:`` URL), sent as an
                OpenAI ``image_url`` content part at low detail.
        """
        schema = artifact or self.artifact
        task_message = (
            prompt.user
            if image is None
            else [
                {"type": "text", "text": prompt.user},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ]
        )
        messages: list[BaseMessage] = [
            SystemMessage(prompt.system),
            HumanMessage(task_message),
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
            _cache.record(Generation(**{**record, "cached": True}))
            return schema.model_validate(hit.value["artifact"])

        async def on_retry(message: str) -> None:
            progress(runtime, self.stage, message)

        def on_call(call: Call) -> None:
            # the valid answer's record is the one the store keeps (id = the input hash);
            # every other call is a record of its own
            made = Generation(
                **{**record, "id": key if call.outcome == "valid" else f"{key}/{uuid.uuid4()}"},
                outcome=call.outcome,
                structured_output=call.mode,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
            )
            if call.error is not None:
                made["error"] = call.error
            _cache.record(made)
            if call.outcome == "valid":
                record.update(made)

        retry = models.retry
        with (
            ledger.attribute_to(agent=self.agent, stage=self.stage),
            tracing.link_prompt(prompt.name, prompt.langfuse_version),
        ):
            # building a client imports and loads certificates: not on the event loop
            model = await asyncio.to_thread(
                models.chat_model, agent=self.agent, task=task, scene=scene
            )
            result = await generate_structured(
                model,
                schema,
                messages,
                mode=models.structured_output(self.agent),
                on_retry=on_retry,
                on_call=on_call,
                label=f"{self.stage} ({task})" if scene is None else f"{self.stage} scene {scene}",
                max_retries=retry.retries,
                timeout_retries=retry.timeout_retries,
                backoff_s=retry.backoff_s,
                slots=models.slots(),
            )
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
        async with _cache.making(key):  # an identical job waits, then finds this one's file
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


class AgentGraph(StateGraph):
    """An agent's subgraph: every node reads the whole run state.

    LangGraph narrows a node's input to the TypedDict its ``state`` parameter is annotated
    with; :class:`ProductionState` holds only the common channels, so without this a node
    would not see the artifacts.
    """

    def add_node(self, node: Any, action: Any = None, **kwargs: Any) -> AgentGraph:
        """Add a node that reads the whole state (unless given another ``input_schema``)."""
        kwargs.setdefault("input_schema", self.state_schema)
        return super().add_node(node, action, **kwargs)


class ProductionAgent(Step):
    """A production agent: one or more steps, each ending in the shared approval gate.

    Subclasses set ``name`` (the plugin name); a single-step agent also sets ``stage`` and
    ``artifact`` and implements :meth:`propose`. An agent with several steps overrides
    :meth:`steps`; its first step is itself.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    produces: ClassVar[dict[str, type[BaseModel]]] = {}
    """Artifacts made after the last approval without a gate of their own (an assembly), by
    :meth:`finish` in the node ``finish_node``."""
    finish_node: ClassVar[str | None] = None
    bookkeeping: ClassVar[tuple[str, ...]] = ()
    """State keys (dicts) the agent keeps for itself between runs, e.g. what it covered."""
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

    async def finish(self, state: ProductionState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Node: make the ``produces`` artifacts from the approved ones."""
        raise NotImplementedError(f"{self.name} produces nothing after its approval")

    def build(self, *, finish: bool = True) -> StateGraph:
        """The agent's uncompiled subgraph: each step's draft and gate, one after another.

        The subgraph starts after the last step whose artifact the state already holds
        (e.g. a screenplay given as input skips straight to the step after the script).

        Args:
            finish: Whether the subgraph makes the ``produces`` after its last approval; a
                scene cycle makes them once, after its last scene.
        """
        steps = self.steps()
        graph = AgentGraph(state_schema(), context_schema=Context)
        last = self.finish_node if finish and self.finish_node else END
        if last != END:
            graph.add_node(last, self.finish)
            graph.add_edge(last, END)
        following = [step.draft_node for step in steps[1:]] + [last]
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

    async def _first_step(self, state: Mapping[str, Any]) -> str:
        # not ProductionState: LangGraph would narrow the state to that TypedDict's keys;
        # async: LangGraph would hand a sync router to a thread, for a few comparisons
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
    if gate.get("confirm"):
        return Confirmation.of_payload(gate).parse(raw)
    stage = gate.get("stage")
    step = next((s for s in all_steps() if s.stage == stage), None)
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


def all_steps() -> list[Step]:
    """Every registered agent's steps."""
    registry = ProductionAgent.registry
    return [step for name in registry.names() for step in registry.get(name)().steps()]


def artifact_types() -> dict[str, type[BaseModel]]:
    """Every artifact key the registered agents provide, with its model (``project`` first)."""
    types: dict[str, type[BaseModel]] = {"project": Project}
    for name in ProductionAgent.registry.names():
        agent = ProductionAgent.registry.get(name)()
        types |= {step.stage: step.artifact for step in agent.steps()} | agent.produces
    return types


def artifact_sources() -> dict[str, tuple[str, ...]]:
    """What each artifact is made from: a step's ``requires``; an agent's product, its last step.

    The project is everyone's setting, not a source: a changed title stales nothing.
    """
    sources: dict[str, tuple[str, ...]] = {}
    for name in ProductionAgent.registry.names():
        agent = ProductionAgent.registry.get(name)()
        steps = agent.steps()
        sources |= {step.stage: step.requires for step in steps}
        sources |= dict.fromkeys(agent.produces, (steps[-1].stage,))
    return {
        kind: tuple(k for k in made_from if k != "project") for kind, made_from in sources.items()
    }


def state_schema() -> type:
    """The run state: the common channels plus every registered agent's keys."""
    registry = ProductionAgent.registry
    bookkeeping = [key for name in registry.names() for key in registry.get(name).bookkeeping]
    return _schema_with([*artifact_types(), *bookkeeping])


def load_agents() -> Registry[ProductionAgent]:
    """Import every module in ``agents/`` and return the filled registry."""
    discover("agents")
    return ProductionAgent.registry
