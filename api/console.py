"""Terminal rendering for the CLI: progress lines, gate proposals, decisions, run tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table

__all__ = ["GateLeft", "ask_decision", "costs", "gate", "progress", "thread_table"]


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
    """Ask approve / edit / feedback / later in the terminal; return the resume value.

    The treatment gate also takes an option number (an edit of ``chosen``); the assets gate
    takes ``d`` to deselect assets by id (an edit of ``deselected``).
    """
    request = payload["action_requests"][0]
    stage, args = request["name"], request["args"]
    extra = {"treatment": ", or an option number", "assets": ", [d]eselect"}.get(stage, "")
    while True:
        choice = typer.prompt(f"[a]pprove, [e]dit, [f]eedback, [l]ater{extra}", default="a")
        choice = choice.strip()
        if stage == "treatment" and choice.isdigit():
            return _edit(stage, {**args, "chosen": int(choice)})
        match choice[:1].lower():
            case "a":
                return {"decisions": [{"type": "approve"}]}
            case "d" if stage == "assets":
                ids = typer.prompt("Asset ids not to pre-generate (comma-separated)", default="")
                deselected = [i.strip() for i in ids.split(",") if i.strip()]
                return _edit(stage, {**args, "deselected": deselected})
            case "f":
                message = typer.prompt("Your feedback").strip()
                if message:
                    return {"decisions": [{"type": "reject", "message": message}]}
            case "e":
                edited = click.edit(json.dumps(request["args"], indent=2), extension=".json")
                if edited is None:
                    out.print("no changes made")
                    continue
                try:
                    args = json.loads(edited)
                except json.JSONDecodeError as error:
                    out.print(f"[red]not valid JSON:[/red] {error}")
                    continue
                return _edit(stage, args)
            case "l":
                raise GateLeft(
                    f"Left at the '{request['name']}' gate. "
                    f"`auteur resume {payload.get('thread_id')}` comes back to it."
                )
        out.print("please answer a, e, f or l")


def _edit(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"decisions": [{"type": "edit", "edited_action": {"name": stage, "args": args}}]}


def thread_table(out: Console, threads: list[dict[str, Any]]) -> None:
    """The list of threads for ``auteur runs`` (rows of :meth:`api.driver.Driver.threads`)."""
    table = Table("thread", "workflow", "status", "stage", "updated", "message")
    for thread in threads:
        status = "stopped (resume to continue)" if thread["stopped"] else thread["status"]
        table.add_row(
            thread["thread_id"],
            thread["workflow"] or "—",
            status,
            thread["stage"] or "—",
            thread["updated_at"].strftime("%Y-%m-%d %H:%M:%S"),
            thread["message"] or "",
        )
    out.print(table)


def costs(out: Console, summary: dict[str, Any]) -> None:
    """What the command's runs spent: tokens and cost per agent and stage, then totals."""
    totals = summary["totals"]
    if not totals["llm_calls"] and not totals["comfyui_jobs"]:
        return
    table = Table("agent", "stage", "model", "calls", "tokens in", "tokens out", "USD")
    for row in summary["by_agent_stage"]:
        table.add_row(
            row["agent"],
            row["stage"],
            row["model"],
            str(row["calls"]),
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            "?" if row["cost_usd"] is None else f"{row['cost_usd']:.4f}",
        )
    out.print(table)
    unpriced = totals["unpriced_models"]
    out.print(
        f"[bold]Spent:[/bold] {totals['llm_calls']} model calls, "
        f"{totals['input_tokens']:,} tokens in, {totals['output_tokens']:,} out, "
        f"${totals['cost_usd']:.4f}"
        + (f" (no price for {', '.join(unpriced)})" if unpriced else "")
        + f"; {totals['comfyui_jobs']} ComfyUI jobs, {totals['gpu_seconds']:g} GPU seconds"
    )


def _render_json(out: Console, args: dict[str, Any]) -> None:
    out.print_json(json.dumps(args))


def _render_treatments(out: Console, treatments: dict[str, Any]) -> None:
    for number, option in enumerate(treatments["options"], start=1):
        mark = " [green](recommended)[/green]" if number == treatments["chosen"] else ""
        out.print(f"\n[bold]{number}. {option['title']}[/bold]{mark} — {option['tone']}")
        out.print(f"   [italic]{option['logline']}[/italic]")
        out.print(f"   {option['synopsis']}")


def _render_master_script(out: Console, master: dict[str, Any]) -> None:
    out.print(f"[bold]{master['title']}[/bold] — master script")
    for scene in master["scenes"]:
        out.print(f"\n[bold]{scene['number']}. {scene['slugline']}[/bold]")
        out.print(f"  {scene['prose']}")


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
    """A checklist grouped by kind: each asset with its looks and the look of each scene."""
    usage: dict[str, list[str]] = {}
    for use in assets["scene_usage"]:
        usage.setdefault(use["entity"], []).append(f"{use['scene']}: {use['look']}")
    deselected = set(assets.get("deselected", []))
    for title, key, looks in (
        ("Characters", "characters", "looks"),
        ("Locations", "locations", "variants"),
        ("Props", "props", "states"),
    ):
        table = Table("", "id", "name", looks, "scene: look", title=title, title_justify="left")
        for entity in assets[key]:
            table.add_row(
                "✗" if entity["id"] in deselected else "✓",
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
    "treatment": _render_treatments,
    "script": _render_script,
    "master_script": _render_master_script,
    "assets": _render_assets,
    "shots": _render_shots,
    "frames": _render_media,
    "clips": _render_media,
}
