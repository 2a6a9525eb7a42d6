"""Running a suite: every dataset item through an agent or a workflow, gates auto-approved.

Runs use the real persistence (the configured or embedded Postgres) and the configured
models; a workflow suite's runs go the way ``auteur demo`` and the API run them
(:mod:`api.driver`). They use no generation cache: every
item's model calls are made afresh, so scores and call counts measure the model and the
prompts as they are now, not a replay of an earlier run.

Example::

    suite = load_suites().get("extraction")()
    items = load_dataset(suite.dataset)
    report = await run_suite(suite, items, settings=Settings(), dataset=suite.dataset)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from statistics import fmean
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from agents.base import Context
from api.driver import APPROVE, Driver, open_driver
from api.runs import run_context
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS, Settings
from evals.dataset import EvalItem
from evals.judges import Judge
from evals.report import ItemResult, Report
from evals.suite import Suite
from graphs.persistence import embedded_database_url, open_persistence
from tools import ledger, tracing
from tools.discovery import WorkflowDiscovery
from tools.llm import ModelProvider

__all__ = ["run_suite"]


ProgressCallback = Callable[[str, str], None]
"""Called with (item id, progress message) while an item runs."""


@dataclass(frozen=True)
class Run:
    """One item's run: final values, and what the driver did at the gates."""

    thread_id: str
    values: dict[str, Any]
    failed_stage: str | None = None
    revised: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    """Stage → (the draft the feedback was given on, the feedback)."""


# --- driving a run ---------------------------------------------------------------------------

EVAL_USER = "auteur eval"
"""Who owns the workflow suites' threads: not the local user, whose approval queue would
otherwise get the gate of every run whose draft failed (it stops there)."""

Drive = Callable[[str, dict[str, Any], EvalItem, ProgressCallback], Awaitable[Run]]
"""Runs one item on a new thread (id, input, item, progress) to its end."""


def _decision(
    gate: dict[str, Any],
    pending: dict[str, str],
    revised: dict[str, tuple[dict[str, Any], str]],
    item: EvalItem,
    on_progress: ProgressCallback,
) -> dict[str, Any] | None:
    """The eval's answer at a gate: the item's feedback once, then approve; None: stop there.

    A gate whose draft failed cannot be approved: the run stops there.
    """
    stage = gate["stage"]
    if gate.get("draft_error"):
        return None
    if stage in pending:
        message = pending.pop(stage)
        revised[stage] = (gate["action_requests"][0]["args"], message)
        on_progress(item.id, f"{stage}: feedback given")
        return {"decisions": [{"type": "reject", "message": message}]}
    return APPROVE


async def drive_workflow(
    driver: Driver,
    workflow: str,
    thread_id: str,
    payload: dict[str, Any],
    item: EvalItem,
    on_progress: ProgressCallback,
) -> Run:
    """Run a workflow type to the end as the CLI and the API do; gates get :func:`_decision`."""
    pending = {feedback.stage: feedback.message for feedback in item.feedback}
    revised: dict[str, tuple[dict[str, Any], str]] = {}

    def progress(event: dict[str, Any]) -> None:
        on_progress(item.id, f"{event.get('stage', '')}: {event.get('message', '')}")

    run = await driver.start(workflow, payload, thread_id=thread_id)
    stop = await driver.wait(run, progress)
    while stop.gate is not None:
        decision = _decision(stop.gate["payload"], pending, revised, item, on_progress)
        if decision is None:
            return Run(thread_id, stop.values, failed_stage=stop.gate["stage"], revised=revised)
        stop = await driver.wait(await driver.decide(stop.gate, decision), progress)
    return Run(thread_id, stop.values, revised=revised)


