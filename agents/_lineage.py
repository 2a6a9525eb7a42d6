"""Where an artifact came from, and what a change upstream makes stale.

Every approved artifact version records the content hash of each artifact it was made from
(its ``upstream``). A version is stale when one of those has changed since, or is stale
itself; a proposal at a gate makes stale whatever was made from the version it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.artifacts import input_hash

__all__ = ["Head", "stale_after", "stale_now"]

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


def stale_now(current: Mapping[str, Head]) -> dict[str, list[str]]:
    """Each current artifact made from something that has changed since: kind → the causes."""
    latest = {kind: head["content_hash"] for kind, head in current.items()}
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
                if source in causes or latest.get(source, made_from) != made_from
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
