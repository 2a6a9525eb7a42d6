"""``auteur workflows``: find ComfyUI workflows by intent, list them, run one.

``auteur workflows search "fix her hand"`` ranks the library by meaning (best first, with
cosine scores); ``auteur workflows run inpaint_region --set image=frame.png --set
mask=mask.png --set prompt="a relaxed hand"`` runs one on the configured backend (ComfyUI
when ``AUTEUR_COMFYUI_URLS`` is set, else the draft renderer) and prints where its outputs
are stored. A file dropped into ``comfy_workflows/`` is found by the next command.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api._startup import libraries_loading, load_settings

if TYPE_CHECKING:
    from api.settings import Settings
    from tools.storage import FileStore
    from tools.workflows import WorkflowInput, WorkflowSpec

__all__ = ["parse_value", "workflows_app"]

workflows_app = typer.Typer(no_args_is_help=True, add_completion=False)
out = Console(highlight=False, soft_wrap=True)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@workflows_app.callback()
def workflows_group() -> None:
    """The ComfyUI workflow library: search it by intent, list it, run a workflow."""


@workflows_app.command()
def search(
    text: Annotated[str, typer.Argument(help="What the workflow should do, in words.")],
    limit: Annotated[int, typer.Option("--limit", "-k", min=1, help="How many to show.")] = 5,
) -> None:
    """Rank the workflows by how well they fit TEXT, best first."""
    _run(_search(load_settings(), text, limit))


async def _search(settings: Settings, text: str, limit: int) -> None:
    from api.runs import open_discovery

    async with open_discovery(settings, load_model=True) as discovery:
        ranked = await discovery.search(text, k=limit)
    table = Table("#", "workflow", "score", "category", "what it does", title=f"“{text}”")
    for rank, (spec, score) in enumerate(ranked, start=1):
        table.add_row(str(rank), spec.name, f"{score:.3f}", spec.category, spec.description)
    out.print(table if ranked else "no workflows in the library")


@workflows_app.command("list")
def list_workflows() -> None:
    """List the workflows of the library with their inputs."""
    _run(_list(load_settings()))


async def _list(settings: Settings) -> None:
    from api.runs import open_discovery

    async with open_discovery(settings) as discovery:
        specs = await discovery.workflows()
    table = Table("workflow", "category", "inputs", "outputs")
    for spec in sorted(specs.values(), key=lambda s: s.name):
        inputs = ", ".join(
            f"{name}{'' if item.required else '?'}: {item.type}"
            for name, item in spec.inputs.items()
        )
        table.add_row(spec.name, spec.category, inputs, ", ".join(o.kind for o in spec.outputs))
    out.print(table)


@workflows_app.command()
def run(
    name: Annotated[str, typer.Argument(help="The workflow (see `auteur workflows list`).")],
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="An input as key=value; images and masks are a local file or a store key.",
        ),
    ] = None,
) -> None:
    """Run one workflow and print where its outputs are stored."""
    _run(_run_workflow(load_settings(), name, assignments or []))


async def _run_workflow(settings: Settings, name: str, assignments: list[str]) -> None:
    from api.runs import open_services
    from tools.comfy_tools import workflow_tool

    async with open_services(settings) as services:
        spec = await services.discovery.get(name)
        files = services.context.files
        values = {}
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep:
                raise ValueError(f"--set expects key=value, got '{assignment}'")
            values[key] = parse_value(spec, key, raw, files)
        backend = services.context.backend
        out.print(f"[bold]Running[/bold] {spec.name} on the {backend.name} backend")

        async def progress(message: str) -> None:
            out.print(f"  {message}")

        tool = workflow_tool(
            spec,
            backend,
            files,
            on_progress=progress,
            max_output_pixels=settings.max_output_pixels,
        )
        result = await tool.ainvoke(values)
    table = Table("output", "kind", "stored at")
    for output in result["outputs"]:
        table.add_row(f"node {output['node']}", output["kind"], files.location(output["key"]))
    out.print(table)


def parse_value(spec: WorkflowSpec, key: str, raw: str, files: FileStore) -> Any:
    """A ``--set`` value as the input's type; an image or mask file goes into the store.

    Raises:
        ValueError: An unknown input, or a value that is not of its type.
    """
    item = spec.inputs.get(key)
    if item is None:
        known = ", ".join(spec.inputs) or "none"
        raise ValueError(f"workflow {spec.name} has no input '{key}' (inputs: {known})")
    try:
        return _typed(item, raw, files)
    except ValueError as error:
        raise ValueError(f"input '{key}' of {spec.name}: {error}") from None


def _typed(item: WorkflowInput, raw: str, files: FileStore) -> Any:
    if item.type == "int":
        return int(raw)
    if item.type == "float":
        return float(raw)
    if item.type == "bool":
        if raw.lower() not in _TRUE | _FALSE:
            raise ValueError(f"expected true or false, got '{raw}'")
        return raw.lower() in _TRUE
    if item.type == "string":
        return raw
    path = Path(raw).expanduser()
    if path.is_file():
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        extension = path.suffix.lstrip(".").lower() or "bin"
        return files.put(path.read_bytes(), extension=extension, media_type=media_type).key
    try:
        if files.exists(raw):
            return raw
    except ValueError:
        pass
    raise ValueError(f"'{raw}' is neither a file here nor a key of a stored file")


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    with libraries_loading():
        import asyncio

    try:
        asyncio.run(coroutine)
    except _expected_failures() as error:  # evaluated only once something was raised
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        out.print(f"[red]error:[/red] {message}")
        raise typer.Exit(1) from None


def _expected_failures() -> tuple[type[Exception], ...]:
    """What a command reports in one line; the ComfyUI client is imported only for this.

    ValueError covers a broken workflow file (WorkflowError) and bad arguments.
    """
    from tools.comfy import ComfyError, ComfyJobFailed
    from tools.embeddings import EmbeddingsUnavailable

    return (ValueError, KeyError, EmbeddingsUnavailable, ComfyError, ComfyJobFailed)
