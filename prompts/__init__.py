"""Prompt templates as files: one Jinja2 Markdown file per agent task.

A template holds the system message, a line ``<!-- user -->``, then the user message.
Every rendered prompt carries its name and a content hash as its version, so each
generation records exactly which prompt produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["PROMPTS_DIR", "RenderedPrompt", "render"]

PROMPTS_DIR = Path(__file__).parent
_USER_MARKER = "<!-- user -->"


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to send, with where it came from."""

    name: str
    version: str
    system: str
    user: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(name: str, **variables: object) -> RenderedPrompt:
    """Render ``prompts/<name>.md`` with ``variables``.

    Args:
        name: Template path without extension, e.g. ``"script_writer/draft_script"``.
        **variables: Values the template uses; a missing one is an error.

    Returns:
        The system and user messages, with the template's name and version (the first
        12 hex digits of the SHA-256 of the template source).
    """
    path = PROMPTS_DIR / f"{name}.md"
    source = path.read_text(encoding="utf-8")
    text = _environment().get_template(f"{name}.md").render(**variables)
    system, marker, user = text.partition(_USER_MARKER)
    if not marker:
        raise ValueError(f"prompt {path} has no '{_USER_MARKER}' line between system and user")
    version = hashlib.sha256(source.encode()).hexdigest()[:12]
    return RenderedPrompt(name=name, version=version, system=system.strip(), user=user.strip())
