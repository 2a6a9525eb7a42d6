"""The shot lister checks each scene's shots, repairs that scene once, shows what still fails.

In full_video's scene cycle each scene's shots gate lists that scene alone: a test drives to
the gate of the scene whose shots it breaks.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

import prompts
from agents._shot_rules import check_shot_list
from agents.artifacts import AssetRegistry, Script, ShotList
from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from tests.doubles.openai_server import OpenAIServer, Reply, replay_recordings
from tests.helpers import APPROVE, answer, new_config, proposal, run_until_stop

RECORDED = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
TASK = "list_scene_shots"


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


def _scene_of(shots: dict[str, Any], number: int) -> dict[str, Any]:
    return {"shots": [shot for shot in shots["shots"] if shot["scene"] == number]}


def _broken_scene(broken: dict[str, Any]) -> int:
    """The one scene whose shots the broken list changed."""
    whole = RECORDED["list_shots"][0]
    [number] = [n for n in (1, 2) if _scene_of(broken, n) != _scene_of(whole, n)]
    return number


def _answering(broken: dict[str, Any], *, repaired: bool) -> Any:
    """Replay the sample, but answer the broken scene's first request with its broken shots,
    and its repair with the recorded shots (``repaired``) or the broken ones again."""
    number = _broken_scene(broken)

    def override(task: str, scene: int | None, revision: int) -> Reply | None:
        if task != TASK or scene != number:
            return None
        if revision == 0 or not repaired:
            return _scene_of(broken, number)
        return RECORDED[TASK][0][str(number)]

    return replay_recordings(SAMPLE_RECORDINGS, prompts.PROMPTS_DIR, override=override)


def _shot_requests(server: OpenAIServer, number: int) -> list[dict[str, Any]]:
    """The shot-list requests for scene ``number``, in the order they arrived."""
    asks = f"List the shots of scene {number}."
    return [
        request
        for request in server.requests
        if next(m["content"] for m in request["messages"] if m["role"] == "user").endswith(asks)
    ]


async def _shots_gate(
    graph: Any, context: Context, sample_input: dict[str, Any], scene: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Approve every gate before scene ``scene``'s shots gate; return it and the config."""
    config = new_config()
    sample = {**sample_input, "brief": f"{sample_input['brief']} ({uuid.uuid4()})"}
    gate = await run_until_stop(graph, config, sample, context)
    while gate is not None and (gate["stage"], gate["scene"]) != ("shots", scene):
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


RULES = ["coverage", "dialogue_rate", "dialogue_mismatch", "unknown_entity", "wrong_look"]


@pytest.mark.parametrize("rule", RULES)
async def test_a_broken_rule_gets_one_repair_call_for_its_scene_with_its_message(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any, rule: str
) -> None:
    broken = _broken(rule)
    script = Script.model_validate(RECORDED["draft_script"][0])
    assets = AssetRegistry.model_validate(RECORDED["extract_assets"][0])
    [violation] = check_shot_list(ShotList.model_validate(broken), script, assets)
    assert violation.rule == rule
    number = _broken_scene(broken)
    openai_server.responder = _answering(broken, repaired=True)

    gate, _ = await _shots_gate(graph, http_context, sample_input, number)

    first, repair = _shot_requests(openai_server, number)
    repair_request = repair["messages"][-1]
    assert repair_request["role"] == "user"
    assert violation.message in repair_request["content"]
    assert violation.message not in json.dumps(first["messages"])
    # the other scene: listed once at its own gate (scene 1's comes first), never repaired
    assert len(_shot_requests(openai_server, 3 - number)) == (1 if number == 2 else 0)
    assert gate["problems"] == []
    assert proposal(gate) == _scene_of(RECORDED["list_shots"][0], number)


async def test_what_still_fails_after_the_repair_is_shown_at_the_gate(
    graph: Any, http_context: Context, sample_input: dict[str, Any], openai_server: Any
) -> None:
    broken = _broken("coverage")
    openai_server.responder = _answering(broken, repaired=False)
    gate, config = await _shots_gate(graph, http_context, sample_input, 1)
    assert len(_shot_requests(openai_server, 1)) == 2
    assert len(_shot_requests(openai_server, 2)) == 0  # listed at scene 2's own gate
    assert len(gate["problems"]) == 1
    assert "is covered by no shot" in gate["problems"][0]
    assert proposal(gate) == ShotList.model_validate(_scene_of(broken, 1)).model_dump(mode="json")
    after = await answer(graph, config, APPROVE, http_context)
    assert after is not None and (after["stage"], after["scene"]) == ("dialogue", 1)
