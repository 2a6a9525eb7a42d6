"""How fast ``auteur serve`` recovers when its embedded Postgres is killed (``kill -9``).

Run by hand from the repository root::

    python benchmarks/postgres_recovery.py [--trials 5]

One ``auteur serve`` on the embedded defaults (a fresh data folder, the offline sample
model). Per trial: a fresh thread, a run queued on it (the sample brief, to its first
gate), then at once ``kill -9`` of the postmaster. Measured from the kill:

(a) kill → ``/ok`` answers 200 again (the server noticed, restarted the embedded server
    and refilled its pool);
(b) kill → the queued run has ended (``success``, the thread waiting at the treatment gate): the
    executor claimed it again and ran it to its gate.

Also counted: how many ``/ok`` answers were 503 while it was down. Medians over the trials.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _servers import SAMPLE, Server, auteur_server

POLL_S = 0.02
DEADLINE_S = 120.0


def _postmaster(server: Server) -> int:
    pid_file = server.data_dir / "data" / "postgres" / "postmaster.pid"
    return int(Path(pid_file).read_text().split()[0])


def _until(predicate: Callable[[], bool], what: str) -> float:
    """Poll ``predicate`` until true; the time (perf_counter) it first was."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(POLL_S)
    raise RuntimeError(f"no recovery within {DEADLINE_S:.0f} s: {what}")


def _trial(server: Server, client: httpx.Client) -> tuple[float, float, int]:
    """One kill: (kill → /ok 200 s, kill → queued run ended s, 503 answers seen)."""
    thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
    run = (
        client.post(f"/threads/{thread}/runs", json={"assistant_id": "full_video", "input": SAMPLE})
        .raise_for_status()
        .json()["run_id"]
    )
    postmaster = _postmaster(server)
    killed = time.perf_counter()
    os.kill(postmaster, signal.SIGKILL)
    unavailable = 0

    def ok() -> bool:
        nonlocal unavailable
        try:
            status = client.get("/ok").status_code
        except httpx.TransportError:
            return False
        unavailable += status == 503
        return status == 200 and _postmaster(server) != postmaster

    back = _until(ok, "/ok")

    def ended() -> bool:
        answer = client.get(f"/threads/{thread}/runs/{run}")
        return answer.status_code == 200 and answer.json()["status"] == "success"

    done = _until(ended, "the queued run")
    return back - killed, done - killed, unavailable


def main() -> None:
    """Start the server, kill its Postgres ``--trials`` times, print the recovery times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    trials = parser.parse_args().trials
    with auteur_server() as server, httpx.Client(base_url=server.url, timeout=60) as client:
        print(f"auteur serve on the embedded Postgres, {trials} kills of the postmaster")
        print(f"{'trial':>5}  {'/ok 200 (s)':>11}  {'run ended (s)':>13}  {'503s seen':>9}")
        results = []
        for number in range(1, trials + 1):
            back, done, unavailable = _trial(server, client)
            results.append((back, done))
            print(f"{number:>5}  {back:>11.2f}  {done:>13.2f}  {unavailable:>9}")
        print(
            f"median: kill → /ok 200 {statistics.median(r[0] for r in results):.2f} s; "
            f"kill → queued run ended {statistics.median(r[1] for r in results):.2f} s"
        )


if __name__ == "__main__":
    main()
