"""Per-project API keys from gRPC metadata, compared by SHA-256 digest.

Settings only ever hold digests; the clear key exists in the client and in this
process's memory for the duration of one call.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping


class AuthError(Exception):
    pass


class ApiKeyAuth:
    def __init__(self, hashed_keys: Mapping[str, str], default_project: str) -> None:
        self._keys = {k.removeprefix("sha256:"): v for k, v in hashed_keys.items()}
        self.default_project = default_project

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def project_for(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
        """The project a call belongs to; raise AuthError if keys are on and it has none valid."""
        if not self._keys:
            return self.default_project
        key = _extract_key(metadata or ())
        if key is None:
            raise AuthError("missing API key: send 'authorization: Bearer <key>' or 'x-spanline-api-key'")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        for known, project in self._keys.items():
            if hmac.compare_digest(known, digest):
                return project
        raise AuthError("invalid API key")


def _extract_key(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for name, value in metadata:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        lname = name.lower()
        if lname == "x-spanline-api-key" and text:
            return text.strip()
        if lname == "authorization":
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
