"""The CLI's runs are the API's runs: one queue, one executor, one approval queue.

Real ``auteur`` processes on the test database: a gate reached in the terminal is decided
over HTTP, and ``auteur run`` starts a workflow with the person's own input.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from api.settings import SAMPLE_INPUT
from tests.integration.test_cli import THREAD, auteur, cli_env, demo_without_a_terminal
from tests.servers import APPROVE, auteur_serve, free_port

__all__ = ["cli_env"]

pytestmark = pytest.mark.slow

SAMPLE_BRIEF = json.loads(SAMPLE_INPUT.read_text())["brief"]


@pytest.mark.long
def test_a_gate_reached_by_demo_is_decided_through_the_api(cli_env: dict[str, str]) -> None:
    demo = demo_without_a_terminal(cli_env)
    thread_id = THREAD.search(demo.stdout).group(1)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with auteur_serve(cli_env, port), httpx.Client(base_url=url, timeout=30) as http:
        queue = http.get("/approvals", params={"limit": 200}).json()["items"]
        [gate] = [item for item in queue if item["thread_id"] == thread_id]
        assert gate["stage"] == "treatment"
        assert gate["workflow"] == "full_video"

        thread = http.get(f"/threads/{thread_id}").json()
        assert thread["status"] == "interrupted"
        [interrupt] = [i for items in thread["interrupts"].values() for i in items]
        assert interrupt["id"] == gate["interrupt_id"]
        assert interrupt["value"]["stage"] == "treatment"
        assert thread["values"]["brief"] == SAMPLE_BRIEF

        decided = http.post(f"/approvals/{gate['approval_id']}", json=APPROVE)
        assert decided.status_code == 202, decided.text
        run = decided.json()["run"]
        after = http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join").json()
        assert after["__interrupt__"][0]["value"]["stage"] == "script"
        assert http.get(f"/approvals/{gate['approval_id']}").json()["status"] == "decided"

    listed = auteur("runs", env=cli_env)
    row = next(line for line in listed.stdout.splitlines() if thread_id in line)
    assert "interrupted" in row and "script" in row


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stdout
    assert done.stdout.rstrip().endswith(errors[0])
    return errors[0]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["full_video", "--input", "{bad}"], "invalid full_video input: brief: Field required"),
        (["full_video", "--input", "{missing}"], "cannot read the input"),
        (["nope", "--brief", "Two eggs."], "Invalid assistant: 'nope'"),
        (["full_video", "--brief", "Two eggs.", "--project", "nope"], "no project 'nope'"),
        (["full_video"], "invalid full_video input: brief: Field required"),
        (["full_video", "--brief", "x", "--input", "{bad}"], "either --brief TEXT or --input"),
    ],
)
def test_run_refuses_what_it_cannot_start_in_one_line(
    args: list[str], said: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"script": "no brief"}))
    paths = {"{bad}": str(bad), "{missing}": str(tmp_path / "missing.json")}
    done = auteur("run", *[paths.get(arg, arg) for arg in args], env=cli_env)
    assert said in _one_error_line(done)
