"""Running a suite: every dataset item through an agent or a workflow, gates auto-approved.

Runs use the real persistence (the configured or embedded Postgres) and the configured
models; a workflow suite's runs go the way ``auteur demo`` and the API run them
(:mod:`api.driver`). They use no generation cache: every
item's model calls are made afresh, so scores and call counts measure the model and the
prompts as they are now, not a replay of an earlier run.

Example::

    suite = SUITES["extraction"]
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
from typing import Any, TypeVar

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel

from agents.artifacts import AssetRegistry, Script, ShotList
from agents.base import Context, load_agents
from api.driver import APPROVE, Driver, open_driver
from api.runs import run_context
from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS, Settings
from evals import scorers
from evals.dataset import DATASETS_DIR, EvalItem
from evals.judges import Judge
from evals.report import ItemResult, Report
from graphs.base import load_workflow_types
from graphs.persistence import embedded_database_url, open_persistence
from tools import ledger, tracing
from tools.discovery import WorkflowDiscovery
from tools.llm import ModelProvider

__all__ = ["SUITES", "Suite", "run_suite"]

ArtifactT = TypeVar("ArtifactT", bound=BaseModel)

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


@dataclass(frozen=True)
class Suite:
    """What a suite runs (an agent or a workflow type), on what, and how it scores."""

    name: str
    target: str
    workflow: bool
    payload: Callable[[EvalItem], dict[str, Any]]
    score: Callable[[EvalItem, dict[str, Any]], dict[str, float | None]]
    metrics: tuple[str, ...]
    output: str
    """The stage whose artifact is the item's output."""
    needs: tuple[str, ...] = ()
    judged: bool = False
    """Whether the brief-adherence judge scores the run's script."""

    @property
    def dataset(self) -> Path:
        """The bundled dataset of this suite."""
        return DATASETS_DIR / f"{self.name}.jsonl"

    def graph(self) -> tuple[StateGraph, list[str]]:
        """The uncompiled graph, and the stages whose artifacts a complete run has."""
        if self.workflow:
            workflow = load_workflow_types().get(self.target)()
            return workflow.build(), workflow.stages()
        agent = load_agents().get(self.target)()
        return agent.build(), [step.stage for step in agent.steps()]

    def columns(self, judge: bool, items: list[EvalItem]) -> list[str]:
        """The metrics a run reports: the suite's, and the judges' when a judge is given."""
        judged = ["brief_adherence"] if judge and self.judged else []
        feedback = ["feedback_applied"] if judge and any(item.feedback for item in items) else []
        return ["schema_valid", *self.metrics, *judged, *feedback]


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
        context = run_context(
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
        script = run.values.get("script")
        verdict = await judges.brief_adherence(run.values["project"], script) if script else None
        scores["brief_adherence"] = verdict.score if verdict else 0.0
        comments["brief_adherence"] = verdict.reasoning if verdict else "no script was written"
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


# --- the suites ------------------------------------------------------------------------------


_REGISTRY = (
    "entity_precision",
    "entity_recall",
    "entity_f1",
    "look_precision",
    "look_recall",
    "look_f1",
)
_SHOTS = ("shot_rule_pass_rate", "faithfulness", "shot_split_f1")


def _artifact(values: dict[str, Any], stage: str, model: type[ArtifactT]) -> ArtifactT | None:
    return model.model_validate(values[stage]) if stage in values else None


def _registry_scores(registry: AssetRegistry | None, gold: AssetRegistry) -> dict[str, float]:
    if registry is None:
        return dict.fromkeys(_REGISTRY, 0.0)
    scores = scorers.entity_scores(registry, gold)
    return {name: getattr(scores[name.split("_")[0]], name.split("_")[1]) for name in _REGISTRY}


def _shot_scores(
    shots: ShotList | None, script: Script, assets: AssetRegistry, item: EvalItem | None
) -> dict[str, float | None]:
    """Rules and faithfulness; the split against gold only when ``item`` (the gold) is given."""
    coverage = {c.scene: c.shots for c in item.shot_coverage or []} if item else {}
    if shots is None:
        return {"shot_rule_pass_rate": 0.0, "faithfulness": 0.0} | (
            {"shot_split_f1": 0.0} if coverage else {}
        )
    scores: dict[str, float | None] = {
        "shot_rule_pass_rate": scorers.shot_rule_pass_rate(shots, script, assets),
        "faithfulness": scorers.faithfulness(shots, script, assets),
    }
    if coverage:
        scores["shot_split_f1"] = scorers.shot_split(shots, coverage).f1
    return scores


def _project(item: EvalItem) -> dict[str, Any]:
    return item.project().model_dump(mode="json")


def _extraction_payload(item: EvalItem) -> dict[str, Any]:
    assert item.script is not None
    return {
        "project": _project(item),
        "script": item.script.model_dump(mode="json"),
        "master_script": item.master().model_dump(mode="json"),
    }


def _score_extraction(item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
    assert item.assets is not None
    calls = values.get("asset_extraction", {}).get("calls")
    return {
        **_registry_scores(_artifact(values, "assets", AssetRegistry), item.assets),
        "extraction_calls": calls,
    }


def _shots_payload(item: EvalItem) -> dict[str, Any]:
    assert item.assets is not None
    return {**_extraction_payload(item), "assets": item.assets.model_dump(mode="json")}


def _score_shots(item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
    assert item.script is not None and item.assets is not None
    return _shot_scores(_artifact(values, "shots", ShotList), item.script, item.assets, item)


def _score_script(item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
    script = _artifact(values, "script", Script)
    if item.assets is None:
        return {}
    return {"gold_mentions": scorers.mentioned(script, item.assets) if script else 0.0}


def _score_pipeline(item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
    """The run is scored against its own script; against the gold only where it is the gold's."""
    script = _artifact(values, "script", Script)
    assets = _artifact(values, "assets", AssetRegistry)
    scores: dict[str, float | None] = {
        **_score_script(item, values),
        "extraction_calls": values.get("asset_extraction", {}).get("calls"),
    }
    if script is not None and assets is not None:
        gold = item if script == item.script else None
        scores |= _shot_scores(_artifact(values, "shots", ShotList), script, assets, gold)
    if item.assets is not None and script is not None and script == item.script:
        registry = _registry_scores(assets, item.assets)
        scores |= {name: registry[name] for name in ("entity_f1", "look_f1")}
    return scores


SUITES = {
    suite.name: suite
    for suite in (
        Suite(
            name="extraction",
            target="asset_extractor",
            workflow=False,
            payload=_extraction_payload,
            score=_score_extraction,
            metrics=(*_REGISTRY, "extraction_calls"),
            output="assets",
            needs=("script", "assets"),
        ),
        Suite(
            name="shots",
            target="shot_lister",
            workflow=False,
            payload=_shots_payload,
            score=_score_shots,
            metrics=_SHOTS,
            output="shots",
            needs=("script", "assets"),
        ),
        Suite(
            name="script",
            target="script_writer",
            workflow=False,
            payload=lambda item: {"project": _project(item)},
            score=_score_script,
            metrics=("gold_mentions",),
            output="script",
            judged=True,
        ),
        Suite(
            name="pipeline",
            target="full_video",
            workflow=True,
            payload=EvalItem.workflow_input,
            score=_score_pipeline,
            metrics=("extraction_calls", *_SHOTS, "entity_f1", "look_f1", "gold_mentions"),
            output="video",
            judged=True,
        ),
    )
}
"""The suites ``auteur eval run --suite`` knows, by name."""
