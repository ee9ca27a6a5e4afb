"""Where call audio lives: an object store, never Redis.

``ObjectStore`` is what the service needs of one — put a whole object, read a byte
range, size, delete, and list what is older than a cut-off (for retention). The default
is ``FileObjectStore`` (a directory; writes are atomic: a temporary file renamed into
place); ``S3ObjectStore`` keeps them in any S3-compatible bucket through boto3.
``object_store(url)`` builds one from ``Settings.recordings_url``
(``file:///var/lib/switchboard/recordings``, a relative ``file://recordings``, or
``s3://bucket/prefix?endpoint_url=http://minio:9000``).
Keys are ``recordings/<CallSid>.wav``: ``[A-Za-z0-9_./-]`` only, no ``..``.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from app.errors import ConfigError

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,255}$")


def recording_key(call_sid: str) -> str:
    """The object key of a call's recording. Raises ``ValueError`` for a bad SID."""
    if re.fullmatch(r"CA[0-9a-fA-F]{32}", call_sid) is None:
        raise ValueError("not a CallSid")
    return f"recordings/{call_sid}.wav"


class ObjectStore(Protocol):
    """Blocking calls (run them in a thread from async code)."""

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key``; returns its location (a URL)."""
        ...

    def size(self, key: str) -> int | None:
        """Bytes in the object, or None when there is none."""
        ...

    def read(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none."""
        ...

    def older_than(self, prefix: str, cutoff_s: float) -> list[str]:
        """Keys under ``prefix`` last written before ``cutoff_s`` (Unix seconds)."""
        ...


class FileObjectStore:
    """Objects as files under ``root`` (created when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        if _KEY_RE.match(key) is None or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, key: str, start: int, end: int) -> bytes:
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(max(0, end - start + 1))

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def older_than(self, prefix: str, cutoff_s: float) -> list[str]:
        base = self._path(prefix.rstrip("/") or ".")
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.iterdir()
            if p.is_file() and not p.name.startswith(".tmp-") and p.stat().st_mtime < cutoff_s
        )


class S3ObjectStore:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, …) through boto3 (the
    ``s3`` extra). Credentials come from boto3's usual chain (environment, profile,
    instance role); ``endpoint_url`` names a non-AWS service."""

    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client: Any = None
    ) -> None:
        if client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - the extra is installed in dev
                raise ConfigError(
                    "s3:// recordings need boto3: pip install 'switchboard[s3]'"
                ) from exc
            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, key: str) -> str:
        if _KEY_RE.match(key) is None or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return self.prefix + key

    def put(self, key: str, data: bytes) -> str:
        k = self._key(key)
        self.client.put_object(Bucket=self.bucket, Key=k, Body=data, ContentType="audio/wav")
        return f"s3://{self.bucket}/{k}"

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def read(self, key: str, start: int, end: int) -> bytes:
        got = self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
        )
        body: bytes = got["Body"].read()
        return body

    def delete(self, key: str) -> bool:
        if self.size(key) is None:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return True

    def older_than(self, prefix: str, cutoff_s: float) -> list[str]:
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix.rstrip("/")) + "/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["LastModified"].timestamp() < cutoff_s:
                    out.append(str(obj["Key"])[len(self.prefix) :])
        return sorted(out)


def object_store(url: str, base: Path) -> ObjectStore:
    """The store ``url`` names: ``file://<dir>`` (relative to ``base`` unless absolute) or
    ``s3://<bucket>[/<prefix>][?endpoint_url=http://host:port]``. Raises ``ConfigError``
    for another scheme."""
    if url.startswith("file://"):
        path = Path(url.removeprefix("file://"))
        return FileObjectStore(path if path.is_absolute() else base / path)
    if url.startswith("s3://"):
        parts = urlsplit(url)
        endpoint = parse_qs(parts.query).get("endpoint_url", [None])[0]
        if not parts.netloc:
            raise ConfigError("s3:// recordings URL names no bucket")
        return S3ObjectStore(parts.netloc, parts.path, endpoint)
    raise ConfigError(
        f"unsupported recordings store {url.split(':', 1)[0]!r}: use file:// or s3://"
    )


def sweep(store: ObjectStore, retention_s: int, now_s: float | None = None) -> list[str]:
    """Delete the recordings older than ``retention_s`` (the call records' retention);
    returns the keys deleted."""
    cutoff = (time.time() if now_s is None else now_s) - retention_s
    gone = [k for k in store.older_than("recordings", cutoff) if store.delete(k)]
    return gone


async def sweep_forever(store: ObjectStore, retention_s: int, interval_s: float) -> None:
    """Run ``sweep`` every ``interval_s`` (in a thread) until cancelled; a failing sweep
    is logged and retried at the next interval."""
    import asyncio
    import logging

    log = logging.getLogger(__name__)
    while True:
        try:
            gone = await asyncio.to_thread(sweep, store, retention_s)
            if gone:
                log.info("retention: %d recordings deleted", len(gone))
        except Exception as exc:
            log.warning("recordings sweep failed: %s", exc)
        await asyncio.sleep(interval_s)
