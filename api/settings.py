"""The one settings object: environment variables and ``.env``, nothing else.

Keys are read from the environment only and never logged (they are ``SecretStr``); every
secret here is redacted from whatever leaves the process (:mod:`tools.redaction`).

Every command reads the settings, so this module imports only what its fields are made of;
the LLM models, the media and speech backends and Langfuse are imported by the properties
that build them (openai, LangChain and Langfuse take seconds to import).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.comfy import ATTEMPTS, BACKOFF_S
from tools.embeddings import EmbeddingModel, EmbeddingsKind, embedding_model
from tools.ledger import ModelPrice
from tools.llm_options import OFFLINE_LLM_TYPE, AgentLLM, RetryPolicy, StructuredOutput
from tools.storage import FileStore, LocalFileStore, S3FileStore

if TYPE_CHECKING:
    from tools.comfy_tools import MediaBackend
    from tools.llm import ModelProvider
    from tools.speech import SpeechBackend
    from tools.tracing import LangfuseConfig

__all__ = ["SAMPLE_INPUT", "SAMPLE_RECORDINGS", "Settings"]

_DATASETS = Path(__file__).resolve().parent.parent / "evals" / "datasets"
SAMPLE_INPUT = _DATASETS / "sample_input.json"
SAMPLE_RECORDINGS = _DATASETS / "sample_responses.json"
SAMPLE_CONVERSATION = _DATASETS / "sample_conversation.json"


class Settings(BaseSettings):
    """Auteur's configuration (``AUTEUR_*`` variables, plus the usual provider names)."""

    model_config = SettingsConfigDict(
        env_prefix="AUTEUR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        Path(".auteur"), description="Embedded database and generated files live here."
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "AUTEUR_DATABASE_URL"),
        description="External Postgres with pgvector; unset = embedded server in data_dir.",
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "AUTEUR_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "AUTEUR_OPENAI_BASE_URL"),
        description="Any OpenAI-compatible endpoint.",
    )
    default_model: str = "gpt-4.1-mini"
    agent_models: dict[str, str] = Field(
        default_factory=dict,
        description='Model per agent, e.g. AUTEUR_AGENT_MODELS=\'{"script_writer": "gpt-4.1"}\'.',
    )
    llm_timeout_s: float = Field(
        120,
        gt=0,
        description="Seconds one LLM call may take; a local model on a CPU may need 300 or more.",
    )
    llm_retries: int = Field(
        3, ge=0, description="Retries of a call after a transient error (5xx, 429, no connection)."
    )
    llm_timeout_retries: int = Field(
        1, ge=0, description="Retries of a call that timed out (each is said as progress)."
    )
    llm_backoff_s: float = Field(
        1.0, ge=0, description="Wait before the first retry, doubling after each one."
    )
    structured_output: StructuredOutput = Field(
        "json_schema",
        description="How models are asked for artifacts: 'json_schema' (the schema as "
        "response_format: OpenAI, vLLM, llama.cpp server, Ollama), 'json_mode' "
        "(response_format json_object, schema in the prompt) or 'prompt' (the prompt alone).",
    )
    model_structured_output: dict[str, StructuredOutput] = Field(
        default_factory=dict,
        description="structured_output per model, e.g. "
        'AUTEUR_MODEL_STRUCTURED_OUTPUT=\'{"my-old-model": "json_mode"}\'.',
    )
    llm_max_tokens: int | None = Field(
        4096, ge=1, description="Most tokens one answer may have (every agent's default)."
    )
    llm_temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature; unset = the endpoint's default."
    )
    agent_llm: dict[str, AgentLLM] = Field(
        default_factory=dict,
        description="max_tokens and temperature per agent, e.g. AUTEUR_AGENT_LLM="
        '\'{"shot_lister": {"max_tokens": 8192, "temperature": 0.2}}\'.',
    )
    llm_concurrency: int = Field(
        8,
        ge=1,
        description="Requests this process sends to the LLM endpoint at once (every run, "
        "agent and scene together); scene-by-scene drafts run this many scenes in parallel.",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='API key → user, e.g. AUTEUR_API_KEYS=\'{"k3y": "alice"}\'. Unset = one '
        "local user, and the server binds to 127.0.0.1 only.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8123, ge=0, le=65535)
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="The largest request body accepted (413 beyond it). The largest legit "
        "bodies are an edited artifact at a gate, and an inpainting mask or an image of the "
        "person's own (the web client sends at most 1024 px a side) posted to /files as a PNG "
        "data: URL.",
    )
    max_output_pixels: int = Field(
        7680 * 4320,
        ge=1,
        description="The largest image a workflow run requested through the API or the CLI "
        "may make (8K UHD by default); a request for more is refused before any job is sent.",
    )
    worker_concurrency: int = Field(32, ge=1, description="Runs one process executes at once.")
    run_lease_s: float = Field(
        30, gt=0, description="A crashed worker's run is picked up again after this long."
    )
    comfyui_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ComfyUI servers, comma-separated (AUTEUR_COMFYUI_URLS=http://gpu1:8188,"
        "http://gpu2:8188); unset = the draft backend renders everything on the CPU.",
    )
    comfyui_timeout_s: float = Field(
        600, gt=0, description="Deadline of one ComfyUI job, from its start on the server."
    )
    comfyui_queue_timeout_s: float = Field(
        3600,
        gt=0,
        description="How long a ComfyUI job may wait in a server's queue before it starts.",
    )
    comfyui_attempts: int = Field(ATTEMPTS, ge=1, description="Tries per ComfyUI job.")
    comfyui_backoff_s: float = Field(
        BACKOFF_S,
        ge=0,
        description="Wait before the second try of a ComfyUI job, doubling after each try "
        "(4 s and 5 tries: 4 + 8 + 16 + 32 = 60 s, enough to outlast a server restart).",
    )
    comfyui_slots_per_server: int = Field(
        1,
        ge=1,
        description="Jobs one ComfyUI server runs at once; a production fans its generations "
        "out to servers x (slots + 1) jobs at a time, so each server has its next prompt "
        "queued while the service fetches the last one's output.",
    )
    embeddings: EmbeddingsKind = Field(
        "local",
        description="Workflow discovery embeds with 'local' (the bundled all-MiniLM-L6-v2, int8 "
        "ONNX, offline) or 'openai' (OPENAI_API_KEY, OPENAI_BASE_URL).",
    )
    embeddings_model: str = Field(
        "text-embedding-3-small", description="The OpenAI embedding model (embeddings=openai)."
    )
    speech: Literal["auto", "draft", "openai", "comfyui"] = Field(
        "auto",
        description="Who speaks the dialogue: 'draft' (espeak-ng voices installed with Auteur, "
        "offline), 'openai' (any OpenAI-compatible /v1/audio/speech endpoint), 'comfyui' (the "
        "library's text_to_speech workflow on the ComfyUI servers, found by discovery; needs "
        "AUTEUR_COMFYUI_URLS), or 'auto' (openai when an API key is set, else draft).",
    )
    speech_model: str = Field("gpt-4o-mini-tts", description="The speech model (speech=openai).")
    speech_base_url: str | None = Field(
        None, description="The speech endpoint when it is not OPENAI_BASE_URL's."
    )
    speech_api_key: SecretStr | None = Field(
        None, description="The speech endpoint's key when it is not OPENAI_API_KEY."
    )
    s3_bucket: str | None = Field(
        None, description="Store generated files in this S3 bucket; unset = data_dir/files."
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AUTEUR_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
        description="Any S3-compatible store (MinIO, R2, ...), e.g. http://minio:9000; "
        "unset = AWS S3.",
    )
    s3_region: str | None = Field(
        None, validation_alias=AliasChoices("AUTEUR_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    s3_access_key_id: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AUTEUR_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("AUTEUR_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    s3_prefix: str = Field("", description="Key prefix inside the bucket, e.g. 'auteur/'.")

    @field_validator("comfyui_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
        return value

    langfuse_public_key: str | None = Field(
        None, validation_alias=AliasChoices("LANGFUSE_PUBLIC_KEY", "AUTEUR_LANGFUSE_PUBLIC_KEY")
    )
    langfuse_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LANGFUSE_SECRET_KEY", "AUTEUR_LANGFUSE_SECRET_KEY")
    )
    langfuse_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "LANGFUSE_BASE_URL", "LANGFUSE_HOST", "AUTEUR_LANGFUSE_BASE_URL"
        ),
        description="Langfuse (cloud or self-hosted); with both keys set, runs are traced.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: {
            # OpenAI's list prices, USD per million tokens.
            "gpt-4.1": ModelPrice(input=2.00, output=8.00),
            "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
            "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
            "gpt-4o": ModelPrice(input=2.50, output=10.00),
            "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
        },
        description="USD per million tokens by model, for the cost ledger, e.g. "
        'AUTEUR_MODEL_PRICES=\'{"my-model": {"input": 0.5, "output": 1.5}}\' (replaces the table).',
    )

    def secrets(self) -> list[str]:
        """Every configured secret: each ``SecretStr`` setting's value and the API keys."""
        values = [getattr(self, name) for name in type(self).model_fields]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)] + list(
            self.api_keys
        )

    @property
    def files_dir(self) -> Path:
        """Where generated files are stored (content-addressed)."""
        return self.data_dir / "files"

    @property
    def langfuse(self) -> LangfuseConfig | None:
        """Where to trace runs and keep prompts; None unless both keys and the URL are set."""
        from tools.tracing import LangfuseConfig

        secret = self.langfuse_secret_key.get_secret_value() if self.langfuse_secret_key else ""
        if not (self.langfuse_public_key and secret and self.langfuse_base_url):
            return None
        return LangfuseConfig(
            public_key=self.langfuse_public_key, secret_key=secret, base_url=self.langfuse_base_url
        )

    @property
    def prices(self) -> dict[str, ModelPrice]:
        """The price table for the cost ledger; the offline sample model costs nothing."""
        return {OFFLINE_LLM_TYPE: ModelPrice(input=0, output=0), **self.model_prices}

    @property
    def media_backend(self) -> MediaBackend:
        """ComfyUI on the configured servers, or the draft backend without any."""
        from tools.comfy_tools import media_backend

        return media_backend(
            self.comfyui_urls,
            timeout_s=self.comfyui_timeout_s,
            queue_timeout_s=self.comfyui_queue_timeout_s,
            attempts=self.comfyui_attempts,
            backoff_s=self.comfyui_backoff_s,
            slots_per_server=self.comfyui_slots_per_server,
        )

    @cached_property
    def file_store(self) -> FileStore:
        """Where generated files go: the S3 bucket when one is configured, else files_dir."""
        if self.s3_bucket is None:
            return LocalFileStore(self.files_dir)
        return S3FileStore(
            self.s3_bucket,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            access_key_id=_secret(self.s3_access_key_id),
            secret_access_key=_secret(self.s3_secret_access_key),
            prefix=self.s3_prefix,
        )

    @cached_property
    def speech_backend(self) -> SpeechBackend:
        """Who speaks the dialogue (built once: the draft voice's engine loads once).

        Not for ``speech=comfyui``: that backend runs on the run's media backend and is
        found by workflow discovery, so :func:`api.runs.run_context` builds it.
        """
        from tools.speech import SpeechError, speech_backend

        if self.speech == "comfyui":
            raise SpeechError("speech=comfyui is built with the run's context (run_context)")
        return speech_backend(
            backend=self.speech,
            api_key=_secret(self.speech_api_key or self.openai_api_key),
            base_url=self.speech_base_url or self.openai_base_url,
            model=self.speech_model,
            timeout_s=self.llm_timeout_s,
        )

    @cached_property
    def embedding_model(self) -> EmbeddingModel:
        """What workflow discovery embeds with (built once: the local model loads once)."""
        return embedding_model(
            self.embeddings,
            openai_model=self.embeddings_model,
            api_key=_secret(self.openai_api_key),
            base_url=self.openai_base_url,
            timeout_s=self.llm_timeout_s,
        )

    @cached_property
    def models(self) -> ModelProvider:
        """The LLM factory these settings describe."""
        from tools.llm import ModelProvider

        return ModelProvider(
            api_key=self.openai_api_key.get_secret_value() if self.openai_api_key else None,
            base_url=self.openai_base_url,
            default_model=self.default_model,
            agent_models=self.agent_models,
            recordings=SAMPLE_RECORDINGS,
            conversation=SAMPLE_CONVERSATION,
            timeout_s=self.llm_timeout_s,
            concurrency=self.llm_concurrency,
            structured_output=self.structured_output,
            model_structured_output=self.model_structured_output,
            max_tokens=self.llm_max_tokens,
            temperature=self.llm_temperature,
            agent_llm=self.agent_llm,
            retry=RetryPolicy(
                retries=self.llm_retries,
                timeout_retries=self.llm_timeout_retries,
                backoff_s=self.llm_backoff_s,
            ),
        )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None
