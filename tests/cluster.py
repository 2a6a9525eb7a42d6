"""Auteur scaled out on one machine: a separate Postgres, API processes, worker processes.

Every process is a real subprocess with the same ``DATABASE_URL`` (a server of its own, from
:mod:`tests.postgres`), the same ``AUTEUR_DATA_DIR`` (so a file one process stores every other
can serve) and the offline sample model; media jobs go to ComfyUI test doubles
(``tests/doubles/comfy_server.py``), each in a process of its own, whose jobs take a fixed
time. The scale-out test and ``benchmarks/scale_out.py`` both use it::

    with scale_cluster(apis=2, workers=3, comfy_servers=1, job_delay_s=0.2) as cluster:
        client = get_client(url=cluster.apis[0])
        cluster.workers[0].kill()   # SIGKILL
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.postgres import postgres_server
from tests.servers import AUTEUR, free_port

__all__ = ["Cluster", "paid_once", "scale_cluster"]

_REPO = Path(__file__).resolve().parent.parent


@dataclass
class Cluster:
    """The running processes: API base URLs, worker processes, ComfyUI double URLs."""

    database_url: str
    apis: list[str]
    comfy: list[str]
    workers: list[subprocess.Popen[bytes]]
    env: dict[str, str]
    logs: Path
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def log(self, name: str) -> str:
        """What process ``name`` (``api-0``, ``worker-2``, ``comfy-0``) has written."""
        return (self.logs / f"{name}.log").read_text(errors="replace")


@contextmanager
def scale_cluster(
    *,
    apis: int = 2,
    workers: int = 3,
    comfy_servers: int = 1,
    job_delay_s: float = 0.2,
    api_executes: bool = False,
    worker_comfy: Sequence[Sequence[int]] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Start the cluster; stop every process it started (by its own pid) on the way out.

    ``worker_comfy[i]`` names the ComfyUI doubles worker ``i`` sends jobs to (default: all);
    ``env`` adds settings (``AUTEUR_RUN_LEASE_S``, ``AUTEUR_WORKER_CONCURRENCY``, ...).
    """
    logs = Path(tempfile.mkdtemp(prefix="auteur-cluster-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, logs, ignore_errors=True)
        database_url = stack.enter_context(postgres_server())
        base = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])),
            "DATABASE_URL": database_url,
            "AUTEUR_DATA_DIR": str(logs / "data"),
            **(env or {}),
        }
        base.pop("OPENAI_API_KEY", None)
        base.pop("AUTEUR_API_KEYS", None)
        cluster = Cluster(database_url, [], [], [], base, logs)
        stack.callback(_stop_all, cluster._processes)
        pending: list[tuple[str, str]] = []  # (url, ready path) to wait for
        for n in range(comfy_servers):
            port = free_port()
            command = [sys.executable, "-m", "tests.doubles.comfy_server", "--port", str(port)]
            _start(cluster, f"comfy-{n}", [*command, "--job-delay", str(job_delay_s)], base)
            cluster.comfy.append(f"http://127.0.0.1:{port}")
            pending.append((cluster.comfy[-1], "/system_stats"))
        _wait_ready(cluster, pending)
        everything = list(range(comfy_servers))
        urls = ",".join(cluster.comfy)
        # The first API creates the schema alone (concurrent CREATE ... IF NOT EXISTS race);
        # the other processes then start together.
        for n in range(apis):
            port = free_port()
            command = [AUTEUR, "serve", "--port", str(port)]
            command += [] if api_executes else ["--no-execute"]
            _start(cluster, f"api-{n}", command, {**base, "AUTEUR_COMFYUI_URLS": urls})
            cluster.apis.append(f"http://127.0.0.1:{port}")
            if n == 0:
                _wait_ready(cluster, [(cluster.apis[0], "/ok")])
        for n in range(workers):
            chosen = worker_comfy[n] if worker_comfy is not None else everything
            worker_env = {**base, "AUTEUR_COMFYUI_URLS": ",".join(cluster.comfy[i] for i in chosen)}
            cluster.workers.append(_start(cluster, f"worker-{n}", [AUTEUR, "worker"], worker_env))
        _wait_ready(cluster, [(url, "/ok") for url in cluster.apis[1:]])
        _wait_workers(cluster)
        yield cluster


def _start(
    cluster: Cluster, name: str, command: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with (cluster.logs / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=_REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    cluster._processes.append(process)
    return process


def _wait_ready(cluster: Cluster, pending: list[tuple[str, str]]) -> None:
    deadline = time.monotonic() + 120
    for url, path in pending:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + path, timeout=2).status_code == 200:
                    break
            dead = [p.args for p in cluster._processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start (exited: {dead}); logs in {cluster.logs}")
            time.sleep(0.1)


def _wait_workers(cluster: Cluster) -> None:
    """Until every worker has said it is waiting for runs (it has its executor up)."""
    deadline = time.monotonic() + 120
    for n, worker in enumerate(cluster.workers):
        while "waiting for runs" not in cluster.log(f"worker-{n}"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {n} did not start:\n{cluster.log(f'worker-{n}')}")
            time.sleep(0.1)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def paid_once(cluster: Cluster, *, at_least: int) -> None:
    """Each prompt the first ComfyUI double ran was executed once (``at_least`` of them).

    A job in flight when its worker was killed is submitted again by the survivor and answered
    from ComfyUI's cache, so it is paid once too. The scenes' ambience beds are the same prompt
    in every production of the sample: the productions' workers may each send it at once (the
    generation cache is checked before sending, but not locked across processes), and ComfyUI
    answers the later ones from its cache; only the productions' own images are counted as sent.
    """
    history = httpx.get(f"{cluster.comfy[0]}/history").json()
    submitted: dict[str, int] = {}
    paid: dict[str, int] = {}
    for entry in history.values():
        prompt = json.dumps(entry["prompt"][2], sort_keys=True)
        if "SaveImage" in {node["class_type"] for node in entry["prompt"][2].values()}:
            submitted[prompt] = submitted.get(prompt, 0) + 1
        messages = dict(entry["status"]["messages"])
        if not messages.get("execution_cached", {}).get("nodes"):
            paid[prompt] = paid.get(prompt, 0) + 1
    assert len(paid) >= at_least
    assert set(paid.values()) == {1}
    # a job the killed worker had sent is sent once more by the survivor (answered from the
    # double's cache, so not paid again) — whether it was still queued or had just finished
    assert max(submitted.values()) <= 2
