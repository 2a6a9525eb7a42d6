"""A local S3-compatible server for tests: moto's, on 127.0.0.1 and a free port.

Not a double of ours: moto implements the S3 REST API, and the code under test talks to it
with boto3 over a real socket, as it would to MinIO or AWS::

    with run_s3_server() as url:
        client(url).create_bucket(Bucket="media")
        store = S3FileStore("media", endpoint_url=url, **CREDENTIALS)
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

__all__ = ["CREDENTIALS", "client", "run_s3_server"]

CREDENTIALS = {"access_key_id": "test-access-key", "secret_access_key": "test-secret-key"}


@contextmanager
def run_s3_server() -> Iterator[str]:
    """Serve S3 on 127.0.0.1 for the block; yield its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client(url: str) -> Any:
    """A boto3 client of its own, to set buckets up and look inside them."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )
