"""Choosing the workflow for a task: discovery's ranking, guarded by category and arguments."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from PIL import Image

import prompts
from graphs.persistence import Persistence
from tools.comfy_tools import _DRAFTS, _storyboard, pick_workflow, stitch
from tools.discovery import WorkflowDiscovery
from tools.embeddings import embedding_model
from tools.workflows import COMFY_WORKFLOWS

KEYFRAME_ARGS = ("prompt", "references", "seed", "width", "height")


@pytest.fixture
def discovery(persistence: Persistence, tmp_path: Path) -> WorkflowDiscovery:
    folder = tmp_path / "catalogue"
    shutil.copytree(COMFY_WORKFLOWS, folder)
    return WorkflowDiscovery(persistence.pool, embedding_model("local"), folder=folder)


async def test_the_category_guards_the_ranking(discovery: WorkflowDiscovery) -> None:
    intent = "make the frame sharper and higher resolution"
    ranked = await discovery.search(intent, k=1)
    assert ranked[0][0].name == "upscale_image"

    spec = await pick_workflow(intent, "keyframe", KEYFRAME_ARGS, discovery)

    assert spec.name == "keyframe_from_references"


async def test_a_workflow_that_cannot_take_the_arguments_is_passed_over(
    discovery: WorkflowDiscovery,
) -> None:
    # A better-described keyframe workflow that needs an input the task does not give.
    intent = "a film keyframe with the character posed like a stick-figure pose image"
    metadata = yaml.safe_load((discovery.folder / "keyframe_from_references.yaml").read_text())
    metadata["name"] = "keyframe_with_pose"
    metadata["description"] = "A film keyframe with the characters posed like a pose image."
    metadata["tags"] = ["keyframe", "pose", "stick figure", "openpose"]
    metadata["inputs"]["pose"] = {"node": "4", "field": "image", "type": "image", "required": True}
    (discovery.folder / "keyframe_with_pose.yaml").write_text(yaml.safe_dump(metadata))
    shutil.copy(
        discovery.folder / "keyframe_from_references.json",
        discovery.folder / "keyframe_with_pose.json",
    )
    assert (await discovery.search(intent, k=1))[0][0].name == "keyframe_with_pose"

    spec = await pick_workflow(intent, "keyframe", KEYFRAME_ARGS, discovery)

    assert spec.name == "keyframe_from_references"
    with pytest.raises(LookupError, match="no ComfyUI workflow of category 'matte'"):
        await pick_workflow(intent, "matte", KEYFRAME_ARGS, discovery)


async def test_without_discovery_the_first_fitting_workflow_by_name() -> None:
    spec = await pick_workflow("anything", "inpaint", ("image", "mask", "prompt"), None)

    assert spec.name == "inpaint_region"


def test_a_draft_keyframe_card_lays_the_prompt_out_in_rows_with_dialogue_and_latest_note() -> None:
    prompt = prompts.render(
        "frame_generator/keyframe",
        position="start",
        shot=SimpleNamespace(
            id="2A",
            size="medium",
            angle="low",
            lens="35mm",
            movement="dolly in",
            dialogue=[SimpleNamespace(speaker="Pip", text="Is it far down?")],
        ),
        description="Pip peers over the edge of the table.",
        entities=[
            SimpleNamespace(
                name="Pip",
                look="raincoat",
                description="A small brown egg.",
                look_description="A yellow raincoat.",
            )
        ],
        project=SimpleNamespace(visual_style="stop-motion", story_rules=["Eggs never fly."]),
        feedback=["make it funnier", "warmer light, please"],
    ).user

    card = _storyboard(prompt, seed=4)

    assert card.title == "Start frame of shot 2A (medium, low, 35mm)."
    assert card.description == "Pip peers over the edge of the table."
    assert card.details == (
        ("Camera move", "dolly in"),
        ("Dialogue", 'Pip: "Is it far down?"'),
        ("Pip (raincoat)", "A yellow raincoat. A small brown egg."),
        ("Rule", "Eggs never fly."),
    )
    assert (card.style, card.note) == ("stop-motion", "warmer light, please")


def test_a_draft_scene_instance_card_shows_the_asset_its_look_the_scene_and_its_reference() -> None:
    prompt = prompts.render(
        "scene_instances/instance",
        entity=SimpleNamespace(name="Pip", description="A small brown egg."),
        look=SimpleNamespace(name="bobble hat", description="A red bobble hat."),
        scene=SimpleNamespace(
            number=2, slugline="EXT. HILLTOP - DAY", prose="Wind flattens the grass."
        ),
        project=SimpleNamespace(visual_style="stop-motion"),
        feedback=["muddier"],
    ).user
    card = _storyboard(prompt, seed=1)
    assert card.title == "Pip (bobble hat) in scene 2: EXT. HILLTOP - DAY"
    assert card.description == "A red bobble hat. A small brown egg."
    assert card.details == (("Scene", "Wind flattens the grass."),)
    assert (card.style, card.note) == ("stop-motion", "muddier")

    reference = _png_of((200, 100), (200, 30, 30))
    [(png, extension)] = _DRAFTS["scene_instance"](
        {"prompt": prompt, "seed": 1, "width": 640, "height": 360, "image": reference}
    )
    with Image.open(io.BytesIO(png)) as image:
        drawn = image.convert("RGB")
    assert extension == "png" and drawn.size == (640, 360)
    assert drawn.getpixel((600, 320)) == (200, 30, 30)  # the reference, inset bottom right
    assert drawn.getpixel((40, 320)) != (200, 30, 30)


def _png_of(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("sizes", "board"),
    [
        ([(1280, 360), (720, 720)], (1280 + 360, 360)),  # down to the lowest, never up
        ([(2048, 1024), (1024, 1024)], (1024 + 512, 512)),  # at most 512 high
    ],
)
def test_a_reference_board_sets_the_images_side_by_side_never_scaled_up(sizes, board):
    colours = [(200, 30, 30), (30, 30, 200)]
    made = Image.open(
        io.BytesIO(stitch([_png_of(s, c) for s, c in zip(sizes, colours, strict=True)]))
    )

    assert made.size == board
    first_width = board[0] - sizes[1][0] * board[1] // sizes[1][1]
    assert made.getpixel((first_width // 2, board[1] // 2)) == colours[0]
    assert made.getpixel((first_width + 10, board[1] // 2)) == colours[1]
