"""The metrics an eval can report, with which direction is better."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["METRICS", "Metric"]


@dataclass(frozen=True)
class Metric:
    """A score each item gets; a threshold is a minimum, or a maximum when lower is better."""

    name: str
    description: str
    higher_is_better: bool = True

    def passes(self, value: float, threshold: float) -> bool:
        """Whether ``value`` meets ``threshold`` in this metric's direction."""
        return value >= threshold if self.higher_is_better else value <= threshold


METRICS = MappingProxyType(
    {
        metric.name: metric
        for metric in (
            Metric("schema_valid", "every stage drafted an artifact that validates (1 or 0)"),
            Metric("entity_precision", "extracted entities that are in the gold registry"),
            Metric("entity_recall", "gold entities that were extracted"),
            Metric("entity_f1", "F1 of entities against the gold registry"),
            Metric("look_precision", "per-scene looks that match the gold usage"),
            Metric("look_recall", "gold per-scene looks that were found"),
            Metric("look_f1", "F1 of per-scene looks against the gold usage"),
            Metric(
                "extraction_calls",
                "asset-extraction model calls in the run (asset_extraction.calls)",
                higher_is_better=False,
            ),
            Metric("shot_rule_pass_rate", "shots that break no shot-list rule"),
            Metric("faithfulness", "script lines the shots render faithfully, less additions"),
            Metric("shot_split_f1", "F1 of where shots start, against the gold split"),
            Metric("gold_mentions", "gold characters and props the script names"),
            Metric("brief_adherence", "LLM judge: the script follows the brief (0 to 1)"),
            Metric("feedback_applied", "LLM judge: the revision applies the feedback (1 or 0)"),
        )
    }
)
