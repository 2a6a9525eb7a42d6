"""The ``auteur`` command line: run the sample production or any workflow, list runs, resume.

Runs go the API's way (:mod:`api.driver`): a gate reached here waits in the approval queue
of any ``auteur serve`` on the same database, and can be decided there or here.

Every heavy import (the graphs, the database, LangChain, Langfuse, the evals) happens
inside the command that needs it, so ``auteur --help`` starts in a blink
(``benchmarks/startup.py`` measures it).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from api._startup import libraries_loading, load_settings
from api.cli_prompts import prompts_app
from api.cli_workflows import workflows_app
from evals.cli import eval_app

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

    from api.driver import Driver, Stop
    from api.settings import Settings

app = typer.Typer(
    help="Auteur: production agents with approval gates, from brief to video.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(eval_app, name="eval")
app.add_typer(prompts_app, name="prompts")
app.add_typer(workflows_app, name="workflows")
out = Console(highlight=False, soft_wrap=True)

AutoApprove = Annotated[
    bool, typer.Option("--auto-approve", help="Approve every gate without asking.")
]


@app.callback()
def _stop_cleanly_on_signals() -> None:
    # SIGTERM and SIGHUP kill Python without running its exit handlers, among them
    # pgserver's release of this process's handle on the embedded Postgres (the last user
    # stops it). As a SystemExit they unwind like Ctrl-C: open services close, the handle
    # is released. `auteur serve` shuts down gracefully first: uvicorn handles SIGTERM (and
    # `_hang_up` SIGHUP) while it serves, then raises it again, into this handler.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


class GateDeferred(Exception):
    """The run stopped at a gate nobody can answer here; it waits for ``auteur resume``."""


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a command; an expected failure (a service down, a bad id) is one line, exit 1."""
    with libraries_loading():
        import asyncio

        from api import console as show
        from api.launch import RunRefused
        from tools.errors import failure_line

    try:
        asyncio.run(coroutine)
    except (KeyError, ValueError, RunRefused) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        _fail(message)
    except GateDeferred as deferred:
        out.print(str(deferred))
        raise typer.Exit(2) from None
    except show.GateLeft as left:
        out.print(str(left))
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        out.print("\ninterrupted — `auteur runs` lists the thread; `auteur resume` continues it")
        raise typer.Exit(130) from None
    except Exception as error:
        if (line := failure_line(error)) is None:
            raise
        _fail(line)


def _fail(message: object) -> NoReturn:
    out.print(f"[red]error:[/red] {escape(str(message))}")
    raise typer.Exit(1) from None


@app.command()
def demo(
    auto_approve: AutoApprove = False,
    workflow: Annotated[str, typer.Option(help="Workflow type to run.")] = "full_video",
) -> None:
    """Run the bundled sample production through a workflow, gate by gate."""
    from api.settings import SAMPLE_INPUT

    payload = json.loads(SAMPLE_INPUT.read_text())
    _run(_start(load_settings(), workflow, payload, project=None, auto_approve=auto_approve))


@app.command("run")
def run_workflow(
    workflow: Annotated[str, typer.Argument(help="Workflow type, e.g. full_video.")],
    project: Annotated[
        str | None, typer.Option(help="Project id: the thread becomes the project's.")
    ] = None,
    brief: Annotated[str | None, typer.Option(help='The input {"brief": BRIEF}.')] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="The workflow input, a JSON file.", dir_okay=False),
    ] = None,
    auto_approve: AutoApprove = False,
) -> None:
    """Start a workflow with your own input, gate by gate."""
    if brief is not None and input_file is not None:
        _fail("give the input as either --brief TEXT or --input FILE, not both")
    if input_file is not None:
        try:
            payload = json.loads(input_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            _fail(f"cannot read the input {input_file}: {error}")
        if not isinstance(payload, dict):
            _fail(f'the input {input_file} must be a JSON object, like {{"brief": "..."}}')
    else:
        payload = {} if brief is None else {"brief": brief}
    _run(_start(load_settings(), workflow, payload, project=project, auto_approve=auto_approve))


async def _start(
    settings: Settings,
    workflow: str,
    payload: dict[str, Any],
    *,
    project: str | None,
    auto_approve: bool,
) -> None:
    from api.driver import open_driver

    async with open_driver(settings) as driver:
        out.print(f"[bold]LLM:[/bold] {driver.services.context.models.describe()}")
        out.print(f"[bold]Generation:[/bold] {driver.services.context.backend.name} renderer")
        run = await driver.start(workflow, payload, project_id=project, new_project=True)
        thread = await driver.thread(run["thread_id"])
        out.print(f"[bold]Project:[/bold] {thread['project_id']}")
        out.print(f"[bold]Thread:[/bold] {run['thread_id']}")
        with _observed(settings):
            await _drive(driver, await _executed(driver, run), auto_approve=auto_approve)


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread id (see `auteur runs`).")],
    auto_approve: AutoApprove = False,
) -> None:
    """Continue a thread from its last checkpoint (after Ctrl-C, kill -9 or a reboot)."""
    _run(_resume(load_settings(), thread, auto_approve=auto_approve))


