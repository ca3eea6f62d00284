"""String literals of a raw JSON document, found around byte offsets without walking it.

Walking a JSON document (:meth:`MessageWalk._walk_json`) visits every leaf in Python; on
chat payloads that costs several times what the detectors do. When the prefilter has
located where its triggers match in the raw text (:meth:`Prefilter.locate_in_text`), only
two kinds of string literals can hold something to redact:

* a literal in which a match ends: a detector's finding in a leaf is a trigger match inside
  that leaf's text, and a literal without backslashes *is* its leaf's text, in the same
  bytes, opened by a ``"`` that no trigger's left-context class holds;
* a literal holding a backslash: its escapes may decode to what a trigger matches (``\\u00e9``
  before a card number, ``\\u00a0`` inside a phone number), so it is decoded and checked.

:func:`candidate_values` returns those literals, as long as each is the value of an object
member with a plain key; anything else (a match in a key, a number or between tokens, a
value inside an array, a key with escapes) is ``None``: the caller then walks the document.
A match ending in a number the walk ignores (a float, an integer below 10^8), or on an
identifier key holding such a number, needs neither.
"""

from __future__ import annotations

import re
from typing import Final

# From an offset outside any literal: non-quote runs and whole literals. Matched with an end
# offset inside a literal, it stops at that literal's opening quote.
_OUTSIDE: Final = re.compile(rb'(?:[^"]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
_LITERAL: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_WHITESPACE: Final = b" \t\r\n"
_COLON: Final = 0x3A
_BACKSLASH: Final = 0x5C
_QUOTE: Final = 0x22
_NOT_BRACKETS: Final = bytes(c for c in range(256) if c not in b"[]{}")


_NUMBER_BYTES: Final = frozenset(b"0123456789+-.eE")
_FLOAT_MARKS: Final = frozenset(b".eE")
# the walk checks integers from 100 000 000 on (MessageWalk.number); floats never
_INERT_INT_DIGITS: Final = 8


def _inert_number_end(data: bytes, q: int) -> int:
    """End of the JSON number token holding offset ``q`` when the walk can find nothing in
    it (a float, or an integer of at most eight digits), else -1. Request parameters and
    token counts ("temperature": 0.7, "max_tokens": 1024) fire digit triggers outside any
    literal; without this they would send every chat document to the walk."""
    n = len(data)
    if q >= n or data[q] not in _NUMBER_BYTES:
        return -1
    start = q
    while start > 0 and data[start - 1] in _NUMBER_BYTES:
        start -= 1
    end = q + 1
    while end < n and data[end] in _NUMBER_BYTES:
        end += 1
    token = data[start:end]
    if not (token[:1].isdigit() or token[:1] == b"-"):
        return -1
    if any(c in _FLOAT_MARKS for c in token):
        return end
    digits = len(token) - (token[:1] == b"-")
    return end if digits <= _INERT_INT_DIGITS else -1


def _inert_end(data: bytes, q: int) -> int:
    """Where to go on when a match ends at offset ``q`` outside any literal and the walk can
    find nothing there, else -1: inside an inert number, or on the closing quote of, or the
    colon after, a plain identifier key whose value is an inert number. The walk never
    scans identifier keys, and a key (even a sensitive one: "max_tokens", "prompt_tokens")
    changes nothing about a number under it; the credential triggers end on such keys."""
    end = _inert_number_end(data, q)
    if end >= 0:
        return end
    n = len(data)
    if data[q] == _QUOTE:
        key_close, colon = q, q + 1
        while colon < n and data[colon] in _WHITESPACE:
            colon += 1
        if colon >= n or data[colon] != _COLON:
            return -1
    elif data[q] == _COLON:
        colon, key_close = q, q - 1
        while key_close >= 0 and data[key_close] in _WHITESPACE:
            key_close -= 1
        if key_close < 0 or data[key_close] != _QUOTE:
            return -1
    else:
        return -1
    key_open = data.rfind(b'"', 0, key_close)
    if key_open < 0 or (key_open > 0 and data[key_open - 1] == _BACKSLASH):
        return -1
    key = data[key_open + 1 : key_close]
    if not key.isascii() or not key.decode("ascii").isidentifier():
        return -1
    value = colon + 1
    while value < n and data[value] in _WHITESPACE:
        value += 1
    return _inert_number_end(data, value)


def _key_of(data: bytes, start: int) -> str | None:
    """The key of the object member whose value is the literal at ``start``; None if the
    literal is no member value or its key holds escapes."""
    if data.startswith(b'": ', start - 3):  # the usual separators first
        j = start - 3
    elif data.startswith(b'":', start - 2):
        j = start - 2
    else:
        j = start - 1
        while j >= 0 and data[j] in _WHITESPACE:
            j -= 1
        if j < 0 or data[j] != _COLON:
            return None
        j -= 1
        while j >= 0 and data[j] in _WHITESPACE:
            j -= 1
    opening = data.rfind(b'"', 0, j)
    if opening <= 0 or data[opening - 1] == _BACKSLASH:
        return None
    raw = data[opening + 1 : j]
    if b"\\" in raw:
        return None
    return raw.decode("utf-8", "surrogatepass")


def candidate_values(
    data: bytes, hits: list[tuple[int, int]]
) -> list[tuple[int, int, str, set[int] | None]] | None:
    """``(start, end, key, detectors)`` of every string literal ``data[start:end]`` (quotes
    included) in which one of the located ``hits`` (``(end offset, detector)``, by offset)
    ends, or holding a backslash, in document order; None when one of them is not an
    object member's value with a plain key, or a match ends outside string literals.

    ``detectors``: those whose matches end in the literal (a superset of the detectors that
    can find something in its text); None for a literal with escapes (its decoded text was
    not scanned) or a match of no known detector.
    ``data`` must be a valid JSON document (the caller has parsed it).
    """
    out: list[tuple[int, int, str, set[int] | None]] = []
    # Without escaped quotes every quote delimits a literal: counting them tells whether an
    # offset is inside one (in C), instead of matching every literal on the way.
    by_parity = b'\\"' not in data
    pos = 0  # outside any literal
    hit = 0
    n_hits = len(hits)
    slash = data.find(b"\\")
    while True:
        while hit < n_hits and hits[hit][0] <= pos:
            hit += 1
        if 0 <= slash < pos:
            slash = data.find(b"\\", pos)
        q = hits[hit][0] - 1 if hit < n_hits else -1
        if slash >= 0 and (q < 0 or slash < q):
            q = slash
        if q < 0:
            return out
        if by_parity:
            if data.count(b'"', pos, q) % 2 == 0 or data[q] == _QUOTE:
                # q is outside any literal, or is a quote: fine only inside an inert number
                pos = _inert_end(data, q) if q != slash else -1
                if pos < 0:
                    return None
                continue
            start = data.rfind(b'"', pos, q)
            end = data.find(b'"', q) + 1
        else:
            start = _OUTSIDE.match(data, pos, q + 1).end()  # type: ignore[union-attr]
            if start >= q:  # q is an opening quote (==) or outside any literal (>)
                if start == q or q == slash or (pos := _inert_end(data, q)) < 0:
                    return None
                continue
            literal = _LITERAL.match(data, start)
            if literal is None:
                return None
            end = literal.end()
        key = _key_of(data, start)
        if key is None:
            return None
        detectors: set[int] | None = set()
        while hit < n_hits and hits[hit][0] <= end:
            owner = hits[hit][1]
            if owner < 0:
                detectors = None
                break
            detectors.add(owner)  # type: ignore[union-attr]
            hit += 1
        if 0 <= slash < end:
            detectors = None
        pos = end
        out.append((start, end, key, detectors))


def nesting_depth(data: bytes) -> int:
    """How deep the arrays and objects of a valid JSON document nest (1: a flat array)."""
    brackets = _LITERAL.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for c in brackets:
        if c == 0x5B or c == 0x7B:
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest
