"""A PostgreSQL server of its own, in a separate process, for scale-out tests and benchmarks.

Not the app's embedded server: every Auteur process given its URL (``DATABASE_URL``) connects
to it as to any external Postgres, so several API and worker processes share one database the
way they would across machines. The binaries (PostgreSQL with pgvector) are the ``pgserver``
wheel's; the cluster lives in a temporary folder and is removed afterwards. As root, Postgres
refuses to run, so it runs as the ``pgserver`` system user, as the embedded server does::

    with postgres_server() as url:   # postgresql://postgres@127.0.0.1:PORT/postgres
        env = {**os.environ, "DATABASE_URL": url}
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["postgres_server"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binaries() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH  # the wheel's bin folder

    return POSTGRES_BIN_PATH


def _run_as() -> str | None:
    """The system user Postgres runs as: ``pgserver`` as root (made if missing), else us."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists("pgserver")
    binaries = _binaries()
    ensure_prefix_permissions(binaries)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(binaries.parent / "lib", readable)
    return "pgserver"


@contextmanager
def postgres_server(*, max_connections: int = 300) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1 and a free port; yields its URL.

    ``fsync`` is off (a test's data need not survive a power cut), so that commits cost what
    they would on a server with a battery-backed disk rather than what a CI disk makes them.
    """
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="auteur-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if user is not None:
        shutil.chown(root, user)
        shutil.chown(sockets, user)
    binaries = _binaries()
    subprocess.run(
        [binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        user=user,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = ["-c", "fsync=off", "-c", f"max_connections={max_connections}"]
    options += ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(sockets)]
    with (root / "postgres.log").open("wb") as log:
        server = subprocess.Popen(
            [binaries / "postgres", "-D", data, *options],
            user=user,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        _wait_ready(url, server, root / "postgres.log")
        yield url
    finally:
        server.terminate()  # SIGTERM: smart shutdown of this server (its pid), nothing else
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
            return
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"postgres did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
