"""What a film maker hit in a whole production (issue 19), each checked the way they met it:
a gate with no valid draft, approval news from another project, the queue's Approve, the
configuration merge, a reload, a lost server and a failed stage, a phone-sized window,
structured editing and what a regeneration changed, frames large enough to judge, the
smaller slips, and the keyboard and axe-core; and one whole production from brief to video
(chat feedback, a reload mid-run, frame candidates, inpainting, another reference), every
screen scanned at both sizes.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, Request, Route, expect

from api.settings import SAMPLE_INPUT, SAMPLE_RECORDINGS
from tests.browser.conftest import ConsoleProblems, accessibility, phone, screenshot
from tests.browser.test_web_client import (
    create_sample_project,
    gate,
    get,
    press_tab_until_focused,
    stage_button,
    thread_values,
)

SAMPLE = json.loads(SAMPLE_INPUT.read_text())
_RECORDED = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]
ERROR_RED = "rgb(217, 54, 54)"


# --- helpers ---------------------------------------------------------------------------


def _png() -> bytes:
    """A small yellow PNG: an image of the film maker's own."""
    buffer = io.BytesIO()
    Image.new("RGB", (90, 60), (240, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def brush(mask: Locator) -> None:
    """Paint a stroke across the middle of an inpainting mask, once its image has loaded."""
    expect(mask).to_have_attribute("data-ready", "true")
    box = mask.bounding_box()
    assert box is not None
    mask.page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    mask.page.mouse.down()
    mask.page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
    mask.page.mouse.up()


def start_over_api(page: Page, name: str, *, config: dict[str, Any], run: bool = True) -> str:
    """A project made over HTTP, with a full_video run of the sample brief (or one with no
    input at all, which fails at once); its id."""
    project = page.request.post(
        "/projects", data={"name": name, "brief": SAMPLE["brief"], "config": config}
    ).json()
    thread = page.request.post(
        "/threads", data={"metadata": {"project_id": project["project_id"]}}
    ).json()
    body: dict[str, Any] = {"assistant_id": "full_video"}
    if run:
        body["input"] = {"brief": SAMPLE["brief"], "config": config}
    started = page.request.post(f"/threads/{thread['thread_id']}/runs", data=body)
    assert started.ok, started.text()
    joined = page.request.get(
        f"/threads/{thread['thread_id']}/runs/{started.json()['run_id']}/join", timeout=120_000
    )
    assert joined.ok, joined.text()
    return project["project_id"]


def approval_posts(page: Page) -> list[Request]:
    """The decisions the page sends from now on."""
    posts: list[Request] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/approvals/" in r.url else None,
    )
    return posts


def record(page: Page, expression: str) -> None:
    """From now on, note the value of a JavaScript expression after every change to the
    view (read back with ``window.seen``): what was on screen, however briefly."""
    page.evaluate(
        """expression => {
        window.seen = [];
        const note = () => window.seen.push(eval(expression));
        new MutationObserver(note).observe(document.querySelector('#view'),
          {subtree: true, childList: true, attributes: true});
        }""",
        expression,
    )


# --- 1. a gate with no valid draft -----------------------------------------------------


def test_a_gate_without_a_valid_draft_says_what_is_wrong(page: Page) -> None:
    def no_draft(route: Route) -> None:
        response = route.fetch()
        answer = response.json()
        for item in answer["items"]:
            item["payload"]["action_requests"][0]["args"] = {}
            item["payload"]["draft_error"] = "the model answered with no options"
            item["payload"]["review_configs"][0]["allowed_decisions"] = ["edit", "reject"]
        route.fulfill(response=response, json=answer)

    page.route(re.compile(r"/approvals\?project_id="), no_draft)
    create_sample_project(page, "No draft")
    panel = page.locator("#artifact")
    for _ in range(2):  # as opened, and reopened at the tab it was left at
        expect(panel.locator(".draft-error")).to_contain_text("the model answered with no options")
        expect(panel.locator(".unreadable")).to_contain_text("is incomplete")
        expect(panel.get_by_role("button", name="Approve treatment")).to_be_disabled()
        expect(page.locator("#view")).not_to_contain_text("Could not load")
        page.reload()
    page.unroute_all(behavior="ignoreErrors")


# --- 2. approval news leaves the view alone -------------------------------------------


def test_news_from_another_project_leaves_unsent_text_focus_and_the_view_alone(
    page: Page,
) -> None:
    project_id = create_sample_project(page, "Half a thought")
    gate(page, "treatment")
    chat = page.get_by_label("Message to the agents")
    chat.fill("Make the egg")
    page.evaluate("window.panelBefore = document.querySelector('#artifact')")
    pending = get(page, "/approvals?limit=200")
    elsewhere = pending["total"] - sum(a["project_id"] == project_id for a in pending["items"])

    start_over_api(page, "Someone else's", config=SAMPLE["config"])
    # the news arrived (at least this one: other tests may be making gates meanwhile)
    page.wait_for_function(
        "n => Number(document.querySelector('.elsewhere')?.textContent.match(/\\d+/)?.[0]"
        " ?? 0) > n",
        arg=elsewhere,
    )
    expect(chat).to_have_value("Make the egg")
    expect(chat).to_be_focused()
    assert page.evaluate("document.querySelector('#artifact') === window.panelBefore")


# --- 3. one meaning of Approve; 10b, h, l ----------------------------------------------


def test_the_queue_approve_sends_what_was_chosen_once(page: Page) -> None:
    bodies: list[dict[str, Any]] = []
    streams: list[str] = []

    def watch(request: Request) -> None:
        if request.method == "POST" and re.search(r"/threads/[^/]+/runs$", request.url):
            bodies.append(request.post_data_json)
        if request.url.split("?")[0].endswith("/stream") and "/runs/" in request.url:
            streams.append(request.url)

    page.on("request", watch)
    project_id = create_sample_project(page, "Option three")
    # 10l: runs ask only for the progress the client reads
    assert [body["stream_mode"] for body in bodies] == [["custom"]]

    gate(page, "treatment")
    page.locator("label.option").nth(2).get_by_role("radio").check()
    record(
        page,
        "[document.querySelector('#pipeline button[data-stage=treatment]')?.dataset.status,"
        " /not started yet/.test(document.querySelector('#artifact')?.textContent)]",
    )
    gate(page, "treatment").get_by_role("button", name="Approve").click()
    gate(page, "script")
    assert thread_values(page, project_id)["treatment"]["chosen"] == 3
    # 10b: approved the moment it was, never "not started" while the script was drafted
    seen = page.evaluate("window.seen")
    assert seen and all(status != "not-started" and not empty for status, empty in seen), seen
    assert streams and all("stream_mode=custom" in url for url in streams), streams

    # 10h: a double click is one decision
    posts = approval_posts(page)
    page.get_by_role("tab", name="Script", exact=True).click()
    page.locator("footer.gate-actions").get_by_role("button", name="Approve script").dblclick()
    gate(page, "master_script")
    assert len(posts) == 1, [p.url for p in posts]
    key = posts[0].headers["idempotency-key"]
    assert not re.search(r"\d{13}", key), key
    expect(page.locator(".toast-item.error")).to_have_count(0)
    expect(stage_button(page, "script")).to_have_attribute("data-status", "approved")


# --- 4. the configuration merge; 10g -----------------------------------------------------


def test_the_proposal_changes_only_what_it_proposes_and_saving_is_not_approving(
    page: Page,
) -> None:
    config = {k: v for k, v in SAMPLE["config"].items() if k != "written_style"}
    project_id = start_over_api(page, "Saved settings", config=config)
    saved = page.request.patch(
        f"/projects/{project_id}", data={"config": {"frame_candidates": 3}}
    ).json()["config"]
    assert saved["frame_candidates"] == 3
    page.goto(f"/#/projects/{project_id}")
    gate(page, "treatment")
    page.get_by_role("button", name="Review configuration").click()
    dialog = page.locator("#config-dialog")
    expect(dialog.get_by_label("Keyframe candidates per frame")).to_have_value("3")
    # the writer proposes a written style (none was saved): that change is marked
    written = dialog.locator("label.field", has=page.locator("textarea[name=written_style]"))
    expect(written).to_have_class(re.compile("proposed-change"))
    expect(written.locator(".change-note")).to_contain_text('saved: ""')
    expect(dialog.locator("label.field", has=page.locator("input[name=title]"))).not_to_have_class(
        re.compile("proposed-change")
    )
    accessibility(page, "configuration from a gate")
    dialog.get_by_role("button", name="Accept and save").click()
    expect(dialog).to_be_hidden()
    config = get(page, f"/projects/{project_id}")["config"]
    assert config["frame_candidates"] == 3
    assert config["written_style"]
    assert [a["stage"] for a in get(page, f"/approvals?project_id={project_id}")["items"]] == [
        "treatment"
    ]

    # 10g: a cleared number is never sent, and said once, in words
    page.get_by_role("tab", name="Configuration").click()
    page.get_by_role("button", name="Edit configuration").click()
    patches = []
    page.on("request", lambda r: patches.append(r) if r.method == "PATCH" else None)
    dialog.get_by_label("Frames per second").fill("")
    expect(dialog.locator(".save-status")).to_contain_text("Not saved — Frames per second")
    page.wait_for_timeout(1500)
    assert patches == []
    expect(page.locator(".toast-item")).to_have_count(0)
    accessibility(page, "configuration modal")


# --- 5. a reload keeps the progress log --------------------------------------------------


def test_a_reload_rebuilds_the_progress_log_from_the_run_events(page: Page) -> None:
    project_id = create_sample_project(page, "Remember me")
    gate(page, "treatment")
    last = get(page, f"/projects/{project_id}/runs")[0]["message"]
    expect(page.locator("#progress-log")).to_contain_text(last)
    page.reload()
    gate(page, "treatment")
    expect(page.locator("#progress-log")).to_contain_text(last)


# --- 6. a lost server, a failed stage; 10f ----------------------------------------------


def test_a_lost_server_is_said_and_a_failed_stage_can_be_resumed(
    page: Page, console: ConsoleProblems
) -> None:
    create_sample_project(page, "Unplugged")
    gate(page, "treatment")
    page.route("**/*", lambda route: route.abort("connectionrefused"))
    page.get_by_label("Message to the agents").fill("Funnier")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".toast-item.error").first).to_contain_text("cannot be reached")
    expect(page.locator("#toast")).not_to_contain_text("Failed to fetch")
    expect(page.locator("#connection")).to_contain_text("Lost the connection")
    running = page.locator(".legend .status-running .dot")
    assert running.evaluate("el => getComputedStyle(el).animationName") == "none"
    page.unroute("**/*")
    expect(page.locator("#connection")).to_be_hidden()
    assert console.forgive("ERR_CONNECTION_REFUSED"), "the server was never missed"

    # a run that fails (no input at all): its stage says so in red and offers a retry
    project_id = start_over_api(page, "Doomed", config=SAMPLE["config"], run=False)
    page.goto(f"/#/projects/{project_id}")
    failed = page.locator("#artifact .placeholder.error")
    expect(failed).to_contain_text("This stage failed")
    assert failed.evaluate("el => getComputedStyle(el).color") == ERROR_RED
    before = len(get(page, f"/projects/{project_id}/runs"))
    page.get_by_role("button", name="Retry from the last checkpoint").click()
    expect(page.locator(".toast-item", has_text="Resumed")).to_be_visible()
    assert len(get(page, f"/projects/{project_id}/runs")) == before + 1
    expect(page.locator("#run-history tbody tr")).to_have_count(before + 1)


