"""``director``: the chat front door, a tool-calling agent over the person's productions.

The person chats (agent-chat-ui, or any LangGraph chat client); the director answers with the
tools below: it starts workflow types on the project, answers questions about it, shows a
production's gate in the chat as LangChain's human-in-the-loop interrupt and passes the
person's decision on, turns words said at a gate into feedback (or, once confirmed, an
approval or an edit), and searches and runs the ComfyUI workflow library.

A production is never run inside the director's thread: it is a thread of its own workflow
type (:class:`tools.studio.Studio` starts and follows it), so each gate is decided once,
wherever it is shown — here, the web client, Agent Inbox or the CLI. Every step is safe to
run again after a crash: a node that acts does so by a key (its tool call's id, or the
gate's), and the studio does nothing twice for one key.

Graph: ``agent`` → (``confirm`` →) ``tools`` → ``follow`` → ``gate`` → ``decide`` → ``follow``
… until the production finishes; questions go ``agent`` → ``tools`` → ``agent`` → end.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, ClassVar, NotRequired

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from agents.base import Confirmation, Context, canonical_resume, confirm
from graphs.base import WorkflowType
from prompts import render
from tools import ledger
from tools.comfy_tools import as_media_backend, workflow_tool
from tools.studio import Gate, Studio, StudioUnavailableError
from tools.workflows import load_workflows

__all__ = ["ChatInput", "Director", "DirectorState"]

_CONFIRMED = frozenset({"approve_gate", "edit_gate", "run_workflow"})
"""Tools that act for the person in a way they must confirm first."""
_HISTORY_TOKENS = 12_000
"""How much of the conversation the model sees (the latest turns), estimated."""
_SEARCH_RESULTS = 5


class ChatInput(BaseModel):
    """A chat turn: the person's messages (and, optionally, the project to work on)."""

    model_config = ConfigDict(extra="forbid", title="ChatInput")

    messages: list[dict[str, Any]] = Field(
        min_length=1, description="Chat messages, LangChain's or OpenAI's dicts; the person's last."
    )
    project_id: str | None = Field(
        None, description="The project to work on; a production started without one makes one."
    )


class DirectorState(TypedDict):
    """The conversation, the project, and the production gate it is showing."""

    messages: Annotated[list[AnyMessage], add_messages]
    project_id: NotRequired[str | None]
    showing: NotRequired[dict[str, Any] | None]
    """The gate shown last (a :class:`tools.studio.Gate` as a dict)."""
    following: NotRequired[str | None]
    """The production to follow to its next gate once the tools have run."""
    answer: NotRequired[Any]
    """The person's answer to the gate shown."""


DirectorRuntime = ToolRuntime[Context, DirectorState]
"""What a tool is given besides its arguments (never shown to the model)."""


def _studio(context: Context) -> Studio:
    if context.studio is None:
        raise StudioUnavailableError(
            "the director works on the service's productions: run it with `auteur serve`"
        )
    return context.studio


async def _gate_at_hand(runtime: DirectorRuntime) -> Gate:
    """The gate the person speaks of: the one shown, else the project's latest pending one."""
    if showing := runtime.state.get("showing"):
        return Gate(**showing)
    project_id = runtime.state.get("project_id")
    pending = await _studio(runtime.context).pending(project_id) if project_id else []
    if not pending:
        raise ValueError("no gate of this conversation's project is waiting for a decision")
    return pending[-1]


async def _decide(runtime: DirectorRuntime, decision: dict[str, Any]) -> Command:
    gate = await _gate_at_hand(runtime)
    key = runtime.tool_call_id or gate.approval_id
    sent = await _studio(runtime.context).decide(gate.approval_id, decision, key=key)
    words = f"Sent to the {gate.stage} gate." if sent else _decided_elsewhere(gate.stage)
    return Command(
        update={
            "showing": None,
            "following": gate.thread_id,
            "messages": [ToolMessage(words, tool_call_id=runtime.tool_call_id)],
        }
    )


