"""The embedded Postgres under real processes: left behind by none of them.

Every usual way a process stops (SIGTERM, SIGHUP, Ctrl-C, a normal exit) must release its
handle, so the last one stops the server.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.api.test_execution import _free_port, auteur_serve
from tests.integration.test_cli import AUTEUR, THREAD, embedded_env, open_dir

__all__ = ["open_dir"]

pytestmark = pytest.mark.slow


def postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _started(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``auteur <command>`` in its own process, once it holds the embedded server."""
    args = {"demo": ["demo", "--auto-approve"], "worker": ["worker"]}[command]
    process = subprocess.Popen(
        [AUTEUR, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    ready = THREAD if command == "demo" else re.compile("waiting for runs")
    for line in process.stdout:
        if ready.search(line):
            return process
    raise AssertionError(f"auteur {command} exited ({process.wait()}) before it was ready")


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        ("serve", signal.SIGTERM),
        ("serve", signal.SIGHUP),
        ("worker", signal.SIGTERM),
        ("demo", signal.SIGTERM),
    ],
)
def test_a_stopped_process_releases_the_embedded_server(
    command: str, stop: signal.Signals, open_dir: Path
) -> None:
    pgdata = open_dir / ".auteur" / "postgres"
    env = embedded_env()
    if command == "serve":
        port = _free_port()
        with auteur_serve(env | {"AUTEUR_DATA_DIR": str(pgdata.parent)}, port) as process:
            server = postmaster(pgdata)
            process.send_signal(stop)
            process.wait(timeout=60)
    else:
        process = _started(command, env, open_dir)
        server = postmaster(pgdata)
        process.send_signal(stop)
        process.wait(timeout=60)
    assert process.returncode == 128 + stop  # a normal exit, not death by the signal
    assert not (pgdata / "postmaster.pid").exists()
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
