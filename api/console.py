"""Terminal rendering for the CLI: progress lines, gate proposals, decisions, run tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from agents.artifacts import (
    CHOOSES_FROM,
    DESELECTS,
    AssetRegistry,
    Cast,
    ClipSet,
    DialogueTrack,
    FrameSet,
    MasterScript,
    ReferenceSheets,
    SceneInstances,
    Script,
    ShotList,
    Treatments,
)

__all__ = [
    "GateLeft",
    "ask_decision",
    "costs",
    "final_file",
    "gate",
    "progress",
    "thread_table",
]


class GateLeft(Exception):
    """The person chose to leave the gate open and come back later."""


def progress(out: Console) -> Callable[[dict[str, Any]], None]:
    """A progress callback printing ``[stage] message`` lines."""

    def show(event: dict[str, Any]) -> None:
        out.print(f"[dim]\\[{event.get('stage', '?')}][/dim] {event.get('message', '')}")

    return show


def gate(out: Console, payload: dict[str, Any]) -> None:
    """Show what a gate proposes, rendered by its artifact's type."""
    request = payload["action_requests"][0]
    scene = payload.get("scene")
    where = request["name"] if scene is None else f"Scene {scene} · {request['name']}"
    out.rule(f"[bold]Approval gate: {where}[/bold]")
    _render(out, _schema(payload).get("title"), request["args"])
    out.print(f"[bold]{request['description']}[/bold]")
    for problem in payload.get("problems") or []:
        out.print(f"[yellow]rule not met:[/yellow] {problem}")
    if payload.get("error"):
        out.print(f"[red]Your last answer was not accepted:[/red] {payload['error']}")


def ask_decision(out: Console, payload: dict[str, Any]) -> dict[str, Any]:
    """Ask approve / edit / feedback / later in the terminal; return the resume value.

    The artifact's schema adds choices: a field marked :data:`CHOOSES_FROM` takes an option
    number, one marked :data:`DESELECTS` takes ``d`` and a list of ids (each an edit).
    """
    request = payload["action_requests"][0]
    stage, args = request["name"], request["args"]
    chooses = _marked(payload, CHOOSES_FROM)
    deselects = _marked(payload, DESELECTS)
    extra = (", or an option number" if chooses else "") + (", [d]eselect" if deselects else "")
    while True:
        choice = typer.prompt(f"[a]pprove, [e]dit, [f]eedback, [l]ater{extra}", default="a")
        choice = choice.strip()
        if chooses and choice.isdigit():
            return _edit(stage, {**args, chooses[0]: int(choice)})
        match choice[:1].lower():
            case "a":
                return {"decisions": [{"type": "approve"}]}
            case "d" if deselects:
                field, question = deselects
                ids = typer.prompt(f"{question} (comma-separated)", default="")
                return _edit(
                    stage, {**args, field: [i.strip() for i in ids.split(",") if i.strip()]}
                )
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


def final_file(values: dict[str, Any]) -> tuple[str, str] | None:
    """The last artifact of a run's state that is one media file: its state key and file key.

    That is the run's product (the assembled video of ``full_video``), whatever the workflow.
    """
    files = [
        (key, value["file"]["key"])
        for key, value in values.items()
        if isinstance(value, dict) and isinstance(value.get("file"), dict)
    ]
    return files[-1] if files else None


