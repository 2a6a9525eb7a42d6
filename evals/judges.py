"""LLM-as-judge scorers (openevals), used only when a judge model is given.

The judge is a LangChain chat model from the same :class:`~tools.llm.ModelProvider` the
agents use, so any OpenAI-compatible endpoint works; the offline sample model cannot judge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from openevals.llm import create_async_llm_as_judge

from tools.llm import LLMError, ModelProvider

__all__ = ["JUDGE_PROMPTS", "Judge", "Verdict"]

_BRIEF_ADHERENCE = """You judge whether a screenplay follows the brief it was written from.

<brief>
{inputs}
</brief>

<screenplay>
{outputs}
</screenplay>

Score from 0 to 1: 1 when every person, place, event and rule of the brief is in the
screenplay as the brief describes it and nothing contradicts it; lower for each element
missing, changed or contradicted."""

_FEEDBACK_APPLIED = """You judge whether a revision applies a director's feedback.

<draft_and_feedback>
{inputs}
</draft_and_feedback>

<revision>
{outputs}
</revision>

Answer true when the revision makes the change the feedback asks for and keeps what the
feedback did not ask to change; false otherwise."""

JUDGE_PROMPTS = {"brief_adherence": _BRIEF_ADHERENCE, "feedback_applied": _FEEDBACK_APPLIED}
"""Prompt of each judge metric (openevals templates over ``inputs`` and ``outputs``)."""


@dataclass(frozen=True)
class Verdict:
    """A judge's score and its reasoning."""

    score: float
    reasoning: str


class Judge:
    """The LLM judges of one eval run, all on one model."""

    def __init__(self, provider: ModelProvider, model: str) -> None:
        if provider.offline:
            raise LLMError(
                f"--judge {model} needs an LLM endpoint, and none is configured: set "
                "OPENAI_API_KEY (and OPENAI_BASE_URL for any OpenAI-compatible endpoint)."
            )
        self.model = model
        chat: BaseChatModel = provider.chat_model(agent="judge", task="judge")
        self._brief = create_async_llm_as_judge(
            prompt=_BRIEF_ADHERENCE, judge=chat, feedback_key="brief_adherence", continuous=True
        )
        self._feedback = create_async_llm_as_judge(
            prompt=_FEEDBACK_APPLIED, judge=chat, feedback_key="feedback_applied"
        )

    @staticmethod
    def versions(metrics: list[str]) -> dict[str, list[str]]:
        """The versions of the judge prompts ``metrics`` use, named as prompts in a report."""
        return {
            f"judge/{name}": [hashlib.sha256(JUDGE_PROMPTS[name].encode()).hexdigest()[:12]]
            for name in metrics
            if name in JUDGE_PROMPTS
        }

    async def brief_adherence(self, project: dict[str, Any], script: dict[str, Any]) -> Verdict:
        """How closely ``script`` follows the brief and the project's story rules."""
        brief = {key: project.get(key) for key in ("brief", "story_rules", "written_style")}
        return _verdict(await self._brief(inputs=brief, outputs=script))

    async def feedback_applied(
        self, before: dict[str, Any], feedback: str, after: dict[str, Any]
    ) -> Verdict:
        """Whether ``after`` is ``before`` revised as ``feedback`` asks."""
        inputs = {"draft": before, "feedback": feedback}
        return _verdict(await self._feedback(inputs=inputs, outputs=after))


def _verdict(result: Any) -> Verdict:
    """The score of openevals' ``{"key", "score", "comment"}``; a boolean is 1 or 0."""
    score = result["score"]
    return Verdict(score=float(score), reasoning=str(result.get("comment") or ""))
