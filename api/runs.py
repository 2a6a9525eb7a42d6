"""Opening the service's resources: plugins, database, the context every run gets.

Shared by the API, ``auteur worker``, the CLI's driver (:mod:`api.driver`) and the evals.
:func:`open_discovery` opens workflow discovery alone, for the commands that only search
or list the catalogue: it imports neither the plugins nor LangGraph, which
:func:`open_services` loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from api.settings import Settings
from graphs.persistence import (
    Persistence,
    embedded_database_url,
    open_persistence,
    open_pool,
    restart_embedded_server,
)
from tools import redaction
from tools.discovery import WorkflowDiscovery

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from agents.base import Context
    from graphs.base import WorkflowType
    from tools.speech import SpeechBackend

__all__ = ["Services", "open_discovery", "open_services", "run_context"]


@dataclass
class Services:
    """Everything a process needs to run workflows."""

    settings: Settings
    persistence: Persistence
    context: Context
    workflows: dict[str, WorkflowType]
    database_url: str
    discovery: WorkflowDiscovery
    cache: bool = True
    """Whether runs reuse earlier generations (model answers, media) of the same input."""
    _compiled: dict[str, CompiledStateGraph] = field(default_factory=dict)

    def graph(self, workflow: str) -> CompiledStateGraph:
        """The compiled workflow type (once per process), with checkpointer and store.

        Without :attr:`cache` it has no store: the generation cache lives there.
        """
        if workflow not in self._compiled:
            if workflow not in self.workflows:
                known = ", ".join(sorted(self.workflows))
                raise KeyError(f"unknown workflow type '{workflow}' (known: {known})")
            self._compiled[workflow] = self.workflows[workflow].compile(
                checkpointer=self.persistence.checkpointer,
                store=self.persistence.store if self.cache else None,
            )
        return self._compiled[workflow]


@asynccontextmanager
async def open_services(settings: Settings, *, cache: bool = True) -> AsyncIterator[Services]:
    """Load every plugin (failing loudly), open the database and yield the services.

    ``cache=False`` makes every generation afresh (the evals measure the model, not a replay).

    From here on the settings' secrets are redacted from stored rows, logs and answers.
    """
    from api.db import SCHEMA

    _redact_secrets(settings)
    workflows = {name: cls() for name, cls in _workflow_classes().items()}
    url, restart = _database(settings)
    async with open_persistence(url, extra_schema=SCHEMA, restart=restart) as persistence:
        discovery = WorkflowDiscovery(persistence.pool, settings.embedding_model)
        yield Services(
            settings=settings,
            persistence=persistence,
            context=await run_context(settings, discovery),
            workflows=workflows,
            database_url=url,
            discovery=discovery,
            cache=cache,
        )


@asynccontextmanager
async def open_discovery(
    settings: Settings, *, load_model: bool = False
) -> AsyncIterator[WorkflowDiscovery]:
    """Open the database and yield workflow discovery over the configured catalogue.

    The same discovery as :attr:`Services.discovery`, without what only runs need: no
    plugins, no checkpointer or store (discovery sets its own table up). With
    ``load_model`` (a search needs it, a listing does not) the embedding model loads while
    the embedded server starts: both take a few tenths of a second. The settings' secrets
    are redacted from here on, as with :func:`open_services`.
    """
    _redact_secrets(settings)
    starting = asyncio.to_thread(_database, settings)
    if load_model:
        (url, restart), _ = await asyncio.gather(
            starting, asyncio.to_thread(settings.embedding_model.load)
        )
    else:
        url, restart = await starting
    async with open_pool(url, restart=restart) as pool:
        yield WorkflowDiscovery(pool, settings.embedding_model)


async def run_context(settings: Settings, discovery: WorkflowDiscovery) -> Context:
    """The context every run gets (the CLI, the API and the eval runner alike).

    The configured models, media backend (ComfyUI, or the draft renderer without a URL),
    speech backend, file store, and ``discovery`` over the workflow catalogue for the
    media agents. With ``speech=comfyui`` the speech workflow is found here, through
    ``discovery``, and runs on the same media backend (one pool for every job).

    Raises:
        SpeechError: If ``speech=comfyui`` has no ComfyUI server or speech workflow.
    """
    from agents.base import Context

    backend = settings.media_backend
    if settings.speech == "comfyui":
        from tools.comfy_speech import comfy_speech

        speech: SpeechBackend = await comfy_speech(backend, discovery)
    else:
        speech = settings.speech_backend
    return Context(
        models=settings.models,
        backend=backend,
        speech=speech,
        files=settings.file_store,
        discovery=discovery,
    )


def _redact_secrets(settings: Settings) -> None:
    redaction.register(*settings.secrets())
    redaction.install_log_redaction()


def _database(settings: Settings) -> tuple[str, Callable[[], None] | None]:
    """The database's URL (starting the embedded server without one) and how to restart it."""
    if settings.database_url:
        return settings.database_url, None
    return embedded_database_url(settings.data_dir), partial(
        restart_embedded_server, settings.data_dir
    )


def _workflow_classes() -> dict[str, type[WorkflowType]]:
    from graphs.base import load_workflow_types

    registry = load_workflow_types()
    return {name: registry.get(name) for name in registry.names()}