async def _resume(settings: Settings, thread_id: str, *, auto_approve: bool) -> None:
    from api.driver import open_driver

    async with open_driver(settings) as driver:
        with _observed(settings):
            run = await driver.continue_thread(thread_id)
            if run is None:
                stop = await driver.position(thread_id)
            else:
                stage = (await driver.thread(thread_id))["stage"]
                out.print(f"continuing thread {thread_id} at {stage or 'its next step'}")
                stop = await _executed(driver, run)
            await _drive(driver, stop, auto_approve=auto_approve)


@app.command()
def runs(limit: Annotated[int, typer.Option(min=1, help="How many to list.")] = 20) -> None:
    """List threads with their status and current stage, newest first."""
    _run(_runs(load_settings(), limit))


async def _runs(settings: Settings, limit: int) -> None:
    from api import console as show
    from api.driver import open_driver

    async with open_driver(settings) as driver:
        show.thread_table(out, await driver.threads(limit))


@app.command()
def artifacts(
    project: Annotated[str, typer.Argument(help="Project id (`auteur run` prints it).")],
    history: Annotated[bool, typer.Option(help="List every version too.")] = False,
) -> None:
    """List a project's current approved artifacts: version, who approved them, what is stale."""
    _run(_artifacts(load_settings(), project, history=history))


async def _artifacts(settings: Settings, project: str, *, history: bool) -> None:
    from api import console as show
    from api.artifacts import ProjectArtifacts
    from api.context import LOCAL_USER
    from api.db import Database
    from api.runs import open_services

    async with open_services(settings) as services:
        db = Database(services.persistence.pool)
        if not await db.fetch_one(
            "SELECT 1 FROM auteur_projects WHERE project_id = %s AND owner = %s",
            (project, LOCAL_USER),
        ):
            raise KeyError(f"no project '{project}'")
        show.artifact_table(out, await ProjectArtifacts(db).listing(project, history=history))


class CutFormat(StrEnum):
    """The formats ``auteur export`` writes."""

    otio = "otio"
    fcpxml = "fcpxml"
    edl = "edl"


@app.command("export")
def export_cut(
    thread: Annotated[str, typer.Argument(help="Thread id (see `auteur runs`).")],
    fmt: Annotated[
        CutFormat,
        typer.Option(
            "--format", help="OTIO JSON, FCPXML (Final Cut, Resolve, Premiere) or a CMX 3600 EDL."
        ),
    ] = CutFormat.otio,
    output: Annotated[
        Path | None, typer.Option(help="Where to write it; default: the title, in this folder.")
    ] = None,
) -> None:
    """Write a thread's cut for an editor: clips in order, dialogue on audio tracks, scenes."""
    _run(_export(load_settings(), thread, fmt.value, output))


async def _export(settings: Settings, thread_id: str, fmt: Any, output: Path | None) -> None:
    import asyncio

    from api.delivery import export_cut as write_cut
    from api.driver import open_driver

    async with open_driver(settings) as driver:
        values = (await driver.thread(thread_id))["thread_values"] or {}
    files = settings.file_store
    made = write_cut(values, fmt, files.location)
    path = output or Path(made.filename)
    await asyncio.to_thread(path.write_text, made.text, encoding="utf-8")
    out.print(f"Cut written: {path}")


@contextmanager
def _observed(settings: Settings) -> Iterator[None]:
    """Trace the runs inside (in Langfuse, when configured) and print what they spent."""
    from api import console as show
    from tools import ledger, tracing

    tracing.configure(settings.langfuse)
    with ledger.collect(settings.prices) as spent:
        try:
            yield
        finally:
            tracing.flush()
            show.costs(out, spent.summary())


