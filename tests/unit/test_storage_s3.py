"""The S3 file store against a local S3-compatible server (moto) over a real socket."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from api.settings import Settings
from tests.doubles.s3_server import CREDENTIALS, client, run_s3_server
from tools.storage import FileStore, LocalFileStore, MediaFile, S3FileStore


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with run_s3_server() as url:
        yield url


@pytest.fixture
def bucket(s3_url: str) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    client(s3_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(s3_url: str, bucket: str) -> S3FileStore:
    return S3FileStore(bucket, endpoint_url=s3_url, region="us-east-1", **CREDENTIALS)


def _objects(url: str, bucket: str) -> list[str]:
    listing = client(url).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_put_addresses_object_by_sha256_of_content(store, s3_url, bucket):
    data = b"\x89PNG fake image bytes"

    file = store.put(data, extension="png", media_type="image/png")

    digest = hashlib.sha256(data).hexdigest()
    assert file == MediaFile(
        sha256=digest, key=f"{digest}.png", media_type="image/png", size_bytes=len(data)
    )
    assert store.read(file) == data
    assert store.read(file.key) == data
    assert store.location(file) == f"s3://{bucket}/{digest}.png"
    head = client(s3_url).head_object(Bucket=bucket, Key=file.key)
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"


def test_same_content_gives_one_object_and_no_second_upload(store, s3_url, bucket):
    first = store.put(b"same", extension="mp4", media_type="video/mp4")
    stamp = client(s3_url).head_object(Bucket=bucket, Key=first.key)["LastModified"]

    second = store.put(b"same", extension="mp4", media_type="video/mp4")

    assert first == second
    assert _objects(s3_url, bucket) == [first.key]
    assert client(s3_url).head_object(Bucket=bucket, Key=first.key)["LastModified"] == stamp


def test_changed_content_gives_a_different_key(store):
    first = store.put(b"take 1", extension="png", media_type="image/png")
    second = store.put(b"take 2", extension="png", media_type="image/png")

    assert first.key != second.key
    assert store.read(first) == b"take 1"
    assert store.read(second) == b"take 2"


def test_empty_content_is_stored(store):
    file = store.put(b"", extension="txt", media_type="text/plain")

    assert store.read(file) == b""
    assert list(store.stream(file)) == []


def test_large_objects_stream_in_chunks(store):
    data = bytes(range(256)) * 10_000  # 2.5 MB

    file = store.put(data, extension="bin", media_type="application/octet-stream")
    chunks = list(store.stream(file))

    assert len(chunks) > 1
    assert b"".join(chunks) == data


def test_exists_and_missing_files(store):
    file = store.put(b"x", extension="png", media_type="image/png")
    missing = f"{hashlib.sha256(b'y').hexdigest()}.png"

    assert store.exists(file)
    assert store.exists(file.key)
    assert not store.exists(missing)
    with pytest.raises(FileNotFoundError, match="no object"):
        store.read(missing)


def test_prefix_keeps_objects_in_a_folder_of_the_bucket(s3_url, bucket):
    store = S3FileStore(bucket, endpoint_url=s3_url, prefix="auteur/files/", **CREDENTIALS)

    file = store.put(b"frame", extension="png", media_type="image/png")

    assert _objects(s3_url, bucket) == [f"auteur/files/{file.key}"]
    assert store.location(file) == f"s3://{bucket}/auteur/files/{file.key}"
    assert store.read(file) == b"frame"


@pytest.mark.parametrize("key", ["../etc/passwd", f"sub/{'a' * 64}.png", f"{'A' * 64}.png", ""])
def test_invalid_keys_are_rejected_before_any_request(store, key):
    for operation in (store.read, store.exists, store.location):
        with pytest.raises(ValueError, match="invalid store key"):
            operation(key)


@pytest.mark.parametrize("extension", ["", ".png", "p/ng", "PNG"])
def test_invalid_extensions_are_rejected(store, s3_url, bucket, extension):
    with pytest.raises(ValueError, match="invalid extension"):
        store.put(b"x", extension=extension, media_type="image/png")

    assert _objects(s3_url, bucket) == []


def test_a_missing_bucket_is_an_error_not_a_silent_loss(s3_url):
    store = S3FileStore("no-such-bucket", endpoint_url=s3_url, **CREDENTIALS)

    with pytest.raises(ClientError, match=r"NoSuchBucket"):
        store.put(b"x", extension="png", media_type="image/png")


def test_s3_store_satisfies_file_store_protocol(store):
    assert isinstance(store, FileStore)


def test_settings_choose_s3_when_a_bucket_is_configured(s3_url, bucket, tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        s3_bucket=bucket,
        s3_endpoint_url=s3_url,
        s3_region="us-east-1",
        s3_access_key_id=CREDENTIALS["access_key_id"],
        s3_secret_access_key=CREDENTIALS["secret_access_key"],
    )

    store = settings.file_store

    assert isinstance(store, S3FileStore)
    assert store.read(store.put(b"via settings", extension="txt", media_type="text/plain")) == (
        b"via settings"
    )
    assert isinstance(Settings(data_dir=tmp_path).file_store, LocalFileStore)


def test_s3_settings_read_the_usual_aws_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTEUR_S3_BUCKET", "media")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")

    settings = Settings(data_dir=tmp_path)

    assert settings.s3_bucket == "media"
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.s3_access_key_id.get_secret_value() == "from-env"
    assert "secret-from-env" not in repr(settings)
