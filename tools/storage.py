"""Content-addressed file storage for generated media.

Every file is stored under the SHA-256 of its bytes, so a key changes whenever content does
and writing the same content twice costs nothing. ``LocalFileStore`` keeps files in a folder,
``S3FileStore`` in a bucket of AWS S3 or any S3-compatible store (MinIO, R2, Ceph) through
boto3; both implement the ``FileStore`` protocol.

Content addresses are guessable by anyone who has the same bytes, so knowing a key grants
nothing: a run notes every file it stores or reuses (:func:`recording`, :func:`record`) and
the API grants its owner exactly those files.

Example:
    >>> import tempfile
    >>> store = LocalFileStore(Path(tempfile.mkdtemp()))
    >>> file = store.put(b"frame", extension="png", media_type="image/png")
    >>> store.read(file)
    b'frame'

"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = [
    "FileStore",
    "LocalFileStore",
    "MediaFile",
    "S3FileStore",
    "file_keys",
    "produced",
    "record",
    "recording",
]

_KEY = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,16}")
_EXTENSION = re.compile(r"[a-z0-9]{1,16}")
_CHUNK = 1 << 20
_produced: ContextVar[list[MediaFile] | None] = ContextVar("auteur_produced_files", default=None)


class MediaFile(BaseModel):
    """A content-addressed file in the asset store."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    key: str = Field(description="Store key, '<sha256>.<ext>'; changes whenever content does.")
    media_type: str
    size_bytes: int = Field(ge=0)


@contextmanager
def recording() -> Iterator[list[MediaFile]]:
    """Note every file stored or reused while the block runs (in its task and the tasks it starts).

    Example:
        >>> store = LocalFileStore(Path(tempfile.mkdtemp()))
        >>> with recording() as files:
        ...     file = store.put(b"x", extension="png", media_type="image/png")
        >>> files == [file]
        True

    """
    files: list[MediaFile] = []
    token = _produced.set(files)
    try:
        yield files
    finally:
        _produced.reset(token)


def record(file: MediaFile) -> MediaFile:
    """Note ``file`` as produced by the current :func:`recording` (if any); return it."""
    if (files := _produced.get()) is not None:
        files.append(file)
    return file


def produced() -> list[MediaFile]:
    """The files the current :func:`recording` has noted so far (none outside one)."""
    return list(_produced.get() or [])


def file_keys(value: Any) -> set[str]:
    """Every string inside a JSON value that is a store key (``<sha256>.<ext>``)."""
    if isinstance(value, str):
        return {value} if _KEY.fullmatch(value) else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(file_keys(item) for item in value))
    return set()


@runtime_checkable
class FileStore(Protocol):
    """What every asset store offers: content-addressed put, read by key, existence check."""

    def put(self, data: bytes, *, extension: str, media_type: str) -> MediaFile:
        """Store ``data`` under its content address and describe it."""
        ...

    def read(self, file: MediaFile | str) -> bytes:
        """Return the bytes of a stored file, given as a ``MediaFile`` or its key."""
        ...

    def exists(self, file: MediaFile | str) -> bool:
        """Whether a file with this key is stored."""
        ...

    def stream(self, file: MediaFile | str) -> Iterator[bytes]:
        """The bytes of a stored file in chunks, for serving without holding it in memory."""
        ...

    def location(self, file: MediaFile | str) -> str:
        """Where a stored file lives, for people: a local path or an ``s3://`` URL."""
        ...