async def drive_agent(
    graph: CompiledStateGraph,
    context: Context,
    thread_id: str,
    payload: dict[str, Any],
    item: EvalItem,
    on_progress: ProgressCallback,
) -> Run:
    """Run a single agent's graph to the end; gates get :func:`_decision`."""
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    pending = {feedback.stage: feedback.message for feedback in item.feedback}
    revised: dict[str, tuple[dict[str, Any], str]] = {}
    command: dict[str, Any] | Command = payload
    while True:
        async for _, event in graph.astream(
            command,
            config,
            context=context,
            stream_mode="custom",
            subgraphs=True,
            durability="sync",
        ):
            on_progress(item.id, f"{event.get('stage', '')}: {event.get('message', '')}")
        snapshot = await graph.aget_state(config)
        if not snapshot.interrupts:
            return Run(thread_id, snapshot.values, revised=revised)
        gate = snapshot.interrupts[0].value
        decision = _decision(gate, pending, revised, item, on_progress)
        if decision is None:
            return Run(thread_id, snapshot.values, failed_stage=gate["stage"], revised=revised)
        command = Command(resume={snapshot.interrupts[0].id: decision})


@asynccontextmanager
async def _driving(suite: Suite, settings: Settings) -> AsyncIterator[tuple[Context, Drive]]:
    """The context runs get, and how an item runs: a workflow through :mod:`api.driver`.

    An agent is driven on its own graph: it is no workflow type the service runs.

    No generation cache either way (a workflow's services have no store, an agent's graph
    is compiled without one).
    """
    if suite.workflow:
        async with open_driver(settings, owner=EVAL_USER, origin="eval", cache=False) as driver:
            yield driver.services.context, partial(drive_workflow, driver, suite.target)
        return
    uncompiled, _ = suite.graph()
    url = settings.database_url or embedded_database_url(settings.data_dir)
    async with open_persistence(url) as persistence:
        # as `auteur demo` runs: the configured ComfyUI or the draft renderer
        context = await run_context(
            settings, WorkflowDiscovery(persistence.pool, settings.embedding_model)
        )
        graph = uncompiled.compile(checkpointer=persistence.checkpointer, name=suite.target)
        yield context, partial(drive_agent, graph, context)


async def run_suite(
    suite: Suite,
    items: list[EvalItem],
    *,
    settings: Settings,
    dataset: Path,
    judge: str | None = None,
    on_progress: ProgressCallback = lambda item, message: None,
    on_item: Callable[[ItemResult], None] = lambda result: None,
) -> Report:
    """Run every item of ``items`` through ``suite`` and score it.

    Items fail one by one (their error is the row's note); an item the offline sample model
    cannot answer is skipped when no LLM is configured.

    Raises:
        LLMError: A judge was asked for and no LLM endpoint is configured.
        ValueError: An item lacks a field the suite needs.
    """
    started = time.monotonic()
    columns = suite.columns(judge is not None, items)
    judges = Judge(_judge_provider(settings, judge), judge) if judge else None
    for item in items:
        missing = [name for name in suite.needs if getattr(item, name) is None]
        if missing:
            raise ValueError(f"item '{item.id}' has no {', '.join(missing)} for suite {suite.name}")
    _, stages = suite.graph()
    results: list[ItemResult] = []
    generations: list[dict[str, Any]] = []
    async with _driving(suite, settings) as (context, drive):
        with ledger.collect(settings.prices) as spent:
            for item in items:
                with ledger.collect(settings.prices) as item_spent:
                    result, used = await _run_item(
                        suite, drive, stages, context, item, judges, on_progress
                    )
                result.cost_usd = item_spent.summary()["totals"]["cost_usd"]
                results.append(result)
                generations += used
                on_item(result)
    return Report(
        suite=suite.name,
        dataset=str(dataset),
        created_at=datetime.now(UTC),
        duration_s=round(time.monotonic() - started, 3),
        model=context.models.describe(),
        judge=judge,
        models={g["agent"]: g["model"] for g in generations},
        prompts=_prompt_versions(generations) | Judge.versions(columns),
        metrics=columns,
        items=results,
        cost=spent.summary(),
    )


