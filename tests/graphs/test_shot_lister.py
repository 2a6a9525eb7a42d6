"""The shot lister checks its proposal, repairs once, and shows what still fails."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from agents._shot_rules import check_shot_list
from agents.artifacts import AssetRegistry, Script, ShotList
from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.helpers import APPROVE, answer, new_config, proposal, run_until_stop

RECORDED = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
BEFORE_SHOTS = [
    RECORDED[task][0]
    for task in ("draft_treatments", "draft_script", "write_master_script", "extract_assets")
]


def _broken(rule: str) -> dict[str, Any]:
    """The sample shot list with exactly one rule broken."""
    shots = copy.deepcopy(RECORDED["list_shots"][0])
    by_id = {shot["id"]: shot for shot in shots["shots"]}
    match rule:
        case "coverage":  # the last shot of scene 1 dropped: its lines go uncovered
            shots["shots"].remove(by_id["1C"])
        case "dialogue_rate":
            by_id["1B"]["duration_s"] = 1.0
        case "dialogue_mismatch":
            by_id["2B"]["dialogue"][0]["text"] = "Dora! Look at me, I am flying high!"
        case "unknown_entity":
            by_id["1C"]["entities"].append({"entity": "ghost", "look": "spooky"})
        case "wrong_look":
            by_id["2C"]["entities"][2]["look"] = "gingham apron"  # dora, in the raincoat
    return shots


RULES = ["coverage", "dialogue_rate", "dialogue_mismatch", "unknown_entity", "wrong_look"]


async def _shots_gate(
    graph: Any, context: Context, sample_input: dict[str, Any], openai_server: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    config = new_config()
    sample = {**sample_input, "brief": f"{sample_input['brief']} ({uuid.uuid4()})"}
    gate = await run_until_stop(graph, config, sample, context)
    while gate is not None and gate["stage"] != "shots":
        gate = await answer(graph, config, APPROVE, context)
    assert gate is not None
    return gate, config


@pytest.fixture
def graph(persistence: Any) -> Any:
    return (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=persistence.checkpointer, store=persistence.store)
    )


@pytest.mark.parametrize("rule", RULES)
async def test_a_broken_rule_gets_one_repair_call_with_its_message(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any, rule: str
) -> None:
    broken = _broken(rule)
    script = Script.model_validate(RECORDED["draft_script"][0])
    assets = AssetRegistry.model_validate(RECORDED["extract_assets"][0])
    [violation] = check_shot_list(ShotList.model_validate(broken), script, assets)
    assert violation.rule == rule
    openai_server.replies.extend([*BEFORE_SHOTS, broken, RECORDED["list_shots"][0]])
    gate, _ = await _shots_gate(graph, http_context, sample_input, openai_server)
    first, repair = openai_server.requests[len(BEFORE_SHOTS) :]
    repair_request = repair["messages"][-1]
    assert repair_request["role"] == "user"
    assert violation.message in repair_request["content"]
    assert violation.message not in json.dumps(first["messages"])
    assert gate["problems"] == []
    assert proposal(gate) == RECORDED["list_shots"][0]


async def test_what_still_fails_after_the_repair_is_shown_at_the_gate(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    broken = _broken("coverage")
    openai_server.replies.extend([*BEFORE_SHOTS, broken, broken])
    gate, config = await _shots_gate(graph, http_context, sample_input, openai_server)
    assert len(openai_server.requests) == len(BEFORE_SHOTS) + 2
    assert len(gate["problems"]) == 1
    assert "is covered by no shot" in gate["problems"][0]
    assert proposal(gate) == ShotList.model_validate(broken).model_dump(mode="json")
    after = await answer(graph, config, APPROVE, http_context)
    assert after is not None and after["stage"] == "frames"