# --- 7, 10e, 10i: a phone, the new-project form, loading ------------------------------------


@pytest.mark.long
def test_a_phone_sized_window_shows_everything_in_one_column(page: Page) -> None:
    project_id = create_sample_project(page, "Pocket")
    gate(page, "treatment")
    screenshot(page, "treatment-1280x800")
    phone(page)
    for name, path in (
        ("projects-390x844", "/"),
        ("treatment-390x844", f"/#/projects/{project_id}"),
    ):
        page.goto(path)
        page.locator("#view:not([aria-busy])").wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name}: the page is {width} px wide"
        screenshot(page, name)
        accessibility(page, name)
    approve = page.locator("footer.gate-actions").get_by_role("button", name="Approve treatment")
    box = approve.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.goto("/")
    new = page.get_by_role("button", name="New project")
    box = new.bounding_box()
    assert box and box["x"] + box["width"] <= 390

    # 10e: the screenplay is asked for only once the person says they have one
    new.click()
    dialog = page.locator("dialog.new-project")
    expect(dialog.locator("textarea[name=script]")).to_be_hidden()
    dialog.get_by_label("Your own screenplay").check()
    expect(dialog.locator("textarea[name=script]")).to_be_visible()
    screenshot(page, "new-project-390x844")
    accessibility(page, "new project dialog")


