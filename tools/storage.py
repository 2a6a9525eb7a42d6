"""Content-addressed file storage for generated media.

Every file is stored under the SHA-256 of its bytes, so a key changes whenever content does
and writing the same content twice costs nothing. ``LocalFileStore`` keeps files in a folder;
other stores (S3) implement the same ``FileStore`` protocol.

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
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FileStore", "LocalFileStore", "MediaFile"]

_KEY = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,16}")
_EXTENSION = re.compile(r"[a-z0-9]{1,16}")


class MediaFile(BaseModel):
    """A content-addressed file in the asset store."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    key: str = Field(description="Store key, '<sha256>.<ext>'; changes whenever content does.")
    media_type: str
    size_bytes: int = Field(ge=0)


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
        if not _EXTENSION.fullmatch(extension):
            raise ValueError(
                f"invalid extension {extension!r}: expected 1-16 lowercase letters or digits, "
                "without a dot"
            )
        digest = hashlib.sha256(data).hexdigest()
        file = MediaFile(
            sha256=digest,
            key=f"{digest}.{extension}",
            media_type=media_type,
            size_bytes=len(data),
        )
        target = self.path(file)
        if not target.exists():
            _write_atomically(target, data)
        return file

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
