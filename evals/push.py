"""Pushing an eval report to Langfuse as an experiment (Langfuse's experiment API).

The items have already run; the experiment's task hands Langfuse each item's recorded output
and its evaluators hand over the recorded scores, so Langfuse shows the same numbers as the
report, one trace per item, with the aggregates as run-level scores.
"""

from __future__ import annotations

from typing import Any

from langfuse import Evaluation, Langfuse

from evals.dataset import EvalItem
from evals.report import Report

__all__ = ["PushError", "push_experiment", "require_client"]


class PushError(RuntimeError):
    """The experiment could not be pushed (Langfuse not configured)."""


def require_client(client: Langfuse | None) -> Langfuse:
    """The Langfuse client to push with.

    Raises:
        PushError: ``client`` is None: no Langfuse keys are configured.
    """
    if client is None:
        raise PushError(
            "--push needs Langfuse: set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and "
            "LANGFUSE_BASE_URL (in the environment or .env)."
        )
    return client


def push_experiment(client: Langfuse, report: Report, items: list[EvalItem]) -> str | None:
    """Record ``report`` as a Langfuse experiment; return its URL when Langfuse knows it."""
    by_id = {item.id: item for item in items}
    results = {result.id: result for result in report.items}
    data = [
        {
            "input": {"item": result.id, **by_id[result.id].workflow_input()},
            "expected_output": _expected(by_id[result.id]),
            "metadata": {"item": result.id},
        }
        for result in report.items
        if result.status != "skipped"
    ]

    def task(*, item: dict[str, Any], **_: Any) -> dict[str, Any]:
        result = results[item["metadata"]["item"]]
        return {"status": result.status, "output": result.output, "note": result.note}

    def scores(*, metadata: dict[str, Any], **_: Any) -> list[Evaluation]:
        result = results[metadata["item"]]
        return [
            Evaluation(name=name, value=value, comment=result.comments.get(name))
            for name, value in result.scores.items()
            if value is not None
        ]

    def aggregates(**_: Any) -> list[Evaluation]:
        return [
            Evaluation(name=f"mean {name}", value=aggregate.mean)
            for name, aggregate in report.aggregates.items()
            if aggregate.mean is not None
        ]

    experiment = client.run_experiment(
        name=f"auteur eval {report.suite}",
        run_name=f"{report.suite} {report.created_at:%Y-%m-%d %H:%M:%S}",
        description=f"{report.dataset} with {report.model}",
        data=data,
        task=task,
        evaluators=[scores],
        run_evaluators=[aggregates],
        metadata={
            "model": report.model,
            "judge": report.judge or "",
            "prompts": ", ".join(f"{n}@{','.join(v)}" for n, v in sorted(report.prompts.items())),
        },
    )
    client.flush()
    return experiment.experiment_url


def _expected(item: EvalItem) -> dict[str, Any] | None:
    gold = {
        "assets": item.assets.model_dump(mode="json") if item.assets else None,
        "shot_coverage": [c.model_dump() for c in item.shot_coverage or []] or None,
    }
    return {key: value for key, value in gold.items() if value is not None} or None
