"""Where an artifact came from, and what a change upstream makes stale.

Every approved artifact version records the content hash of each artifact it was made from
(its ``upstream``). A version is stale when one of those has changed since, or is stale
itself; a proposal at a gate makes stale whatever was made from the version it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agents.artifacts import ByScene, input_hash

__all__ = ["Head", "made_per_scene", "stale_after", "stale_now", "upstream_hash"]

Head = Mapping[str, Any]
"""A project's current version of one artifact: ``version``, ``content_hash``, ``upstream``."""


def stale_after(kind: str, proposal: object, current: Mapping[str, Head]) -> list[dict[str, Any]]:
    """The current artifacts that approving ``proposal`` as ``kind`` would make stale.

    Args:
        kind: The artifact the gate approves.
        proposal: The proposed artifact (JSON).
        current: The project's current versions by kind.

    Returns:
        ``{"kind", "version"}`` of each, in the order they go stale (direct ones first).
    """
    proposed = input_hash(proposal)
    head = current.get(kind)
    if head is None or head["content_hash"] == proposed:
        return []
    return _downstream({kind: proposed}, current)


def stale_now(
    current: Mapping[str, Head], made_from_now: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, list[str]]:
    """Each current artifact made from something that has changed since: kind → the causes.

    A recorded hash is current when it is the source's as it is now: its scenes' part's
    hash for a per-scene artifact, or the source's content hash. A source whose whole
    content is unchanged has no part changed either, so a version recorded before per-scene
    lineage (with the whole source's hash) stays current while its source does.

    Args:
        current: The project's current versions by kind.
        made_from_now: Per kind, the hash of each of its sources as they are now, where it
            is not the source's content hash (a per-scene artifact is made from its scenes'
            part of a per-scene source, see :func:`upstream_hash`).
    """
    latest = {kind: head["content_hash"] for kind, head in current.items()}
    now = made_from_now or {}
    causes: dict[str, list[str]] = {}
    changed = True
    while changed:
        changed = False
        for kind, head in current.items():
            if kind in causes:
                continue
            because = [
                source
                for source, made_from in head["upstream"].items()
                if source in causes
                or made_from not in (now.get(kind, {}).get(source), latest.get(source, made_from))
            ]
            if because:
                causes[kind] = because
                changed = True
    return causes


def _downstream(changed: dict[str, str], current: Mapping[str, Head]) -> list[dict[str, Any]]:
    """Current artifacts made from a changed one, transitively (``changed``: kind → new hash)."""
    stale: list[dict[str, Any]] = []
    gone = set(changed)
    grew = True
    while grew:
        grew = False
        for kind, head in current.items():
            if kind in gone:
                continue
            if any(
                source in gone and changed.get(source) != made_from
                for source, made_from in head["upstream"].items()
            ):
                gone.add(kind)
                stale.append({"kind": kind, "version": head["version"]})
                grew = True
    return stale


def made_per_scene(kind: type[BaseModel], source: type[BaseModel]) -> bool:
    """Whether an artifact of model ``kind`` is made from its scenes' part of ``source``.

    Both are per scene (frames from shots); from any other source it is made from the whole,
    whose hash is the source's content hash.
    """
    return issubclass(kind, ByScene) and issubclass(source, ByScene)


def upstream_hash(
    kind: type[BaseModel], made: Any, source: type[BaseModel], source_data: Any
) -> str:
    """The hash of what an artifact (``made``, of model ``kind``) was made from in a source.

    A per-scene artifact made from another per-scene one (frames from shots) is made from the
    source's part of the scenes it has: a scene cycle's next scene of shots changes nothing
    the earlier scenes' frames were made from. Any other source counts whole.
    """
    if not made_per_scene(kind, source):
        return input_hash(source_data)
    scenes = kind.model_validate(made).scenes()
    return input_hash(source.model_validate(source_data).in_scenes(scenes).model_dump(mode="json"))