class LocalFileStore:
    """A content-addressed store in a local folder, one flat file per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, *, extension: str, media_type: str) -> MediaFile:
        """Store ``data`` as ``<sha256>.<extension>``; a no-op when that file already exists.

        The file is written to a temporary name in the same folder and renamed into place,
        so a reader never sees a partly written file.

        Raises:
            ValueError: If ``extension`` is not 1-16 lowercase letters or digits.

        """
        file = _describe(data, extension=extension, media_type=media_type)
        target = self.path(file)
        if not target.exists():
            _write_atomically(target, data)
        return record(file)

    def path(self, file: MediaFile | str) -> Path:
        """Return the local path of a stored file, given as a ``MediaFile`` or its key.

        Raises:
            ValueError: If the key is not ``<64 hex digits>.<extension>``.

        """
        return self.root / _validated_key(file)

    def read(self, file: MediaFile | str) -> bytes:
        """Return the bytes of a stored file.

        Raises:
            ValueError: If the key is invalid.
            FileNotFoundError: If no file with this key is stored.

        """
        return self.path(file).read_bytes()

    def exists(self, file: MediaFile | str) -> bool:
        """Whether a file with this key is stored.

        Raises:
            ValueError: If the key is invalid.

        """
        return self.path(file).is_file()

    def stream(self, file: MediaFile | str) -> Iterator[bytes]:
        """The file's bytes in 1 MiB chunks.

        Raises:
            ValueError: If the key is invalid.
            FileNotFoundError: If no file with this key is stored (on the first chunk).

        """
        with self.path(file).open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    def location(self, file: MediaFile | str) -> str:
        """The file's local path."""
        return str(self.path(file).resolve())


class S3FileStore:
    """A content-addressed store in an S3 bucket: AWS, or any S3-compatible endpoint.

    Objects are ``<prefix><sha256>.<ext>`` with their media type and an immutable
    ``Cache-Control``; writing content that is already stored costs one ``HEAD``. The
    bucket must exist. Credentials not given here come from boto3's usual chain
    (environment, ``~/.aws``, instance role).

    Example:
        >>> store = S3FileStore("media", endpoint_url="http://minio:9000")  # doctest: +SKIP
        >>> file = store.put(b"frame", extension="png", media_type="image/png")  # doctest: +SKIP
        >>> store.location(file).startswith("s3://media/")  # doctest: +SKIP
        True

    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
    ) -> None:
        import boto3  # only S3 users pay for importing it
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.client: BaseClient = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Other S3 implementations want path-style URLs and may not know the
                # checksum trailers boto3 adds by default; send checksums only if required.
                s3={"addressing_style": "path"} if endpoint_url else {},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def put(self, data: bytes, *, extension: str, media_type: str) -> MediaFile:
        """Upload ``data`` as ``<sha256>.<extension>`` unless that object already exists.

        Raises:
            ValueError: If ``extension`` is not 1-16 lowercase letters or digits.

        """
        file = _describe(data, extension=extension, media_type=media_type)
        if not self.exists(file):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object(file),
                Body=data,
                ContentType=media_type,
                CacheControl="public, max-age=31536000, immutable",
            )
        return record(file)

    def read(self, file: MediaFile | str) -> bytes:
        """Return the bytes of a stored file.

        Raises:
            ValueError: If the key is invalid.
            FileNotFoundError: If no file with this key is stored.

        """
        return b"".join(self.stream(file))

    def exists(self, file: MediaFile | str) -> bool:
        """Whether a file with this key is stored (one ``HEAD`` request).

        Raises:
            ValueError: If the key is invalid.

        """
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(file))
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def stream(self, file: MediaFile | str) -> Iterator[bytes]:
        """The object's bytes in 1 MiB chunks, as S3 sends them.

        Raises:
            ValueError: If the key is invalid.
            FileNotFoundError: If no file with this key is stored (on the first chunk).

        """
        key = self._object(file)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object '{key}' in bucket '{self.bucket}'") from None
        with body:
            yield from body.iter_chunks(_CHUNK)

    def location(self, file: MediaFile | str) -> str:
        """The object's ``s3://bucket/key`` URL."""
        return f"s3://{self.bucket}/{self._object(file)}"

    def _object(self, file: MediaFile | str) -> str:
        return f"{self.prefix}{_validated_key(file)}"


def _describe(data: bytes, *, extension: str, media_type: str) -> MediaFile:
    """The content address and description of ``data``."""
    if not _EXTENSION.fullmatch(extension):
        raise ValueError(
            f"invalid extension {extension!r}: expected 1-16 lowercase letters or digits, "
            "without a dot"
        )
    digest = hashlib.sha256(data).hexdigest()
    return MediaFile(
        sha256=digest, key=f"{digest}.{extension}", media_type=media_type, size_bytes=len(data)
    )


def _validated_key(file: MediaFile | str) -> str:
    key = file.key if isinstance(file, MediaFile) else file
    if not _KEY.fullmatch(key):
        raise ValueError(
            f"invalid store key {key!r}: expected '<64 lowercase hex digits>.<extension>'"
        )
    return key


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