def _schema(payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of the gate's artifact; its ``title`` is the artifact's type."""
    return payload["review_configs"][0]["args_schema"]


def _marked(payload: dict[str, Any], marker: str) -> tuple[str, Any] | None:
    """The artifact's field whose schema carries ``marker``, with the marker's value."""
    properties = _schema(payload).get("properties", {})
    return next(((name, spec[marker]) for name, spec in properties.items() if marker in spec), None)


def _edit(stage: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"decisions": [{"type": "edit", "edited_action": {"name": stage, "args": args}}]}


def thread_table(out: Console, threads: list[dict[str, Any]]) -> None:
    """The list of threads for ``auteur runs`` (rows of :meth:`api.driver.Driver.threads`).

    A run on one scene (``regenerate_scene``) shows it: "Scene 2 · frames".
    """
    table = Table("thread", "workflow", "status", "stage", "updated", "message")
    for thread in threads:
        status = "stopped (resume to continue)" if thread["stopped"] else thread["status"]
        scene = (thread.get("thread_values") or {}).get("scene")
        stage = thread["stage"] or "—"
        table.add_row(
            thread["thread_id"],
            thread["workflow"] or "—",
            status,
            stage if scene is None else f"Scene {scene} · {stage}",
            thread["updated_at"].strftime("%Y-%m-%d %H:%M:%S"),
            thread["message"] or "",
        )
    out.print(table)


def artifact_table(out: Console, listing: dict[str, Any]) -> None:
    """A project's current artifacts (and every version, when listed) for ``auteur artifacts``."""
    table = Table("artifact", "version", "approved by", "at", "stale", title=listing["branch"])
    for row in listing["current"]:
        because = ", ".join(row["stale_because"])
        table.add_row(
            row["kind"],
            str(row["version"]),
            row["approved_by"],
            row["approved_at"][:19],
            f"yes ({because} changed)" if row["stale"] else "",
        )
    out.print(table)
    if "versions" in listing:
        history = Table("artifact", "version", "parent", "branch", "approved by", "at", "run")
        for row in listing["versions"]:
            history.add_row(
                row["kind"],
                str(row["version"]),
                str(row["parent_version"] or "—"),
                row["branch"],
                row["approved_by"],
                row["approved_at"][:19],
                row["run_id"] or "—",
            )
        out.print(history)


def costs(out: Console, summary: dict[str, Any]) -> None:
    """What the command's runs spent: tokens and cost per agent and stage, then totals."""
    totals = summary["totals"]
    speech = totals.get("speech_jobs", 0)  # a run recorded before speech was counted has none
    if not totals["llm_calls"] and not totals["comfyui_jobs"] and not speech:
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
        + f"; {speech} spoken lines, {totals.get('speech_characters', 0):,} characters, "
        f"{totals.get('speech_seconds', 0):g} s of speech"
    )


def _render(out: Console, kind: str | None, args: dict[str, Any]) -> None:
    """Render ``args`` as the artifact type ``kind``; as JSON when there is no renderer for it."""
    model, render = _RENDERERS.get(kind or "", (None, None))
    if model is None or render is None:
        out.print_json(json.dumps(args))
        return
    try:
        artifact = model.model_validate(args)
    except ValidationError:  # e.g. nothing valid was drafted: show what there is
        out.print_json(json.dumps(args))
        return
    render(out, artifact)


def _render_treatments(out: Console, treatments: Treatments) -> None:
    for number, option in enumerate(treatments.options, start=1):
        mark = " [green](recommended)[/green]" if number == treatments.chosen else ""
        out.print(f"\n[bold]{number}. {option.title}[/bold]{mark} — {option.tone}")
        out.print(f"   [italic]{option.logline}[/italic]")
        out.print(f"   {option.synopsis}")


def _render_master_script(out: Console, master: MasterScript) -> None:
    out.print(f"[bold]{master.title}[/bold] — master script")
    for scene in master.scenes:
        out.print(f"\n[bold]{scene.number}. {scene.slugline}[/bold]")
        out.print(f"  {scene.prose}")


def _render_script(out: Console, script: Script) -> None:
    out.print(f"[bold]{script.title}[/bold] — {script.logline}")
    for scene in script.scenes:
        out.print(f"\n[bold]{scene.number}. {scene.slugline}[/bold]")
        for line in scene.lines:
            if line.kind == "action":
                out.print(f"  {line.text}")
            else:
                aside = f" ({line.parenthetical})" if line.parenthetical else ""
                out.print(f"      [bold]{line.speaker}[/bold]{aside}: {line.text}")


