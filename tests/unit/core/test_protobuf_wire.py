"""Hand-written protobuf framing writes what the protobuf runtime writes."""

from __future__ import annotations

import pytest
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

from spanline.core.protobuf_wire import length_delimited, varint


@pytest.mark.parametrize(
    "n", [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**32, 2**63 - 1, 2**64 - 1]
)
def test_varint_matches_the_runtime(n: int) -> None:
    assert varint(n) == _VarintBytes(n)


def test_length_delimited() -> None:
    assert length_delimited(b"\x0a", b"x" * 200) == b"\x0a" + _VarintBytes(200) + b"x" * 200