async def _drive(driver: Driver, stop: Stop, *, auto_approve: bool) -> None:
    """Answer gates until the thread finishes, or stop where nobody can answer."""
    from api import console as show

    interactive = sys.stdin.isatty()
    while stop.gate is not None:
        gate = stop.gate["payload"]
        if auto_approve:
            show.gate(out, gate)
            out.print(f"[green]✓ approving {stop.gate['stage']}[/green] (--auto-approve)")
            decision: dict[str, Any] = {"decisions": [{"type": "approve"}]}
        elif not interactive:
            raise GateDeferred(
                f"Thread {stop.thread_id} waits for approval at '{stop.gate['stage']}', and no "
                "terminal is attached to ask. Run `auteur resume "
                f"{stop.thread_id}` in a terminal, or add --auto-approve."
            )
        else:
            show.gate(out, gate)
            decision = show.ask_decision(out, gate)
        stop = await _executed(driver, await driver.decide(stop.gate, decision))
    product = show.final_file(stop.values)
    if product:
        key, file = product
        files = driver.services.context.files
        out.print(f"[bold green]Done.[/bold green] Final {key}: {files.location(file)}")
        for kind, subtitles in (stop.values[key].get("subtitles") or {}).items():
            out.print(f"Subtitles ({kind}): {files.location(subtitles['key'])}")
        if stop.values.get("clips"):
            out.print(f"For an editor: auteur export {stop.thread_id} --format otio|fcpxml|edl")
    else:
        out.print("[bold green]Done.[/bold green]")


async def _executed(driver: Driver, run: dict[str, Any]) -> Stop:
    """Execute the run here, printing its progress; where it stopped, and its trace."""
    from api import console as show

    stop = await driver.wait(run, show.progress(out))
    if stop.trace_url:
        out.print(f"[dim]trace: {stop.trace_url}[/dim]")
    return stop


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (AUTEUR_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AUTEUR_PORT).")] = None,
    execute: Annotated[
        bool,
        typer.Option(
            "--execute/--no-execute",
            help="Also execute queued runs here; --no-execute leaves them to `auteur worker`s.",
        ),
    ] = True,
) -> None:
    """Serve the HTTP API (LangGraph Agent Server compatible) and execute runs."""
    with libraries_loading():
        import uvicorn

        from api.app import create_app

    settings = load_settings()
    host = host or settings.host
    if not settings.api_keys and host not in LOCAL_HOSTS:
        out.print(
            f"[red]error:[/red] refusing to bind to {host} with no API keys: anyone could "
            "reach every thread. Set AUTEUR_API_KEYS, or bind to 127.0.0.1."
        )
        raise typer.Exit(2)
    out.print(f"Auteur API on http://{host}:{port or settings.port} (docs at /docs)")
    config = uvicorn.Config(
        create_app(settings, execute=execute),
        host=host,
        port=port or settings.port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGHUP, functools.partial(_hang_up, server))
    server.run()


def _hang_up(server: uvicorn.Server, signum: int, frame: FrameType | None) -> None:
    """Shut ``serve`` down on SIGHUP as uvicorn does on SIGTERM: its runs handed back first.

    Uvicorn handles only SIGINT and SIGTERM; a SystemExit raised in the middle of its event
    loop could leave the process waiting on worker threads. Uvicorn raises the signal again
    once it has shut down, and this handler then exits.
    """
    if server.should_exit:
        _exit_on_signal(signum, frame)
    else:
        server.handle_exit(signum, frame)


@app.command()
def worker() -> None:
    """Execute queued runs against the configured database (add as many as you like)."""
    _run(_worker(load_settings()))


async def _worker(settings: Settings) -> None:
    from api.db import Database
    from api.events import EventHub
    from api.executor import Executor
    from api.runs import open_services

    async with open_services(settings) as services:
        hub = EventHub(services.database_url)
        await hub.start()
        executor = Executor(
            services,
            Database(services.persistence.pool),
            hub,
            concurrency=settings.worker_concurrency,
            lease_s=settings.run_lease_s,
        )
        out.print(f"worker {executor.worker_id} waiting for runs")
        try:
            await executor.run_forever()
        finally:
            await executor.shutdown()
            await hub.stop()


if __name__ == "__main__":
    app()