def _render_assets(out: Console, assets: AssetRegistry) -> None:
    """A checklist grouped by kind: each asset with its looks and the look of each scene."""
    usage: dict[str, list[str]] = {}
    for use in assets.scene_usage:
        usage.setdefault(use.entity, []).append(f"{use.scene}: {use.look}")
    deselected = set(assets.deselected)
    for title, entities, looks in (
        ("Characters", assets.characters, "looks"),
        ("Locations", assets.locations, "variants"),
        ("Props", assets.props, "states"),
    ):
        table = Table("", "id", "name", looks, "scene: look", title=title, title_justify="left")
        for entity in entities:
            table.add_row(
                "✗" if entity.id in deselected else "✓",
                entity.id,
                entity.name,
                ", ".join(look.name for look in entity.appearances()),
                "; ".join(usage.get(entity.id, [])),
            )
        out.print(table)


def _render_shots(out: Console, shot_list: ShotList) -> None:
    table = Table("shot", "size", "angle", "movement", "lens", "s", "action", "dialogue")
    for shot in shot_list.shots:
        table.add_row(
            shot.id,
            shot.size,
            shot.angle,
            shot.movement,
            shot.lens,
            f"{shot.duration_s:g}",
            shot.action,
            " / ".join(f"{d.speaker}: {d.text}" for d in shot.dialogue),
        )
    out.print(table)


def _render_sheets(out: Console, references: ReferenceSheets) -> None:
    for sheet in references.sheets:
        what = f"{sheet.entity} · {sheet.look}"
        shown = "skipped" if sheet.skipped else sheet.file.key
        out.print(f"  {what:<28} {shown}  ({len(sheet.candidates)} candidates)")


def _render_instances(out: Console, instances: SceneInstances) -> None:
    for instance in instances.instances:
        what = f"{instance.entity} · {instance.look}"
        shown = "skipped" if instance.skipped or instance.file is None else instance.file.key
        source = f"from {instance.reference.label}" if instance.reference else "no reference"
        out.print(f"  {what:<28} {shown}  ({source}; {len(instance.candidates)} candidates)")


def _render_frames(out: Console, frame_set: FrameSet) -> None:
    for frame in frame_set.frames:
        out.print(f"  {frame.shot + ' ' + frame.position:<10} {frame.file.key}  ({frame.workflow})")


def _render_clips(out: Console, clip_set: ClipSet) -> None:
    for clip in clip_set.clips:
        out.print(f"  {clip.shot + ' clip':<10} {clip.file.key}  ({clip.workflow})")


def _render_cast(out: Console, cast: Cast) -> None:
    table = Table("speaker", "character", "voice", "direction", "sample", title=cast.backend)
    for voice in cast.voices:
        table.add_row(
            voice.speaker,
            voice.character or "—",
            voice.label or voice.voice,
            voice.direction,
            voice.sample.key if voice.sample else "",
        )
    out.print(table)
    out.print("Voices: " + ", ".join(f"{c.id} ({c.label})" for c in cast.choices))


def _render_dialogue(out: Console, dialogue: DialogueTrack) -> None:
    table = Table("line", "speaker", "text", "at s", "s", "direction", "file")
    for line in dialogue.lines:
        timing = f"{line.duration_s:g}" + (f" x{line.tempo:g}" if line.tempo != 1 else "")
        table.add_row(
            line.id,
            line.speaker,
            line.text,
            f"{line.start_s:g}",
            timing + ("" if line.fits else " [red]too long[/red]"),
            line.direction,
            line.file.key,
        )
    out.print(table)


_RENDERERS: dict[str, tuple[type[BaseModel], Callable[[Console, Any], None]]] = {
    model.__name__: (model, render)
    for model, render in (
        (Treatments, _render_treatments),
        (Script, _render_script),
        (MasterScript, _render_master_script),
        (AssetRegistry, _render_assets),
        (ShotList, _render_shots),
        (ReferenceSheets, _render_sheets),
        (SceneInstances, _render_instances),
        (FrameSet, _render_frames),
        (ClipSet, _render_clips),
        (Cast, _render_cast),
        (DialogueTrack, _render_dialogue),
    )
}
"""Artifact type (the gate schema's ``title``) → its model and how to show it."""