async def _run_item(
    suite: Suite,
    drive: Drive,
    stages: list[str],
    context: Context,
    item: EvalItem,
    judges: Judge | None,
    on_progress: ProgressCallback,
) -> tuple[ItemResult, list[dict[str, Any]]]:
    started = time.monotonic()
    thread_id = f"eval-{item.id}-{uuid.uuid4()}"
    try:
        if context.models.offline and not _is_sample(item):
            reason = (
                "skipped: the offline sample model only knows the sample brief; set "
                "OPENAI_API_KEY to run this item"
            )
            return ItemResult(id=item.id, status="skipped", note=reason), []
        with tracing.trace_run(
            thread_id=thread_id,
            workflow=suite.target,
            user="auteur eval",
            name=f"eval {suite.name} {item.id}",
            tags=("eval",),
        ):
            run = await drive(thread_id, suite.payload(item), item, on_progress)
        complete = run.failed_stage is None and all(s in run.values for s in stages)
        scores = {"schema_valid": float(complete), **suite.score(item, run.values)}
        comments: dict[str, str] = {}
        if judges is not None:
            await _judge(judges, suite, run, scores, comments)
    except Exception as error:  # one item's failure is its row's note, not the run's end
        return ItemResult(
            id=item.id,
            status="error",
            note=f"{type(error).__name__}: {error}",
            duration_s=round(time.monotonic() - started, 3),
        ), []
    used = run.values.get("generations", [])
    return ItemResult(
        id=item.id,
        status="ok",
        scores=scores,
        comments=comments,
        output=run.values.get(suite.output),
        note=f"no valid {run.failed_stage} was drafted" if run.failed_stage else None,
        thread_id=run.thread_id,
        model_calls=sum(not g["cached"] for g in used),
        duration_s=round(time.monotonic() - started, 3),
    ), used


async def _judge(
    judges: Judge,
    suite: Suite,
    run: Run,
    scores: dict[str, float | None],
    comments: dict[str, str],
) -> None:
    if suite.judged:
        judged = run.values.get(suite.judged)
        verdict = await judges.brief_adherence(run.values["project"], judged) if judged else None
        scores["brief_adherence"] = verdict.score if verdict else 0.0
        reason = verdict.reasoning if verdict else f"no {suite.judged} was written"
        comments["brief_adherence"] = reason
    if run.revised:
        verdicts: list[float] = []
        reasons: list[str] = []
        for stage, (before, feedback) in run.revised.items():
            after = run.values.get(stage)
            verdict = await judges.feedback_applied(before, feedback, after) if after else None
            verdicts.append(verdict.score if verdict else 0.0)
            reason = verdict.reasoning if verdict else "nothing was approved after the feedback"
            reasons.append(f"{stage}: {reason}")
        scores["feedback_applied"] = fmean(verdicts)
        comments["feedback_applied"] = "; ".join(reasons)


def _judge_provider(settings: Settings, model: str) -> ModelProvider:
    key = settings.openai_api_key
    return ModelProvider(
        api_key=key.get_secret_value() if key else None,
        base_url=settings.openai_base_url,
        default_model=model,
        recordings=SAMPLE_RECORDINGS,
        timeout_s=settings.llm_timeout_s,
        concurrency=settings.llm_concurrency,
    )


def _is_sample(item: EvalItem) -> bool:
    return " ".join(item.project().brief.split()) == _sample_brief()


@cache
def _sample_brief() -> str:
    return " ".join(json.loads(SAMPLE_INPUT.read_text(encoding="utf-8"))["brief"].split())


def _prompt_versions(generations: list[dict[str, Any]]) -> dict[str, list[str]]:
    versions: dict[str, set[str]] = {}
    for generation in generations:
        versions.setdefault(generation["prompt"], set()).add(generation["prompt_version"])
    return {name: sorted(found) for name, found in sorted(versions.items())}
