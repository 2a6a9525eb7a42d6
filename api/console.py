"""Terminal rendering for the CLI: progress lines, gate proposals, decisions, run tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from graphs.persistence import ThreadRecord

__all__ = ["GateLeft", "ask_decision", "gate", "progress", "thread_table"]


class GateLeft(Exception):
    """The person chose to leave the gate open and come back later."""


def progress(out: Console) -> Callable[[dict[str, Any]], None]:
    """A progress callback printing ``[stage] message`` lines."""

    def show(event: dict[str, Any]) -> None:
        out.print(f"[dim]\\[{event.get('stage', '?')}][/dim] {event.get('message', '')}")

    return show


def gate(out: Console, payload: dict[str, Any]) -> None:
    """Show what a gate proposes."""
    request = payload["action_requests"][0]
    stage, args = request["name"], request["args"]
    out.rule(f"[bold]Approval gate: {stage}[/bold]")
    _RENDERERS.get(stage, _render_json)(out, args)
    out.print(f"[bold]{request['description']}[/bold]")
    for problem in payload.get("problems") or []:
        out.print(f"[yellow]rule not met:[/yellow] {problem}")
    if payload.get("error"):
        out.print(f"[red]Your last answer was not accepted:[/red] {payload['error']}")


def ask_decision(out: Console, payload: dict[str, Any]) -> dict[str, Any]:
    """Ask approve / edit / feedback / later in the terminal; return the resume value."""
    request = payload["action_requests"][0]
    while True:
        choice = typer.prompt("[a]pprove, [e]dit, [f]eedback, [l]ater", default="a").strip()
        match choice[:1].lower():
            case "a":
                return {"decisions": [{"type": "approve"}]}
            case "f":
                message = typer.prompt("Your feedback").strip()
                if message:
                    return {"decisions": [{"type": "reject", "message": message}]}
            case "e":
                edited = typer.edit(json.dumps(request["args"], indent=2), extension=".json")
                if edited is None:
                    out.print("no changes made")
                    continue
                try:
                    args = json.loads(edited)
                except json.JSONDecodeError as error:
                    out.print(f"[red]not valid JSON:[/red] {error}")
                    continue
                action = {"name": request["name"], "args": args}
                return {"decisions": [{"type": "edit", "edited_action": action}]}
            case "l":
                raise GateLeft(
                    f"Left at the '{request['name']}' gate. "
                    f"`auteur resume {payload.get('thread_id')}` comes back to it."
                )
        out.print("please answer a, e, f or l")


def thread_table(out: Console, records: list[ThreadRecord]) -> None:
    """The list of threads for ``auteur runs``."""
    table = Table("thread", "workflow", "status", "stage", "updated", "message")
    for record in records:
        status = record.status
        if status == "running" and not record.runner_alive():
            status = "stopped (resume to continue)"
        table.add_row(
            record.thread_id,
            record.workflow,
            status,
            record.stage or "—",
            record.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            record.message or "",
        )
    out.print(table)


def _render_json(out: Console, args: dict[str, Any]) -> None:
    out.print_json(json.dumps(args))


def _render_script(out: Console, script: dict[str, Any]) -> None:
    out.print(f"[bold]{script['title']}[/bold] — {script.get('logline', '')}")
    for scene in script["scenes"]:
        out.print(f"\n[bold]{scene['number']}. {scene['slugline']}[/bold]")
        for line in scene["lines"]:
            if line["kind"] == "action":
                out.print(f"  {line['text']}")
            else:
                aside = f" ({line['parenthetical']})" if line.get("parenthetical") else ""
                out.print(f"      [bold]{line['speaker']}[/bold]{aside}: {line['text']}")


def _render_assets(out: Console, assets: dict[str, Any]) -> None:
    usage: dict[str, list[str]] = {}
    for use in assets["scene_usage"]:
        usage.setdefault(use["entity"], []).append(f"{use['scene']}: {use['look']}")
    table = Table("kind", "id", "name", "looks / states / variants", "per scene")
    for kind, key, looks in (
        ("character", "characters", "looks"),
        ("location", "locations", "variants"),
        ("prop", "props", "states"),
    ):
        for entity in assets[key]:
            table.add_row(
                kind,
                entity["id"],
                entity["name"],
                ", ".join(look["name"] for look in entity[looks]),
                "; ".join(usage.get(entity["id"], [])),
            )
    out.print(table)


def _render_shots(out: Console, shots: dict[str, Any]) -> None:
    table = Table("shot", "size", "angle", "movement", "lens", "s", "action", "dialogue")
    for shot in shots["shots"]:
        dialogue = " / ".join(f"{d['speaker']}: {d['text']}" for d in shot["dialogue"])
        table.add_row(
            shot["id"],
            shot["size"],
            shot["angle"],
            shot["movement"],
            shot["lens"],
            f"{shot['duration_s']:g}",
            shot["action"],
            dialogue,
        )
    out.print(table)


def _render_media(out: Console, media: dict[str, Any]) -> None:
    items = media.get("frames") or media.get("clips") or []
    for item in items:
        label = f"{item['shot']} {item.get('position', 'clip')}"
        out.print(f"  {label:<10} {item['file']['key']}  ({item['workflow']})")


_RENDERERS: dict[str, Callable[[Console, dict[str, Any]], None]] = {
    "script": _render_script,
    "assets": _render_assets,
    "shots": _render_shots,
    "frames": _render_media,
    "clips": _render_media,
}
