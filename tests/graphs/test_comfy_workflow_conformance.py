"""Every ComfyUI workflow in ``comfy_workflows/`` obeys the library contract and runs.

Parametrised over the library itself, so a dropped-in JSON + YAML pair is tested on arrival:
it validates against the recorded ComfyUI 0.33 ``/object_info``, becomes a tool whose schema
matches its metadata, and produces its declared outputs on the ComfyUI test server and on the
draft backend (which refuses, saying so, the workflows that make sound).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.doubles.comfy_server import ComfyServer, object_info_with_models
from tools.comfy import ComfyPool
from tools.comfy_tools import ComfyBackend, DraftMedia, MediaBackend, workflow_tool
from tools.draft_renderer import probe
from tools.sound import to_wav, wav_duration_s
from tools.storage import LocalFileStore
from tools.workflows import WorkflowSpec, load_workflows

SPECS = load_workflows()
NAMES = sorted(SPECS)


def _png(size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _arguments(spec: WorkflowSpec, files: LocalFileStore) -> dict[str, Any]:
    """Small, valid arguments for every input (required ones and sizes)."""
    arguments: dict[str, Any] = {}
    for name, item in spec.inputs.items():
        if item.type in ("image", "mask"):
            data = _png() if item.type == "image" else _png(colour=(255, 255, 255))
            arguments[name] = files.put(data, extension="png", media_type="image/png").key
        elif item.choices:
            arguments[name] = item.choices[-1]
        elif item.type == "string":
            arguments[name] = "a red fox in the snow"
        elif name == "seconds":
            arguments[name] = 1.5
        elif name in ("width", "height"):
            arguments[name] = int(max(item.minimum or 0, 256))
        elif name == "length":
            arguments[name] = 5
        elif item.required:
            arguments[name] = item.default if item.default is not None else item.minimum
    return arguments


def test_library_is_not_empty() -> None:
    assert NAMES


@pytest.mark.parametrize("name", NAMES)
def test_workflow_validates_against_comfyui_object_info(name: str) -> None:
    info = object_info_with_models()

    specs = load_workflows(object_info=info)

    assert specs[name].class_types() <= info.keys()


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_a_tool_with_its_metadata_schema(name: str, tmp_path: Path) -> None:
    spec = SPECS[name]

    tool = workflow_tool(spec, DraftMedia(), LocalFileStore(tmp_path))

    assert tool.name == name
    assert tool.description == spec.description
    schema = tool.args_schema.model_json_schema()
    assert set(schema["properties"]) == set(spec.inputs)
    assert set(schema.get("required", [])) == {n for n, i in spec.inputs.items() if i.required}
    assert spec.search_text()
    assert spec.category


def _check_outputs(spec: WorkflowSpec, result: dict[str, Any], files: LocalFileStore) -> None:
    assert [o["node"] for o in result["outputs"]] == [o.node for o in spec.outputs]
    for output in result["outputs"]:
        data = files.read(output["key"])
        if output["kind"] == "video":
            assert output["media_type"] == "video/mp4"
            assert probe(data).frame_count >= 1
        elif output["kind"] == "audio":
            assert output["media_type"] == "audio/flac"
            assert wav_duration_s(to_wav(data)) > 0.5
        else:
            assert output["media_type"] == "image/png"
            with Image.open(io.BytesIO(data)) as image:
                assert min(image.size) >= 1


@pytest.mark.parametrize("name", NAMES)
async def test_workflow_runs_on_the_comfyui_test_server(
    name: str, comfy_server: ComfyServer, tmp_path: Path
) -> None:
    spec, files = SPECS[name], LocalFileStore(tmp_path)
    pool = ComfyPool([comfy_server.url], timeout_s=60)
    backend: MediaBackend = ComfyBackend(pool)
    try:
        result = await workflow_tool(spec, backend, files).ainvoke(_arguments(spec, files))
    finally:
        await pool.aclose()

    assert comfy_server.jobs == 1
    assert result["workflow"] == name
    assert result["version"] == spec.version
    assert result["server"] == comfy_server.url
    _check_outputs(spec, result, files)


@pytest.mark.parametrize("name", NAMES)
async def test_workflow_runs_on_the_draft_backend(name: str, tmp_path: Path) -> None:
    spec, files = SPECS[name], LocalFileStore(tmp_path)
    if any(output.kind == "audio" for output in spec.outputs):
        # The draft backend makes no sound (the offline film's speech is the draft voice's).
        with pytest.raises(ValueError, match="configure a ComfyUI server"):
            await workflow_tool(spec, DraftMedia(), files).ainvoke(_arguments(spec, files))
        return

    result = await workflow_tool(spec, DraftMedia(), files).ainvoke(_arguments(spec, files))

    _check_outputs(spec, result, files)
