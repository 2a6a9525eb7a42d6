"""A project worked on by two workflow types, started from the new-run dialog, with its
versioned artifacts, a reopened stage on a branch, a switch back to main, and what a gate
would make stale.

The dialog's workflow types and fields come from the registry (/assistants and each
workflow's input schema), so these steps also check that nothing on screen depends on a
workflow or stage spelled in the client.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import screenshot
from tests.browser.test_web_client import create_sample_project, gate, get


def artifact_row(page: Page, kind: str) -> Locator:
    return page.locator(f"#project-artifacts tr[data-kind={kind}]")


def current_versions(page: Page, project_id: str) -> dict[str, int]:
    listing = get(page, f"/projects/{project_id}/artifacts")
    return {row["kind"]: row["version"] for row in listing["current"]}


@pytest.mark.long
def test_two_workflows_a_reopened_stage_and_a_switch_back(page: Page) -> None:
    # the new-project dialog offers only what a new project can run; its form is the
    # chosen workflow's input schema (script_only: a brief and an optional screenplay)
    page.goto("/")
    page.get_by_role("button", name="New project").click()
    workflow = page.locator("dialog.new-project").get_by_label("Workflow")
    expect(workflow.locator("option[value=script_only]")).to_have_count(1)
    expect(workflow.locator("option[value=extract_assets]")).to_have_count(0)
    page.keyboard.press("Escape")
    project_id = create_sample_project(page, "Two workflows", workflow="script_only")

    # script_only: every gate approved to the end
    for stage in ("treatment", "script", "master_script"):
        gate(page, stage).get_by_role("button", name="Approve").click()
    expect(artifact_row(page, "master_script")).to_have_attribute("data-version", "1")
    expect(page.locator("#workflow-runs tr[data-workflow=script_only]")).to_have_attribute(
        "data-status", "idle"
    )

    # extract_assets on the same project, from the new-run dialog: its own input form
    # (the project's brief prefilled, no screenplay field), starting from the master script
    page.get_by_role("button", name="New run").click()
    dialog = page.locator("dialog.new-run")
    dialog.get_by_label("Workflow").select_option("extract_assets")
    brief = get(page, f"/projects/{project_id}")["brief"]
    expect(dialog.locator("textarea[name=brief]")).to_have_value(brief)
    expect(dialog.locator("[name=script]")).to_have_count(0)
    screenshot(page, "new-run-dialog")
    dialog.get_by_role("button", name="Start run").click()
    expect(dialog).to_have_count(0)
    gate(page, "assets").get_by_role("button", name="Approve").click()
    expect(artifact_row(page, "assets")).to_have_attribute("data-version", "1")

    # the project page lists both workflow runs and the artifacts with their versions
    runs = page.locator("#workflow-runs tbody tr")
    expect(runs).to_have_count(2)
    expect(page.locator("#workflow-runs tr[data-workflow=extract_assets]")).to_have_attribute(
        "data-status", "idle"
    )
    expect(page.locator("#workflow-runs tr[data-workflow=script_only]")).to_have_count(1)
    for kind in ("treatment", "script", "master_script", "assets"):
        expect(artifact_row(page, kind).locator(".version")).to_have_text("v1")
    assert current_versions(page, project_id) == {
        "treatment": 1,
        "script": 1,
        "master_script": 1,
        "assets": 1,
    }
    expect(page.locator("#branches li[data-current=true]")).to_have_attribute("data-branch", "main")
    screenshot(page, "project-artifacts")

    # reopen the master script: a new current branch, and its gate is shown again
    artifact_row(page, "master_script").get_by_role("button", name="Master script").click()
    panel = page.locator("#artifact")
    expect(panel.locator(".version-info")).to_contain_text("v1 on main")
    panel.get_by_role("button", name="Reopen").click()
    branch = page.locator("#branches li[data-current=true]")
    expect(branch).not_to_have_attribute("data-branch", "main")
    expect(branch).to_contain_text("reopened at master script")
    gate(page, "master_script")
    expect(panel.locator("article.artifact[data-state=proposed]")).to_be_visible()
    expect(page.get_by_role("tab", name="Master script")).to_have_attribute("aria-selected", "true")

    # on the branch, feedback rewrites it and the new take is approved: version 2
    before = panel.locator(".screenplay").inner_text()
    page.get_by_label("Message to the agents").fill("Make the whole thing windier.")
    page.get_by_role("button", name="Send").click()
    expect(panel.locator(".screenplay")).not_to_have_text(before)
    screenshot(page, "project-reopened-gate")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve master script").click()
    expect(artifact_row(page, "master_script")).to_have_attribute("data-version", "2")
    # the branch started from the current versions: the assets are there, made from v1
    expect(artifact_row(page, "assets")).to_have_attribute("data-stale", "true")
    expect(panel.locator("details.versions li")).to_have_count(2)

    # switching back to main makes the earlier versions current again
    page.locator("#branches li[data-branch=main]").get_by_role("button", name="Switch").click()
    expect(page.locator("#branches li[data-branch=main]")).to_have_attribute("data-current", "true")
    expect(artifact_row(page, "master_script")).to_have_attribute("data-version", "1")
    expect(artifact_row(page, "assets")).to_have_attribute("data-version", "1")
    assert current_versions(page, project_id)["master_script"] == 1
    screenshot(page, "project-switched-back")

    # a new script_only run on main: a rewritten master script would make the assets stale,
    # the gate says so before it is approved, and the artifacts list after
    page.get_by_role("button", name="New run").click()
    dialog = page.locator("dialog.new-run")
    dialog.get_by_label("Workflow").select_option("script_only")
    dialog.get_by_role("button", name="Start run").click()
    for stage in ("treatment", "script"):
        gate(page, stage).get_by_role("button", name="Approve").click()
    gate(page, "master_script")
    page.get_by_label("Message to the agents").fill("Make the whole thing windier.")
    page.get_by_role("button", name="Send").click()
    master = page.locator(".approval[data-stage=master_script] .stale-warning")
    expect(master).to_have_text("Approving this makes assets v1 stale.")
    screenshot(page, "project-gate-makes-stale")
    gate(page, "master_script").get_by_role("button", name="Approve").click()
    expect(artifact_row(page, "master_script")).to_have_attribute("data-version", "3")
    expect(artifact_row(page, "assets")).to_have_attribute("data-stale", "true")
    expect(artifact_row(page, "assets")).to_contain_text("made from an older master script")
    expect(page.locator("#workflow-runs tbody tr")).to_have_count(3)
