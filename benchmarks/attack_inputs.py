r"""Hostile input against every route of a real Auteur server: answers by status class.

Run by hand from the repository root::

    python benchmarks/attack_inputs.py [--samples 200]

Starts ``auteur serve`` (embedded Postgres in a fresh temp folder, offline sample model,
the default settings: 4 MiB body limit, 8K pixel cap), seeds a thread waiting at its first
gate, its approval, a project and an uploaded image, then reads the operations from the
server's ``/openapi.json`` and fires at them:

- every route that takes JSON: the values Postgres cannot store (``NaN``, ``Infinity``,
  ``-Infinity``, ``1e999``, a lone surrogate ``"\ud800"``) in every place a body carries
  free-form JSON (metadata, values, config, configurable, context, input, project
  config, workflow inputs, a decision's extra field, history's ``before``); bodies nested
  too deep, with too many keys or values, a 5,000-digit integer, malformed JSON, a body
  that is not an object, the wrong content type; a body over the limit (declared and
  chunked);
- every integer query parameter: negative, zero, ``NaN``, ``1e999``, 2^63, 30 digits;
- every path parameter: a NUL, 1,000 characters, an encoded lone surrogate, a traversal;
- named cases: unknown run config keys, unknown project configuration keys, a
  non-string ``before.checkpoint_id``, an upscale beyond its bound and beyond the cap.

It prints the answers by status class (the goal: no 5xx, none without an answer) and lists
any 5xx. Then the latency of a small request (``GET /threads/{id}``) alone (baseline) and
while two other clients keep sending large bodies: 3.8 MB of 1.3M JSON values (refused
before parsing), a valid 3.9 MB body, and 14 MB of 1M keys (refused by its length), as
p50/p95 and their ratio to the baseline.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from _servers import APPROVE, SAMPLE, Server, auteur_server, percentile, uvicorn_flavour
from PIL import Image
from rich.console import Console
from rich.table import Table

WORKFLOW = "full_video"
UNSTORABLE = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b'"\\ud800"']
PLACES = [  # where bodies carry free-form JSON; %s is the hostile value
    b'{"metadata": {"k": %s}}',
    b'{"values": {"k": %s}}',
    b'{"assistant_id": "full_video", "metadata": {"k": %s}}',
    b'{"assistant_id": "full_video", "config": {"configurable": {"k": %s}}}',
    b'{"assistant_id": "full_video", "context": {"k": %s}}',
    b'{"assistant_id": "full_video", "input": {"brief": "b", "config": {"title": %s}}}',
    b'{"name": "p", "config": {"title": %s}}',
    b'{"inputs": {"scale_by": %s}}',
    b'{"decisions": [{"type": "approve", "note": %s}]}',
    b'{"before": {"checkpoint_id": %s}}',
]
LIMIT = 4 * 1024 * 1024
STRUCTURAL = [
    b"[" * 65 + b"]" * 65,
    b"[" * 100_000 + b"]" * 100_000,
    json.dumps({"metadata": {f"k{i}": i for i in range(1001)}}).encode(),
    json.dumps({"metadata": {"k": [0] * 100_001}}).encode(),
    b'{"metadata": {"k": 1' + b"0" * 5000 + b"}}",
    b'{"metadata": ',
    b'["metadata"]',
    b'"text"',
    b"",
]
OVERSIZED = json.dumps({"metadata": {"blob": "x" * LIMIT}}).encode()
INTEGERS = ["-1", "0", "NaN", "1e999", str(2**63), "9" * 30]
PATH_VALUES = ["%00", "x" * 1000, "%ED%A0%80", "..%2F..%2Fetc"]

out = Console(highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Attack:
    """One request: what it is, and how to send it."""

    label: str
    method: str
    path: str
    content: bytes | Iterator[bytes] | None = None
    params: dict[str, str] | None = None
    content_type: str = "application/json"


def _png(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 20, 20)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def seed(client: httpx.Client) -> dict[str, str]:
    """Real resources for the path parameters: a gated thread, its run and approval, ..."""
    thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
    run = {"assistant_id": WORKFLOW, "input": SAMPLE}
    values = client.post(f"/threads/{thread}/runs/wait", json=run).raise_for_status().json()
    if "__interrupt__" not in values:
        raise RuntimeError(f"the sample run did not stop at a gate: {values}")
    approval = next(
        item["approval_id"]
        for item in client.get("/approvals").raise_for_status().json()["items"]
        if item["thread_id"] == thread
    )
    project = client.post("/projects", json={"name": "attacked"}).raise_for_status().json()
    image = client.post("/files", json={"data_url": _png((2560, 1440))}).raise_for_status()
    checkpoint = client.get(f"/threads/{thread}/history", params={"limit": 1}).json()[0]
    return {
        "thread_id": thread,
        "run_id": client.get(f"/threads/{thread}/runs").json()[0]["run_id"],
        "approval_id": approval,
        "project_id": project["project_id"],
        "checkpoint_id": checkpoint["checkpoint"]["checkpoint_id"],
        "assistant_id": WORKFLOW,
        "namespace": "script_writer",
        "branch": "main",
        "name": "upscale_image",
        "key": image.json()["key"],
    }


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 1 << 20):
        yield body[start : start + (1 << 20)]


def attacks(paths: dict[str, dict[str, Any]], ids: dict[str, str]) -> Iterator[Attack]:
    """Every attack on every operation of the OpenAPI ``paths``."""
    for template, methods in paths.items():
        for method, operation in methods.items():
            label = f"{method.upper()} {template}"
            path = template.format(**{name: quote(value, safe="") for name, value in ids.items()})
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                for value in UNSTORABLE:
                    for place in PLACES:
                        yield Attack(f"{label} {place % value!r}", method, path, place % value)
                for body in STRUCTURAL:
                    yield Attack(f"{label} structural {body[:30]!r}", method, path, body)
                yield Attack(f"{label} text/plain", method, path, b"{}", content_type="text/plain")
                yield Attack(f"{label} over the limit", method, path, OVERSIZED)
                yield Attack(f"{label} over the limit, chunked", method, path, _chunks(OVERSIZED))
            for parameter in operation.get("parameters", []):
                name, where = parameter["name"], parameter["in"]
                if where == "query" and parameter.get("schema", {}).get("type") == "integer":
                    for value in INTEGERS:
                        yield Attack(f"{label} ?{name}={value}", method, path, params={name: value})
                if where == "path":
                    for value in PATH_VALUES:
                        bad = template.replace(f"{{{name}}}", value).format(
                            **{k: quote(v, safe="") for k, v in ids.items()}
                        )
                        yield Attack(f"{label} {name}={value[:20]}", method, bad)
    thread, approval = ids["thread_id"], ids["approval_id"]
    named = {
        "unknown config key": {"assistant_id": WORKFLOW, "config": {"bogus": 1}},
        "unknown configurable key": {
            "assistant_id": WORKFLOW,
            "config": {"configurable": {"model": "x"}},
        },
        "unknown project config key": {
            "assistant_id": WORKFLOW,
            "input": {"brief": "b", "config": {"bogus": 1}},
        },
    }
    for what, body in named.items():
        yield Attack(what, "POST", f"/threads/{thread}/runs", json.dumps(body).encode())
    for before in ({"checkpoint_id": 5}, {"configurable": {"checkpoint_id": [1]}}):
        body = json.dumps({"before": before}).encode()
        yield Attack(f"history before {before}", "POST", f"/threads/{thread}/history", body)
    for scale in (1, 8, 32):
        body = json.dumps({"inputs": {"image": ids["key"], "scale_by": scale}}).encode()
        label = f"upscale 2560x1440 by 4x{scale}"
        yield Attack(label, "POST", "/workflows/upscale_image/runs", body)
    body = json.dumps({"decisions": [{"type": "maybe"}]}).encode()
    yield Attack("decision of an unknown type", "POST", f"/approvals/{approval}", body)


def fire(client: httpx.Client, attack: Attack) -> int | None:
    """The status the server answered, or None when there was no answer in time."""
    try:
        response = client.request(
            attack.method,
            attack.path,
            content=attack.content,
            params=attack.params,
            headers={"content-type": attack.content_type},
        )
    except httpx.TransportError:
        return None
    return response.status_code


def still_usable(client: httpx.Client, ids: dict[str, str]) -> bool:
    """The attacked gate still takes a decision and its run goes on to the next gate."""
    decided = client.post(f"/approvals/{ids['approval_id']}", json=APPROVE)
    if decided.status_code != 202:
        return False
    run = decided.json()["run"]["run_id"]
    values = client.get(f"/threads/{ids['thread_id']}/runs/{run}/join").json()
    return "__interrupt__" in values


def latencies(server: Server, path: str, samples: int) -> list[float]:
    """Seconds each of ``samples`` sequential ``GET path`` requests took."""
    taken = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(samples):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            taken.append(time.perf_counter() - started)
    return taken


def under_load(server: Server, path: str, samples: int, body: bytes, route: str) -> list[float]:
    """:func:`latencies` while two other clients keep posting ``body`` to ``route``."""
    stop = threading.Event()

    def pound() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                # A 413 may close the connection before the whole body is sent.
                with contextlib.suppress(httpx.TransportError):
                    client.post(route, content=body, headers={"content-type": "application/json"})

    load = [threading.Thread(target=pound, daemon=True) for _ in range(2)]
    for thread in load:
        thread.start()
    try:
        return latencies(server, path, samples)
    finally:
        stop.set()
        for thread in load:
            thread.join()


def main(argv: list[str] | None = None) -> int:
    """Attack a fresh server; report status classes and latency under large bodies."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="small requests per measure")
    args = parser.parse_args(argv)

    out.print(f"[bold]starting auteur serve[/bold] (embedded Postgres, {uvicorn_flavour()}) …")
    with auteur_server() as server, httpx.Client(base_url=server.url, timeout=60) as client:
        ids = seed(client)
        paths = client.get("/openapi.json").raise_for_status().json()["paths"]
        classes: Counter[str] = Counter()
        server_errors: list[str] = []
        accepted_labels: list[str] = []  # legit values among the attacks (offset=0, ...)
        started = time.perf_counter()
        for attack in attacks(paths, ids):
            status = fire(client, attack)
            kind = "no answer" if status is None else f"{status // 100}xx"
            classes[kind] += 1
            if status is None or status >= 500:
                server_errors.append(f"{status} {attack.label}")
            elif status < 300:
                accepted_labels.append(f"{status} {attack.label}")
        elapsed = time.perf_counter() - started
        usable = still_usable(client, ids)

        small = f"/threads/{ids['thread_id']}"
        rejected = json.dumps({"metadata": {"k": [[0] * 9] * 130_000}}).encode()
        accepted = json.dumps({"metadata": {"k": ["x" * 3900] * 1000}}).encode()
        huge = json.dumps({f"k{i}": 0 for i in range(1_000_000)}).encode()
        baseline = latencies(server, small, args.samples)
        loads = {
            f"{len(rejected) / 1e6:.1f} MB of 1.3M values (refused unparsed)": (
                rejected,
                "/threads/count",
            ),
            f"{len(accepted) / 1e6:.1f} MB of 1k strings (accepted)": (accepted, "/threads/count"),
            f"{len(huge) / 1e6:.1f} MB of 1M keys (refused by its length)": (huge, "/threads"),
        }
        loaded = {
            name: under_load(server, small, args.samples, body, route)
            for name, (body, route) in loads.items()
        }

    total = sum(classes.values())
    table = Table(title=f"{total} attack inputs on {len(paths)} paths ({elapsed:.1f} s)")
    table.add_column("answer")
    table.add_column("count", justify="right")
    for kind in ("2xx", "3xx", "4xx", "5xx", "no answer"):
        table.add_row(kind, str(classes.get(kind, 0)))
    out.print(table)
    out.print(f"{classes.get('5xx', 0)} x 5xx over {total} attack inputs")
    for line in server_errors:
        out.print(f"  [red]{line}[/red]")
    out.print("accepted (valid values among them): " + "; ".join(accepted_labels))
    out.print(f"the attacked gate still takes a decision afterwards: {usable}")

    base50, base95 = percentile(baseline, 50), percentile(baseline, 95)
    timing = Table(title=f"GET /threads/{{id}} latency, {args.samples} sequential requests")
    for column in ("while two clients post", "p50 ms", "p95 ms", "p50 ratio", "p95 ratio"):
        timing.add_column(column, justify="left" if column.startswith("while") else "right")
    timing.add_row("nothing (baseline)", f"{base50 * 1e3:.1f}", f"{base95 * 1e3:.1f}", "1.0", "1.0")
    for name, taken in loaded.items():
        p50, p95 = percentile(taken, 50), percentile(taken, 95)
        timing.add_row(
            name,
            f"{p50 * 1e3:.1f}",
            f"{p95 * 1e3:.1f}",
            f"{p50 / base50:.1f}",
            f"{p95 / base95:.1f}",
        )
    out.print(timing)
    return 0 if not server_errors and usable else 1


if __name__ == "__main__":
    sys.exit(main())
