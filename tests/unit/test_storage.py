import hashlib
import os

import pytest

from tools.storage import FileStore, LocalFileStore, MediaFile


@pytest.fixture
def store(tmp_path):
    return LocalFileStore(tmp_path / "assets")


def test_put_addresses_file_by_sha256_of_content(store):
    data = b"\x89PNG fake image bytes"

    file = store.put(data, extension="png", media_type="image/png")

    digest = hashlib.sha256(data).hexdigest()
    assert file == MediaFile(
        sha256=digest, key=f"{digest}.png", media_type="image/png", size_bytes=len(data)
    )
    assert store.path(file) == store.root / f"{digest}.png"
    assert store.read(file) == data
    assert store.read(file.key) == data


def test_same_content_gives_same_key_and_one_file(store):
    first = store.put(b"same", extension="mp4", media_type="video/mp4")
    second = store.put(b"same", extension="mp4", media_type="video/mp4")

    assert first == second
    assert sorted(p.name for p in store.root.iterdir()) == [first.key]


def test_writing_existing_content_leaves_file_untouched(store):
    file = store.put(b"same", extension="mp4", media_type="video/mp4")
    os.utime(store.path(file), (1_000_000, 1_000_000))

    store.put(b"same", extension="mp4", media_type="video/mp4")

    assert store.path(file).stat().st_mtime == 1_000_000


def test_changed_content_gives_different_key(store):
    first = store.put(b"take 1", extension="png", media_type="image/png")
    second = store.put(b"take 2", extension="png", media_type="image/png")

    assert first.key != second.key
    assert store.read(first) == b"take 1"
    assert store.read(second) == b"take 2"


def test_empty_content_is_stored(store):
    file = store.put(b"", extension="txt", media_type="text/plain")

    assert file.size_bytes == 0
    assert store.read(file) == b""


def test_put_leaves_no_temporary_files(store):
    for i in range(5):
        store.put(bytes([i]) * 1000, extension="bin", media_type="application/octet-stream")

    assert len(list(store.root.iterdir())) == 5
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_exists(store):
    file = store.put(b"x", extension="png", media_type="image/png")
    missing = f"{hashlib.sha256(b'y').hexdigest()}.png"

    assert store.exists(file)
    assert store.exists(file.key)
    assert not store.exists(missing)
    with pytest.raises(FileNotFoundError):
        store.read(missing)


def test_store_survives_reopening(tmp_path):
    file = LocalFileStore(tmp_path).put(b"kept", extension="png", media_type="image/png")

    assert LocalFileStore(tmp_path).read(file) == b"kept"


_HEX = "a" * 64


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        f"../{_HEX}.png",
        f"sub/{_HEX}.png",
        f"/{_HEX}.png",
        f"{_HEX}.png/..",
        f"{_HEX}.png\n",
        f"{_HEX}.",
        f"{_HEX}",
        f"{'A' * 64}.png",
        f"{'a' * 63}.png",
        f"{_HEX}.p/g",
        "",
    ],
)
def test_invalid_keys_are_rejected(store, key):
    with pytest.raises(ValueError, match="invalid store key"):
        store.path(key)
    with pytest.raises(ValueError, match="invalid store key"):
        store.read(key)
    with pytest.raises(ValueError, match="invalid store key"):
        store.exists(key)


@pytest.mark.parametrize("extension", ["", ".png", "p/ng", "../x", "PNG", "x" * 17])
def test_invalid_extensions_are_rejected(store, extension):
    with pytest.raises(ValueError, match="invalid extension"):
        store.put(b"x", extension=extension, media_type="image/png")

    assert list(store.root.iterdir()) == []


def test_local_store_satisfies_file_store_protocol(store):
    assert isinstance(store, FileStore)
