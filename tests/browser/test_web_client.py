"""The web client in a real browser: a production from brief to video, chat feedback, a
reload mid-run, frame candidates, the configuration modal, skip to script.

Each test drives Chromium like a person would (clicks, typing, the keyboard) and checks
the result both on screen and through the API.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import screenshot

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"


# --- helpers ---------------------------------------------------------------------------


def create_sample_project(
    page: Page, name: str, *, screenplay: str | None = None, workflow: str | None = None
) -> str:
    """Create a project from the sample brief in the UI (its first run of ``workflow``, by
    default the dialog's: the one that makes the most); return its id."""
    page.goto("/")
    page.get_by_role("button", name="New project").click()
    dialog = page.locator("dialog.new-project")
    if workflow is not None:
        dialog.get_by_label("Workflow").select_option(workflow)
    dialog.get_by_role("button", name="Use the sample brief").click()
    expect(dialog.locator("textarea[name=brief]")).not_to_have_value("")
    dialog.get_by_label("Name").fill(name)
    if screenplay is not None:
        dialog.get_by_label("Your own screenplay").check()
        dialog.locator("textarea[name=script]").fill(screenplay)
    dialog.get_by_role("button", name="Create and start").click()
    page.wait_for_url(re.compile(r"#/projects/[0-9a-f-]+"))
    return re.search(r"#/projects/([0-9a-f-]+)", page.url).group(1)


def gate(page: Page, stage: str) -> Any:
    """The approval-queue entry of a pending gate, once it is shown."""
    entry = page.locator(f".approval[data-stage={stage}]")
    expect(entry).to_be_visible()
    return entry


def get(page: Page, path: str) -> Any:
    response = page.request.get(path)
    assert response.ok, f"{path}: {response.status} {response.text()}"
    return response.json()


def thread_values(page: Page, project_id: str) -> dict[str, Any]:
    """The project's thread values, the running stage's own laid over them."""
    threads = page.request.post(
        "/threads/search", data={"metadata": {"project_id": project_id}, "limit": 1}
    ).json()
    state = get(page, f"/threads/{threads[0]['thread_id']}/state?subgraphs=true")
    values = dict(state["values"])
    for task in state["tasks"]:
        if task.get("state"):
            values.update(task["state"]["values"])
    return values


def stage_button(page: Page, stage: str) -> Any:
    return page.locator(f"#pipeline button[data-stage={stage}]")


def press_tab_until_focused(page: Page, name: str, *, limit: int = 80) -> None:
    """Reach a control with the keyboard alone (fails if Tab never gets there)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.textContent?.trim()") == name:
            return
    raise AssertionError(f"'{name}' is not reachable with the Tab key")


# --- the journey -----------------------------------------------------------------------


def test_a_production_from_brief_to_video(page: Page) -> None:
    project_id = create_sample_project(page, "Eggs can fly")

    # the treatment gate: the project view opens at it, the pipeline says so
    expect(gate(page, "treatment")).to_contain_text("Eggs Can't Fly")
    expect(stage_button(page, "treatment")).to_have_attribute("data-status", "awaiting")
    expect(stage_button(page, "script")).to_have_attribute("data-status", "not-started")
    screenshot(page, "project-treatment-gate")
    gate(page, "treatment").get_by_role("button", name="Approve").click()

    # the script gate, approved with the keyboard alone
    gate(page, "script")
    page.get_by_role("tab", name="Script", exact=True).click()
    expect(page.locator(".screenplay .scene").first).to_be_visible()
    screenshot(page, "project-script-gate")
    page.locator("body").focus()
    press_tab_until_focused(page, "Approve script")
    page.keyboard.press("Enter")
    expect(stage_button(page, "script")).to_have_attribute("data-status", "approved")

    # feedback in the chat regenerates the master script
    gate(page, "master_script")
    page.get_by_role("tab", name="Master script").click()
    before = page.locator(".screenplay").inner_text()
    page.get_by_label("Message to the agents").fill("Make the whole thing windier.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn.user").last).to_contain_text("Make the whole thing windier.")
    expect(page.locator(".screenplay")).not_to_have_text(before)
    gate(page, "master_script")
    screenshot(page, "project-chat-feedback")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve master script").click()

    # the asset checklist: grouped by kind, looks collapsed, one asset deselected
    gate(page, "assets")
    page.get_by_role("tab", name="Assets").click()
    expect(page.locator("section.kind")).to_have_count(3)
    expect(page.locator("details.looks[open]")).to_have_count(0)
    prop = page.locator("section.kind[data-kind=props] li.asset").first
    prop_id = prop.get_attribute("data-entity")
    prop.get_by_role("checkbox").uncheck()
    screenshot(page, "project-assets-gate")
    page.get_by_role("button", name="Approve assets").click()

    # the reference sheets: one per look of every asset kept; one is skipped
    gate(page, "references")
    page.get_by_role("tab", name="References").click()
    sheets = page.locator("figure.sheet")
    expect(sheets.first).to_be_visible()
    assert not page.locator(f"figure.sheet[data-entity={prop_id}]").count()  # deselected
    skipped = sheets.first.get_attribute("data-entity")
    sheets.first.locator("button.sheet-skip").click()
    expect(page.locator("figure.sheet[data-skipped=true]")).to_have_count(1)
    screenshot(page, "project-references-gate")
    page.get_by_role("button", name="Approve references").click()
    gate(page, "casting")
    approved = thread_values(page, project_id)["references"]["sheets"]
    assert [s["entity"] for s in approved if s["skipped"]] == [skipped]
    page.get_by_role("tab", name="Casting").click()
    page.get_by_role("button", name="Approve casting").click()

    # the shot list as a table
    gate(page, "shots")
    assert prop_id in thread_values(page, project_id)["assets"]["deselected"]
    page.get_by_role("tab", name="Shots").click()
    expect(page.locator("table.shots tbody tr").first).to_be_visible()
    screenshot(page, "project-shots-gate")
    page.get_by_role("button", name="Approve shots").click()
    gate(page, "dialogue")
    page.get_by_role("tab", name="Dialogue").click()
    page.get_by_role("button", name="Approve dialogue").click()

    # a reload while the frames are drawn: the view comes back and the stream resumes
    expect(page.locator("#run-history tr[data-status=running]").first).to_be_visible()
    resumed: list[Request] = []
    page.on(
        "request",
        lambda r: resumed.append(r) if "/stream" in r.url and "/runs/" in r.url else None,
    )
    page.reload()
    expect(page.get_by_role("tab", name="Dialogue")).to_have_attribute("aria-selected", "true")
    frames_gate = gate(page, "frames")
    page.get_by_role("tab", name="Frames").click()
    frame_messages = [r for r in resumed if r.headers.get("last-event-id")]
    if resumed:  # the run was still going when the page came back: it resumed, not replayed
        assert frame_messages, "the run stream was reopened without Last-Event-ID"
    expect(frames_gate).to_contain_text("keyframes")

    # frame candidates: feedback adds new ones, the older one is chosen and accepted
    page.get_by_label("Message to the agents").fill("Warmer light, please.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("figure.carousel[data-candidates='2']").first).to_be_visible()
    # inpainting: brush a mask over the end frame of the first shot, say what goes there
    end_frame = page.locator("figure.carousel").nth(1)
    end_frame.get_by_role("button", name="Inpaint…").click()
    mask = page.get_by_label("Mask: paint over what should change")
    box = mask.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
    page.mouse.up()
    page.get_by_label("Prompt").fill("a red kite in the sky")
    screenshot(page, "project-inpainting")
    page.locator(".inpaint-dialog").get_by_role("button", name="Inpaint", exact=True).click()
    end_frame = page.locator("figure.carousel[data-candidates='3']").first
    expect(end_frame.locator(".note")).to_have_text("inpainted: a red kite in the sky")
    expect(end_frame.get_by_role("button", name="Chosen")).to_be_visible()

    # another reference image for an entity in the first shot redraws the frames it is in
    first_frame = page.locator("figure.carousel").first
    before = int(first_frame.get_attribute("data-candidates"))
    first_frame.locator(".refs button.ref").first.click()
    picker = page.locator(".reference-picker")
    screenshot(page, "project-reference-picker")
    picker.locator(".reference-options button:enabled").first.click()
    first_frame = page.locator(f"figure.carousel[data-candidates='{before + 1}']").first
    expect(first_frame.locator(".note")).to_contain_text("←")

    count = before + 1
    expect(first_frame.locator(".counter")).to_have_text(f"{count} / {count}")
    first_frame.get_by_role("button", name="Previous candidate").click()
    expect(first_frame.locator(".counter")).to_have_text(f"{count - 1} / {count}")
    older = first_frame.locator(".stage-img img").get_attribute("data-key")
    first_frame.get_by_role("button", name="Use this one").click()
    first_frame = page.locator("figure.carousel").first
    expect(first_frame.get_by_role("button", name="Chosen")).to_be_visible()
    screenshot(page, "project-frames-gate")
    page.get_by_role("button", name="Approve frames").click()
    gate(page, "clips")
    frames = thread_values(page, project_id)["frames"]["frames"]
    assert frames[0]["file"]["key"] == older

    # approving the clips assembles the video, and the preview opens by itself
    page.get_by_role("tab", name="Shots").click()
    gate(page, "clips").get_by_role("button", name="Approve").click()
    expect(page.get_by_role("tab", name="Video")).to_have_attribute("aria-selected", "true")
    video = page.locator("#video-preview")
    expect(video).to_be_visible()
    assert (
        page.evaluate(
            "() => new Promise(r => { const v = document.querySelector('#video-preview');"
            " v.readyState >= 1 ? r(v.duration) : v.addEventListener('loadedmetadata',"
            " () => r(v.duration)) })"
        )
        > 0
    )
    expect(stage_button(page, "video")).to_have_attribute("data-status", "approved")
    screenshot(page, "project-video")

    # the projects page shows where the production is
    page.goto("/")
    card = page.locator(".card", has_text="Eggs can fly").first
    expect(card).to_contain_text("done")
    screenshot(page, "projects")


# --- configuration -----------------------------------------------------------------------


def test_the_configuration_modal_merges_the_proposal_and_saves_it(page: Page) -> None:
    project_id = create_sample_project(page, "Configured eggs")
    saved = get(page, f"/projects/{project_id}")["config"]
    gate(page, "treatment")

    # opened from the gate: the proposal over the saved values, nothing saved yet
    page.get_by_role("button", name="Review configuration").click()
    dialog = page.locator("#config-dialog")
    expect(dialog).to_be_visible()
    proposed = page.locator(".proposed-config")
    expect(dialog.get_by_label("Title")).to_have_value("Eggs Can't Fly")
    expect(dialog.get_by_label("Story rules")).to_have_value("\n".join(saved["story_rules"]))
    dialog.locator("textarea[name=visual_style]").fill("Chalk pastels on black paper.")
    expect(dialog.locator(".save-status")).to_have_text("Edited — not saved yet")
    assert get(page, f"/projects/{project_id}")["config"] == saved
    screenshot(page, "configuration-from-gate")
    dialog.get_by_role("button", name="Accept and save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text("Configuration saved")
    gate(page, "treatment").get_by_role("button", name="Approve").click()
    gate(page, "script")
    expect(proposed.get_by_role("button", name="Review configuration")).to_have_count(0)

    config = get(page, f"/projects/{project_id}")["config"]
    assert config["visual_style"] == "Chalk pastels on black paper."
    assert config["title"] == "Eggs Can't Fly"
    assert config["story_rules"] == saved["story_rules"]
    assert thread_values(page, project_id)["project"]["visual_style"] == config["visual_style"]

    # opened from the Configuration tab: edits auto-save, at most once a second
    page.get_by_role("tab", name="Configuration").click()
    page.get_by_role("button", name="Edit configuration").click()
    patches: list[float] = []
    page.on(
        "request",
        lambda r: patches.append(time.monotonic()) if r.method == "PATCH" else None,
    )
    written = dialog.get_by_label("Written style")
    written.fill("")
    started = time.monotonic()
    written.press_sequentially("Dry and terse.")
    typing_s = time.monotonic() - started
    expect(dialog.locator(".save-status")).to_have_text("All changes saved")
    assert 1 <= len(patches) <= 1 + int(typing_s), (len(patches), typing_s)
    assert get(page, f"/projects/{project_id}")["config"]["written_style"] == "Dry and terse."

    # leaving with an unsaved edit asks first
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.type), d.accept()))
    written.press_sequentially(" Really.")
    page.reload()
    assert asked == ["beforeunload"]


def test_skip_to_script_starts_at_the_master_script(page: Page) -> None:
    screenplay = (DATASETS / "screenplay_sample.fountain").read_text()
    project_id = create_sample_project(page, "My own screenplay", screenplay=screenplay)

    gate(page, "master_script")
    expect(stage_button(page, "script")).to_have_attribute("data-status", "approved")
    expect(stage_button(page, "treatment")).to_have_attribute("data-status", "not-started")
    expect(page.get_by_role("tab", name="Master script")).to_have_attribute("aria-selected", "true")
    assert thread_values(page, project_id)["script"]["scenes"]


def test_the_projects_page_lists_each_project_with_its_stage(page: Page) -> None:
    project_id = create_sample_project(page, "Card check")
    gate(page, "treatment")
    page.goto("/")
    card = page.locator(".card", has=page.locator(f"a[href='#/projects/{project_id}']"))
    expect(card.locator(".stage-line")).to_have_text("Treatment")
    expect(card).to_contain_text("awaiting approval")
    card.get_by_role("link").click()
    expect(page.get_by_role("tab", name="Treatment")).to_have_attribute("aria-selected", "true")
    screenshot(page, "projects-page")
