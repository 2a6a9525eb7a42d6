"""The ``full_video`` workflow type as ``langgraph dev`` serves it, with the offline Context.

``langgraph.json`` (written by :mod:`_servers`) points ``full_video`` at :data:`graph`.
The graph is the one Auteur compiles, built by the same :class:`graphs.full_video.FullVideo`,
compiled without checkpointer or store: ``langgraph dev`` attaches its own in-memory pair.

Auteur's agents read ``runtime.context`` (a :class:`agents.base.Context` holding the model
provider, the draft renderer and the file store), which Auteur passes to ``astream`` itself.
The Agent Server can only pass JSON context from the request; with none it passes a dict of
the run's configurable values, which ``Context`` cannot be built from. So :data:`graph` is
the compiled graph with one difference: its ``astream`` always runs with the offline Context
(offline sample model, draft renderer, files in ``AUTEUR_BENCH_FILES_DIR``). Subgraphs
receive the context from their parent's runtime, as under Auteur.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from agents.base import Context
from api.settings import SAMPLE_RECORDINGS
from graphs.full_video import FullVideo
from tools.draft_renderer import DraftBackend
from tools.llm import ModelProvider
from tools.storage import LocalFileStore

__all__ = ["OFFLINE_CONTEXT", "graph"]

_FILES = os.environ.get("AUTEUR_BENCH_FILES_DIR") or tempfile.mkdtemp(prefix="auteur-lgdev-")

OFFLINE_CONTEXT = Context(
    models=ModelProvider(api_key=None, recordings=SAMPLE_RECORDINGS),
    backend=DraftBackend(),
    files=LocalFileStore(Path(_FILES)),
)


class OfflineContextGraph(CompiledStateGraph):
    """A compiled graph whose runs always get :data:`OFFLINE_CONTEXT` as their context."""

    async def astream(  # type: ignore[override]
        self,
        input: Any,
        config: Any = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """Stream the run as ``CompiledStateGraph.astream``, with the offline Context."""
        async for part in super().astream(input, config, context=OFFLINE_CONTEXT, **kwargs):
            yield part


def _offline_graph() -> CompiledStateGraph:
    compiled = FullVideo().build().compile(name=FullVideo.name)
    compiled.__class__ = OfflineContextGraph  # same object, same nodes; only astream differs
    return compiled


graph = _offline_graph()
