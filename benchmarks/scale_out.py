"""Does adding ``auteur worker``s add throughput? Runs per second with 1 and 3 workers.

Each configuration is the scale-out set-up of ``tests/integration/test_scale_out.py``
(:func:`tests.cluster.scale_cluster`): a separate PostgreSQL server, two ``auteur serve
--no-execute`` API processes and the workers, all subprocesses with the same ``DATABASE_URL``
and data folder, the offline sample model. Every worker executes one run at a time
(``AUTEUR_WORKER_CONCURRENCY=1``: a worker per GPU machine) and sends its jobs to a ComfyUI
test double whose jobs take ``--job-s`` seconds (so the work is waiting, not CPU):

- **own**: each worker has a ComfyUI server of its own (1 worker: 1 server, 3 workers: 3);
- **shared**: 3 workers share the one server of the 1-worker set-up — where the limit is.

``--productions`` sample productions are approved up to the gate before scene 1's frames (not
timed), then their scene 1 frames stages (6 keyframes, 6 ComfyUI jobs each) are queued at once
through both APIs in turn and timed until every one waits at its gate. Printed: runs/s per
configuration and the ratio to 1 worker measured in the same run. Nothing is asserted.

Run: ``python benchmarks/scale_out.py [--productions 3] [--job-s 1.0]``
"""

from __future__ import annotations

import argparse
import asyncio
import time

import _servers  # noqa: F401  (puts the repository, whose tests/ it drives, on sys.path)
from langgraph_sdk import get_client

from tests.cluster import scale_cluster
from tests.integration.test_scale_out import to_frames
from tests.servers import APPROVE

CONFIGURATIONS = {  # name: (workers, ComfyUI servers, the servers of each worker)
    "1 worker, own server": (1, 1, [[0]]),
    "3 workers, own servers": (3, 3, [[0], [1], [2]]),
    "3 workers, shared server": (3, 1, [[0], [0], [0]]),
}


async def _measure(name: str, productions: int, job_s: float) -> float:
    workers, servers, worker_comfy = CONFIGURATIONS[name]
    env = {"AUTEUR_WORKER_CONCURRENCY": "1"}
    with scale_cluster(
        apis=2,
        workers=workers,
        comfy_servers=servers,
        job_delay_s=job_s,
        worker_comfy=worker_comfy,
        env=env,
    ) as cluster:
        clients = [get_client(url=url) for url in cluster.apis]
        threads = await asyncio.gather(*(to_frames(clients, n) for n in range(productions)))
        started = time.perf_counter()
        runs = [
            await clients[n % 2].runs.create(thread, "full_video", command={"resume": APPROVE})
            for n, thread in enumerate(threads)
        ]
        for n, run in enumerate(runs):
            result = await clients[(n + 1) % 2].runs.join(run["thread_id"], run["run_id"])
            gate = result["__interrupt__"][0]["value"]
            assert (gate["stage"], gate["scene"]) == ("frames", 1), result
        return productions / (time.perf_counter() - started)


async def main() -> None:
    """Measure every configuration, one after the other, and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--productions", type=int, default=3)
    parser.add_argument("--job-s", type=float, default=1.0)
    args = parser.parse_args()
    rates = {}
    for name in CONFIGURATIONS:
        rates[name] = await _measure(name, args.productions, args.job_s)
        print(f"{name:<26} {rates[name]:.4f} runs/s", flush=True)
    baseline = rates["1 worker, own server"]
    print(
        f"\n{args.productions} scene 1 frames stages (6 ComfyUI jobs of {args.job_s:g} s each), "
        "runs/s and ratio to 1 worker:"
    )
    for name, rate in rates.items():
        print(f"  {name:<26} {rate:.4f} runs/s  x{rate / baseline:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
