"""A run cut off while an agent drafts its next stage never decides that stage's gate.

LangGraph keeps a plain ``Command(resume=value)`` as a pending write on the parent
checkpoint until the whole agent subgraph finishes; a multi-gate agent (the script writer)
cut off between two of its gates would hand the old decision to the next gate when it
continues. Auteur's drivers bind every decision to its gate's interrupt id
(``tests.helpers.answer``; the API, whose path the CLI and the evals take too), so a continued
run stops at the next gate, undecided. Here every stage's draft is cut off once, right as it starts.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import Command

from agents.base import Context
from graphs.base import load_workflow_types
from tests.helpers import APPROVE, new_config, run_until_stop

WORKFLOW = load_workflow_types().get("full_video")()
GATES = WORKFLOW.gates(scenes=2)  # the sample's two scenes: the scene cycle's gates twice


async def _cut_off_in_next_draft(
    graph: Any, config: dict[str, Any], command: Command, context: Context, stage: str
) -> str | None:
    """Resume at ``stage``'s gate; stop consuming the run at the next stage's first event.

    Closing the stream cancels the run where it stands, as a killed process would leave it:
    what the checkpointer wrote stays, nothing else is written. Returns the stage the run
    was cut off in, or None if it ended first.
    """
    async for _, chunk in graph.astream(
        command,
        config,
        context=context,
        stream_mode="custom",
        subgraphs=True,
        durability="sync",
    ):
        if chunk.get("stage") not in (None, stage):
            return chunk["stage"]
    return None


async def test_every_gate_after_a_cut_off_draft_waits_for_the_person(
    persistence: Any, offline_context: Context, sample_input: dict[str, Any]
) -> None:
    graph = WORKFLOW.compile(checkpointer=persistence.checkpointer, store=persistence.store)
    config = new_config()
    gate = await run_until_stop(graph, config, sample_input, offline_context)
    shown = []
    cut_off_in = []
    while gate is not None:
        stage = gate["stage"]
        shown.append(stage)
        snapshot = await graph.aget_state(config)
        bound = Command(resume={snapshot.interrupts[0].id: APPROVE})
        cut = await _cut_off_in_next_draft(graph, config, bound, offline_context, stage)
        if cut is not None:
            cut_off_in.append(cut)
            values = (await graph.aget_state(config)).values
            # an approval would list the stage (its first gate) or put the scene's part in its
            # artifact (a later scene's gate): neither happened
            assert cut not in values["approved"] or cut in shown, (
                f"{cut} was approved while its draft was cut off"
            )
            assert values.get(cut) == snapshot.values.get(cut), (
                f"{cut} changed while its draft was cut off"
            )
        gate = await run_until_stop(graph, config, None, offline_context)  # continue, no input
    assert shown == GATES  # every gate shown once, in order, none skipped
    # each later gate's draft was cut off once (and the assembly after the last gate)
    assert [stage for stage in cut_off_in if stage in GATES] == GATES[1:]
    values = (await graph.aget_state(config)).values
    assert values["approved"] == WORKFLOW.stages()  # each stage listed once, in order
    assert "video" in values