@tool(parse_docstring=True)
async def start_production(
    workflow: str,
    runtime: DirectorRuntime,
    brief: str | None = None,
    config: dict[str, Any] | None = None,
) -> Command:
    """Start a workflow type on the project: a new project from `brief` if there is none yet.

    Args:
        workflow: The workflow type's name.
        brief: What the film is about (needed when there is no project yet).
        config: Project configuration for a new project (title, format, visual_style, …).
        runtime: The conversation's state and the studio.
    """
    project_id, thread_id = await _studio(runtime.context).start(
        workflow,
        brief=brief,
        config=config,
        project_id=runtime.state.get("project_id"),
        key=runtime.tool_call_id or workflow,
    )
    words = f"Started {workflow} on project {project_id} (production thread {thread_id})."
    return Command(
        update={
            "project_id": project_id,
            "following": thread_id,
            "showing": None,
            "messages": [ToolMessage(words, tool_call_id=runtime.tool_call_id)],
        }
    )


@tool(parse_docstring=True)
async def project_status(runtime: DirectorRuntime) -> str:
    """The project: brief, current artifacts, each production's status and cost, pending gates."""
    project_id = runtime.state.get("project_id")
    if project_id is None:
        return "There is no project yet."
    return json.dumps(await _studio(runtime.context).project(project_id), default=str)


@tool(parse_docstring=True)
async def pending_gates(runtime: DirectorRuntime) -> str:
    """The gates waiting for the person's decision (of the project, when there is one)."""
    pending = await _studio(runtime.context).pending(runtime.state.get("project_id"))
    if not pending:
        return "No gate is waiting."
    return "\n".join(
        f"- the {g.label} of {g.workflow} (production {g.thread_id}, gate {g.approval_id})"
        for g in pending
    )


@tool(parse_docstring=True)
async def show_gate(runtime: DirectorRuntime, approval_id: str | None = None) -> Command:
    """Show a waiting gate in the chat so the person can decide it.

    Args:
        approval_id: Which gate (from `pending_gates`); the latest one when absent.
        runtime: The conversation's state and the studio.
    """
    pending = await _studio(runtime.context).pending(runtime.state.get("project_id"))
    chosen = [g for g in pending if approval_id in (None, g.approval_id)]
    if not chosen:
        raise ValueError(f"no waiting gate '{approval_id}'" if approval_id else "no gate waits")
    gate = chosen[-1]
    return Command(
        update={
            "following": gate.thread_id,
            "messages": [
                ToolMessage(f"Showing the {gate.stage}.", tool_call_id=runtime.tool_call_id)
            ],
        }
    )


@tool(parse_docstring=True)
async def give_feedback(message: str, runtime: DirectorRuntime) -> Command:
    """Send the person's feedback to the waiting gate: the stage is drafted again with it.

    Args:
        message: What to change, in the person's words.
        runtime: The conversation's state and the studio.
    """
    return await _decide(runtime, {"decisions": [{"type": "reject", "message": message}]})


@tool(parse_docstring=True)
async def approve_gate(runtime: DirectorRuntime) -> Command:
    """Approve the waiting gate's draft as it is (the person confirms first)."""
    return await _decide(runtime, {"decisions": [{"type": "approve"}]})


@tool(parse_docstring=True)
async def edit_gate(edited: dict[str, Any], runtime: DirectorRuntime) -> Command:
    """Replace the waiting gate's draft with an edited version (the person confirms first).

    Args:
        edited: The whole edited artifact, in the draft's own shape.
        runtime: The conversation's state and the studio.
    """
    gate = await _gate_at_hand(runtime)
    edit = {"type": "edit", "edited_action": {"name": gate.stage, "args": edited}}
    return await _decide(runtime, {"decisions": [edit]})


@tool(parse_docstring=True)
async def search_workflows(query: str, runtime: DirectorRuntime) -> str:
    """Search the ComfyUI workflow library by meaning; each result with its inputs.

    Args:
        query: What the workflow should do, in words.
        runtime: The conversation's state and the studio.
    """
    discovery = runtime.context.discovery
    if discovery is None:
        specs = list(load_workflows().values())[:_SEARCH_RESULTS]
    else:
        specs = [spec for spec, _ in await discovery.search(query, k=_SEARCH_RESULTS)]
    return "\n".join(
        f"- {spec.name}: {spec.description} Inputs: "
        + ", ".join(f"{name} ({item.type})" for name, item in spec.inputs.items())
        for spec in specs
    )


