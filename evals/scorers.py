"""Deterministic scorers: pure functions from an agent's artifact (and gold) to numbers.

Entity ids and look names are the model's own words, so nothing is compared by spelling
alone: a predicted entity matches a gold one with the same id or the same name, and a
predicted look matches the gold look it shares the most scenes with. A look named
"evening gown" where the gold says "gala" scores as right as long as it is worn in the
same scenes; one look for scenes where the gold has two scores the scenes of one of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from agents._shot_rules import check_shot_list
from agents.artifacts import AssetRegistry, Script, ShotList

__all__ = [
    "PRF",
    "REGISTRY_METRICS",
    "SHOT_METRICS",
    "entity_scores",
    "faithfulness",
    "mention_scores",
    "mentioned",
    "prf",
    "registry_scores",
    "shot_rule_pass_rate",
    "shot_scores",
    "shot_split",
]

REGISTRY_METRICS = (
    "entity_precision",
    "entity_recall",
    "entity_f1",
    "look_precision",
    "look_recall",
    "look_f1",
)
"""What :func:`registry_scores` reports."""

SHOT_METRICS = ("shot_rule_pass_rate", "faithfulness", "shot_split_f1")
"""What :func:`shot_scores` reports (the split only against a gold split)."""


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of a set of predictions against gold."""

    precision: float
    recall: float
    f1: float


def prf(hits: int, predicted: int, expected: int) -> PRF:
    """Precision, recall and F1 from counts; nothing predicted and nothing expected is 1.0."""
    if predicted == 0 and expected == 0:
        return PRF(1.0, 1.0, 1.0)
    precision = hits / predicted if predicted else 0.0
    recall = hits / expected if expected else 0.0
    total = precision + recall
    return PRF(precision, recall, 2 * precision * recall / total if total else 0.0)


# --- asset registry ------------------------------------------------------------------------


def entity_scores(predicted: AssetRegistry, gold: AssetRegistry) -> dict[str, PRF]:
    """Entities, and the look each scene uses, against the gold registry.

    Returns:
        ``{"entity": PRF, "look": PRF}``; ``look`` counts (scene, entity, look) usages.
    """
    matches = _match_entities(predicted, gold)
    entity = prf(len(matches), len(predicted.entities()), len(gold.entities()))
    looks = {mine: _align_looks(predicted, gold, mine, theirs) for mine, theirs in matches.items()}
    expected = {(u.scene, u.entity, u.look) for u in gold.scene_usage}
    aligned = {
        (u.scene, matches[u.entity], looks[u.entity][u.look])
        for u in predicted.scene_usage
        if u.entity in matches and u.look in looks[u.entity]
    }
    hits = len(aligned & expected)
    look = prf(hits, len({(u.scene, u.entity) for u in predicted.scene_usage}), len(expected))
    return {"entity": entity, "look": look}


def registry_scores(registry: AssetRegistry | None, gold: AssetRegistry) -> dict[str, float]:
    """:data:`REGISTRY_METRICS` of an extracted registry; every one 0 when none was extracted."""
    if registry is None:
        return dict.fromkeys(REGISTRY_METRICS, 0.0)
    scores = entity_scores(registry, gold)
    return {
        name: getattr(scores[name.split("_")[0]], name.split("_")[1]) for name in REGISTRY_METRICS
    }


def _match_entities(predicted: AssetRegistry, gold: AssetRegistry) -> dict[str, str]:
    """Predicted id → gold id, by id first, then by name (case and spacing ignored)."""
    gold_entities = gold.entities()
    by_name = {_normal(entity.name): entity.id for entity in gold_entities.values()}
    matches: dict[str, str] = {}
    for entity in predicted.entities().values():
        candidate = entity.id if entity.id in gold_entities else by_name.get(_normal(entity.name))
        if candidate is not None and candidate not in matches.values():
            matches[entity.id] = candidate
    return matches


def _align_looks(
    predicted: AssetRegistry, gold: AssetRegistry, predicted_id: str, gold_id: str
) -> dict[str, str]:
    """Predicted look → gold look of one entity, pairing the looks that share most scenes."""
    mine = {u.scene: u.look for u in predicted.scene_usage if u.entity == predicted_id}
    theirs = {u.scene: u.look for u in gold.scene_usage if u.entity == gold_id}
    shared = Counter((look, theirs[scene]) for scene, look in mine.items() if scene in theirs)
    pairs = sorted(shared.items(), key=lambda pair: (-pair[1], pair[0][0] != pair[0][1]))
    aligned: dict[str, str] = {}
    for (look, gold_look), _ in pairs:
        if look not in aligned and gold_look not in aligned.values():
            aligned[look] = gold_look
    return aligned


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


