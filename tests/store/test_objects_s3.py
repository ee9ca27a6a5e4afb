"""The S3 recordings store against a real S3-compatible server on a local socket (moto in
server mode), through boto3 as in production; the recording endpoint serves ranges from it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.ranges import parse_range
from app.store.objects import S3ObjectStore, object_store, recording_key, sweep
from tests.helpers import free_ports

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    (port,) = free_ports(1)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def store(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3ObjectStore:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"rec-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    built = object_store(f"s3://{bucket}/calls?endpoint_url={endpoint}", Path("."))
    assert isinstance(built, S3ObjectStore)
    return built


def test_put_range_delete_and_sweep(store: S3ObjectStore) -> None:
    key = recording_key("CA" + "b" * 32)
    data = bytes(range(256)) * 40
    url = store.put(key, data)
    assert url == f"s3://{store.bucket}/calls/{key}"
    assert store.size(key) == len(data)
    start, end = parse_range("bytes=100-199", len(data)) or (0, 0)
    assert store.read(key, start, end) == data[100:200]
    assert store.read(key, len(data) - 10, len(data) - 1) == data[-10:]
    assert sweep(store, 3600) == []
    assert sweep(store, 3600, now_s=time.time() + 3601) == [key]
    assert store.size(key) is None and store.delete(key) is False
