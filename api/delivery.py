"""The finished cut for an editor: a thread's approved clips and dialogue as a timeline file.

``auteur export`` and ``GET /threads/{id}/export`` both write the cut the assembly mixed
(:func:`agents._mix.cut`) as OTIO JSON, FCPXML or a CMX 3600 EDL (:mod:`tools.editorial`).
Media is named where the caller can reach it: the CLI gives file paths (or ``s3://`` URLs),
the API gives its own file URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents._mix import cut, cut_beds
from agents.artifacts import ClipSet, DialogueTrack, MediaFile, ShotList
from tools.editorial import ExportFormat, export, timeline

__all__ = ["EXPORT_FORMATS", "Export", "NothingToExportError", "export_cut"]

EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "otio": ("application/json", "otio"),
    "fcpxml": ("application/xml", "fcpxml"),
    "edl": ("text/plain", "edl"),
}
"""Each format's media type and file extension."""


class NothingToExportError(ValueError):
    """The thread has no approved clips yet: there is no cut."""


@dataclass(frozen=True)
class Export:
    """A written cut: its text, media type and a file name for it."""

    text: str
    media_type: str
    filename: str


def export_cut(
    values: Mapping[str, Any], fmt: ExportFormat, locate: Callable[[MediaFile], str]
) -> Export:
    """The cut of a thread's ``values`` in ``fmt``, media named by ``locate``.

    Raises:
        NothingToExportError: No clips are approved yet.
    """
    if not values.get("clips") or not values.get("shots"):
        raise NothingToExportError("nothing to export yet: the clips are not approved")
    clips = ClipSet.model_validate(values["clips"]).clips
    shots = ShotList.model_validate(values["shots"]).shots
    track = DialogueTrack.model_validate(values.get("dialogue") or {})
    title = (values.get("script") or {}).get("title") or values["project"]["title"] or "Auteur"
    film = cut(clips, track.lines, {shot.id: shot.scene for shot in shots}, locate)
    beds = cut_beds(track.beds, locate)
    media_type, extension = EXPORT_FORMATS[fmt]
    text = export(timeline(title, film, fps=values["project"]["format"]["fps"], beds=beds), fmt)
    return Export(text, media_type, f"{_slug(title)}.{extension}")


def _slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words) or "auteur"
