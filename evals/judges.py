"""LLM-as-judge scorers (openevals), used only when a judge model is given.

The judge is a LangChain chat model from the same :class:`~tools.llm.ModelProvider` the
agents use, so any OpenAI-compatible endpoint works; the offline sample model cannot judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from openevals.llm import create_async_llm_as_judge

import prompts
from tools.llm import LLMError, ModelProvider

__all__ = ["JUDGES", "Judge", "Verdict", "judge_prompt"]

JUDGES = ("brief_adherence", "feedback_applied")
"""The judge metrics; each one's prompt is ``prompts/evals/<metric>.md``, an openevals
template over ``{inputs}`` and ``{outputs}`` (so ``auteur prompts push`` manages it too)."""


def judge_prompt(metric: str) -> prompts.PromptSource:
    """The prompt of a judge metric (Langfuse's production version when configured)."""
    return prompts.source(f"evals/{metric}")


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
            prompt=judge_prompt("brief_adherence").text,
            judge=chat,
            feedback_key="brief_adherence",
            continuous=True,
        )
        self._feedback = create_async_llm_as_judge(
            prompt=judge_prompt("feedback_applied").text,
            judge=chat,
            feedback_key="feedback_applied",
        )

    @staticmethod
    def versions(metrics: list[str]) -> dict[str, list[str]]:
        """The versions of the judge prompts ``metrics`` use, named as prompts in a report."""
        return {f"evals/{name}": [judge_prompt(name).version] for name in metrics if name in JUDGES}

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
