"""Listing and deleting the files of a location, locally or on S3.

pyiceberg's FileIO reads and writes single files but cannot list a prefix, which orphan
removal and erasure verification need; pyarrow's filesystems can.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs as pafs


def open_fs(url: str, s3: Mapping[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """A filesystem and the root path in it for ``url`` (s3://bucket/prefix, file:// or a path)."""
    s3 = s3 or {}
    if url.startswith(("s3://", "s3a://")):
        parts = urlsplit(url)
        kwargs: dict[str, Any] = {"region": s3.get("s3.region", "us-east-1")}
        endpoint = s3.get("s3.endpoint")
        if endpoint:
            ep = urlsplit(endpoint)
            kwargs["endpoint_override"] = ep.netloc or endpoint
            kwargs["scheme"] = ep.scheme or "https"
        if "s3.access-key-id" in s3:
            kwargs["access_key"] = s3["s3.access-key-id"]
            kwargs["secret_key"] = s3["s3.secret-access-key"]
        if s3.get("s3.path-style-access") == "true":
            kwargs["force_virtual_addressing"] = False
        return pafs.S3FileSystem(**kwargs), (parts.netloc + parts.path).rstrip("/")
    if url.startswith("file://"):
        return pafs.LocalFileSystem(), urlsplit(url).path.rstrip("/")
    return pafs.LocalFileSystem(), url.rstrip("/")


def strip_scheme(path: str) -> str:
    """``s3://b/k`` -> ``b/k``; ``file:///x`` -> ``/x``: the form listings return."""
    if path.startswith("file://"):
        return urlsplit(path).path
    if "://" in path:
        parts = urlsplit(path)
        return parts.netloc + parts.path
    return path


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: str
    size: int
    mtime_s: float


def list_files(fs: pafs.FileSystem, root: str) -> Iterator[StoredFile]:
    """Every file under ``root`` (the empty ``dir/`` marker objects pyarrow creates on S3 skipped)."""
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File or info.path.endswith("/"):
            continue
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        yield StoredFile(info.path, info.size or 0, mtime)
