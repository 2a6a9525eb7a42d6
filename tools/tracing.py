"""Langfuse tracing of runs: one trace per run, session = thread, stage names on the spans.

Tracing is on only when :func:`configure` gets a :class:`LangfuseConfig` (all three of the
public key, secret key and base URL). Without one, nothing here creates a Langfuse client,
sends anything or logs anything: every helper is a no-op.

Inside :func:`trace_run`, every LangChain and LangGraph run is traced by the Langfuse
LangChain callback (added through a LangChain configure hook, so the code that streams the
graph passes no callbacks): graph nodes become spans named after them (``draft_script``,
``approve_script``), model calls become generations with their token usage. The run's own
span is the root of the trace, so ComfyUI jobs (:func:`comfy_span`) and gate decisions
(:meth:`RunTrace.gate_decision`) land in the same trace.

Example::

    configure(settings.langfuse)
    with trace_run(thread_id=tid, workflow="full_video", user="alice", name="start") as run:
        await graph.ainvoke(payload, config)
    print(run.url)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.tracers.context import register_configure_hook

from tools.redaction import redact

if TYPE_CHECKING:  # the SDK loads when tracing is turned on: most processes never trace
    from langfuse import Langfuse, LangfuseTool
    from langfuse.langchain import CallbackHandler
    from langfuse.types import MaskOtelSpansParams, MaskOtelSpansResult

__all__ = [
    "LangfuseConfig",
    "RunTrace",
    "client",
    "comfy_span",
    "configure",
    "flush",
    "gate_words",
    "link_prompt",
    "note_gpu_seconds",
    "trace_run",
]


@dataclass(frozen=True)
class LangfuseConfig:
    """Where traces and prompts go; ``secret_key`` is never logged (``repr=False``)."""

    public_key: str
    secret_key: str = field(repr=False)
    base_url: str


_config: LangfuseConfig | None = None
_client: Langfuse | None = None
_handler: ContextVar[CallbackHandler | None] = ContextVar("auteur_langfuse_handler", default=None)
_run: ContextVar[RunTrace | None] = ContextVar("auteur_run_trace", default=None)
_comfy: ContextVar[LangfuseTool | None] = ContextVar("auteur_comfy_span", default=None)
register_configure_hook(_handler, inheritable=True)


def configure(config: LangfuseConfig | None) -> None:
    """Turn tracing on with ``config``, or off with None (the client is created only then).

    The Langfuse SDK keeps one client per public key for the process, so configuring the
    same key twice reuses it.
    """
    global _config, _client
    _config, _client = config, None
    if config is None:
        return
    from langfuse import Langfuse

    _client = Langfuse(
        public_key=config.public_key,
        secret_key=config.secret_key,
        base_url=config.base_url,
        mask_otel_spans=_redact_spans,
    )


def _redact_spans(*, params: MaskOtelSpansParams) -> MaskOtelSpansResult | None:
    """Redact configured secrets from every string attribute before a batch is exported.

    An LLM error quoting the key becomes the observation's status message, and any
    attribute may carry text from outside; see :mod:`tools.redaction`. Span events and the
    OpenTelemetry status cannot be patched here.
    """
    from langfuse.types import MaskOtelSpansResult, OtelSpanPatch

    patches = {}
    for identifier, span in params.spans.items():
        changed = {
            key: clean
            for key, value in span.attributes.items()
            if (clean := _redacted(value)) != value
        }
        if changed:
            patches[identifier] = OtelSpanPatch(set_attributes=changed)
    return MaskOtelSpansResult(span_patches=patches) if patches else None


@cache
def _redacting_handler() -> type[CallbackHandler]:
    """Langfuse's LangChain handler, with configured secrets redacted from error messages.

    An error's message becomes the span's OpenTelemetry status too, which
    :func:`_redact_spans` cannot patch; every error path of the handler asks this method.
    Made on first use, as the SDK is loaded then.
    """
    from langfuse.langchain import CallbackHandler

    class RedactingHandler(CallbackHandler):
        def _get_error_level_and_status_message(
            self, error: BaseException
        ) -> tuple[Literal["DEFAULT", "ERROR"], str]:
            level, message = super()._get_error_level_and_status_message(error)
            return level, redact(message)

    return RedactingHandler


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list):
        return tuple(redact(item) if isinstance(item, str) else item for item in value)
    return value


def client() -> Langfuse | None:
    """The configured Langfuse client, or None when tracing is off."""
    return _client


def flush() -> None:
    """Send everything recorded so far (a short-lived CLI process calls this before exiting)."""
    if _client is not None:
        _client.flush()


@dataclass(frozen=True)
class RunTrace:
    """The trace of one run: its id and URL (None when tracing is off)."""

    trace_id: str | None = None
    url: str | None = None

    def gate_decision(self, stage: str, resume: Any, scene: int | None = None) -> None:
        """Record the person's decision at a gate: an event in the trace, and a score.

        The score (``gate_decision``: approve, edit or reject, with the feedback as its
        comment) lets Langfuse count decisions per stage across runs; a scene cycle's gate
        also says its ``scene``.
        """
        if _client is None or self.trace_id is None:
            return
        decision = _first_decision(resume)
        kind = str(decision.get("type", "unknown"))
        where = {"stage": stage} if scene is None else {"stage": stage, "scene": scene}
        _client.create_event(
            name=f"decision at {gate_words(stage, scene)}",
            input=resume,
            metadata={**where, "decision": kind},
        )
        _client.create_score(
            name="gate_decision",
            value=kind,
            data_type="CATEGORICAL",
            trace_id=self.trace_id,
            comment=decision.get("message"),
            metadata=where,
        )


def gate_words(stage: str, scene: int | None) -> str:
    """A gate as a trace names it: ``frames``, or ``scene 2 frames`` in a scene cycle."""
    return stage if scene is None else f"scene {scene} {stage}"


@contextmanager
def trace_run(
    *,
    thread_id: str,
    workflow: str,
    user: str,
    name: str,
    tags: tuple[str, ...] = (),
    metadata: dict[str, str] | None = None,
) -> Iterator[RunTrace]:
    """Trace everything inside the block as one run of ``workflow`` on ``thread_id``.

    Args:
        thread_id: The thread; it is the Langfuse session, so a thread's runs group.
        workflow: The workflow type; the trace's name and a tag.
        user: Who runs it (the Langfuse user).
        name: The root span's name, e.g. ``start`` or ``decision at script``.
        tags: More trace tags (e.g. ``cli`` or ``api``).
        metadata: Short string values to put on every observation (run id, project).
    """
    if _client is None or _config is None:
        yield RunTrace()
        return
    from langfuse import propagate_attributes

    with (
        _client.start_as_current_observation(as_type="span", name=name) as root,
        propagate_attributes(
            session_id=thread_id,
            user_id=user,
            trace_name=workflow,
            tags=[workflow, *tags],
            metadata={"workflow": workflow, **(metadata or {})},
        ),
    ):
        # Langfuse redirects /trace/<id> to the trace in its project.
        url = f"{_config.base_url.rstrip('/')}/trace/{root.trace_id}"
        run = RunTrace(trace_id=root.trace_id, url=url)
        handler_token = _handler.set(_redacting_handler()(public_key=_config.public_key))
        run_token = _run.set(run)
        try:
            yield run
        finally:
            _run.reset(run_token)
            _handler.reset(handler_token)


@contextmanager
def comfy_span(workflow: str, server: str) -> Iterator[None]:
    """Trace one ComfyUI job as a span of the current run's trace.

    Call :func:`tools.ledger.record_gpu_seconds` inside the block: the job's GPU seconds
    then show on this span as well. Outside a traced run this does nothing.

    Example::

        with comfy_span("flux_keyframe", server.url):
            outputs = await client.run(workflow_json)
            record_gpu_seconds("flux_keyframe", outputs.gpu_seconds, server.url)
    """
    if _client is None or _run.get() is None:
        yield
        return
    with _client.start_as_current_observation(
        as_type="tool",
        name=f"comfyui {workflow}",
        input={"workflow": workflow, "server": server},
        metadata={"workflow": workflow, "server": server},
    ) as span:
        token = _comfy.set(span)
        try:
            yield
        finally:
            _comfy.reset(token)


def note_gpu_seconds(seconds: float) -> None:
    """Put a ComfyUI job's GPU seconds on its span (inside :func:`comfy_span`; else no-op)."""
    if (span := _comfy.get()) is not None:
        span.update(output={"gpu_seconds": seconds}, metadata={"gpu_seconds": seconds})


def link_prompt(name: str, version: int | None) -> Any:
    """A context manager linking the generations inside it to a Langfuse prompt version.

    A no-op when tracing is off or the prompt did not come from Langfuse (``version`` None).
    """
    if _client is None or version is None:
        return nullcontext()
    from langfuse import propagate_attributes

    return propagate_attributes(prompt={"name": name, "version": version})


def _first_decision(resume: Any) -> dict[str, Any]:
    """The first decision of a gate's resume value (``{"decisions": [{...}]}``), or ``{}``.

    A resume bound to its gate (LangGraph's ``{interrupt_id: value}``) is read through.
    """
    if isinstance(resume, dict) and "decisions" not in resume and len(resume) == 1:
        [resume] = resume.values()
    if isinstance(resume, dict):
        decisions = resume.get("decisions")
        if isinstance(decisions, list) and decisions and isinstance(decisions[0], dict):
            return decisions[0]
    return {}