def test_a_slow_load_says_it_is_loading(page: Page) -> None:
    project_id = create_sample_project(page, "Slowly")
    gate(page, "treatment")
    held: list[Route] = []
    page.route(re.compile(r"/projects/[^/]+/runs"), lambda route: held.append(route))
    page.goto("/")
    page.goto(f"/#/projects/{project_id}")
    expect(page.locator("#view[aria-busy=true] .loading")).to_have_text("Loading…")
    assert held
    for route in held:
        route.continue_()
    page.unroute(re.compile(r"/projects/[^/]+/runs"))
    expect(page.locator("#view .loading")).to_have_count(0)
    gate(page, "treatment")


# --- 8, 10a, 10c, 10j: structured editing, what changed, a finished card ------------------


@pytest.mark.long
def test_scripts_are_edited_as_scenes_and_lines_and_changes_are_shown(page: Page) -> None:
    project_id = create_sample_project(page, "Edited by hand", workflow="script_only")

    # the treatments: what feedback changed is shown as the options' lines, not as JSON
    gate(page, "treatment")
    page.get_by_role("tab", name="Treatment", exact=True).click()
    changes = changes_after_feedback(page, "treatment", "Make every option sillier.")
    expect(changes).to_contain_text(re.compile(r"^. 1\. .+ \(.+\)$", re.MULTILINE))
    expect(changes).not_to_contain_text('"logline"')
    # each option's title, logline, tone and synopsis, edited in place
    edit_and_approve(
        page,
        "treatment",
        {
            "Treatment 1 logline": "An egg learns that falling is flying.",
            "Treatment 1 tone": "hopeful",
        },
    )

    # the script: scenes and lines, edited in place
    gate(page, "script")
    first = thread_values(page, project_id)["treatment"]["options"][0]
    assert (first["logline"], first["tone"]) == ("An egg learns that falling is flying.", "hopeful")
    page.get_by_role("tab", name="Script", exact=True).click()
    edit_and_approve(
        page,
        "script",
        {
            "Scene 1 slugline": "EXT. HENHOUSE ROOF - DAWN",
            "Scene 1, line 1 text": "A single egg peers over the edge.",
        },
    )
    gate(page, "master_script")
    script = thread_values(page, project_id)["script"]
    assert script["scenes"][0]["slugline"] == "EXT. HENHOUSE ROOF - DAWN"
    assert script["scenes"][0]["lines"][0]["text"] == "A single egg peers over the edge."

    # feedback twice: the draft stays in view while it is redrawn, and the changes show
    page.get_by_role("tab", name="Master script").click()
    for feedback in ("Make the whole thing windier.", "And a little sadder."):
        page.get_by_label("Message to the agents").fill(feedback)
        record(
            page,
            "[document.querySelector('#artifact article')?.dataset.state,"
            " Boolean(document.querySelector('#artifact .screenplay'))]",
        )
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_label("Message to the agents")).to_have_value("")
        gate(page, "master_script")
        expect(page.locator("#artifact article[data-state=proposed]")).to_be_visible()
        seen = page.evaluate("window.seen")
        assert ["regenerating", True] in seen and all(shown for _, shown in seen), seen
        if feedback.startswith("Make"):
            page.get_by_role("button", name="Changes since the last draft").click()
            diff = page.locator("#artifact section.diff")
            expect(diff).to_contain_text("since the last draft")
            assert diff.locator("ins").count() + diff.locator("del").count() > 0
            accessibility(page, "master script changes")
    messages = page.locator("ol.messages")
    assert messages.evaluate(
        "el => el.scrollHeight > el.clientHeight && "
        "el.scrollTop + el.clientHeight >= el.scrollHeight - 2"
    ), "the chat is not scrolled to its newest message"

    # the master script: a scene's prose, edited in place
    page.locator("footer.gate-actions").get_by_role("button", name="Edit").click()
    page.get_by_label("Scene 1 prose").fill("The wind rises over the coop.")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve master script").click()
    expect(page.locator("#workflow-runs tr[data-workflow=script_only]")).to_have_attribute(
        "data-status", "idle"
    )
    master = get(page, f"/projects/{project_id}/artifacts")["current"]
    prose = next(a for a in master if a["kind"] == "master_script")["data"]["scenes"][0]["prose"]
    assert prose == "The wind rises over the coop."

    # 10a: a finished production's card says so
    page.goto("/")
    card = page.locator(".card", has=page.locator(f"a[href='#/projects/{project_id}']"))
    expect(card.locator(".stage-line")).to_have_text("Finished")


