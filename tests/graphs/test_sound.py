"""Casting and dialogue through their gates: voices cast and heard, lines spoken, directed, fitted.

The speech backend is the OpenAI-compatible one, against the test double speaking
``/v1/audio/speech``, so every line paid for is a request the double counts. Each test uses
a model name of its own: the generation cache is shared (as in production), and a line
spoken by another test's run must not count as this one's.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agents.artifacts import Cast, DialogueTrack, ShotList
from agents.base import Context
from agents.casting import best_voice
from agents.dialogue_speaker import LEAD_IN_S, MAX_TEMPO, named_lines
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.helpers import APPROVE, answer, drive_to_gate, new_config, proposal
from tools.speech import DRAFT_VOICES, OpenAISpeech

pytestmark = pytest.mark.usefixtures("loop_kept_free")


@pytest.fixture
def speaking_context(offline_context: Context, openai_server: Any) -> Context:
    """The offline writers, the draft renderer, and speech from the double (a fresh model)."""
    speech = OpenAISpeech(
        api_key="test-key", base_url=openai_server.base_url, model=f"tts-{uuid.uuid4().hex[:8]}"
    )
    return Context(
        models=offline_context.models,
        backend=offline_context.backend,
        files=offline_context.files,
        speech=speech,
    )


@pytest.fixture
def graph(persistence: Persistence) -> Any:
    workflow = load_workflow_types().get("full_video")()
    return workflow.compile(checkpointer=persistence.checkpointer, store=persistence.store)


def _reject(message: str) -> dict[str, Any]:
    return {"decisions": [{"type": "reject", "message": message}]}


async def test_casting_gives_each_speaker_a_voice_to_hear_and_recasts_only_who_is_named(
    graph: Any, speaking_context: Context, openai_server: Any, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, speaking_context, "casting")
    cast = Cast.model_validate(proposal(gate))
    assert [v.speaker for v in cast.voices] == ["PIP", "DORA"]
    assert len({v.voice for v in cast.voices}) == 2  # every speaker sounds different
    assert all(v.sample is not None for v in cast.voices)
    assert {r["input"] for r in openai_server.speech_requests} == {
        "Today, Dora, eggs learn to fly!",
        "Eggs roll, Pip. That's our whole thing.",
    }  # each sample is the character's first line
    assert {c.id for c in cast.choices} >= {v.voice for v in cast.voices}
    asked = len(openai_server.speech_requests)

    gate = await answer(graph, config, _reject("Dora should sound like a woman"), speaking_context)
    recast = Cast.model_validate(proposal(gate))
    pip, dora = recast.voice_of("PIP"), recast.voice_of("DORA")
    assert pip == cast.voice_of("PIP")  # not named: kept, sample and all
    assert dora.voice != cast.voice_of("DORA").voice
    assert dora.voice in {"coral", "nova", "sage", "shimmer", "marin"}  # a woman's voice
    assert len(openai_server.speech_requests) == asked + 1  # only Dora's sample is new

    edited = recast.model_copy(deep=True)
    edited.voices[0].voice = "nonexistent"
    bad = {
        "decisions": [
            {
                "type": "edit",
                "edited_action": {"name": "casting", "args": edited.model_dump(mode="json")},
            }
        ]
    }
    gate = await answer(graph, config, bad, speaking_context)
    assert gate["stage"] == "casting" and "nonexistent" in gate["error"]


async def test_dialogue_is_spoken_in_the_cast_voices_and_one_line_is_directed_again(
    graph: Any, speaking_context: Context, openai_server: Any, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, speaking_context, "dialogue")
    values = (await graph.aget_state(config)).values
    cast = Cast.model_validate(values["casting"])
    shots = ShotList.model_validate(values["shots"]).shots
    track = DialogueTrack.model_validate(proposal(gate))
    expected = [(s.id, d.speaker, d.text) for s in shots for d in s.dialogue]
    assert [(line.shot, line.speaker, line.text) for line in track.lines] == expected
    for line in track.lines:
        assert line.voice == cast.voice_of(line.speaker).voice
        assert line.fits and line.start_s >= LEAD_IN_S
    samples = {(r["voice"], r["input"]) for r in openai_server.speech_requests[: len(cast.voices)]}
    dialogue_requests = openai_server.speech_requests[len(cast.voices) :]
    assert sorted((r["voice"], r["input"]) for r in dialogue_requests) == sorted(
        (line.voice, line.text) for line in track.lines if (line.voice, line.text) not in samples
    )  # each line once; a first line was the casting sample already, and is not paid again
    asked = len(openai_server.speech_requests)

    # Re-running the stage from its checkpoint (a resume after a crash) speaks nothing again.
    history = [s async for s in graph.aget_state_history(config)]
    before = next(s for s in history if s.next == ("dialogue_speaker",))
    async for _ in graph.astream(None, before.config, context=speaking_context):
        pass
    assert len(openai_server.speech_requests) == asked
    config = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}

    gate = await answer(graph, config, _reject("1B-1: angrier"), speaking_context)
    again = DialogueTrack.model_validate(proposal(gate))
    changed = [b.id for a, b in zip(track.lines, again.lines, strict=True) if a.file != b.file]
    assert changed == ["1B-1"]
    assert again.lines[1].direction == "1B-1: angrier"
    [request] = openai_server.speech_requests[asked:]
    assert request["input"] == "Eggs roll, Pip. That's our whole thing."
    assert "angrier" in request["instructions"]

    await answer(graph, config, APPROVE, speaking_context)
    values = (await graph.aget_state(config)).values
    assert DialogueTrack.model_validate(values["dialogue"]) == again


async def test_a_line_longer_than_its_shot_is_sped_up_then_flagged_never_cut(
    graph: Any, speaking_context: Context, openai_server: Any, sample_input: dict[str, Any]
) -> None:
    config = new_config()
    gate = await drive_to_gate(graph, config, sample_input, speaking_context, "shots")
    shots = proposal(gate)
    shots["shots"][0]["duration_s"] = 2.1  # "Today, Dora, eggs learn to fly!" takes 2.2 s
    shots["shots"][1]["duration_s"] = 0.5  # far too short even sped up
    edit = {"decisions": [{"type": "edit", "edited_action": {"name": "shots", "args": shots}}]}
    gate = await answer(graph, config, edit, speaking_context)
    while gate["stage"] != "dialogue":
        gate = await answer(graph, config, APPROVE, speaking_context)
    track = DialogueTrack.model_validate(proposal(gate))
    first, second = track.lines[0], track.lines[1]
    assert 1.0 < first.tempo <= MAX_TEMPO and first.fits
    assert first.start_s + first.duration_s <= 2.1
    assert second.tempo == pytest.approx(MAX_TEMPO, abs=0.01) and not second.fits
    assert gate["problems"] == [
        f"1B-1 (DORA) runs past the end of shot 1B even spoken {second.tempo:g}x faster: "
        "shorten the line, or lengthen the shot in the shot list."
    ]


def test_feedback_names_a_line_or_every_line_of_a_shot() -> None:
    ids = ["1A-1", "1B-1", "1B-2", "2A-1"]
    assert named_lines("1B-2: whisper", ids) == {"1B-2": "1B-2: whisper"}
    assert set(named_lines("shot 1b, softer", ids)) == {"1B-1", "1B-2"}
    assert named_lines("everyone slower", ids) == {}


def test_casting_matches_gender_and_age_and_keeps_voices_apart() -> None:
    grandmother = best_voice(DRAFT_VOICES, "an old grandmother, kind", taken=set(), avoid=set())
    assert (grandmother.gender, grandmother.age) == ("female", "old")
    boy = best_voice(DRAFT_VOICES, "a little boy", taken=set(), avoid=set())
    assert boy.gender == "male" and boy.age == "child"
    other = best_voice(DRAFT_VOICES, "a little boy", taken={boy.id}, avoid=set())
    assert other.id != boy.id
