"""The offline sample director: a scripted conversation, so the chat runs with no LLM at all.

The script (``evals/datasets/sample_conversation.json``) lists rules: when every word of a
rule is in the person's last message, the model calls the rule's tool with its arguments
(``$said`` is the person's message; ``$brief`` and ``$config`` the sample input's). After a
tool answers, it passes the answer on; anything else gets the script's ``otherwise`` reply,
which says what the offline director understands. Every reply starts with the script's
label, so nobody takes it for a model. Token usage is estimated as the offline sample model
does (four characters a token).
"""

from __future__ import annotations

import json
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from tools.llm import NoModelConfiguredError, estimated_usage
from tools.llm_options import OFFLINE_LLM_TYPE

__all__ = ["ScriptedChatModel"]


class _Rule(BaseModel):
    said: list[str] = Field(min_length=1)
    call: str
    args: dict[str, Any] = Field(default_factory=dict)
    say: str = ""


class _Script(BaseModel):
    label: str
    sample_input: str
    rules: list[_Rule]
    after_tool: str
    otherwise: str


class ScriptedChatModel(BaseChatModel):
    """Plays the sample conversation's side of the director, calling its tools by the script."""

    script: Path
    model_name: str = OFFLINE_LLM_TYPE

    @property
    def _llm_type(self) -> str:
        return OFFLINE_LLM_TYPE

    @cached_property
    def _script(self) -> _Script:
        return _Script.model_validate_json(self.script.read_text(encoding="utf-8"))

    @cached_property
    def _sample(self) -> dict[str, Any]:
        return json.loads((self.script.parent / self._script.sample_input).read_text("utf-8"))

    def bind_tools(
        self, tools: list[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The model with ``tools`` offered: the script may call only those."""
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.bind(tool_names=names, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        script, last = self._script, messages[-1]
        calls: list[dict[str, Any]] = []
        if isinstance(last, ToolMessage):
            text = script.after_tool.format(result=last.text)
        elif isinstance(last, HumanMessage) and (rule := self._rule(last.text)) is not None:
            if rule.call not in kwargs.get("tool_names", [rule.call]):
                raise NoModelConfiguredError(f"the sample conversation calls no tool {rule.call!r}")
            text = rule.say
            args = {k: self._value(v, last.text) for k, v in rule.args.items()}
            calls = [{"name": rule.call, "args": args, "id": f"call_{uuid.uuid4().hex[:24]}"}]
        else:
            text = script.otherwise
        content = f"{script.label} {text}".strip()
        reply = AIMessage(
            content,
            tool_calls=calls,
            usage_metadata=estimated_usage(messages, content),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _rule(self, said: str) -> _Rule | None:
        words = said.lower()
        return next((r for r in self._script.rules if all(w in words for w in r.said)), None)

    def _value(self, value: Any, said: str) -> Any:
        if value == "$said":
            return said
        if isinstance(value, str) and value.startswith("$") and value[1:] in self._sample:
            return self._sample[value[1:]]
        return value
