"""The one settings object: environment variables and ``.env``, nothing else.

Keys are read from the environment only and never logged (they are ``SecretStr``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.llm import ModelProvider

__all__ = ["SAMPLE_INPUT", "SAMPLE_RECORDINGS", "Settings"]

_DATASETS = Path(__file__).resolve().parent.parent / "evals" / "datasets"
SAMPLE_INPUT = _DATASETS / "sample_input.json"
SAMPLE_RECORDINGS = _DATASETS / "sample_responses.json"


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
    llm_timeout_s: float = Field(120, gt=0)
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='API key → user, e.g. AUTEUR_API_KEYS=\'{"k3y": "alice"}\'. Unset = one '
        "local user, and the server binds to 127.0.0.1 only.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8123, ge=0, le=65535)
    worker_concurrency: int = Field(32, ge=1, description="Runs one process executes at once.")
    run_lease_s: float = Field(
        30, gt=0, description="A crashed worker's run is picked up again after this long."
    )

    @property
    def files_dir(self) -> Path:
        """Where generated files are stored (content-addressed)."""
        return self.data_dir / "files"

    @cached_property
    def models(self) -> ModelProvider:
        """The LLM factory these settings describe."""
        return ModelProvider(
            api_key=self.openai_api_key.get_secret_value() if self.openai_api_key else None,
            base_url=self.openai_base_url,
            default_model=self.default_model,
            agent_models=self.agent_models,
            recordings=SAMPLE_RECORDINGS,
            timeout_s=self.llm_timeout_s,
        )
