"""The cost ledger of a run: tokens and cost, GPU seconds, characters and seconds of speech.

A run opens a ledger with :func:`collect`; everything recorded while it is open (in the same
task or the tasks it starts, as LangGraph runs nodes) lands in it. Model calls are recorded
by :func:`tools.llm.generate_structured` under the agent and stage that
:func:`attribute_to` names; ComfyUI jobs by :func:`record_gpu_seconds`; spoken lines by
:func:`record_speech`. Outside a run they record nothing.

Example::

    with collect(settings.prices) as ledger:
        await graph.ainvoke(payload, config)
    ledger.summary()
    # {"by_agent_stage": [{"agent": "script_writer", "stage": "script", "model": ...,
    #   "calls": 1, "input_tokens": 812, "output_tokens": 240, "cost_usd": 0.0007}],
    #  "comfyui": [{"workflow": "flux_keyframe", "server": "...", "gpu_seconds": 4.2}],
    #  "speech": [{"backend": "draft", "voice": "en-us+f2", "characters": 31, "seconds": 2.1}],
    #  "totals": {"llm_calls": 1, "input_tokens": 812, "output_tokens": 240,
    #             "cost_usd": 0.0007, "gpu_seconds": 4.2, "comfyui_jobs": 1,
    #             "speech_jobs": 1, "speech_characters": 31, "speech_seconds": 2.1,
    #             "unpriced_models": []}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "Ledger",
    "ModelPrice",
    "attribute_to",
    "collect",
    "record_gpu_seconds",
    "record_speech",
    "record_tokens",
]


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    input: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output: float = Field(ge=0, description="USD per million output (completion) tokens.")


@dataclass
class _Tokens:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Ledger:
    """What one run spent. ``prices`` maps model names to :class:`ModelPrice`."""

    prices: Mapping[str, ModelPrice]
    _tokens: dict[tuple[str, str, str], _Tokens] = field(default_factory=dict)
    _jobs: list[dict[str, Any]] = field(default_factory=list)
    _speech: list[dict[str, Any]] = field(default_factory=list)

    def add_tokens(
        self, *, agent: str, stage: str, model: str, input_tokens: int, output_tokens: int
    ) -> None:
        """Count one model call."""
        tokens = self._tokens.setdefault((agent, stage, model), _Tokens())
        tokens.calls += 1
        tokens.input_tokens += input_tokens
        tokens.output_tokens += output_tokens

    def add_gpu_seconds(self, *, workflow: str, server: str, seconds: float) -> None:
        """Count one ComfyUI job."""
        self._jobs.append({"workflow": workflow, "server": server, "gpu_seconds": seconds})

    def add_speech(self, *, backend: str, voice: str, characters: int, seconds: float) -> None:
        """Count one spoken line (speech is billed by characters or by seconds)."""
        self._speech.append(
            {"backend": backend, "voice": voice, "characters": characters, "seconds": seconds}
        )

    def summary(self) -> dict[str, Any]:
        """Plain JSON: rows per agent, stage and model, per ComfyUI job, per spoken line; totals.

        A model with no price has ``cost_usd`` None in its rows; the totals add up the
        priced ones and name the others in ``unpriced_models``.
        """
        rows = []
        for (agent, stage, model), tokens in self._tokens.items():
            price = self.prices.get(model)
            cost = (
                None
                if price is None
                else round(
                    (tokens.input_tokens * price.input + tokens.output_tokens * price.output)
                    / 1_000_000,
                    6,
                )
            )
            rows.append(
                {
                    "agent": agent,
                    "stage": stage,
                    "model": model,
                    "calls": tokens.calls,
                    "input_tokens": tokens.input_tokens,
                    "output_tokens": tokens.output_tokens,
                    "cost_usd": cost,
                }
            )
        return {
            "by_agent_stage": rows,
            "comfyui": list(self._jobs),
            "speech": list(self._speech),
            "totals": {
                "llm_calls": sum(row["calls"] for row in rows),
                "input_tokens": sum(row["input_tokens"] for row in rows),
                "output_tokens": sum(row["output_tokens"] for row in rows),
                "cost_usd": round(sum(row["cost_usd"] or 0 for row in rows), 6),
                "unpriced_models": sorted({r["model"] for r in rows if r["cost_usd"] is None}),
                "comfyui_jobs": len(self._jobs),
                "gpu_seconds": round(sum(job["gpu_seconds"] for job in self._jobs), 3),
                "speech_jobs": len(self._speech),
                "speech_characters": sum(line["characters"] for line in self._speech),
                "speech_seconds": round(sum(line["seconds"] for line in self._speech), 3),
            },
        }


_ledgers: ContextVar[tuple[Ledger, ...]] = ContextVar("auteur_ledgers", default=())
_attribution: ContextVar[tuple[str, str] | None] = ContextVar("auteur_attribution", default=None)


@contextmanager
def collect(prices: Mapping[str, ModelPrice]) -> Iterator[Ledger]:
    """Open a ledger for the block, pricing models by ``prices`` (``Settings.prices``).

    A ledger already open keeps counting too.
    """
    ledger = Ledger(prices=prices)
    token = _ledgers.set((*_ledgers.get(), ledger))
    try:
        yield ledger
    finally:
        _ledgers.reset(token)


@contextmanager
def attribute_to(*, agent: str, stage: str) -> Iterator[None]:
    """Count the model calls inside the block under ``agent`` and ``stage``."""
    token = _attribution.set((agent, stage))
    try:
        yield
    finally:
        _attribution.reset(token)


def record_tokens(*, model: str, input_tokens: int, output_tokens: int) -> None:
    """Count one model call in every open ledger (none outside a run)."""
    agent, stage = _attribution.get() or ("unattributed", "unattributed")
    for ledger in _ledgers.get():
        ledger.add_tokens(
            agent=agent,
            stage=stage,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )


def record_gpu_seconds(workflow: str, seconds: float, server: str) -> None:
    """Count one ComfyUI job's GPU seconds in the run (a no-op outside a run).

    Inside :func:`tools.tracing.comfy_span` the seconds also show on the job's span.
    """
    from tools import tracing  # Langfuse: not for every reader of the settings' prices

    tracing.note_gpu_seconds(seconds)
    for ledger in _ledgers.get():
        ledger.add_gpu_seconds(workflow=workflow, server=server, seconds=seconds)


def record_speech(*, backend: str, voice: str, characters: int, seconds: float) -> None:
    """Count one spoken line in every open ledger (none outside a run)."""
    for ledger in _ledgers.get():
        ledger.add_speech(backend=backend, voice=voice, characters=characters, seconds=seconds)
