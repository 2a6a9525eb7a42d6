"""How the LLM calls are configured: the value types of the settings, without the LLM stack.

:mod:`api.settings` needs these types to declare its fields, and every command reads the
settings; :mod:`tools.llm` (openai, langchain-openai) is imported only by what calls a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from pydantic import BaseModel, Field

__all__ = ["OFFLINE_LLM_TYPE", "AgentLLM", "RetryPolicy", "StructuredOutput"]

StructuredOutput: TypeAlias = Literal["json_schema", "json_mode", "prompt"]
"""How a model is asked for an artifact, strongest first: the schema as the request's
``response_format`` (constrained output), any JSON object (JSON mode), or the prompt alone."""

OFFLINE_LLM_TYPE = "auteur-offline-sample"
"""The model name of the offline sample model (it costs nothing)."""


class AgentLLM(BaseModel):
    """One agent's request settings; unset ones take the defaults."""

    max_tokens: int | None = Field(None, ge=1, description="Most tokens one answer may have.")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How failed requests are tried again.

    ``retries`` transient errors (5xx, 429, a lost connection) with backoff from
    ``backoff_s``, doubling; ``timeout_retries`` timeouts (a slow model is rarely faster the
    second time, so once at most by default).
    """

    retries: int = 3
    timeout_retries: int = 1
    backoff_s: float = 1.0
