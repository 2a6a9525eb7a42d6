"""``auteur prompts``: keep Langfuse prompt management in step with the files in ``prompts/``.

``auteur prompts push`` compares each template file with the version Langfuse labels
``production`` under the same name and creates a new version, labelled ``production``,
only for the templates that are new or changed. Runs then use the Langfuse versions
(see :mod:`prompts`), and each generation records and links the version it used.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

if TYPE_CHECKING:
    from langfuse import Langfuse

__all__ = ["PushResult", "prompts_app", "push_changed"]

prompts_app = typer.Typer(no_args_is_help=True, add_completion=False)
out = Console(highlight=False, soft_wrap=True)


@prompts_app.callback()
def prompts_group() -> None:
    """Prompt templates in Langfuse prompt management (the files in prompts/ are the source)."""


@dataclass(frozen=True)
class PushResult:
    """What pushing one template did, and the Langfuse version that is now production."""

    name: str
    action: Literal["created", "updated", "unchanged"]
    langfuse_version: int


def push_changed(langfuse: Langfuse, *, dry_run: bool = False) -> list[PushResult]:
    """Create a production version in Langfuse for every template that is new or changed.

    Args:
        langfuse: The client of the Langfuse project to push to.
        dry_run: Only compare; send nothing (a would-be version is the next number).
    """
    from langfuse.api import NotFoundError

    from prompts import LANGFUSE_LABEL, PromptSource, file_prompts

    results = []
    for name, text in file_prompts().items():
        try:
            current = langfuse.api.prompts.get(
                urllib.parse.quote(name, safe=""), label=LANGFUSE_LABEL, resolve=False
            )
        except NotFoundError:
            current = None
        if current is not None and current.prompt == text:
            results.append(PushResult(name, "unchanged", current.version))
            continue
        action: Literal["created", "updated"] = "created" if current is None else "updated"
        if dry_run:
            version = 1 if current is None else current.version + 1
        else:
            version = langfuse.create_prompt(
                name=name,
                prompt=text,
                type="text",
                labels=[LANGFUSE_LABEL],
                config={"auteur_version": PromptSource(text).version},
                commit_message=f"auteur prompts push: {PromptSource(text).version}",
            ).version
        results.append(PushResult(name, action, version))
    return results


@prompts_app.command()
def push(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; send nothing.")
    ] = False,
) -> None:
    """Create or update the prompts in Langfuse whose files changed (labelled production)."""
    import httpx
    from langfuse.api.core import ApiError
    from rich.table import Table

    from api.settings import Settings
    from prompts import LANGFUSE_LABEL
    from tools import tracing

    config = Settings().langfuse
    if config is None:
        out.print(
            "[red]error:[/red] Langfuse is not configured: set LANGFUSE_PUBLIC_KEY, "
            "LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL (or LANGFUSE_HOST)."
        )
        raise typer.Exit(2)
    tracing.configure(config)
    langfuse = tracing.client()
    assert langfuse is not None
    try:
        results = push_changed(langfuse, dry_run=dry_run)
    except (ApiError, httpx.HTTPError) as error:
        out.print(f"[red]error:[/red] Langfuse at {config.base_url}: {error}")
        raise typer.Exit(1) from None
    table = Table("prompt", "action", f"{LANGFUSE_LABEL} version")
    for result in results:
        table.add_row(result.name, result.action, str(result.langfuse_version))
    out.print(table)
    changed = sum(result.action != "unchanged" for result in results)
    verb = "would change" if dry_run else "changed"
    out.print(f"{changed} of {len(results)} prompts {verb}.")
