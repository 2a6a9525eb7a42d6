"""Eval reports: per-item rows and aggregates, as JSON, Markdown and rich tables.

The JSON file is the report itself (``Report``); ``auteur eval compare`` reads two of them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from rich.console import Console
from rich.table import Table

from evals.metrics import METRICS

__all__ = [
    "Aggregate",
    "Change",
    "Comparison",
    "ItemResult",
    "Report",
    "ReportError",
    "below_threshold",
    "compare",
    "load_report",
    "print_comparison",
    "print_report",
    "to_markdown",
    "write_report",
]


class ReportError(ValueError):
    """A report file that cannot be read."""


class ItemResult(BaseModel):
    """What one dataset item scored, or why it has no scores."""

    id: str
    status: Literal["ok", "error", "skipped"]
    scores: dict[str, float | None] = Field(default_factory=dict)
    comments: dict[str, str] = Field(default_factory=dict, description="The judges' reasoning.")
    note: str | None = Field(None, description="Why an item has no scores, or what stopped it.")
    output: dict[str, Any] | None = Field(None, description="The artifact the suite scored.")
    thread_id: str | None = None
    model_calls: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0


class Aggregate(BaseModel):
    """The mean of a metric over the items that have it."""

    mean: float | None
    n: int


class Report(BaseModel):
    """One eval run: what ran, with which models and prompts, and how it scored."""

    suite: str
    dataset: str
    created_at: datetime
    duration_s: float
    model: str = Field(description="The agents' LLM, as the provider describes it.")
    judge: str | None = None
    models: dict[str, str] = Field(default_factory=dict, description="Model per agent.")
    prompts: dict[str, list[str]] = Field(
        default_factory=dict, description="Versions (content hashes) of each prompt used."
    )
    metrics: list[str]
    items: list[ItemResult]
    aggregates: dict[str, Aggregate] = Field(default_factory=dict)
    cost: dict[str, Any] | None = Field(
        None, description="The cost ledger's summary of the whole run (tools.ledger)."
    )

    def model_post_init(self, __context: Any) -> None:
        """Compute the aggregates from the items when they are not given."""
        if not self.aggregates:
            self.aggregates = {metric: _aggregate(self.items, metric) for metric in self.metrics}

    def count(self, status: str) -> int:
        """How many items have ``status``."""
        return sum(item.status == status for item in self.items)


def _aggregate(items: list[ItemResult], metric: str) -> Aggregate:
    values = [v for item in items if (v := item.scores.get(metric)) is not None]
    return Aggregate(mean=fmean(values) if values else None, n=len(values))


def below_threshold(report: Report, thresholds: dict[str, float]) -> list[str]:
    """A message for every metric whose aggregate misses its threshold."""
    failures = []
    for name, threshold in thresholds.items():
        metric = METRICS[name]
        aggregate = report.aggregates.get(name)
        if aggregate is None or aggregate.mean is None:
            failures.append(f"{name}: no item was scored on it (threshold {threshold:g})")
        elif not metric.passes(aggregate.mean, threshold):
            bound = "minimum" if metric.higher_is_better else "maximum"
            failures.append(f"{name} = {aggregate.mean:.3f} misses the {bound} {threshold:g}")
    return failures


# --- files -----------------------------------------------------------------------------------


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write ``<suite>-<timestamp>.json`` and ``.md`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{report.suite}-{report.created_at:%Y%m%d-%H%M%S}"
    taken = 1
    while (directory / f"{stem}.json").exists():  # two runs in one second keep both
        taken += 1
        stem = f"{report.suite}-{report.created_at:%Y%m%d-%H%M%S}-{taken}"
    json_path, markdown_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(to_markdown(report), encoding="utf-8")
    return json_path, markdown_path


def load_report(path: Path) -> Report:
    """Read a JSON report.

    Raises:
        ReportError: The file is missing or is not an eval report.
    """
    try:
        return Report.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    except ValidationError as error:
        raise ReportError(f"{path} is not an eval report: {error}") from None


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"


def _run_lines(report: Report) -> list[tuple[str, str]]:
    lines = [
        ("Suite", report.suite),
        ("Dataset", report.dataset),
        ("Model", report.model),
        ("Judge", report.judge or "none"),
        (
            "Items",
            f"{report.count('ok')} scored, {report.count('skipped')} skipped, "
            f"{report.count('error')} failed",
        ),
    ]
    lines += [(f"Model of {agent}", model) for agent, model in sorted(report.models.items())]
    lines += [
        (f"Prompt {name}", ", ".join(versions)) for name, versions in sorted(report.prompts.items())
    ]
    if report.cost:
        totals = report.cost["totals"]
        lines.append(
            (
                "Cost",
                f"${totals['cost_usd']:g} for {totals['llm_calls']} model calls "
                f"({totals['input_tokens']} tokens in, {totals['output_tokens']} out), "
                f"{totals['gpu_seconds']:g} GPU seconds",
            )
        )
    return lines


def to_markdown(report: Report) -> str:
    """The report as Markdown: run details, aggregates, then one row per item."""
    out = [f"# Eval: {report.suite} — {report.created_at:%Y-%m-%d %H:%M:%S}", ""]
    out += [f"- **{label}:** {value}" for label, value in _run_lines(report)]
    out += ["", "## Aggregates", "", "| metric | mean | items |", "|---|---|---|"]
    out += [
        f"| {metric} | {_number(aggregate.mean)} | {aggregate.n} |"
        for metric, aggregate in report.aggregates.items()
    ]
    out += ["", "## Items", "", "| item | status | " + " | ".join(report.metrics) + " |"]
    out.append("|---|---|" + "---|" * len(report.metrics))
    for item in report.items:
        cells = [_number(item.scores.get(metric)) for metric in report.metrics]
        out.append(f"| {item.id} | {item.status} | " + " | ".join(cells) + " |")
    notes = [(item.id, item.note) for item in report.items if item.note]
    notes += [(f"{i.id} ({key})", text) for i in report.items for key, text in i.comments.items()]
    if notes:
        out += ["", "## Notes", ""] + [f"- **{who}:** {text}" for who, text in notes]
    return "\n".join(out) + "\n"


def print_report(console: Console, report: Report) -> None:
    """Print the scores: a row per metric, a column per scored item, the mean last.

    Metrics run down the side so that their names stay readable in any terminal width.
    """
    for label, value in _run_lines(report):
        console.print(f"[bold]{label}:[/bold] {value}")
    scored = [item for item in report.items if item.status != "skipped"]  # skipped: below
    table = Table(title=f"eval {report.suite}")
    table.add_column("metric", no_wrap=True)
    for item in scored:
        colour = {"ok": "green", "error": "red"}.get(item.status, "dim")
        table.add_column(f"[{colour}]{item.id}[/{colour}]", justify="right")
    table.add_column("[bold]mean[/bold]", justify="right")
    for metric in report.metrics:
        table.add_row(
            metric.replace("_", " "),
            *(_number(item.scores.get(metric)) for item in scored),
            f"[bold]{_number(report.aggregates[metric].mean)}[/bold]",
        )
    console.print(table)
    by_note: dict[tuple[str, str], list[str]] = {}
    for item in report.items:
        if item.note:
            by_note.setdefault((item.status, item.note), []).append(item.id)
    for (status, note), ids in by_note.items():
        colour = "red" if status == "error" else "dim"
        console.print(f"[{colour}]{', '.join(ids)}: {note}[/{colour}]")


# --- comparison ------------------------------------------------------------------------------


class Change(BaseModel):
    """One value that differs between two reports."""

    item: str | None = Field(description="The item, or None for an aggregate.")
    metric: str
    before: float | str | None
    after: float | str | None

    @property
    def delta(self) -> float | None:
        """``after - before`` when both are numbers."""
        if isinstance(self.before, float | int) and isinstance(self.after, float | int):
            return self.after - self.before
        return None


class Comparison(BaseModel):
    """What changed from report A to report B."""

    aggregates: list[Change]
    items: list[Change]
    only_in_a: list[str]
    only_in_b: list[str]
    setup: list[Change] = Field(description="Model, judge and prompt versions that differ.")


def compare(a: Report, b: Report) -> Comparison:
    """Aggregate deltas, per-item changes (scores and status) and what differs in the setup."""
    metrics = list(dict.fromkeys([*a.metrics, *b.metrics]))
    aggregates = [
        Change(item=None, metric=m, before=_mean(a, m), after=_mean(b, m)) for m in metrics
    ]
    before = {item.id: item for item in a.items}
    after = {item.id: item for item in b.items}
    items: list[Change] = []
    for item_id in [i for i in before if i in after]:
        old, new = before[item_id], after[item_id]
        if old.status != new.status:
            items.append(Change(item=item_id, metric="status", before=old.status, after=new.status))
        for metric in metrics:
            was, now = old.scores.get(metric), new.scores.get(metric)
            if was != now:
                items.append(Change(item=item_id, metric=metric, before=was, after=now))
    setup = [
        Change(item=None, metric=key, before=x, after=y)
        for key, x, y in [("model", a.model, b.model), ("judge", a.judge, b.judge)]
        + [
            (
                f"prompt {name}",
                ", ".join(a.prompts.get(name, [])) or None,
                ", ".join(b.prompts.get(name, [])) or None,
            )
            for name in sorted({*a.prompts, *b.prompts})
        ]
        if x != y
    ]
    return Comparison(
        aggregates=aggregates,
        items=items,
        only_in_a=[i for i in before if i not in after],
        only_in_b=[i for i in after if i not in before],
        setup=setup,
    )


def _mean(report: Report, metric: str) -> float | None:
    aggregate = report.aggregates.get(metric)
    return aggregate.mean if aggregate else None


def print_comparison(console: Console, comparison: Comparison, a: str, b: str) -> None:
    """Print which report is A and B, the setup changes, aggregate deltas and item changes."""
    console.print(f"[bold]A:[/bold] {a}\n[bold]B:[/bold] {b}")
    for change in comparison.setup:
        console.print(f"[bold]{change.metric}:[/bold] {change.before} → {change.after}")
    table = Table("metric", "A", "B", "Δ", title="aggregates")
    for change in comparison.aggregates:
        table.add_row(change.metric, *_cells(change))
    console.print(table)
    if comparison.items:
        table = Table("item", "metric", "A", "B", "Δ", title="changed items")
        for change in comparison.items:
            table.add_row(change.item or "", change.metric, *_cells(change))
        console.print(table)
    else:
        console.print("no item changed")
    for name, ids in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        if ids:
            console.print(f"only in {name}: {', '.join(ids)}")


def _cells(change: Change) -> tuple[str, str, str]:
    def shown(value: float | str | None) -> str:
        return value if isinstance(value, str) else _number(value)

    delta = change.delta
    if delta is None or delta == 0:
        mark = "" if delta is None else "0"
    else:
        metric = METRICS.get(change.metric)
        better = (delta > 0) == (metric.higher_is_better if metric else True)
        colour = "green" if better else "red"
        mark = f"[{colour}]{delta:+.3f}[/{colour}]"
    return shown(change.before), shown(change.after), mark