# --- shot list -----------------------------------------------------------------------------


def shot_scores(
    shots: ShotList | None,
    script: Script,
    assets: AssetRegistry,
    split: dict[int, list[list[int]]],
) -> dict[str, float | None]:
    """:data:`SHOT_METRICS` of a shot list: the split only when a gold ``split`` is given.

    Every score is 0 when no shot list was drafted.
    """
    if shots is None:
        return dict.fromkeys(SHOT_METRICS if split else SHOT_METRICS[:2], 0.0)
    scores: dict[str, float | None] = {
        "shot_rule_pass_rate": shot_rule_pass_rate(shots, script, assets),
        "faithfulness": faithfulness(shots, script, assets),
    }
    if split:
        scores["shot_split_f1"] = shot_split(shots, split).f1
    return scores


def shot_rule_pass_rate(shots: ShotList, script: Script, assets: AssetRegistry) -> float:
    """The share of shots that break none of the shot-list rules (``agents._shot_rules``).

    A line no shot covers is a violation of no single shot; it counts as one failing shot.
    """
    violations = check_shot_list(shots, script, assets)
    failing = {v.shot for v in violations if v.shot is not None}
    orphans = sum(v.shot is None for v in violations)
    return (len(shots.shots) - len(failing)) / (len(shots.shots) + orphans)


def faithfulness(shots: ShotList, script: Script, assets: AssetRegistry) -> float:
    """How faithfully the shots render the script, from 0 to 1.

    Each script line counts once: faithful when exactly one shot of its scene covers it and,
    for dialogue, that shot speaks it word for word. Against it count what the shots add:
    dialogue no covered line has, and entities in frame the registry does not place in the
    shot's scene.
    """
    faithful = 0
    invented = 0
    for scene in script.scenes:
        own = [shot for shot in shots.shots if shot.scene == scene.number]
        for index, line in enumerate(scene.lines):
            covering = [shot for shot in own if index in shot.covers]
            spoken = covering[0].dialogue if len(covering) == 1 else []
            said = {(_normal(d.speaker), _normal(d.text)) for d in spoken}
            if len(covering) == 1 and (
                line.kind == "action" or (_normal(line.speaker or ""), _normal(line.text)) in said
            ):
                faithful += 1
        present = {usage.entity for usage in assets.in_scene(scene.number)}
        for shot in own:
            lines = [scene.lines[i] for i in shot.covers if 0 <= i < len(scene.lines)]
            written = {(_normal(ln.speaker or ""), _normal(ln.text)) for ln in lines}
            added = {(_normal(d.speaker), _normal(d.text)) for d in shot.dialogue} - written
            invented += len(added)
            invented += sum(e.entity not in present for e in shot.entities)
    lines = sum(len(scene.lines) for scene in script.scenes)
    return faithful / (lines + invented)


def shot_split(shots: ShotList, coverage: dict[int, list[list[int]]]) -> PRF:
    """Where shots start within each scene, against the gold split (the first shot excluded)."""
    predicted = {
        (shot.scene, min(shot.covers)) for shot in shots.shots if shot.covers and min(shot.covers)
    }
    expected = {(scene, shot[0]) for scene, split in coverage.items() for shot in split if shot[0]}
    return prf(len(predicted & expected), len(predicted), len(expected))


# --- script --------------------------------------------------------------------------------


def mentioned(script: Script, gold: AssetRegistry) -> float:
    """The share of the gold's characters and props the script names (locations have sluglines)."""
    text = _normal(
        " ".join(
            f"{line.speaker or ''} {line.text}" for scene in script.scenes for line in scene.lines
        )
    )
    names = [_normal(entity.name) for entity in [*gold.characters, *gold.props]]
    return sum(name in text for name in names) / len(names) if names else 1.0


def mention_scores(script: Script | None, gold: AssetRegistry | None) -> dict[str, float | None]:
    """``gold_mentions`` of a written script (0 when none was written); nothing without gold."""
    if gold is None:
        return {}
    return {"gold_mentions": mentioned(script, gold) if script else 0.0}
