"""`auteur demo --auto-approve` with the ComfyUI test server: frames and clips via ComfyUI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doubles.comfy_server import ComfyServer, comfy_server
from tests.integration.test_cli import assembled_video, auteur, cli_env

__all__ = ["cli_env", "comfy_server"]

pytestmark = pytest.mark.slow


@pytest.mark.long
def test_demo_generates_through_comfyui(
    cli_env: dict[str, str], comfy_server: ComfyServer, tmp_path: Path
) -> None:
    env = cli_env | {"AUTEUR_COMFYUI_URLS": comfy_server.url}

    done = auteur("demo", "--auto-approve", env=env, timeout=600)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "comfyui" in done.stdout
    assembled_video(done.stdout)
    assert comfy_server.jobs > 0
    workflows = {
        node["class_type"] for body in comfy_server.submitted for node in body["prompt"].values()
    }
    assert {"WanFirstLastFrameToVideo", "ReferenceLatent", "StringConcatenate"} <= workflows
