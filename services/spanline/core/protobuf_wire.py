"""Protobuf wire encoding by hand, for records assembled from already-serialized parts.

Ingest frames each trace's spans, and the scorer each trace's scores, from bytes it already
holds: framing them costs a tag and a length, where building message objects to serialize
would parse and copy every part again.
"""

from __future__ import annotations

_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    """``n`` (>= 0) as a base-128 varint."""
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:  # a score, a span: most lengths take two bytes
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """One length-delimited field: its ``tag`` bytes, the payload's length, the payload."""
    return tag + varint(len(payload)) + payload
