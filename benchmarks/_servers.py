"""Shared by the benchmarks: start Auteur or ``langgraph dev``, and read SSE with timestamps.

Both servers run as subprocesses of the benchmark, on 127.0.0.1 and a free port, with no
model configured (the offline sample model) and nothing reaching the network. Both are
spoken to with the same raw ``httpx`` client code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The test doubles and helpers some benchmarks drive live in tests/, which is not installed.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
SAMPLE: dict[str, Any] = json.loads((REPO / "evals" / "datasets" / "sample_input.json").read_text())
APPROVE: dict[str, Any] = {"decisions": [{"type": "approve"}]}
STREAM_MODES = ["updates", "custom"]

__all__ = [
    "APPROVE",
    "SAMPLE",
    "STREAM_MODES",
    "Server",
    "SseEvent",
    "auteur_server",
    "comfy_server_process",
    "free_port",
    "langgraph_dev_server",
    "percentile",
    "postgres_pids",
    "stream_events",
    "uvicorn_flavour",
]


@dataclass(frozen=True)
class Server:
    """A running API server: its base URL, its process id and where it logs."""

    name: str
    url: str
    pid: int
    log: Path
    data_dir: Path


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event, with the ``perf_counter`` time its last line arrived."""

    event: str
    data: str
    at: float

    def json(self) -> Any:
        """The event's data, decoded."""
        return json.loads(self.data) if self.data else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _offline_env(**extra: str) -> dict[str, str]:
    """This environment without model keys or Auteur settings, and with tracing off.

    ``PYTHONDONTWRITEBYTECODE`` is left out too: a user's processes find their bytecode
    cached, and without it every process compiled all it imported (twice the start-up).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AUTEUR_", "LANGSMITH_", "LANGCHAIN_"))
        and k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    }
    return env | {
        "PYTHONUNBUFFERED": "1",
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        **extra,
    }


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float, path: str = "/ok"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited ({process.returncode}); see {log}:\n" + _tail(log)
            )
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url}{path} in {timeout_s:.0f} s; see {log}")


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """Stop the server's process group (it was started in a session of its own)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _open_dir(prefix: str) -> Path:
    """A scratch folder under the system temp dir.

    The embedded Postgres runs as its own system user when the benchmark runs as root; a
    folder from ``mkdtemp`` outside any private (0700) parent is one it can reach.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


def uvicorn_flavour(*, plain_asyncio: bool = False) -> str:
    """The event loop and HTTP parser uvicorn picks for ``auteur serve`` in this venv.

    uvicorn's ``auto`` takes uvloop and httptools when they are importable (``langgraph-cli
    [inmem]`` brings both in; Auteur itself does not depend on them).
    """
    if plain_asyncio:
        return "asyncio + h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


@contextmanager
def auteur_server(
    *,
    worker_concurrency: int | None = None,
    plain_asyncio: bool = False,
    env: dict[str, str] | None = None,
    plugins: Sequence[str] = (),
) -> Iterator[Server]:
    """``auteur serve`` in a subprocess on the embedded defaults, in a fresh data folder.

    With ``plain_asyncio`` the same app is served by uvicorn with ``loop="asyncio"`` and
    ``http="h11"`` (what ``auteur serve`` gets where uvloop and httptools are not installed).
    ``env`` adds settings (``OPENAI_*``, ``AUTEUR_*``, ``DATABASE_URL``) to the offline
    environment. ``plugins`` are modules of this folder the server imports first (workflow
    types only a benchmark serves register themselves by being imported).
    """
    data_dir = _open_dir("auteur-bench-")
    port = free_port()
    imports = "".join(f"import {module}\n" for module in plugins)
    command = [
        sys.executable,
        "-c",
        f"{imports}from api.cli import app\napp(['serve', '--port', '{port}'])",
    ]
    if plain_asyncio:
        command = [
            sys.executable,
            "-c",
            f"{imports}import uvicorn\n"
            "from api.app import create_app\n"
            "from api.settings import Settings\n"
            "uvicorn.run(create_app(Settings()), host='127.0.0.1', "
            f"port={port}, log_level='warning', loop='asyncio', http='h11')",
        ]
    extra = {
        "AUTEUR_DATA_DIR": str(data_dir / "data"),
        "AUTEUR_HOST": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    if worker_concurrency is not None:
        extra["AUTEUR_WORKER_CONCURRENCY"] = str(worker_concurrency)
    extra |= env or {}
    try:
        # cwd = the data folder, so no stray .env is read
        with _launched("Auteur", command, data_dir, port, _offline_env(**extra)) as server:
            yield server
    finally:
        _stop_leftover_postgres(data_dir / "data" / "postgres")
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def comfy_server_process(*, job_delay_s: float = 0.0) -> Iterator[Server]:
    """The ComfyUI test double (``tests/doubles/comfy_server.py``) in a process of its own.

    Its Pillow and ffmpeg work then never holds the benchmark's interpreter, as a real GPU
    server's work would not.
    """
    work = _open_dir("auteur-comfy-")
    port = free_port()
    command = [sys.executable, "-m", "tests.doubles.comfy_server", "--port", str(port)]
    command += ["--job-delay", str(job_delay_s)]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        with _launched(
            "ComfyUI double", command, work, port, _offline_env(**env), "/system_stats"
        ) as server:
            yield server
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _launched(
    name: str,
    command: list[str],
    work: Path,
    port: int,
    env: dict[str, str],
    ready_path: str = "/ok",
) -> Iterator[Server]:
    """Start ``command`` in ``work`` (logging to ``server.log``) and wait until it answers."""
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url, log, timeout_s=180, path=ready_path)
        yield Server(name, url, process.pid, log, work)
    finally:
        _stop(process)


def _stop_leftover_postgres(pgdata: Path) -> None:
    """Stop the embedded postmaster if the server's exit left it running."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # Postgres' fast shutdown
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pid_file.exists():
        time.sleep(0.1)


