"""Claim check: large payload fields live in object storage under their SHA-256.

A row keeps ``spanline-ref:sha256:<hex>:<byte length>`` in place of the text. The key is
the content hash, so writing the same payload twice (a replay, a retried batch) writes the
same object: the store is idempotent without coordination, and a reader can verify what
it fetched. Local directories serve ``spanline up``; S3 (boto3, the ``s3`` extra) serves
production.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from spanline.spans.metrics import PAYLOAD_BYTES_OFFLOADED, PAYLOADS_OFFLOADED

REF_PREFIX = "spanline-ref:sha256:"
_REF_RE = re.compile(r"^spanline-ref:sha256:([0-9a-f]{64}):(\d+)$")


class ObjectStoreError(Exception):
    """The object store could not store or return an object."""


@dataclass(frozen=True, slots=True)
class PayloadRef:
    sha256: str
    length: int

    def __str__(self) -> str:
        return f"{REF_PREFIX}{self.sha256}:{self.length}"


def parse_ref(text: str) -> PayloadRef | None:
    if not text.startswith(REF_PREFIX):
        return None
    match = _REF_RE.match(text)
    return PayloadRef(match.group(1), int(match.group(2))) if match else None


class ObjectStore(Protocol):
    def put(self, sha256: str, data: bytes) -> None: ...

    def get(self, sha256: str) -> bytes: ...

    def describe(self) -> str: ...


class LocalObjectStore:
    """Objects as files ``<root>/sha256/ab/<hex>``; written to a temp file, then renamed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists() and path.stat().st_size == len(data):
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise ObjectStoreError(
                f"cannot write object {sha256[:12]} under {self.root}: {exc.strerror}"
            ) from None

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except OSError as exc:
            raise ObjectStoreError(
                f"cannot read object {sha256[:12]} under {self.root}: {exc.strerror}"
            ) from None

    def describe(self) -> str:
        return str(self.root)


class S3ObjectStore:
    """Objects as ``s3://bucket/<prefix>/sha256/<hex>``; boto3 is imported only when used."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None) -> None:
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        try:
            import boto3  # optional dependency (extra 's3')
        except ImportError:
            raise ObjectStoreError("object_store_url is s3://, install the 's3' extra (boto3)") from None
        self._client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}/sha256/{sha256}" if self.prefix else f"sha256/{sha256}"

    def put(self, sha256: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(sha256)
        try:
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=key)
                if int(head.get("ContentLength", -1)) == len(data):
                    return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                f"cannot write object {sha256[:12]} to s3://{self.bucket}: {exc}"
            ) from None

    def get(self, sha256: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(sha256))
            return bytes(response["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                f"cannot read object {sha256[:12]} from s3://{self.bucket}: {exc}"
            ) from None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def open_object_store(
    url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None
) -> ObjectStore:
    """A store for a resolved URL (see ``spanline.writer.config.resolve_object_store_url``)."""
    if url.startswith("s3://"):
        return S3ObjectStore(url, endpoint_url=s3_endpoint_url, region=s3_region)
    if url.startswith("file://"):
        return LocalObjectStore(urlsplit(url).path)
    return LocalObjectStore(url)


class PayloadOffloader:
    """Decides, per payload field, whether it stays inline or becomes a reference."""

    def __init__(self, store: ObjectStore, threshold_bytes: int) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes

    def offload(self, text: str) -> tuple[str, int]:
        """(value for the row, original length in UTF-8 bytes)."""
        if not text:
            return "", 0
        if text.startswith(REF_PREFIX):
            ref = parse_ref(text)
            if ref is not None:  # already claim-checked upstream
                return text, ref.length
        # a str of n chars encodes to at most 4n bytes: skip the encode for small fields
        if len(text) * 4 <= self.threshold_bytes:
            return text, len(text.encode("utf-8")) if not text.isascii() else len(text)
        data = text.encode("utf-8")
        if len(data) <= self.threshold_bytes:
            return text, len(data)
        digest = hashlib.sha256(data).hexdigest()
        self.store.put(digest, data)
        PAYLOADS_OFFLOADED.inc()
        PAYLOAD_BYTES_OFFLOADED.inc(len(data))
        return str(PayloadRef(digest, len(data))), len(data)

    def inline(self, value: str) -> str:
        """The original text of a stored value (references fetched and verified)."""
        ref = parse_ref(value) if value.startswith(REF_PREFIX) else None
        if ref is None:
            return value
        return fetch_ref(self.store, ref)


def fetch_ref(store: ObjectStore, ref: PayloadRef) -> str:
    data = store.get(ref.sha256)
    if len(data) != ref.length or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ObjectStoreError(f"object {ref.sha256[:12]} in {store.describe()} does not match its reference")
    return data.decode("utf-8")


def inline_value(store: ObjectStore | None, value: str) -> str:
    """Inline a possibly-referenced value; without a store references are returned as-is."""
    if store is None or not value.startswith(REF_PREFIX):
        return value
    ref = parse_ref(value)
    return value if ref is None else fetch_ref(store, ref)
