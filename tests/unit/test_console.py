"""The terminal console renders and decides by a gate's artifact type, never by its stage name."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from rich.console import Console

from agents.artifacts import AssetRegistry, Treatment, Treatments
from api import console

GOLD = Path(__file__).resolve().parents[2] / "evals" / "datasets" / "gold_scripts.jsonl"

TREATMENTS = Treatments(
    options=[
        Treatment(title=f"Take {n}", logline=f"Logline {n}", tone="dry", synopsis=f"Story {n}")
        for n in (1, 2, 3)
    ]
)


def gate(stage: str, artifact: BaseModel) -> dict[str, Any]:
    """A gate payload as agents.base.GateRequest makes it, at ``stage``."""
    return {
        "action_requests": [
            {"name": stage, "args": artifact.model_dump(mode="json"), "description": "Review."}
        ],
        "review_configs": [
            {
                "action_name": stage,
                "allowed_decisions": ["approve", "edit", "reject"],
                "args_schema": type(artifact).model_json_schema(),
            }
        ],
        "stage": stage,
        "thread_id": "thread-1",
    }


def registry() -> AssetRegistry:
    record = next(r for r in map(json.loads, GOLD.read_text().splitlines()) if r["assets"])
    return AssetRegistry.model_validate(record["assets"])


def answering(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Answer the console's prompts in order; return the questions it asked."""
    asked: list[str] = []
    given = list(answers)

    def prompt(text: str, **_: Any) -> str:
        asked.append(text)
        return given.pop(0)

    monkeypatch.setattr(typer, "prompt", prompt)
    return asked


def test_treatments_render_as_options_whatever_the_stage_is_called() -> None:
    out = Console(record=True, width=120)

    console.gate(out, gate("pitch", TREATMENTS))

    text = out.export_text()
    assert "Approval gate: pitch" in text
    assert "1. Take 1 (recommended) — dry" in text and "3. Take 3 — dry" in text
    assert '"options"' not in text  # not the JSON fallback


def test_an_option_number_picks_a_treatment_at_a_renamed_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = answering(monkeypatch, "2")

    decision = console.ask_decision(Console(), gate("pitch", TREATMENTS))

    assert "or an option number" in asked[0] and "[d]eselect" not in asked[0]
    [edit] = decision["decisions"]
    assert edit["edited_action"]["name"] == "pitch"
    assert edit["edited_action"]["args"]["chosen"] == 2


def test_deselecting_follows_the_registry_type_not_the_assets_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assets = registry()
    first, second = list(assets.entities())[:2]
    asked = answering(monkeypatch, "d", f"{first}, {second}")

    decision = console.ask_decision(Console(), gate("cast", assets))

    assert "[d]eselect" in asked[0] and "option number" not in asked[0]
    assert asked[1] == "Asset ids not to pre-generate (comma-separated)"
    assert decision["decisions"][0]["edited_action"] == {
        "name": "cast",
        "args": {**assets.model_dump(mode="json"), "deselected": [first, second]},
    }


def test_a_stage_named_like_the_treatment_gate_gets_no_option_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = answering(monkeypatch, "2", "a")

    decision = console.ask_decision(Console(), gate("treatment", registry()))

    assert "option number" not in asked[0]
    assert decision == {"decisions": [{"type": "approve"}]}


def test_an_artifact_without_a_renderer_is_shown_as_json() -> None:
    out = Console(record=True, width=120)

    console.gate(out, gate("treatment", Treatment(title="T", logline="L", tone="x", synopsis="S")))

    assert '"logline": "L"' in out.export_text()


def test_the_final_file_is_the_last_artifact_that_is_one_media_file() -> None:
    file = {"key": "abc.mp4"}
    values = {
        "project": {},
        "clips": {"clips": [{"file": {"key": "c.mp4"}}]},
        "cut": {"file": file},
    }

    assert console.final_file(values) == ("cut", "abc.mp4")
    assert console.final_file({"project": {}}) is None


def test_runs_say_the_scene_a_thread_works_on() -> None:
    row = {
        "thread_id": "t-1",
        "workflow": "regenerate_scene",
        "status": "interrupted",
        "stopped": False,
        "stage": "frames",
        "updated_at": datetime(2026, 12, 1, 12, 0),
        "message": "awaiting approval",
    }
    out = Console(width=200, record=True)

    console.thread_table(out, [{**row, "thread_values": {"scene": 2}}, {**row, "thread_id": "t-2"}])

    lines = out.export_text().splitlines()
    assert "Scene 2 · frames" in next(line for line in lines if "t-1" in line)
    assert "Scene" not in next(line for line in lines if "t-2" in line)