def postgres_pids(server: Server) -> list[int]:
    """The embedded Postgres server's processes (postmaster and its children)."""
    import psutil

    pid_file = server.data_dir / "data" / "postgres" / "postmaster.pid"
    try:
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError, psutil.Error):
        return []
    return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]


@contextmanager
def langgraph_dev_server() -> Iterator[Server]:
    """``langgraph dev`` in a subprocess, serving ``full_video`` with its in-memory runtime."""
    executable = BIN / "langgraph"
    if not executable.exists():
        raise RuntimeError(
            "langgraph dev is not installed: pip install -e '.[bench]' in a venv of its own "
            "(or pip install 'langgraph-cli[inmem]>=0.4,<0.5')"
        )
    work = _open_dir("auteur-lgdev-")
    graph_module = Path(__file__).resolve().parent / "langgraph_dev_graph.py"
    config = work / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(REPO)],
                "graphs": {"full_video": f"{graph_module}:graph"},
            },
            indent=2,
        )
    )
    port = free_port()
    command = [
        str(executable),
        "dev",
        "--no-browser",
        "--no-reload",
        "--allow-blocking",
        "--port",
        str(port),
        "--config",
        str(config),
    ]
    env = _offline_env(AUTEUR_BENCH_FILES_DIR=str(work / "files"))
    try:
        with _launched("langgraph dev", command, work, port, env) as server:
            yield server
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stream_events(client: httpx.Client, path: str, body: dict[str, Any]) -> Iterator[SseEvent]:
    """POST ``body`` to an SSE route and yield its events as they complete.

    Comment lines (keep-alive pings) are skipped; an event is complete at its blank line.
    """
    with client.stream(
        "POST", path, json=body, headers={"Accept": "text/event-stream"}
    ) as response:
        if response.status_code >= 400:
            response.read()
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        name, data = "message", []
        for line in response.iter_lines():
            if line == "":
                if data:
                    yield SseEvent(name, "\n".join(data), time.perf_counter())
                name, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
        if data:
            yield SseEvent(name, "\n".join(data), time.perf_counter())


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
