"""Eval suites: what runs (an agent or a workflow type), on which dataset, scored how.

A suite is a plugin like an agent: subclassing :class:`AgentSuite` or
:class:`WorkflowSuite` registers it, and :func:`load_suites` imports the files that hold
them. An agent ships its suite in its own file, next to what it scores; suites not tied to
one agent are one file each in ``evals/suites/``. This module imports nothing heavy, so an
agent file can define its suite without slowing down any import of the agent.

Example (in ``agents/shot_lister.py``)::

    class ShotsSuite(AgentSuite):
        \"\"\"The shot lister on gold scripts and registries: rules, faithfulness, split.\"\"\"

        name = "shots"
        target = "shot_lister"
        output = "shots"
        metrics = scorers.SHOT_METRICS
        needs = ("script", "assets")

        def payload(self, item: EvalItem) -> dict[str, Any]:
            return item.state("script", "master_script", "assets")

        def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
            shots = artifact_of(values, "shots", ShotList)
            return scorers.shot_scores(shots, item.script, item.assets, item.split())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel

from evals.dataset import DATASETS_DIR
from tools.plugins import Registry, discover, is_concrete

if TYPE_CHECKING:
    from langgraph.graph import StateGraph

    from evals.dataset import EvalItem
    from graphs.base import WorkflowType

__all__ = ["AgentSuite", "Suite", "WorkflowSuite", "artifact_of", "load_suites"]

ArtifactT = TypeVar("ArtifactT", bound=BaseModel)


class Suite(ABC):
    """A suite: its target, the metrics it reports and how an item's run is scored.

    Subclasses set ``name``, ``target`` (an agent or a workflow type), ``output`` (the
    state key of the artifact a report shows for each item) and ``metrics``, and
    implement :meth:`score`.
    """

    name: ClassVar[str]
    target: str
    output: ClassVar[str]
    metrics: tuple[str, ...]
    needs: ClassVar[tuple[str, ...]] = ()
    """Fields every dataset item must have."""
    judged: ClassVar[str | None] = None
    """The state key of the artifact the brief-adherence judge reads (none: no such judge)."""
    workflow: ClassVar[bool]
    registry: ClassVar[Registry[Suite]] = Registry("eval suite")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if is_concrete(cls):
            Suite.registry.add(cls.name, cls)

    @property
    def dataset(self) -> Path:
        """The bundled dataset of this suite."""
        return DATASETS_DIR / f"{self.name}.jsonl"

    @abstractmethod
    def payload(self, item: EvalItem) -> dict[str, Any]:
        """What a run of ``item`` starts from."""

    @abstractmethod
    def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
        """The suite's metrics for one finished run (``values``: its final state)."""

    @abstractmethod
    def graph(self) -> tuple[StateGraph, list[str]]:
        """The uncompiled graph, and the stages whose artifacts a complete run has."""

    def columns(self, judge: bool, items: list[EvalItem]) -> list[str]:
        """The metrics a run reports: the suite's, and the judges' when a judge is given."""
        judged = ["brief_adherence"] if judge and self.judged else []
        feedback = ["feedback_applied"] if judge and any(item.feedback for item in items) else []
        return ["schema_valid", *self.metrics, *judged, *feedback]


class AgentSuite(Suite):
    """A suite that runs one agent from a state the dataset item gives."""

    workflow = False

    def graph(self) -> tuple[StateGraph, list[str]]:
        """The agent's subgraph and its steps' stages."""
        from agents.base import load_agents

        agent = load_agents().get(self.target)()
        return agent.build(), [step.stage for step in agent.steps()]


class WorkflowSuite(Suite):
    """A suite that runs a whole workflow type from the item's workflow input.

    ``target`` is the workflow type it runs unless another registered one is given.
    """

    workflow = True

    def __init__(self, *, target: str | None = None) -> None:
        if target is not None:
            self.target = target

    def payload(self, item: EvalItem) -> dict[str, Any]:
        """The item's workflow input."""
        return item.workflow_input()

    def graph(self) -> tuple[StateGraph, list[str]]:
        """The workflow type's graph and the stages it runs."""
        return self._workflow_type().build(), self.stages

    @cached_property
    def stages(self) -> list[str]:
        """The stages the target workflow type runs, in order."""
        return self._workflow_type().stages()

    def _workflow_type(self) -> WorkflowType:
        from graphs.base import load_workflow_types

        return load_workflow_types().get(self.target)()


def artifact_of(values: dict[str, Any], key: str, model: type[ArtifactT]) -> ArtifactT | None:
    """The artifact a run's final state holds under ``key``, validated; None when it has none."""
    return model.model_validate(values[key]) if key in values else None


def load_suites() -> Registry[Suite]:
    """Import the agents, the workflow types and ``evals/suites/``; return the filled registry."""
    from graphs.base import load_workflow_types

    load_workflow_types()
    discover("evals.suites")
    return Suite.registry
