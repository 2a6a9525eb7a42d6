"""``auteur eval``: run a suite over a dataset and score it; compare two reports.

Exit codes of ``auteur eval run``: 0 when every item ran and every threshold is met, 1 when
an item failed or a metric misses its threshold (the message names it), 2 for a usage
error (unknown metric, unreadable dataset, ``--push`` without Langfuse keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from evals.report import ItemResult
    from evals.suite import Suite

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Run eval suites over datasets, score them, and compare reports.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> typer.Exit:
    out.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _thresholds(given: list[str], known: list[str]) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for text in given:
        name, sign, value = text.partition("=")
        name = name.strip()
        if not sign:
            raise _fail(f"--threshold '{text}' is not METRIC=VALUE", 2)
        if name not in known:
            from evals.metrics import METRICS

            hint = " (needs --judge)" if name in METRICS else ""
            raise _fail(
                f"--threshold: this run has no metric '{name}'{hint}; it has {', '.join(known)}",
                2,
            )
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise _fail(f"--threshold {name}: '{value}' is not a number", 2) from None
    return thresholds


@eval_app.command("run")
def run(
    suite: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="The suite to run (`auteur eval list` shows them; a wrong name lists them).",
        ),
    ],
    workflow: Annotated[
        str | None,
        typer.Option(
            metavar="TYPE",
            help="The workflow type a workflow suite runs (default: the suite's own).",
        ),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="A JSONL dataset (default: the suite's bundled one)."),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(metavar="MODEL", help="Model for the LLM-as-judge scorers (off when unset)."),
    ] = None,
    push: Annotated[bool, typer.Option(help="Push the run to Langfuse as an experiment.")] = False,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            metavar="METRIC=VALUE",
            help="A mean the run must meet (a maximum for call counts); repeatable.",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where reports are written (default: <data dir>/evals).")
    ] = None,
) -> None:
    """Run every item of a dataset, score it, write a report and check the thresholds."""
    import asyncio

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from api.settings import Settings
    from evals.dataset import DatasetError, load_dataset
    from evals.push import PushError, push_experiment, require_client
    from evals.report import below_threshold, print_report, write_report
    from evals.runner import run_suite
    from tools import tracing
    from tools.llm import LLMError

    chosen = _suite(suite, workflow)
    settings = Settings()
    path = dataset or chosen.dataset
    try:
        items = load_dataset(path)
    except DatasetError as error:
        raise _fail(str(error), 2) from None
    thresholds = _thresholds(threshold or [], chosen.columns(judge is not None, items))
    tracing.configure(settings.langfuse)
    try:
        langfuse = require_client(tracing.client()) if push else None
    except PushError as error:
        raise _fail(str(error), 2) from None
    with Progress(
        TextColumn("[bold]{task.fields[item]}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=out,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(items), item="")

        def on_progress(item: str, message: str) -> None:
            bar.update(task, item=item, description=message)

        def on_item(result: ItemResult) -> None:
            bar.update(task, advance=1, description=result.status)

        try:
            report = asyncio.run(
                run_suite(
                    chosen,
                    items,
                    settings=settings,
                    dataset=path,
                    judge=judge,
                    on_progress=on_progress,
                    on_item=on_item,
                )
            )
        except (LLMError, ValueError) as error:
            raise _fail(str(error), 2) from None
    print_report(out, report)
    json_path, markdown_path = write_report(report, report_dir or settings.data_dir / "evals")
    out.print(f"Report: {json_path} and {markdown_path}")
    if langfuse is not None:
        url = push_experiment(langfuse, report, items)
        out.print(f"Pushed to Langfuse: {url or 'experiment recorded'}")
    tracing.flush()
    failures = below_threshold(report, thresholds)
    for failure in failures:
        out.print(f"[red]below threshold:[/red] {failure}")
    if report.count("error"):
        out.print(f"[red]{report.count('error')} item(s) failed to run[/red]")
    if failures or report.count("error"):
        raise typer.Exit(1)


def _suite(name: str, workflow: str | None) -> Suite:
    """The named suite, run on ``workflow`` when given; an unknown name is a usage error.

    Not a typed choice: that would load every plugin for any ``--help``.
    """
    from evals.suite import WorkflowSuite, load_suites
    from graphs.base import load_workflow_types

    suites = load_suites()
    if name not in suites:
        raise _fail(f"no suite '{name}'; choose from {', '.join(suites.names())}", 2)
    cls = suites.get(name)
    if workflow is None:
        return cls()
    if not issubclass(cls, WorkflowSuite):
        raise _fail(
            f"suite '{name}' runs the agent {cls.target}; --workflow is for workflow suites", 2
        )
    types = load_workflow_types()
    if workflow not in types:
        raise _fail(f"no workflow type '{workflow}'; choose from {', '.join(types.names())}", 2)
    return cls(target=workflow)


@eval_app.command("list")
def list_suites() -> None:
    """List the eval suites: what each runs, the file that defines it, what it scores."""
    import inspect

    from rich.table import Table

    from evals.suite import load_suites

    suites = load_suites()
    table = Table("suite", "runs", "defined in", "metrics", "about")
    root = Path(__file__).resolve().parents[1]
    for name in suites.names():
        cls = suites.get(name)
        file = Path(inspect.getfile(cls))
        table.add_row(
            name,
            f"{'workflow' if cls.workflow else 'agent'} {cls.target}",
            str(file.relative_to(root) if file.is_relative_to(root) else file),
            ", ".join(cls().metrics),
            (cls.__doc__ or "").strip().splitlines()[0],
        )
    out.print(table)


@eval_app.command("compare")
def compare_reports(
    a: Annotated[Path, typer.Argument(help="The earlier report (JSON).")],
    b: Annotated[Path, typer.Argument(help="The later report (JSON).")],
) -> None:
    """Show what changed from report A to report B: aggregate deltas and per-item changes."""
    from evals.report import ReportError, compare, load_report, print_comparison

    try:
        before, after = load_report(a), load_report(b)
    except ReportError as error:
        raise _fail(str(error), 2) from None
    if before.suite != after.suite:
        out.print(f"[yellow]note:[/yellow] comparing suite {before.suite} with {after.suite}")
    print_comparison(out, compare(before, after), str(a), str(b))


if __name__ == "__main__":
    eval_app()
