"""Prompt templates as files: one Jinja2 Markdown file per agent task.

A template holds the system message, a line ``<!-- user -->``, then the user message.
Every rendered prompt carries its name and a content hash as its version, so each
generation records exactly which prompt produced it.

The files are the source. When Langfuse is configured (:mod:`tools.tracing`), each template
(and each template it includes) is taken from Langfuse prompt management instead, the
version labelled ``production`` of the prompt with the same name (``auteur prompts push``
puts them there), and the rendered prompt also carries that Langfuse version. Fetched
prompts are cached for a minute; when Langfuse is unreachable or lacks the prompt, the file
is used, and that is logged at debug level only.

Agents render with :func:`arender`: while Langfuse is configured it renders in a worker
thread, since a fetch can take up to its timeout and would hold up every run of the
process on the event loop. A template file is read again only when it changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateNotFound

from tools import tracing

if TYPE_CHECKING:
    from langfuse import Langfuse

__all__ = [
    "LANGFUSE_LABEL",
    "PROMPTS_DIR",
    "PromptSource",
    "RenderedPrompt",
    "arender",
    "file_prompts",
    "render",
    "source",
]

PROMPTS_DIR = Path(__file__).parent
LANGFUSE_LABEL = "production"
_USER_MARKER = "<!-- user -->"
_CACHE_TTL_S = 60.0
_FETCH_TIMEOUT_S = 2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to send, with where it came from."""

    name: str
    version: str
    system: str
    user: str
    langfuse_version: int | None = None


@dataclass(frozen=True)
class PromptSource:
    """A template's source text, and its Langfuse version when it came from Langfuse."""

    text: str
    langfuse_version: int | None = None

    @property
    def version(self) -> str:
        """The first 12 hex digits of the SHA-256 of the text: equal text, equal version."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


def file_prompts() -> dict[str, str]:
    """Every template in ``prompts/`` by name (``script_writer/draft_script``): its file text."""
    return {
        path.relative_to(PROMPTS_DIR).with_suffix("").as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(PROMPTS_DIR.rglob("*.md"))
    }


def source(name: str) -> PromptSource:
    """The source of template ``name``: Langfuse's production version if available, else the file.

    Raises:
        FileNotFoundError: There is no such template file (and Langfuse has none either).
    """
    return _remote(name) or PromptSource(_file_text(PROMPTS_DIR / f"{name}.md"))


def _file_text(path: Path) -> str:
    """A template file's text, read again only when the file changes (a stat, not a read)."""
    status = path.stat()
    return _read(path, status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=256)
def _read(path: Path, mtime_ns: int, size: int) -> str:
    return path.read_text(encoding="utf-8")


def render(name: str, **variables: object) -> RenderedPrompt:
    """Render the template ``name`` with ``variables``.

    Args:
        name: Template path without extension, e.g. ``"script_writer/draft_script"``.
        **variables: Values the template uses; a missing one is an error.

    Returns:
        The system and user messages, with the template's name and version (a hash of the
        template's source), and its Langfuse version when it came from Langfuse.
    """
    template = source(name)
    text = _compiled(template.text).render(**variables)
    system, marker, user = text.partition(_USER_MARKER)
    if not marker:
        raise ValueError(f"prompt {name} has no '{_USER_MARKER}' line between system and user")
    return RenderedPrompt(
        name=name,
        version=template.version,
        system=system.strip(),
        user=user.strip(),
        langfuse_version=template.langfuse_version,
    )


async def arender(name: str, **variables: object) -> RenderedPrompt:
    """:func:`render`, for a coroutine: in a worker thread while Langfuse may be asked.

    Without Langfuse it renders in place: from compiled templates and cached files, that
    takes less than handing it to a thread.
    """
    if tracing.client() is None:
        return render(name, **variables)
    return await asyncio.to_thread(render, name, **variables)


class _Loader(BaseLoader):
    """Loads included templates (``{% include "shared/project.md" %}``) through :func:`source`."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        name = template.removesuffix(".md")
        try:
            text = source(name).text
        except FileNotFoundError:
            raise TemplateNotFound(template) from None
        return text, None, lambda: source(name).text == text


@lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    """``text`` compiled once: keyed by the text, so a new Langfuse version compiles anew."""
    return _environment().from_string(text)


@cache
def _environment() -> Environment:
    return Environment(
        loader=_Loader(),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


# name -> (fetched at, what Langfuse had: None when it was unreachable or had no such prompt),
# for the client in `_fetched_from` (configuring another one empties the cache).
_fetched: dict[str, tuple[float, PromptSource | None]] = {}
_fetched_from: Langfuse | None = None


def _remote(name: str) -> PromptSource | None:
    """The production version of prompt ``name`` in Langfuse, cached; None if not available."""
    global _fetched_from
    langfuse = tracing.client()
    if langfuse is None:
        return None
    if langfuse is not _fetched_from:
        _fetched.clear()
        _fetched_from = langfuse
    now = time.monotonic()
    cached = _fetched.get(name)
    if cached is not None and now - cached[0] < _CACHE_TTL_S:
        return cached[1]
    try:
        prompt = langfuse.api.prompts.get(
            urllib.parse.quote(name, safe=""),
            label=LANGFUSE_LABEL,
            request_options={"timeout_in_seconds": _FETCH_TIMEOUT_S, "max_retries": 0},
        )
    except Exception as error:  # any failure means: use the file
        log.debug("prompt %s: using the file, Langfuse did not answer it (%s)", name, error)
        fetched = None
    else:
        if isinstance(prompt.prompt, str):
            fetched = PromptSource(prompt.prompt, langfuse_version=prompt.version)
        else:
            log.debug("prompt %s: using the file, Langfuse's is a chat prompt", name)
            fetched = None
    _fetched[name] = (now, fetched)
    return fetched
