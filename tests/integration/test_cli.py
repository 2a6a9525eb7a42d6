"""The ``auteur`` command as a person uses it: real processes, real signals, real Postgres."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pexpect
import pytest

from agents.artifacts import Script, ShotList
from api.settings import SAMPLE_RECORDINGS
from graphs.base import load_workflow_types
from graphs.persistence import Persistence
from tests.servers import BEFORE_FRAMES, SCENE_FRAMES
from tools.draft_renderer import probe

pytestmark = pytest.mark.slow

AUTEUR = str(Path(sys.executable).parent / "auteur")
THREAD = re.compile(r"Thread: ([0-9a-f-]{36})")
VIDEO = re.compile(r"Final video: (\S+\.mp4)")
PROMPT = r"\[a\]pprove, \[e\]dit, \[f\]eedback, \[l\]ater"


def embedded_env() -> dict[str, str]:
    """Environment for CLI processes on the embedded defaults: no model, no external DB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTEUR_"))}
    return env | {
        "DATABASE_URL": "",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        "TERM": "dumb",  # plain text: no colour codes between the words the tests look for
    }


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment for CLI processes sharing the test database, with their own files."""
    return embedded_env() | {
        "AUTEUR_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
    }


def auteur(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AUTEUR, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assembled_video(output: str) -> Path:
    match = VIDEO.search(output)
    assert match, output
    path = Path(match.group(1))
    assert probe(path.read_bytes()).frame_count > 0
    return path


async def thread_values(
    persistence: Persistence, thread_id: str, *, stage_agent: bool = False
) -> dict[str, Any]:
    """The thread's values; with ``stage_agent``, those of the agent whose gate is pending."""
    graph = (
        load_workflow_types()
        .get("full_video")()
        .compile(checkpointer=persistence.checkpointer, store=persistence.store)
    )
    config = {"configurable": {"thread_id": thread_id}}
    snapshot = await graph.aget_state(config, subgraphs=stage_agent)
    return snapshot.tasks[0].state.values if stage_agent else snapshot.values


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A scratch folder the embedded server's own system user can reach (not pytest's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="auteur-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.long
def test_demo_twice_on_the_embedded_defaults(open_dir: Path) -> None:
    """The first demo sets the embedded server up; the second starts it again, and another
    command run meanwhile shares it rather than starting its own."""
    tmp_path = open_dir
    env = embedded_env()
    first = subprocess.run(
        [AUTEUR, "demo", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    second = subprocess.Popen(
        [AUTEUR, "demo", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert second.stdout is not None
    seen: list[str] = []
    for line in second.stdout:  # the run has started once its thread is named
        seen.append(line)
        if THREAD.search(line):
            break
    meanwhile = subprocess.run(
        [AUTEUR, "runs"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    seen.extend(second.stdout)
    assert second.wait(timeout=300) == 0, "".join(seen)
    assert meanwhile.returncode == 0, meanwhile.stderr
    assert THREAD.search("".join(seen)).group(1) in meanwhile.stdout
    assert not (tmp_path / ".auteur" / "postgres" / "postmaster.pid").exists()

    threads = []
    for output in (first.stdout, "".join(seen)):
        assert "offline sample model" in output
        threads.append(THREAD.search(output).group(1))
        video = assembled_video(output)
        assert video.is_relative_to(tmp_path / ".auteur" / "files")
        assert "Subtitles (srt): " in output and "Subtitles (vtt): " in output
    assert threads[0] != threads[1]
    data_env = env | {"AUTEUR_DATA_DIR": str(tmp_path / ".auteur")}
    _exports_the_cut(threads[0], data_env, tmp_path)
    listed = auteur("runs", env=data_env)
    assert listed.returncode == 0, listed.stderr
    assert all(t in listed.stdout for t in threads)
    assert listed.stdout.count("idle") == 2  # finished


def _exports_the_cut(thread: str, env: dict[str, str], folder: Path) -> None:
    """``auteur export``: the sample's cut opens in OTIO and through its adapters."""
    recorded = json.loads(SAMPLE_RECORDINGS.read_text())["responses"]["list_scene_shots"][0]
    shots = [shot for scene in recorded.values() for shot in scene["shots"]]
    for fmt in ("otio", "edl"):  # the API's test reads all three formats
        path = folder / f"cut.{fmt}"
        done = auteur("export", thread, "--format", fmt, "--output", str(path), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Cut written: {path}" in done.stdout
        adapter = {"otio": "otio_json", "fcpxml": "fcpx_xml", "edl": "cmx_3600"}[fmt]
        cut = otio.adapters.read_from_string(path.read_text(), adapter)
        [video] = cut.video_tracks()
        clips = list(video.find_clips())
        assert len(clips) == len(shots)
        seconds = [clip.duration().to_seconds() for clip in clips]
        assert seconds == pytest.approx([s["duration_s"] for s in shots], abs=1 / 12)
        if fmt == "otio":
            assert [c.metadata["auteur"]["shot"] for c in clips] == [s["id"] for s in shots]
            spoken = [c for track in cut.audio_tracks() for c in track.find_clips()]
            assert sorted(c.metadata["auteur"]["text"] for c in spoken) == sorted(
                line["text"] for shot in shots for line in shot["dialogue"]
            )
            assert all(Path(c.media_reference.target_url.removeprefix("file://")).exists()
                       for c in clips + spoken)  # fmt: skip
    missing = auteur("export", "no-such-thread", env=env)
    assert missing.returncode == 1 and "no thread 'no-such-thread'" in missing.stdout


def demo_without_a_terminal(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``auteur demo`` with no terminal: it stops at the treatment gate, says so, exits 2."""
    done = subprocess.run(
        [AUTEUR, "demo"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return done


def test_without_a_terminal_demo_stops_at_the_gate_and_says_so(cli_env: dict[str, str]) -> None:
    done = demo_without_a_terminal(cli_env)
    assert "no terminal is attached" in done.stdout
    assert "--auto-approve" in done.stdout


@pytest.mark.long
async def test_kill_mid_stage_then_resume_finishes(
    cli_env: dict[str, str], persistence: Persistence
) -> None:
    demo = subprocess.Popen(
        [AUTEUR, "demo", "--auto-approve"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    assert demo.stdout is not None
    for line in demo.stdout:
        seen.append(line)
        if f"frame 3/{SCENE_FRAMES} done" in line:  # scene 1's keyframes
            demo.send_signal(signal.SIGKILL)
            break
    demo.wait(timeout=30)
    assert demo.returncode == -signal.SIGKILL, "".join(seen)
    thread_id = THREAD.search("".join(seen)).group(1)
    approved_before = await thread_values(persistence, thread_id)
    assert set(approved_before["approved"]) == set(BEFORE_FRAMES)
    assert approved_before["scene"] == 1

    listed = auteur("runs", env=cli_env)
    row = next(line for line in listed.stdout.splitlines() if thread_id in line)
    assert "stopped (resume to continue)" in row
    assert "Scene 1 · frames" in row

    resumed = auteur("resume", thread_id, "--auto-approve", env=cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"continuing thread {thread_id} at frames" in resumed.stdout
    assert "approving script" not in resumed.stdout
    assembled_video(resumed.stdout)
    after = await thread_values(persistence, thread_id)
    for stage in ("script", "assets"):
        assert after[stage] == approved_before[stage]
    shots = ShotList.model_validate(after["shots"])  # scene 1's as approved, then scene 2's
    assert shots.in_scene(1) == ShotList.model_validate(approved_before["shots"])
    assert {shot.scene for shot in shots.shots} == {1, 2}


@pytest.mark.long
async def test_kill_at_a_gate_keeps_every_decision(
    cli_env: dict[str, str], persistence: Persistence
) -> None:
    child = pexpect.spawn(AUTEUR, ["demo"], env=cli_env, encoding="utf-8", timeout=120)
    child.expect(THREAD.pattern)
    thread_id = child.match.group(1)
    child.expect(PROMPT)  # treatment gate
    child.sendline("a")
    child.expect(PROMPT)  # script gate
    child.sendline("f")
    child.expect("Your feedback")
    child.sendline("make it funnier")
    child.expect(PROMPT)  # the regenerated script
    child.sendline("a")
    child.expect(PROMPT)  # master script gate
    child.sendline("a")
    child.expect(PROMPT)  # assets gate
    child.sendline("a")
    child.expect("Approval gate: references")
    child.expect(PROMPT)
    child.sendline("a")
    child.expect("Approval gate: casting")
    child.expect("PIP")  # who speaks, in which voice
    child.expect(PROMPT)
    child.sendline("a")
    child.expect("Approval gate: Scene 1 · instances")
    child.expect(PROMPT)
    child.sendline("a")
    child.expect("Approval gate: Scene 1 · shots")
    child.expect(PROMPT)
    child.sendline("a")
    child.expect("Approval gate: Scene 1 · dialogue")
    child.expect(PROMPT)
    child.sendline("f")
    child.expect("Your feedback")
    child.sendline("1B-1: angrier")
    child.expect("Approval gate: Scene 1 · dialogue")
    child.expect("angrier")  # the line's direction, spoken again
    child.expect(PROMPT)
    child.kill(signal.SIGKILL)
    child.wait()

    at_gate = await thread_values(persistence, thread_id)
    assert at_gate["approved"] == [
        "treatment",
        "script",
        "master_script",
        "assets",
        "references",
        "casting",
        "instances",
        "shots",
    ]
    funnier = Script.model_validate(at_gate["script"])

    listed = auteur("runs", env=cli_env)
    row = next(line for line in listed.stdout.splitlines() if thread_id in line)
    assert "interrupted" in row and "dialogue" in row

    resumed = auteur("resume", thread_id, "--auto-approve", env=cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "approving dialogue" in resumed.stdout
    assert "approving script" not in resumed.stdout
    assembled_video(resumed.stdout)
    after = await thread_values(persistence, thread_id)
    assert Script.model_validate(after["script"]) == funnier
    # every stage approved (once in the list, however many scenes it was approved for)
    assert after["approved"] == load_workflow_types().get("full_video")().stages()
    script_turns = [t for t in after["conversation"] if t["stage"] == "script"]
    assert [t["role"] for t in script_turns] == ["assistant", "user", "assistant"]
    assert script_turns[1]["content"] == "make it funnier"
    assert len({t["id"] for t in after["conversation"]}) == len(after["conversation"])
    [directed] = [x for x in after["dialogue"]["lines"] if "angrier" in x["direction"]]
    assert directed["id"] == "1B-1"


EDITOR = """\
import json, sys
path = sys.argv[-1]
with open(path) as file:
    args = json.load(file)
args["title"] = "Eggs Can Fly After All"
with open(path, "w") as file:
    json.dump(args, file)
"""


async def test_edit_at_a_gate_applies_what_the_editor_wrote(
    cli_env: dict[str, str], persistence: Persistence, tmp_path: Path
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env = {k: v for k, v in cli_env.items() if k != "VISUAL"}
    env["EDITOR"] = f"{sys.executable} {editor}"
    child = pexpect.spawn(AUTEUR, ["demo"], env=env, encoding="utf-8", timeout=120)
    child.expect(THREAD.pattern)
    thread_id = child.match.group(1)
    child.expect(PROMPT)  # treatment gate
    child.sendline("a")
    child.expect("Approval gate: script")
    child.expect(PROMPT)
    child.sendline("e")
    child.expect("Approval gate: master_script")
    child.expect(PROMPT)
    child.sendline("l")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    writer = await thread_values(persistence, thread_id, stage_agent=True)
    assert Script.model_validate(writer["script"]).title == "Eggs Can Fly After All"
    assert writer["approved"] == ["treatment", "script"]


def _refused_url() -> str:
    """A URL on which nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_unreachable_comfyui_is_one_error_line(cli_env: dict[str, str]) -> None:
    url = _refused_url()
    done = auteur("demo", "--auto-approve", env=cli_env | {"AUTEUR_COMFYUI_URLS": url})
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stdout
    assert f"{url}/object_info" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.rstrip().endswith(errors[0])
