from __future__ import annotations

import pytest

from spanline.core.envelope import EnvelopeError, Opener, Sealer, new_key, parse_key
from spanline.core.kafka import DlqEntry, InMessage
from spanline.core.kafka.dlq import H_ERROR_REASON, H_SOURCE_OFFSET, dlq_record
from spanline.ingest.auth import ApiKeyAuth, AuthError
from spanline.ingest.config import hash_api_key


def test_seal_open_roundtrip_and_rotation() -> None:
    old, new = parse_key(new_key()), parse_key(new_key())
    sealed = Sealer(old).seal(b"payload", associated=b"trace")
    opener = Opener([new, old])
    assert opener.open(Sealer(old).header, sealed, associated=b"trace") == b"payload"
    assert b"payload" not in sealed


def test_open_rejects_tampering_wrong_key_and_garbage() -> None:
    key = parse_key(new_key())
    sealer = Sealer(key)
    sealed = bytearray(sealer.seal(b"payload", associated=b"k"))
    sealed[-1] ^= 1
    with pytest.raises(EnvelopeError, match="authentication"):
        Opener([key]).open(sealer.header, bytes(sealed), associated=b"k")
    with pytest.raises(EnvelopeError, match="no key configured"):
        Opener([parse_key(new_key())]).open(sealer.header, bytes(sealed))
    with pytest.raises(EnvelopeError, match="malformed"):
        Opener([key]).open(b"\xff", b"")
    with pytest.raises(EnvelopeError, match="too short"):
        Opener([key]).open(sealer.header, b"abc")


def test_api_key_auth() -> None:
    auth = ApiKeyAuth({hash_api_key("k1"): "acme"}, "default")
    assert auth.project_for([("authorization", "Bearer k1")]) == "acme"
    assert auth.project_for([("x-spanline-api-key", b"k1")]) == "acme"
    for md in ([], [("authorization", "Basic k1")], [("authorization", "Bearer k2")]):
        with pytest.raises(AuthError):
            auth.project_for(md)
    assert ApiKeyAuth({}, "default").project_for(None) == "default"


def test_dlq_record_keeps_original_and_adds_reason() -> None:
    msg = InMessage("spanline.raw", 2, 41, b"key", b"\x00orig", [("spanline-project", b"p")])
    rec = dlq_record(DlqEntry(msg, "decode_error", "not protobuf"), "redactor")
    assert rec.topic == "spanline.raw.dlq" and rec.value == b"\x00orig" and rec.key == b"key"
    headers = dict(rec.headers)
    assert headers[H_ERROR_REASON] == b"decode_error"
    assert headers[H_SOURCE_OFFSET] == b"41"
    assert headers["spanline-project"] == b"p"