@tool(parse_docstring=True)
async def run_workflow(name: str, arguments: dict[str, Any], runtime: DirectorRuntime) -> str:
    """Run a ComfyUI workflow of the library (the person confirms first: it spends GPU time).

    Args:
        name: The workflow's name (from `search_workflows`).
        arguments: Its inputs; images are keys of stored files.
        runtime: The conversation's state and the studio.
    """
    context = runtime.context
    specs = await context.discovery.workflows() if context.discovery else load_workflows()
    if name not in specs:
        raise ValueError(f"no workflow '{name}' in the library (search_workflows finds them)")
    run = workflow_tool(specs[name], as_media_backend(context.backend), context.files)
    result = await run.ainvoke(arguments)
    return json.dumps({k: result[k] for k in ("workflow", "outputs", "gpu_seconds")})


TOOLS: list[BaseTool] = [
    start_production,
    project_status,
    pending_gates,
    show_gate,
    give_feedback,
    approve_gate,
    edit_gate,
    search_workflows,
    run_workflow,
]


# --- nodes ---------------------------------------------------------------------------------


async def respond(state: DirectorState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Node: the model answers the conversation, in words or with a tool call."""
    registry = WorkflowType.registry
    workflows = [
        {"name": name, "description": registry.get(name).description}
        for name in registry.names()
        if not registry.get(name).chat
    ]
    prompt = render(
        "director/chat",
        workflows=workflows,
        project_id=state.get("project_id"),
        showing=state.get("showing"),
    )
    history = trim_messages(
        state["messages"],
        max_tokens=_HISTORY_TOKENS,
        token_counter="approximate",
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    models = runtime.context.models
    model = models.chat_agent(agent="director").bind_tools(TOOLS)
    with ledger.attribute_to(agent="director", stage="chat"):
        async with models.slots():
            reply = await model.ainvoke([SystemMessage(prompt.system), *history])
        usage = reply.usage_metadata or {}
        ledger.record_tokens(
            model=models.model_name("director"),
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
        )
    return {"messages": [reply]}


def after_reply(state: DirectorState) -> str:
    """Route: tools that act for the person are confirmed first; no tool call ends the turn."""
    calls = state["messages"][-1].tool_calls if isinstance(state["messages"][-1], AIMessage) else []
    if not calls:
        return END
    return "confirm" if any(call["name"] in _CONFIRMED for call in calls) else "tools"


def confirm_actions(state: DirectorState) -> Command:
    """Node: ask the person before each tool call that acts for them; drop those they refuse."""
    reply = state["messages"][-1]
    assert isinstance(reply, AIMessage)
    kept, refused = [], []
    for call in reply.tool_calls:
        if call["name"] not in _CONFIRMED:
            kept.append(call)
            continue
        answer = confirm(Confirmation(call["name"], call["args"], _asking(call, state)))
        if answer.type == "approve":
            kept.append(call)
        elif answer.type == "edit":
            kept.append({**call, "args": answer.edited_action.args})
        else:
            refused.append(answer.message)
    if not refused and kept == reply.tool_calls:
        return Command(goto="tools")
    revised = reply.model_copy(update={"tool_calls": kept})
    if kept:
        return Command(goto="tools", update={"messages": [revised]})
    said = HumanMessage(f"No. {' '.join(refused)}", id=f"{reply.id}-refused")
    return Command(goto="agent", update={"messages": [revised, said]})


def _asking(call: dict[str, Any], state: DirectorState) -> str:
    showing = state.get("showing")
    what = f"the {showing['stage']}" if showing else "the waiting gate's draft"
    if call["name"] == "approve_gate":
        return f"Approve {what}?"
    if call["name"] == "edit_gate":
        return f"Replace {what} with this edit?"
    return f"Run the ComfyUI workflow {call['args'].get('name')!r}? It spends GPU time."


def after_tools(state: DirectorState) -> str:
    """Route: follow a production the tools started or answered; else the model goes on."""
    return "follow" if state.get("following") else "agent"


async def follow(state: DirectorState, runtime: Runtime[Context]) -> Command:
    """Node: wait for the production to stop at its next gate (or end), saying its progress."""
    thread_id = state["following"]
    assert thread_id is not None

    def said(stage: str, message: str) -> None:
        runtime.stream_writer({"stage": stage, "message": message, "production": thread_id})

    outcome = await _studio(runtime.context).follow(thread_id, said)
    if outcome.status == "gate" and outcome.gate is not None:
        gate = outcome.gate
        request = gate.payload["action_requests"][0]
        note = AIMessage(
            f"Ready for your review: the {gate.label}. {request.get('description', '')}".strip(),
            id=f"shown-{gate.approval_id}",
        )
        update = {"following": None, "showing": asdict(gate), "messages": [note]}
        return Command(goto="gate", update=update)
    if outcome.status == "finished":
        video = outcome.values.get("video") or {}
        film = f" The film: /files/{video['file']['key']}" if video.get("file") else ""
        words = f"The production finished: every stage is approved.{film}"
    else:
        words = f"The production stopped: {outcome.message}"
    note = AIMessage(words, id=f"{outcome.status}-{thread_id}-{len(state['messages'])}")
    return Command(goto=END, update={"following": None, "messages": [note]})


def show_gate_node(state: DirectorState) -> dict[str, Any]:
    """Node: show the production's gate as this thread's interrupt; keep the person's answer."""
    showing = state["showing"]
    assert showing is not None
    production = {"thread_id": showing["thread_id"], "approval_id": showing["approval_id"]}
    return {"answer": interrupt({**showing["payload"], "production": production})}


async def decide(state: DirectorState, runtime: Runtime[Context]) -> Command:
    """Node: pass the person's answer to the production's gate, then follow it on."""
    showing, answer = state["showing"], state["answer"]
    assert showing is not None
    try:
        sent = await _studio(runtime.context).decide(
            showing["approval_id"], answer, key=f"director:{showing['approval_id']}"
        )
    except ValueError as error:  # the gate shows again, saying what was wrong
        payload = {**showing["payload"], "error": str(error)}
        return Command(goto="gate", update={"showing": {**showing, "payload": payload}})
    said = [
        HumanMessage(_in_words(answer, showing["stage"]), id=f"answer-{showing['approval_id']}")
    ]
    if not sent:
        said.append(
            AIMessage(_decided_elsewhere(showing["stage"]), id=f"decided-{showing['approval_id']}")
        )
    update = {"messages": said, "following": showing["thread_id"], "showing": None, "answer": None}
    return Command(goto="follow", update=update)


def _decided_elsewhere(stage: str) -> str:
    """Why a decision sent to a gate was not its decision (the studio sent nothing)."""
    return (
        f"The {stage} gate was already decided elsewhere (or replaced by a newer draft); "
        "that decision stands."
    )


def _in_words(answer: Any, stage: str) -> str:
    """A decision as the person's chat message."""
    decision = canonical_resume(answer)
    first = decision.get("decisions", [{}])[0] if isinstance(decision, dict) else {}
    if first.get("type") == "approve":
        return f"Approve the {stage}."
    if first.get("type") == "edit":
        return f"Here is my edit of the {stage}."
    return str(first.get("message", "")) or f"Not the {stage} yet."


class Director(WorkflowType):
    """The chat agent in front of the studio."""

    name = "director"
    description = (
        "Chat with the director: it starts and continues productions on your project, answers "
        "questions about it, shows each gate in the chat for your decision, and runs ComfyUI "
        "workflows as tools once you confirm."
    )
    input_model: ClassVar[type[BaseModel]] = ChatInput
    chat = True

    def build(self) -> StateGraph:
        """The agent loop, with a confirmation before acting and a gate relay after."""
        graph = StateGraph(DirectorState, context_schema=Context)
        graph.add_node("agent", respond)
        graph.add_node("confirm", confirm_actions, destinations=("tools", "agent"))
        graph.add_node("tools", ToolNode(TOOLS, handle_tool_errors=(ValueError,)))
        graph.add_node("follow", follow, destinations=("gate", END))
        graph.add_node("gate", show_gate_node)
        graph.add_node("decide", decide, destinations=("gate", "follow"))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", after_reply, ["confirm", "tools", END])
        graph.add_conditional_edges("tools", after_tools, ["follow", "agent"])
        graph.add_edge("gate", "decide")
        return graph
