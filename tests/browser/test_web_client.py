"""The web client in a real browser: the configuration modal, skip to script, the projects
page (the whole production from brief to video is in ``test_film_maker_fixes.py``).

Each test drives Chromium like a person would (clicks, typing, the keyboard) and checks
the result both on screen and through the API.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

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
