"""``pipeline``: a whole workflow run, each artifact it drafted scored.

It runs ``full_video`` unless ``auteur eval run --workflow`` names another workflow type,
and reports the metrics of the artifacts that workflow drafts. The run is scored against
its own script; against the gold only where that script is the gold's.
"""

from __future__ import annotations

from typing import Any

from agents.artifacts import AssetRegistry, Script, ShotList
from evals import scorers
from evals.dataset import EvalItem
from evals.suite import WorkflowSuite, artifact_of

_BY_ARTIFACT = {
    "script": ("gold_mentions",),
    "assets": ("extraction_calls", "entity_f1", "look_f1"),
    "shots": scorers.SHOT_METRICS,
}
"""The metrics of each artifact a workflow may draft."""


class PipelineSuite(WorkflowSuite):
    """A workflow type from each item's input to its end, every gate approved."""

    name = "pipeline"
    target = "full_video"
    output = "video"
    judged = "script"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics of the artifacts the target workflow drafts."""
        return tuple(
            metric
            for key, metrics in _BY_ARTIFACT.items()
            if key in self.stages
            for metric in metrics
        )

    def score(self, item: EvalItem, values: dict[str, Any]) -> dict[str, float | None]:
        """The script's mentions, the registry against gold, the shots against the script."""
        script = artifact_of(values, "script", Script)
        assets = artifact_of(values, "assets", AssetRegistry)
        is_gold = script is not None and script == item.script
        scores = scorers.mention_scores(script, item.assets)
        scores["extraction_calls"] = values.get("asset_extraction", {}).get("calls")
        if item.assets is not None and is_gold:
            registry = scorers.registry_scores(assets, item.assets)
            scores |= {name: registry[name] for name in ("entity_f1", "look_f1")}
        if script is not None and assets is not None:
            shots = artifact_of(values, "shots", ShotList)
            scores |= scorers.shot_scores(shots, script, assets, item.split() if is_gold else {})
        return {name: value for name, value in scores.items() if name in self.metrics}