# --- 11: the keyboard ----------------------------------------------------------------------


def test_the_keyboard_reaches_the_stage_tabs_and_chat(page: Page) -> None:
    create_sample_project(page, "Keys")
    gate(page, "treatment")
    page.reload()
    gate(page, "treatment")
    # the first Tab stop skips to the stage
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the stage")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#artifact")).to_be_focused()

    # the tabs: one stop, the arrow keys move
    page.get_by_role("tab", name="Treatment").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Script", exact=True)).to_be_focused()
    expect(page.get_by_role("tab", name="Script", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Configuration")).to_have_attribute("aria-selected", "true")
    assert page.locator("[role=tab][tabindex='0']").count() == 1

    # status in words beside the colours
    expect(stage_button(page, "treatment").locator(".mark")).to_have_text("review")
    expect(stage_button(page, "script").locator(".mark")).to_have_text("to do")

    # the conversation can be reached and scrolled with the keyboard
    page.locator("body").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('ol.messages')"):
            break
    else:
        raise AssertionError("the conversation is not reachable with the Tab key")


# --- 9, 10d, 10k, the shot table, axe-core on every screen at both sizes ------------------


def plays(audio: Any) -> None:
    """The person presses play: the recording loads and time passes in it."""
    audio.scroll_into_view_if_needed()
    audio.evaluate("el => el.play()")
    expect(audio).to_have_js_property("paused", False)
    audio.page.wait_for_function("el => el.currentTime > 0", arg=audio.element_handle())
    audio.evaluate("el => el.pause()")


def both_sizes(page: Page, name: str) -> None:
    """Scan and photograph the screen at 1280 by 800 and at a phone's 390 by 844."""
    accessibility(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"{name}: the page is {width} px wide at 1280"
    screenshot(page, f"{name}-1280x800")
    phone(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{name}: the page is {width} px wide at 390"
    accessibility(page, f"{name} at 390 px")
    screenshot(page, f"{name}-390x844")
    page.set_viewport_size({"width": 1280, "height": 800})


def edit_and_approve(page: Page, stage: str, fields: dict[str, str]) -> None:
    """Open the gate's structured editor, fill in ``fields`` (by label), check it, approve."""
    page.locator("footer.gate-actions").get_by_role("button", name="Edit").click()
    for name, value in fields.items():
        page.get_by_label(name, exact=True).fill(value)
    accessibility(page, f"{stage} editor")
    screenshot(page, f"{stage}-editor")
    words = stage.replace("_", " ")
    page.locator("footer.gate-actions").get_by_role("button", name=f"Approve {words}").click()


def changes_after_feedback(page: Page, stage: str, feedback: str) -> Locator:
    """Send ``feedback`` at the stage's gate and open what the new draft changed."""
    page.get_by_label("Message to the agents").fill(feedback)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_label("Message to the agents")).to_have_value("")
    gate(page, stage)
    expect(page.locator("#artifact article[data-state=proposed]")).to_be_visible()
    page.get_by_role("button", name="Changes since the last draft").click()
    return page.locator("#artifact section.diff pre")


def approve_at(page: Page, stage: str, tab: str) -> None:
    """Open the stage's tab at its gate, scan it, and approve it from the gate's footer."""
    gate(page, stage)
    page.get_by_role("tab", name=tab, exact=True).click()
    expect(
        page.locator(f"#artifact article[data-stage={stage}][data-state=proposed]")
    ).to_be_visible()
    both_sizes(page, f"{stage}-gate")
    page.locator("footer.gate-actions").get_by_role("button", name=f"Approve {tab.lower()}").click()


def scene_row(page: Page, scene: int) -> Locator:
    """A scene of the project's scene navigator."""
    return page.locator(f"#scene-navigator li.scene-row[data-scene='{scene}']")


def instance(page: Page, entity: str) -> Locator:
    """The figure of an asset at the instances gate."""
    return page.locator(f"#artifact figure.instance[data-entity={entity}]")


def scene_1_instances(page: Page, project_id: str, skipped: str) -> None:
    """Scene 1's instances: each asset from its sheet (the skipped sheet's asset has none),
    feedback naming Dora draws her alone again, Pip's sheet is used as is."""
    entry = gate(page, "instances")
    expect(entry.locator(".approval-head strong")).to_have_text("Scene 1 · Instances")
    page.get_by_role("tab", name="Instances").click()
    expect(page.locator("#artifact article h2")).to_have_text("Scene 1 · Instances")
    expect(page.locator(".stage-line")).to_have_text("Scene 1 · Instances")
    # the scene navigator: both scenes of the sample, scene 1's instances waiting
    expect(page.locator("#scene-navigator li.scene-row")).to_have_count(2)
    expect(scene_row(page, 1).locator("button[data-stage=instances]")).to_have_attribute(
        "data-status", "awaiting"
    )
    expect(scene_row(page, 2).locator("button[data-status=not-started]")).to_have_count(5)
    expect(page.locator("#artifact figure.instance")).to_have_count(3)
    expect(instance(page, skipped)).to_have_attribute("data-skipped", "true")
    expect(instance(page, skipped).locator(".no-image")).to_be_visible()
    expect(page.locator(".rear-view")).to_have_count(0)  # nothing comes before scene 1
    pip = instance(page, "pip")
    expect(pip.locator(".instance-reference")).to_contain_text("reference sheet (bobble hat)")

    # feedback naming Dora, from her figure through the chat: only she is drawn again
    instance(page, "dora").get_by_role("button", name="Feedback on Dora…").click()
    chat = page.get_by_label("Message to the agents")
    expect(chat).to_be_focused()
    expect(chat).to_have_value("Dora: ")
    chat.press("End")
    chat.press_sequentially("flour on her apron")
    page.get_by_role("button", name="Send").click()
    expect(instance(page, "dora")).to_have_attribute("data-candidates", "2")
    expect(pip).to_have_attribute("data-candidates", "1")
    expect(instance(page, "dora").locator(".note")).to_contain_text("flour on her apron")

    # Pip's sheet as it is: chosen without drawing anything
    pip.get_by_role("button", name="Use as is").click()
    expect(pip.get_by_role("button", name="Use as is")).to_have_attribute("aria-pressed", "true")
    expect(pip.locator(".candidates button.thumb")).to_have_attribute("aria-pressed", "false")
    both_sizes(page, "instances-gate")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve instances").click()
    gate(page, "shots")
    values = thread_values(page, project_id)
    approved = {i["entity"]: i for i in values["instances"]["instances"]}
    sheet = next(s for s in values["references"]["sheets"] if s["entity"] == "pip")
    assert approved["pip"]["file"]["key"] == sheet["file"]["key"]
    assert approved[skipped]["file"] is None
    assert all(not i["candidates"] and not i["history"] for i in approved.values())


def scene_2(page: Page, project_id: str) -> None:
    """Scene 2: Pip is drawn from his scene 1 instance, Dora (a new look) from her raincoat's
    sheet and given her scene 1 image back from her history; the rear view shows both as
    scene 1 left them; every other gate of the scene is approved from the queue."""
    # the project's card says where it is (its progress names no shot: the thread's scene)
    gate(page, "instances")
    page.goto("/")
    card = page.locator(".card", has=page.locator(f"a[href='#/projects/{project_id}']"))
    expect(card.locator(".stage-line")).to_have_text("Scene 2 · Instances")
    screenshot(page, "projects-scene-2")
    page.goto(f"/#/projects/{project_id}")
    entry = gate(page, "instances")
    expect(entry.locator(".approval-head strong")).to_have_text("Scene 2 · Instances")
    page.get_by_role("tab", name="Instances").click()
    expect(page.locator("#artifact article h2")).to_have_text("Scene 2 · Instances")
    expect(scene_row(page, 1).locator("button[data-status=approved]")).to_have_count(5)
    expect(scene_row(page, 2).locator("button[data-stage=instances]")).to_have_attribute(
        "data-status", "awaiting"
    )
    pip, dora = instance(page, "pip"), instance(page, "dora")
    expect(pip.locator(".instance-reference")).to_contain_text("scene 1 instance (bobble hat)")
    expect(dora.locator(".instance-reference")).to_contain_text("reference sheet (yellow raincoat)")
    # the rear view: each of the scene's assets as scene 1 left it
    rear = page.locator(".rear-view li")
    expect(rear).to_have_count(2)
    assert sorted(rear.evaluate_all("els => els.map(e => e.dataset.entity)")) == ["dora", "pip"]
    expect(page.locator(".rear-view li[data-entity=dora]")).to_contain_text(
        "scene 1 instance (gingham apron)"
    )

    # Dora's history: her scene 1 instance, then her sheets; the scene 1 one is picked
    history = dora.get_by_role("group", name="Earlier images of Dora").get_by_role("button")
    expect(history.first).to_have_accessible_name("scene 1 instance (gingham apron) of Dora")
    history.first.click()
    expect(history.first).to_have_attribute("aria-pressed", "true")
    both_sizes(page, "instances-scene-2-gate")

    # the navigator opens scene 1's part of an approved stage
    scene_row(page, 1).locator("button[data-stage=frames]").click()
    expect(page.locator("#artifact article h2")).to_have_text("Scene 1 · Frames")
    shots = page.locator("#artifact section.shot-frames").evaluate_all(
        "els => els.map(e => e.dataset.shot)"
    )
    assert shots and all(shot.startswith("1") for shot in shots), shots
    screenshot(page, "scene-1-frames-from-the-navigator")
    expect(page).to_have_url(re.compile(r"/frames/1$"))  # a reload shows the same scene
    page.reload()
    expect(page.locator("#artifact article h2")).to_have_text("Scene 1 · Frames")
    page.get_by_role("button", name="Show every scene").click()
    expect(page.locator("#artifact article h2")).to_have_text("Frames")
    expect(page).to_have_url(re.compile(r"/frames$"))

    page.get_by_role("tab", name="Instances").click()
    page.locator("footer.gate-actions").get_by_role("button", name="Approve instances").click()
    for stage in ("shots", "dialogue"):
        entry = gate(page, stage)
        expect(entry.locator(".approval-head strong")).to_have_text(f"Scene 2 · {stage.title()}")
        entry.get_by_role("button", name="Approve").click()
    values = thread_values(page, project_id)
    scene_1 = next(
        i for i in values["instances"]["instances"] if i["scene"] == 1 and i["entity"] == "dora"
    )
    scene_2 = next(
        i for i in values["instances"]["instances"] if i["scene"] == 2 and i["entity"] == "dora"
    )
    assert scene_2["file"]["key"] == scene_1["file"]["key"]

    # scene 2's frames: the rear view shows the scene 1 instances they may be drawn from
    gate(page, "frames")
    page.get_by_role("tab", name="Frames").click()
    expect(page.locator("#artifact article h2")).to_have_text("Scene 2 · Frames")
    expect(page.locator(".stage-line")).to_have_text("Scene 2 · Frames")
    shots = page.locator("#artifact section.shot-frames").evaluate_all(
        "els => els.map(e => e.dataset.shot)"
    )
    assert shots and all(shot.startswith("2") for shot in shots), shots
    expect(page.locator(".rear-view li")).to_have_count(2)
    expect(page.locator(".rear-view li[data-entity=pip]")).to_contain_text(
        "scene 1 instance (bobble hat)"
    )
    expect(page.locator(".rear-view li[data-entity=dora]")).to_contain_text(
        "scene 1 instance (gingham apron)"
    )
    both_sizes(page, "frames-scene-2-gate")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve frames").click()
    gate(page, "clips").get_by_role("button", name="Approve").click()


@pytest.mark.long
def test_a_whole_production_judged_at_full_size_and_scanned_on_every_screen(page: Page) -> None:
    """One production from brief to video, every gate decided the way a person would, every
    screen scanned and photographed at both sizes."""
    page.goto("/")
    page.get_by_role("button", name="New project").click()
    accessibility(page, "new project dialog")
    page.keyboard.press("Escape")
    project_id = create_sample_project(page, "Eggs can fly")

    # the treatment gate: the project view opens at it, the pipeline says so
    expect(gate(page, "treatment")).to_contain_text("Eggs Can't Fly")
    expect(stage_button(page, "treatment")).to_have_attribute("data-status", "awaiting")
    expect(stage_button(page, "script")).to_have_attribute("data-status", "not-started")
    page.get_by_role("tab", name="Treatment", exact=True).click()
    both_sizes(page, "treatment-gate")
    gate(page, "treatment").get_by_role("button", name="Approve").click()

    # the script gate, approved with the keyboard alone
    gate(page, "script")
    page.get_by_role("tab", name="Script", exact=True).click()
    expect(page.locator(".screenplay .scene").first).to_be_visible()
    both_sizes(page, "script-gate")
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
    approve_at(page, "master_script", "Master script")

    # the asset checklist: grouped by kind, looks collapsed, one asset deselected
    gate(page, "assets")
    page.get_by_role("tab", name="Assets").click()
    # feedback once: what changed is shown as each asset's and look's lines, not as JSON
    changes = changes_after_feedback(page, "assets", "Give Pip a scarf.")
    expect(changes).to_contain_text(re.compile(r"^. Pip, bobble hat: .+$", re.MULTILINE))
    expect(changes).not_to_contain_text('"description"')
    page.get_by_role("button", name="Changes since the last draft").click()
    expect(page.locator("section.kind")).to_have_count(3)
    expect(page.locator("details.looks[open]")).to_have_count(0)
    prop = page.locator("section.kind[data-kind=props] li.asset").first
    prop_id = prop.get_attribute("data-entity")
    prop.get_by_role("checkbox").uncheck()
    # names and descriptions edited in place, beside the choice of what to pre-generate
    page.locator("footer.gate-actions").get_by_role("button", name="Edit").click()
    page.get_by_label("Pip description", exact=True).fill("A small brown egg with a chipped top.")
    page.get_by_label("Pip bobble hat description").fill("A mustard bobble hat, a size too big.")
    accessibility(page, "assets editor")
    screenshot(page, "assets-editor")
    approve_at(page, "assets", "Assets")

    # the reference sheets: one per look of every asset kept; a region of one is inpainted,
    # another is skipped
    gate(page, "references")
    page.get_by_role("tab", name="References").click()
    sheets = page.locator("figure.sheet")
    expect(sheets.first).to_be_visible()
    assert not page.locator(f"figure.sheet[data-entity={prop_id}]").count()  # deselected
    painted = sheets.nth(1).get_attribute("data-entity")
    sheets.nth(1).get_by_role("button", name="Inpaint…").click()
    brush(page.get_by_label("Mask: paint over what should change"))
    page.get_by_label("Prompt").fill("a striped scarf")
    page.locator(".inpaint-dialog").get_by_role("button", name="Inpaint", exact=True).click()
    inpainted = page.locator(f"figure.sheet[data-entity={painted}][data-candidates='2']").first
    expect(inpainted.locator(".note")).to_have_text("inpainted: a striped scarf")
    # an image of one's own for Dora's raincoat: the model describes it, the merge is chosen
    raincoat = "figure.sheet[data-entity=dora][data-look='yellow raincoat']"
    with page.expect_file_chooser() as chooser:
        page.locator(raincoat).get_by_role("button", name="Use my image…").click()
    chooser.value.set_files({"name": "dora.png", "mimeType": "image/png", "buffer": _png()})
    merged = page.locator(f"{raincoat} [data-option=merged]")
    expect(merged).to_be_visible()
    merged.get_by_role("button", name="Use the merged description").click()
    expect(merged.get_by_role("button")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "references-own-image")
    # the kitchen is skipped: it is in scene 1 alone, and Pip keeps his look into scene 2
    skipped = "carton_kitchen"
    page.locator(f"figure.sheet[data-entity={skipped}] button.sheet-skip").click()
    expect(page.locator("figure.sheet[data-skipped=true]")).to_have_count(1)
    approve_at(page, "references", "References")

    # casting: a voice per speaker, heard, one swapped; approving sends the swap
    gate(page, "casting")
    approved = thread_values(page, project_id)["references"]["sheets"]
    assert [s["entity"] for s in approved if s["skipped"]] == [skipped]
    own = next(s for s in approved if (s["entity"], s["look"]) == ("dora", "yellow raincoat"))
    assert own["description"] == _RECORDED["describe_image"][0]["merged"]
    page.get_by_role("tab", name="Casting").click()
    expect(page.locator("table.cast tbody tr")).to_have_count(2)
    plays(page.get_by_label("Sample of DORA"))
    page.get_by_label("Voice for DORA").select_option("old-woman")
    page.get_by_label("Direction for DORA").fill("dry, unimpressed")
    page.get_by_label("Direction for DORA").press("Tab")
    both_sizes(page, "casting-gate")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve casting").click()

    scene_1_instances(page, project_id, skipped)

    # the shot list: who is in frame by name, and a table of editable cells
    gate(page, "shots")
    values = thread_values(page, project_id)
    assert prop_id in values["assets"]["deselected"]
    pip = next(c for c in values["assets"]["characters"] if c["id"] == "pip")
    assert pip["description"] == "A small brown egg with a chipped top."
    hat = next(look for look in pip["looks"] if look["name"] == "bobble hat")
    assert hat["description"] == "A mustard bobble hat, a size too big."
    entities = {
        e["id"]: e["name"]
        for kind in ("characters", "locations", "props")
        for e in values["assets"][kind]
    }
    page.get_by_role("tab", name="Shots").click()
    cells = page.locator("table.shots td.in-frame").all_inner_texts()
    assert any(name in " ".join(cells) for name in entities.values()), cells
    slugs = [i for i in entities if "_" in i]  # ids no name could be mistaken for
    assert not any(slug in " ".join(cells) for slug in slugs), cells
    page.locator("footer.gate-actions").get_by_role("button", name="Edit").click()
    first = page.locator("table.shots.editing tbody tr").first
    shot = first.get_attribute("data-shot")
    page.get_by_label(f"Shot {shot} action").fill("One egg waddles to the edge of the table.")
    both_sizes(page, "shots-editor")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve shots").click()

    # the dialogue: each line heard, one spoken again as directed, then approved
    gate(page, "dialogue")
    page.get_by_role("tab", name="Dialogue").click()
    line = page.locator("li.line[data-line='1B-1']")
    expect(line).to_contain_text("DORA")
    plays(line.locator("audio"))
    before = line.locator("audio").get_attribute("data-key")
    line.get_by_label("Direction for line 1B-1").fill("angrier")
    line.get_by_role("button", name="Speak again").click()
    expect(line).to_contain_text("directed: dry, unimpressed; 1B-1: angrier")
    assert line.locator("audio").get_attribute("data-key") != before
    both_sizes(page, "dialogue-gate")
    page.locator("footer.gate-actions").get_by_role("button", name="Approve dialogue").click()

    # a reload while the frames are drawn: the view comes back and the stream resumes
    expect(page.locator("#run-history tr[data-status=running]").first).to_be_visible()
    resumed: list[Request] = []
    page.on(
        "request",
        lambda r: resumed.append(r) if "/stream" in r.url and "/runs/" in r.url else None,
    )
    page.reload()
    expect(page.get_by_role("tab", name="Dialogue")).to_have_attribute("aria-selected", "true")
    expect(gate(page, "frames")).to_contain_text("keyframes")
    if resumed:  # the run was still going when the page came back: it resumed, not replayed
        assert [r for r in resumed if r.headers.get("last-event-id")], (
            "the run stream was reopened without Last-Event-ID"
        )
    spoken = thread_values(page, project_id)["dialogue"]["lines"]
    dora = [x for x in spoken if x["speaker"] == "DORA"]
    assert {x["voice"] for x in dora} == {"old-woman"}
    assert [x["id"] for x in spoken if "angrier" in x["direction"]] == ["1B-1"]
    shots = thread_values(page, project_id)["shots"]["shots"]
    assert next(s for s in shots if s["id"] == shot)["action"] == (
        "One egg waddles to the edge of the table."
    )

    # the frames: big enough, every candidate side by side, any image large, two compared
    page.get_by_role("tab", name="Frames").click()
    page.get_by_label("Message to the agents").fill("Warmer light, please.")
    page.get_by_role("button", name="Send").click()
    frame = page.locator("figure.carousel[data-candidates='2']").first
    expect(frame).to_be_visible()
    assert frame.bounding_box()["width"] >= 600
    thumbs = frame.locator(".candidates button.thumb")
    expect(thumbs).to_have_count(2)
    thumbs.first.click()
    expect(frame.locator(".counter")).to_have_text("1 / 2")
    assert all(
        box["width"] >= 56 for box in (i.bounding_box() for i in page.locator(".refs img").all())
    )
    expect(page.locator("#artifact article h2")).to_have_text("Scene 1 · Frames")
    expect(page.locator(".rear-view")).to_have_count(0)  # nothing comes before scene 1
    both_sizes(page, "frames-gate")

    frame.locator("button.stage-img").click()
    large = page.locator("dialog.lightbox img.large")
    expect(large).to_be_visible()
    assert large.bounding_box()["width"] > 900
    accessibility(page, "a frame opened large")
    page.locator("dialog.lightbox").get_by_role("button", name="Close").click()

    frame.get_by_role("button", name="Compare…").click()
    left = page.locator("dialog.compare figure[data-side=left] img")
    right = page.locator("dialog.compare figure[data-side=right] img")
    expect(left).to_be_visible()
    assert left.bounding_box()["x"] < right.bounding_box()["x"]
    assert left.bounding_box()["y"] == right.bounding_box()["y"]
    assert left.get_attribute("data-key") != right.get_attribute("data-key")
    accessibility(page, "two candidates compared")
    page.locator("dialog.compare").get_by_role("button", name="Close").click()

    # 10d: a toast over an open modal is seen, not hidden under its backdrop
    frame.get_by_role("button", name="Inpaint…").click()
    page.locator(".inpaint-dialog").get_by_label("Prompt").fill("a kite")
    page.locator(".inpaint-dialog").get_by_role("button", name="Inpaint", exact=True).click()
    toast = page.locator(".toast-item.error").last
    expect(toast).to_contain_text("Paint over")
    box = toast.bounding_box()
    assert toast.evaluate(
        "(el, [x, y]) => el.contains(document.elementFromPoint(x, y))",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    ), "the toast is under the modal"
    accessibility(page, "inpaint dialog")
    page.locator(".inpaint-dialog").get_by_role("button", name="Cancel").click()

    # inpainting: brush a mask over the end frame of the first shot, say what goes there
    end_frame = page.locator("figure.carousel").nth(1)
    end_frame.get_by_role("button", name="Inpaint…").click()
    brush(page.get_by_label("Mask: paint over what should change"))
    page.get_by_label("Prompt").fill("a red kite in the sky")
    screenshot(page, "project-inpainting")
    page.locator(".inpaint-dialog").get_by_role("button", name="Inpaint", exact=True).click()
    end_frame = page.locator("figure.carousel[data-candidates='3']").first
    expect(end_frame.locator(".note")).to_have_text("inpainted: a red kite in the sky")
    expect(end_frame.get_by_role("button", name="Chosen")).to_be_visible()

    # another reference image for an entity in the first shot redraws the frames it is in
    first_frame = page.locator("figure.carousel").first
    before_count = int(first_frame.get_attribute("data-candidates"))
    first_frame.locator(".refs button.ref").first.click()
    accessibility(page, "reference picker")
    page.locator(".reference-picker .reference-options button:enabled").first.click()
    count = before_count + 1
    first_frame = page.locator(f"figure.carousel[data-candidates='{count}']").first
    expect(first_frame.locator(".note")).to_contain_text("←")
    expect(first_frame.locator(".counter")).to_have_text(f"{count} / {count}")
    first_frame.get_by_role("button", name="Previous candidate").click()
    expect(first_frame.locator(".counter")).to_have_text(f"{count - 1} / {count}")
    older = first_frame.locator(".stage-img img").get_attribute("data-key")
    first_frame.get_by_role("button", name="Use this one").click()
    first_frame = page.locator("figure.carousel").first
    expect(first_frame.get_by_role("button", name="Chosen")).to_be_visible()
    page.locator("footer.gate-actions").get_by_role("button", name="Approve frames").click()
    gate(page, "clips")
    assert thread_values(page, project_id)["frames"]["frames"][0]["file"]["key"] == older

    approve_at(page, "clips", "Clips")

    # scene 2: its instances from scene 1's, then its shots to its clips
    scene_2(page, project_id)

    # approving scene 2's clips assembles the video, and the preview opens by itself
    expect(page.get_by_role("tab", name="Video")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#video-preview")).to_be_visible()
    assert (
        page.evaluate(
            "() => new Promise(r => { const v = document.querySelector('#video-preview');"
            " v.readyState >= 1 ? r(v.duration) : v.addEventListener('loadedmetadata',"
            " () => r(v.duration)) })"
        )
        > 0
    )
    expect(stage_button(page, "video")).to_have_attribute("data-status", "approved")
    expect(page.locator("#video-preview track[kind=subtitles]")).to_have_count(1)
    assert page.evaluate(
        "() => new Promise(done => { const t = document.querySelector('#video-preview track');"
        " t.track.mode = 'showing'; const check = () => t.readyState === 2"
        " ? done(t.track.cues.length) : setTimeout(check, 50); check(); })"
    ) == len(thread_values(page, project_id)["dialogue"]["lines"])
    for name in ("OTIO", "FCPXML", "EDL"):
        href = page.get_by_role("link", name=name, exact=True).get_attribute("href")
        assert page.request.get(href).ok, href
    both_sizes(page, "video")
    page.get_by_role("tab", name="Configuration").click()
    both_sizes(page, "configuration")
    page.get_by_role("button", name="New run").click()
    accessibility(page, "new run dialog")
    page.keyboard.press("Escape")

    # the projects page shows where the production is
    page.goto("/")
    expect(page.locator(".card", has_text="Eggs can fly").first).to_contain_text("done")
    both_sizes(page, "projects")
