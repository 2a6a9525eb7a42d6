"""Size of the default install: ``pip install .`` into a fresh virtual environment.

Run by hand from the repository root::

    python benchmarks/install_size.py [--top 12]

Installs the project (no extras, not editable) as a user would, from the package index pip
is configured with, into a scratch venv; prints the venv's size beside an empty venv's
(the baseline: Python's own pip) and the largest installed packages, then removes it.
Target: 600 MB or less, with no torch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 600
out = Console()


def megabytes(path: Path) -> float:
    """The size of the files under ``path``, in MB (10^6 bytes)."""
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    )


def site_packages(venv: Path) -> Path:
    """The venv's ``site-packages`` folder."""
    return next((venv / "lib").glob("python3*/site-packages"))


def main(argv: list[str] | None = None) -> int:
    """Install into a scratch venv, print the sizes; 0 whether or not the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=12, help="How many packages to list.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auteur-install-") as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        for venv in (empty, full):
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(full / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)], check=True
        )
        baseline, installed = megabytes(empty), megabytes(full)
        packages = sorted(
            ((megabytes(p), p.name) for p in site_packages(full).iterdir() if p.is_dir()),
            reverse=True,
        )
        has_torch = (site_packages(full) / "torch").exists()
    table = Table("package folder", "MB", title=f"largest of the default install (top {args.top})")
    for size, name in packages[: args.top]:
        table.add_row(name, f"{size:.0f}")
    out.print(table)
    met = installed <= TARGET_MB and not has_torch
    out.print(
        f"default install: {installed:.0f} MB (an empty venv: {baseline:.0f} MB; "
        f"{installed / baseline:.1f}x); torch installed: {has_torch}; "
        f"target ≤ {TARGET_MB} MB with no torch: {'met' if met else 'missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
