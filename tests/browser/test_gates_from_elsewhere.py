"""Gates the web client did not start: one reached by ``auteur demo`` in another process,
and those of a ``regenerate_scene`` run on a project whose production was made over HTTP.

The CLI and the server share one database and one files folder, so the demo's gate is in
the approval queue and the server's executor resumes the CLI's thread once it is decided.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from api.settings import SAMPLE_INPUT, Settings
from tests.browser.conftest import screenshot
from tests.browser.test_project_artifacts import artifact_row, current_versions
from tests.browser.test_web_client import gate, get
from tests.integration.test_cli import THREAD, demo_without_a_terminal, embedded_env
from tests.servers import SCENE_REMADE_GATES

PROJECT = re.compile(r"Project: ([0-9a-f-]{36})")
SAMPLE = json.loads(SAMPLE_INPUT.read_text())
APPROVE = {"decisions": [{"type": "approve"}]}


def test_a_gate_the_cli_reached_is_decided_in_the_browser(
    page: Page, web_settings: Settings
) -> None:
    # the demo with no terminal: it stops at the treatment gate and says so (exit 2)
    env = embedded_env() | {
        "AUTEUR_DATA_DIR": str(web_settings.data_dir),
        "DATABASE_URL": str(web_settings.database_url),
    }
    demo = demo_without_a_terminal(env)
    project_id = PROJECT.search(demo.stdout).group(1)
    thread_id = THREAD.search(demo.stdout).group(1)

    # the CLI's owner is the local user, as is everyone at this keyless server: the demo's
    # project is on the projects page, waiting at its treatment
    page.goto("/")
    card = page.locator(".card", has=page.locator(f"a[href='#/projects/{project_id}']"))
    expect(card).to_contain_text("awaiting approval")
    expect(card.locator(".stage-line")).to_have_text("Treatment")
    card.get_by_role("link").click()

    # approved in the browser, the server resumes the CLI's thread: the script gate shows
    expect(gate(page, "treatment")).to_contain_text("Eggs Can't Fly")
    screenshot(page, "cli-demo-gate")
    gate(page, "treatment").get_by_role("button", name="Approve").click()
    expect(gate(page, "script")).to_be_visible()
    pending = get(page, f"/approvals?project_id={project_id}")["items"]
    assert [(a["thread_id"], a["stage"]) for a in pending] == [(thread_id, "script")]
    expect(page.locator("#pipeline button[data-stage=treatment]")).to_have_attribute(
        "data-status", "approved"
    )


# --- regenerate_scene ----------------------------------------------------------------------


def _produce(base_url: str) -> str:
    """A project with its whole production approved over HTTP; its id."""
    with httpx.Client(base_url=base_url, timeout=300) as http:
        project = http.post(
            "/projects",
            json={"name": "One scene again", "brief": SAMPLE["brief"], "config": SAMPLE["config"]},
        )
        assert project.status_code == 201, project.text
        project_id = project.json()["project_id"]
        thread = http.post("/threads", json={"metadata": {"project_id": project_id}}).json()
        thread_id = thread["thread_id"]
        run = http.post(
            f"/threads/{thread_id}/runs",
            json={"assistant_id": "full_video", "input": SAMPLE | {"project_id": project_id}},
        )
        assert run.is_success, run.text
        _join(http, thread_id, run.json()["run_id"])
        while approval := _pending(http, thread_id):
            answer = http.post(f"/approvals/{approval['approval_id']}", json=APPROVE)
            assert answer.status_code == 202, answer.text
            _join(http, thread_id, answer.json()["run"]["run_id"])
        assert http.get(f"/threads/{thread_id}").json()["status"] == "idle"
        return project_id


def _join(http: httpx.Client, thread_id: str, run_id: str) -> None:
    joined = http.get(f"/threads/{thread_id}/runs/{run_id}/join")
    assert joined.is_success, joined.text


def _pending(http: httpx.Client, thread_id: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + 10
    while True:
        items = http.get("/approvals", params={"limit": 200}).json()["items"]
        mine = [a for a in items if a["thread_id"] == thread_id]
        if mine or time.monotonic() > deadline:
            return mine[0] if mine else None
        if http.get(f"/threads/{thread_id}").json()["status"] == "idle":
            return None
        time.sleep(0.05)


REMADE = (
    "master_script",
    "assets",
    "instances",
    "shots",
    "dialogue",
    "frames",
    "clips",
    "video",
)
"""What making scene 2 again makes anew (the cast, from the same script and assets, stays)."""
KEPT = ("treatment", "script", "casting", "references")
"""What it keeps as it was."""


@pytest.mark.long
def test_one_scene_made_again_from_the_new_run_dialog(page: Page, web_url: str) -> None:
    project_id = _produce(web_url)
    before = current_versions(page, project_id)
    # the writing and the references are made once; a per-scene artifact is versioned at
    # each scene's approval (two scenes: version 2 at least)
    once = (*KEPT, "master_script", "assets", "video")
    assert {k: before[k] for k in once} == dict.fromkeys(once, 1)
    assert all(before[k] >= 2 for k in ("instances", "shots", "dialogue", "frames", "clips"))
    page.goto(f"/#/projects/{project_id}")
    for kind, version in before.items():
        expect(artifact_row(page, kind)).to_have_attribute("data-version", str(version))

    # the new-run dialog: regenerate_scene is offered (the project has what it takes), with
    # its own form from the input schema: the scene's number and the notes
    page.get_by_role("button", name="New run").click()
    dialog = page.locator("dialog.new-run")
    dialog.get_by_label("Workflow").select_option("regenerate_scene")
    dialog.locator("input[name=scene]").fill("2")
    dialog.locator("textarea[name=notes]").fill("make the landing a bouncy triumph")
    screenshot(page, "new-run-regenerate-scene")
    dialog.get_by_role("button", name="Start run").click()
    expect(dialog).to_have_count(0)

    # every gate of the run, approved from the approval queue; each says the scene it remakes
    for stage in SCENE_REMADE_GATES:
        entry = gate(page, stage)
        expect(entry.locator(".approval-head strong")).to_have_text(re.compile(r"^Scene 2 · "))
        if stage == "instances":  # the scene navigator says which scene is made again
            scene = page.locator("#scene-navigator li.scene-row[data-scene='2']")
            expect(scene.locator("button[data-stage=instances]")).to_have_attribute(
                "data-status", "awaiting"
            )
        entry.get_by_role("button", name="Approve").click()

    # the scene's artifacts are new versions (the assets too: approved again from the new
    # master script), the writing before it and the references are kept
    for kind in REMADE:
        expect(artifact_row(page, kind)).to_have_attribute("data-version", str(before[kind] + 1))
    for kind in KEPT:
        expect(artifact_row(page, kind)).to_have_attribute("data-version", str(before[kind]))
    # the assets came back unchanged, approved again from the new master script: nothing
    # on the project is made from something older
    expect(page.locator("#project-artifacts tr[data-stale=true]")).to_have_count(0)
    versions = current_versions(page, project_id)
    assert {k: versions[k] for k in KEPT} == {k: before[k] for k in KEPT}
    assert {k: versions[k] for k in REMADE} == {k: before[k] + 1 for k in REMADE}

    # the re-assembled video is shown
    expect(page.get_by_role("tab", name="Video")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#video-preview")).to_be_visible()
    expect(page.locator("#workflow-runs tr[data-workflow=regenerate_scene]")).to_have_attribute(
        "data-status", "idle"
    )
    screenshot(page, "project-scene-regenerated")
