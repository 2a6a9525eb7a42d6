"""Loading and validating the ComfyUI workflow library (``tools/workflows.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.doubles.comfy_server import object_info_with_models
from tools.comfy_tools import args_schema
from tools.workflows import (
    COMFY_WORKFLOWS,
    WorkflowError,
    load_workflows,
    validate_against_object_info,
)

REQUIRED_CATEGORIES = {
    "asset_sheet",
    "scene_instance",
    "keyframe",
    "keyframe_pair",
    "image_to_video",
    "inpaint",
    "upscale",
    "text_to_speech",
    "text_to_audio",
}


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        for suffix in (".json", ".yaml"):
            shutil.copy(COMFY_WORKFLOWS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path


def test_the_library_covers_every_production_task() -> None:
    specs = load_workflows(object_info=object_info_with_models())

    assert {spec.category for spec in specs.values()} >= REQUIRED_CATEGORIES
    for name, spec in specs.items():
        assert spec.name == name
        assert spec.source == COMFY_WORKFLOWS / f"{name}.json"
        assert len(spec.version) == 64
        assert name.replace("_", " ") in spec.search_text()
        assert spec.description in spec.search_text()


def test_version_changes_when_json_or_metadata_changes(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    before = load_workflows(folder)["upscale_image"].version

    meta = folder / "upscale_image.yaml"
    meta.write_text(meta.read_text().replace("Upscaling:", "Upscaling (sharp):"))
    after_meta = load_workflows(folder)["upscale_image"].version
    graph = json.loads((folder / "upscale_image.json").read_text())
    graph["4"]["inputs"]["upscale_method"] = "bicubic"
    (folder / "upscale_image.json").write_text(json.dumps(graph))
    after_json = load_workflows(folder)["upscale_image"].version

    assert len({before, after_meta, after_json}) == 3


def test_input_mapped_to_a_missing_field_names_the_file(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    meta.write_text(meta.read_text().replace("field: scale_by", "field: scale"))

    with pytest.raises(WorkflowError, match=r"upscale_image\.yaml.*'scale_by'.*no input 'scale'"):
        load_workflows(folder)


def test_input_mapped_to_a_missing_node_names_the_file(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    meta.write_text(
        meta.read_text().replace('{node: "4", field: scale_by', '{node: "99", field: scale_by')
    )

    with pytest.raises(WorkflowError, match=r"upscale_image\.yaml.*node '99'"):
        load_workflows(folder)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not readable JSON"),
        ('{"1": {"inputs": {}}}', "API format"),
        ("[]", "API format"),
        ('{"1": {"class_type": "SaveImage", "inputs": {"images": ["7", 0]}}}', "missing node '7'"),
    ],
)
def test_broken_json_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    folder = _copy(tmp_path, "upscale_image")
    (folder / "upscale_image.json").write_text(content)

    with pytest.raises(WorkflowError, match=problem) as caught:
        load_workflows(folder)
    assert "upscale_image.json" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("category: upscale", "category: ''", "category"),
        ("type: float", "type: tensor", "type"),
        ("default: 0.5", "default: 'half'", "not of type float"),
        ("default: 0.5", "default: 9.0", "above the maximum"),
        ("outputs:", "extras: 1\noutputs:", "extra"),
        ("name: upscale_image", "name: Upscale Image", "name"),
        ("of: image", "of: scale_by", "output_scale.of 'scale_by' is not an image input"),
        ("by: [4, scale_by]", "by: [4, seed]", "output_scale.by 'seed' is not a number input"),
    ],
)
def test_invalid_metadata_names_the_file(tmp_path: Path, old: str, new: str, problem: str) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    assert old in meta.read_text()
    meta.write_text(meta.read_text().replace(old, new, 1))

    with pytest.raises(WorkflowError, match=problem) as caught:
        load_workflows(folder)
    assert "upscale_image.yaml" in str(caught.value)


def test_output_size_follows_the_declared_scale() -> None:
    upscale = load_workflows()["upscale_image"]

    assert upscale.output_size((320, 180), {}) == (640, 360)  # 4x, then the default 0.5
    assert upscale.output_size((320, 180), {"scale_by": 1}) == (1280, 720)
    assert upscale.output_size((101, 51), {"scale_by": 0.25}) == (101, 51)


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    (folder / "upscale_image.yaml").write_text("name: [unclosed\n")

    with pytest.raises(WorkflowError, match=r"upscale_image\.yaml: not readable YAML"):
        load_workflows(folder)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_file_without_its_pair_fails(tmp_path: Path, suffix: str) -> None:
    folder = _copy(tmp_path, "upscale_image")
    (folder / f"upscale_image{suffix}").unlink()

    with pytest.raises(WorkflowError, match="has no matching"):
        load_workflows(folder)


def test_duplicate_names_fail(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    shutil.copy(folder / "upscale_image.json", folder / "upscale_copy.json")
    shutil.copy(folder / "upscale_image.yaml", folder / "upscale_copy.yaml")

    with pytest.raises(WorkflowError, match="'upscale_image' is also used by"):
        load_workflows(folder)


def test_object_info_check_refuses_unknown_nodes_and_fields(tmp_path: Path) -> None:
    info = object_info_with_models()
    folder = _copy(tmp_path, "upscale_image")
    graph_path = folder / "upscale_image.json"
    graph = json.loads(graph_path.read_text())
    graph["4"]["class_type"] = "NoSuchNode"
    graph_path.write_text(json.dumps(graph))

    load_workflows(folder)  # the JSON alone is consistent
    with pytest.raises(WorkflowError, match=r"NoSuchNode"):
        load_workflows(folder, object_info=info)

    graph["4"]["class_type"] = "ImageScale"  # exists, but has no scale_by input
    graph_path.write_text(json.dumps(graph))
    with pytest.raises(WorkflowError, match=r"lacks required inputs|does not have"):
        load_workflows(folder, object_info=info)


def test_object_info_check_refuses_a_type_mismatch(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    text = meta.read_text().replace("output_scale: {of: image, by: [4, scale_by]}", "")
    meta.write_text(
        text.replace(
            "type: float, default: 0.5, minimum: 0.01, maximum: 1", "type: string, default: 'x'"
        )
    )

    with pytest.raises(WorkflowError, match=r"is string but ImageScaleBy\.scale_by is FLOAT"):
        load_workflows(folder, object_info=object_info_with_models())


def test_object_info_check_refuses_limits_beyond_the_node(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    meta.write_text(meta.read_text().replace("maximum: 1,", "maximum: 80,"))

    with pytest.raises(WorkflowError, match=r"maximum 80\.0 is outside"):
        load_workflows(folder, object_info=object_info_with_models())


def test_image_inputs_must_map_to_a_file_chooser(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    meta = folder / "upscale_image.yaml"
    meta.write_text(
        meta.read_text().replace(
            '{node: "2", field: image, type: image',
            '{node: "5", field: filename_prefix, type: image',
        )
    )

    with pytest.raises(WorkflowError, match="not a file chooser"):
        load_workflows(folder, object_info=object_info_with_models())


def test_a_missing_model_is_refused_naming_file_node_model_and_server(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    nothing_installed = object_info_with_models({})  # as recorded: a server without weights

    with pytest.raises(
        WorkflowError,
        match=r"upscale_image\.json: node 1 \(UpscaleModelLoader\) input 'model_name': model "
        r"file '4x-UltraSharp\.pth' is not installed on http://gpu1:8188 \(installed: none\)",
    ):
        specs = load_workflows(folder)
        validate_against_object_info(
            specs["upscale_image"], nothing_installed, server="http://gpu1:8188"
        )


def test_a_choice_the_server_does_not_offer_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "upscale_image")
    graph_path = folder / "upscale_image.json"
    graph = json.loads(graph_path.read_text())
    graph["4"]["inputs"]["upscale_method"] = "sharpest"
    graph_path.write_text(json.dumps(graph))

    with pytest.raises(WorkflowError, match=r"node 4 \(ImageScaleBy\) input 'upscale_method': "):
        load_workflows(folder, object_info=object_info_with_models())


def _with_format_input(tmp_path: Path, default: str) -> Path:
    folder = _copy(tmp_path, "first_last_frame_to_video")
    meta = folder / "first_last_frame_to_video.yaml"
    meta.write_text(
        meta.read_text().replace(
            "outputs:",
            f'  container: {{node: "15", field: format, type: string, default: {default}}}\n'
            "outputs:",
        )
    )
    return folder


def test_a_string_input_may_map_to_a_combo_field(tmp_path: Path) -> None:
    # SaveVideo.format is declared ["COMFY_DYNAMICCOMBO_V3", {"options": [{"key": "mp4", ...}]}]
    folder = _with_format_input(tmp_path, "mkv")

    spec = load_workflows(folder, object_info=object_info_with_models())[
        "first_last_frame_to_video"
    ]

    assert spec.inputs["container"].default == "mkv"


@pytest.mark.parametrize(
    ("container", "codec", "problem"),
    [
        (
            "mov",
            "h264",
            r"input 'format' \(the default of input 'container'\): 'mov' is not one of the options",
        ),
        ("webm", "h264", r"input 'format\.codec'.*'h264' is not one of the options"),
    ],
)
def test_a_combo_value_the_server_does_not_offer_is_refused(
    tmp_path: Path, container: str, codec: str, problem: str
) -> None:
    folder = _with_format_input(tmp_path, container)
    graph_path = folder / "first_last_frame_to_video.json"
    graph = json.loads(graph_path.read_text())
    graph["15"]["inputs"]["format.codec"] = codec
    graph_path.write_text(json.dumps(graph))

    with pytest.raises(WorkflowError, match=problem):
        load_workflows(folder, object_info=object_info_with_models())


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('- "Verity (en)"', '- "Verity (en)"\n      - "Morgan Freeman (en)"', "'Morgan Freeman"),
        ('default: "Narrator (en)"', 'default: "Sarah (de)"', "not one of the choices"),
    ],
)
def test_listed_choices_must_be_the_servers(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    folder = _copy(tmp_path, "text_to_speech_fish")
    meta = folder / "text_to_speech_fish.yaml"
    assert old in meta.read_text()
    meta.write_text(meta.read_text().replace(old, new, 1))

    with pytest.raises(WorkflowError, match=problem) as caught:
        load_workflows(folder, object_info=object_info_with_models())
    assert "text_to_speech_fish.yaml" in str(caught.value)


def test_listed_choices_are_the_tools_only_values(tmp_path: Path) -> None:
    spec = load_workflows(_copy(tmp_path, "text_to_speech_fish"))["text_to_speech_fish"]

    schema = args_schema(spec)

    assert schema(text="Hello.", voice="Sarah (en)").voice == "Sarah (en)"
    with pytest.raises(ValidationError):
        schema(text="Hello.", voice="Sarah (de)")
