"""The ``auteur`` command line: run the sample production, list runs, resume them.

Every heavy import (the graphs, the database, LangChain, Langfuse, the evals) happens
inside the command that needs it, so ``auteur --help`` starts in a blink
(``benchmarks/startup.py`` measures it).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from api.cli_prompts import prompts_app
from api.cli_workflows import workflows_app
from evals.cli import eval_app

if TYPE_CHECKING:
    from langgraph.types import Command

    from api.runs import RunStop, Services
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
    # is released. `auteur serve` shuts down gracefully first: uvicorn handles SIGTERM while
    # it serves, then raises it again, into this handler.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


class GateDeferred(Exception):
    """The run stopped at a gate nobody can answer here; it waits for ``auteur resume``."""


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a command; an expected failure (a service down, a bad id) is one line, exit 1."""
    from api import console as show
    from tools.errors import failure_line

    try:
        asyncio.run(coroutine)
    except (KeyError, ValueError) as error:
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
    _run(_demo(_settings(), workflow, auto_approve=auto_approve))


def _settings() -> Settings:
    from api.settings import Settings

    return Settings()


async def _demo(settings: Settings, workflow: str, *, auto_approve: bool) -> None:
    from api.runs import open_services
    from api.settings import SAMPLE_INPUT

    payload = json.loads(SAMPLE_INPUT.read_text())
    async with open_services(settings) as services:
        out.print(f"[bold]LLM:[/bold] {services.context.models.describe()}")
        out.print(f"[bold]Generation:[/bold] {services.context.backend.name} renderer")
        thread_id = await services.new_thread(workflow, payload)
        out.print(f"[bold]Thread:[/bold] {thread_id}")
        with _observed(settings):
            stop = await _advance(services, thread_id, payload, name="start")
            await _drive(services, stop, auto_approve=auto_approve)


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread id (see `auteur runs`).")],
    auto_approve: AutoApprove = False,
) -> None:
    """Continue a thread from its last checkpoint (after Ctrl-C, kill -9 or a reboot)."""
    _run(_resume(_settings(), thread, auto_approve=auto_approve))


async def _resume(settings: Settings, thread: str, *, auto_approve: bool) -> None:
    from api.runs import open_services

    async with open_services(settings) as services:
        stop = await services.position(thread)
        with _observed(settings):
            if stop is None:
                stage = await services.pending_stage(thread)
                out.print(f"continuing thread {thread} at {stage or 'its next step'}")
                stop = await _advance(services, thread, None, name="continue")
            await _drive(services, stop, auto_approve=auto_approve)


@app.command()
def runs(limit: Annotated[int, typer.Option(min=1, help="How many to list.")] = 20) -> None:
    """List threads with their status and current stage, newest first."""
    _run(_runs(_settings(), limit))


async def _runs(settings: Settings, limit: int) -> None:
    from api import console as show
    from api.runs import open_services

    async with open_services(settings) as services:
        records = await services.persistence.threads.list(limit=limit)
        show.thread_table(out, records)


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


async def _advance(
    services: Services,
    thread_id: str,
    payload: dict[str, Any] | Command | None,
    *,
    name: str | None = None,
    gate: str | None = None,
) -> RunStop:
    """Advance the thread as one traced run; a decision at ``gate`` is recorded in its trace."""
    from langgraph.types import Command

    from api import console as show
    from api.context import LOCAL_USER
    from tools import tracing

    record = await services.persistence.threads.get(thread_id)
    resume = payload.resume if isinstance(payload, Command) else None
    with tracing.trace_run(
        thread_id=thread_id,
        workflow=record.workflow if record else "unknown",
        user=LOCAL_USER,
        name=name or f"resume at {gate}",
        tags=("cli",),
    ) as trace:
        if gate is not None:
            trace.gate_decision(gate, resume)
        stop = await services.advance(thread_id, payload, show.progress(out))
    if trace.url:
        out.print(f"[dim]trace: {trace.url}[/dim]")
    return stop


async def _drive(services: Services, stop: RunStop, *, auto_approve: bool) -> None:
    """Answer gates until the run finishes, or stop where nobody can answer."""
    from api import console as show

    interactive = sys.stdin.isatty()
    while stop.status == "interrupted":
        assert stop.gate is not None
        if auto_approve:
            show.gate(out, stop.gate)
            out.print(f"[green]✓ approving {stop.gate['stage']}[/green] (--auto-approve)")
            decision: dict[str, Any] = {"decisions": [{"type": "approve"}]}
        elif not interactive:
            raise GateDeferred(
                f"Thread {stop.thread_id} waits for approval at '{stop.gate['stage']}', and no "
                "terminal is attached to ask. Run `auteur resume "
                f"{stop.thread_id}` in a terminal, or add --auto-approve."
            )
        else:
            show.gate(out, stop.gate)
            decision = show.ask_decision(out, stop.gate)
        stop = await _advance(
            services, stop.thread_id, stop.answer(decision), gate=stop.gate["stage"]
        )
    product = show.final_file(stop.values)
    if product:
        key, file = product
        where = services.context.files.location(file)
        out.print(f"[bold green]Done.[/bold green] Final {key}: {where}")
    else:
        out.print("[bold green]Done.[/bold green]")


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (AUTEUR_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AUTEUR_PORT).")] = None,
) -> None:
    """Serve the HTTP API (LangGraph Agent Server compatible) and execute runs."""
    import uvicorn

    from api.app import create_app

    settings = _settings()
    host = host or settings.host
    if not settings.api_keys and host not in LOCAL_HOSTS:
        out.print(
            f"[red]error:[/red] refusing to bind to {host} with no API keys: anyone could "
            "reach every thread. Set AUTEUR_API_KEYS, or bind to 127.0.0.1."
        )
        raise typer.Exit(2)
    out.print(f"Auteur API on http://{host}:{port or settings.port} (docs at /docs)")
    uvicorn.run(create_app(settings), host=host, port=port or settings.port, log_level="warning")


@app.command()
def worker() -> None:
    """Execute queued runs against the configured database (add as many as you like)."""
    _run(_worker(_settings()))


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
