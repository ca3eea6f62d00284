"""Envelope encryption of the raw topic (AES-256-GCM).

`spanline.raw` holds unredacted data; with a key configured, ingest seals every value
and the redactor opens it, so the broker's disks only ever see ciphertext. The key id in
the header lets operators rotate keys: the redactor accepts every configured key.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "aesgcm-v1"
_NONCE = 12


class EnvelopeError(Exception):
    pass


def parse_key(text: str) -> bytes:
    """Keys are 32 random bytes, base64 encoded (`spanline gen-key` prints one)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise EnvelopeError("encryption key is not valid base64") from None
    if len(key) != 32:
        raise EnvelopeError(f"encryption key must decode to 32 bytes, got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"spanline-key-id" + key).hexdigest()[:16]


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.header = f"{SCHEME}:{key_id(key)}".encode("ascii")

    def seal(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, associated or None)


class Opener:
    def __init__(self, keys: list[bytes]) -> None:
        self._by_id = {key_id(k): AESGCM(k) for k in keys}

    def open(self, header: bytes, sealed: bytes, associated: bytes = b"") -> bytes:
        try:
            scheme, kid = header.decode("ascii").split(":", 1)
        except (UnicodeDecodeError, ValueError):
            raise EnvelopeError("malformed encryption header") from None
        if scheme != SCHEME:
            raise EnvelopeError(f"unsupported encryption scheme {scheme!r}")
        aead = self._by_id.get(kid)
        if aead is None:
            raise EnvelopeError(f"no key configured for key id {kid}")
        if len(sealed) < _NONCE + 16:
            raise EnvelopeError("ciphertext too short")
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], associated or None)
        except InvalidTag:
            raise EnvelopeError("ciphertext failed authentication") from None
