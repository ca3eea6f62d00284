"""Skipping what cannot hold anything to redact: whole spans, log records, resources,
attributes, JSON documents.

Walking an OTLP message in Python costs far more than detecting (protobuf wrapper objects,
one call per attribute, ``json.loads`` and a Python walk over every JSON leaf), and most
telemetry holds nothing to redact. So before walking an element the engine serialises it
(upb, in C) and runs Hyperscan over the bytes with every pattern that could make the walk
change something. No hit means the walk would change nothing, and it is skipped; hits are
located (:meth:`Prefilter.flag_elements`) so that only the attributes holding one are
walked.

Why a clean pass proves the walk is a no-op, for every way the walk can change a value:

* **Detectors** run only where one of their triggers matches (a superset, see
  ``TextDetector``; the context-aware ``element_triggers`` of emails, IBANs and numbers
  are a superset of what those detectors find). Every text the walk scans is a contiguous
  part of the scanned bytes: strings are stored contiguously in protobuf, JSON leaves and
  keys are substrings of their document once JSON escapes are decoded. Escapes are
  decoded in *views* (below), so a trigger hidden behind ``\\n`` or ``\\u0040`` is still
  seen. A trigger matching across two texts is only a false alarm (the walk runs).
  Detectors without triggers (policy regexes, dictionaries, NER) and platforms without
  Hyperscan disable the prefilter.
* **Context**: a trigger that requires its first character not to follow some characters
  also fires after what precedes a scanned protobuf string (its field tag and length,
  ``_STRING_START``) and after the quote that opens a JSON string.
* **Sensitive key names** (whole value replaced whatever it holds): a key ends with one of
  the words of ``SENSITIVE_KEY`` (its ``$`` also matches before a final newline), matched
  with Python's Unicode case folding (U+017F long s, U+212A Kelvin, U+0130/U+0131 dotted
  and dotless i). upb serialises known fields in field order and unknown ones last, so the
  key of a ``KeyValue`` that has a value is immediately followed by the value's tag
  ``0x12``; a JSON key by its closing quote.
* **Integers of 9+ digits** (scanned as text): an ``AnyValue`` holding only ``int_value``
  is serialised as tag ``0x18`` first, and a varint of absolute value >= 10^8 has at
  least three continuation bytes; the ``AnyValue`` itself follows the tag and length of
  its carrier (``KeyValue.value``, ``ArrayValue.values``, ``LogRecord.body``).
* **``bytes_value``** (tag ``0x3a`` in the same position): decoded with surrogateescape,
  so invalid UTF-8 is not scanned as the raw bytes; such values always take the walk.
* **A client-sent ``spanline.redaction``** attribute is removed by the walk: its name is
  a pattern too. Key allow lists disable the prefilter; deny lists are checked by their
  literal parts (see ``KeyFilter``) by the caller.
* **Limits**: an element no longer than ``max_string_chars`` bytes cannot hold a string
  over the limit, the only check the walk could fail on.

JSON escape views: view 0 is the bytes as they are; view k+1 decodes every JSON escape of
view k (``\\uXXXX`` including surrogate pairs as ``json`` does, ``\\n``, ``\\"``,
``\\\\``...). A JSON document starts with ``{``, ``[`` or whitespace, none of which can
follow a backslash in an escape, so decoding is aligned at every document start; in a
valid document every backslash starts an escape inside a string, so the leaves and keys of
a document found in view k are substrings of view k+1, and a document inside a leaf is
decoded by the next view. ``max_json_nesting`` views cover every level the walk parses.
A located pass (:meth:`Prefilter.flag_elements`) decodes each of its parts that holds
escapes and scans the views as more parts of the same pass, so a part whose views hold no
hit is clean like any other; the parts are small (a span's attributes one by one), and
only those with a backslash are decoded (a span attribute's views are its escaped JSON
literals alone: :func:`keyvalue_views`). :meth:`Prefilter.clean_text` checks one string
the same way, its views whole.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Container, Sequence
from json.decoder import scanstring  # type: ignore[attr-defined]
from operator import itemgetter
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from spanline.redactor.detectors.base import caseless_word
from spanline.redactor.detectors.scanner import (
    COARSE,
    HYPERSCAN_AVAILABLE,
    MAX_LOCATED_MATCHES,
    compile_database,
    confirm_coarse,
    joined_starts,
    part_of,
    shared_database,
    trigger_pattern,
)
from spanline.redactor.detectors.scanner import HYPERSCAN as _hs
from spanline.redactor.detectors.secrets import SENSITIVE_KEY_ENDINGS

_KEY_WORDS: Final = ("(?:" + "|".join(caseless_word(w) for w in SENSITIVE_KEY_ENDINGS) + ")").encode("ascii")
# Carrier tag of an AnyValue (KeyValue.value, ArrayValue.values, LogRecord.body) and its length.
_ANY_VALUE_HEAD: Final = rb"[\x0a\x12\x2a][\x80-\xff]{0,4}[\x00-\x7f]"


def identifier_key_pattern(key: str) -> bytes:
    """A ``KeyValue`` with this exact key and a value: tag 0x0a, length, key, value tag 0x12."""
    raw = key.encode("utf-8")
    return b"\\x0a" + b"\\x%02x" % len(raw) + b"".join(b"\\x%02x" % c for c in raw) + b"\\x12"


# Patterns that matter in text (JSON documents in strings) and in serialised elements.
TEXT_PATTERNS: Final = (_KEY_WORDS + rb'\n?"',)
# Patterns that only mean something in serialised protobuf.
ELEMENT_PATTERNS: Final = (
    _KEY_WORDS + rb"\n?\x12",
    _ANY_VALUE_HEAD + rb"\x18[\x80-\xff]{3}",  # int_value with |v| >= 10^8
    _ANY_VALUE_HEAD + rb"\x3a",  # bytes_value
    rb"spanline\.redaction",
)

_ESCAPE: Final = re.compile(
    rb'\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(["\\/bfnrt]))'
)
_ANY_ESCAPE: Final = re.compile(rb'\\["\\/bfnrtu]')
# A backslash followed by anything but what both JSON and Python bytes literals escape alike.
_OTHER_ESCAPE: Final = re.compile(rb'\\[^"\\bfnrt]', re.DOTALL)
_SIMPLE_ESCAPES: Final = {
    b'"': b'"',
    b"\\": b"\\",
    b"/": b"/",
    b"b": b"\b",
    b"f": b"\f",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
}
# Raw control characters cannot occur in a JSON document: a safe stand-in for "\\".
_BACKSLASH_STANDIN: Final = b"\x00"


def _escape_replacement(m: re.Match[bytes]) -> bytes:
    high, low, code, simple = m.groups()
    if simple is not None:
        return _SIMPLE_ESCAPES[simple]
    if high is not None:
        cp = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        return chr(cp).encode("utf-8")
    return chr(int(code, 16)).encode("utf-8", "surrogatepass")


def unescape_json(data: bytes) -> bytes:
    """Decode every JSON string escape in ``data`` (documents, and whatever surrounds them).

    Left to right like a JSON parser, so ``\\\\n`` is a backslash then ``n``. Without
    ``\\u`` escapes, a chain of C-level replaces does it: after ``\\\\`` pairs are set
    aside no two backslashes are adjacent, so the single-character escapes cannot
    interfere with each other.
    """
    if _OTHER_ESCAPE.search(data) is None:
        # Only \" \\ \b \f \n \r \t: the C decoder of Python bytes literals reads them
        # exactly as JSON does, in one pass (the chain below makes a dozen).
        try:
            return codecs.escape_decode(data)[0]
        except ValueError:  # a trailing backslash
            pass
    paired = data.replace(b"\\\\", _BACKSLASH_STANDIN) if b"\\\\" in data else data
    if b"\\u" in paired:
        return _ESCAPE.sub(_escape_replacement, data)
    out = paired
    for esc, char in ((b'\\"', b'"'), (b"\\/", b"/"), (b"\\n", b"\n"), (b"\\t", b"\t"), (b"\\r", b"\r")):
        if esc in out:
            out = out.replace(esc, char)
    if b"\\b" in out:
        out = out.replace(b"\\b", b"\b")
    if b"\\f" in out:
        out = out.replace(b"\\f", b"\f")
    if paired is not data:
        out = out.replace(_BACKSLASH_STANDIN, b"\\")
    return out


def json_view_list(data: bytes, levels: int) -> list[bytes]:
    """``data`` and up to ``levels`` successively unescaped views of it."""
    if b"\\" not in data or _ANY_ESCAPE.search(data) is None:  # (binary ids hold stray backslashes)
        return [data]
    views = [data]
    current = data
    for _ in range(levels):
        decoded = unescape_json(current)
        if decoded == current:
            break
        views.append(decoded)
        current = decoded
        if b"\\" not in current:
            break
    return views


_JSON_LITERAL: Final = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# From an offset outside any literal: non-quote runs and whole literals (json_literals._OUTSIDE).
_JSON_OUTSIDE: Final = re.compile(r'(?:[^"]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
_JSON_WHITESPACE: Final = " \t\r\n"


def keyvalue_views(serialized: bytes, levels: int) -> list[bytes] | None:
    """The decoded views a serialised ``KeyValue`` needs: for each JSON document among its
    string values, each string literal holding a backslash, decoded (quotes kept), and so on
    into the documents those hold, ``levels`` deep. None if the bytes are no ``KeyValue``.

    Why this is all the walk can see beyond the bytes as they are: a string value is either
    scanned as text (its bytes are in the element as they are) or parsed as a JSON document
    (:meth:`MessageWalk.string`: it starts with ``{`` or ``[`` and is valid JSON), whose
    leaves and keys the walk decodes. A literal without a backslash decodes to its own
    bytes; one with a backslash is added here whole, so the keys and leaves of a document
    inside it are in its decoded view (and its own escaped literals one level down). In a
    valid document every quote outside a literal opens one, so the literals found from the
    document's start are its literals; a document that is not valid JSON is scanned by the
    walk as text, and what is found in it here is only a false alarm.
    """
    try:
        kv = KeyValue.FromString(serialized)
    except DecodeError:
        return None
    out: list[bytes] = []
    values = [kv.value]
    while values:
        value = values.pop()
        kind = value.WhichOneof("value")
        if kind == "string_value":
            if "\\" in value.string_value:
                _literal_views(value.string_value, levels, out)
        elif kind == "array_value":
            values.extend(value.array_value.values)
        elif kind == "kvlist_value":
            values.extend(item.value for item in value.kvlist_value.values)
    return out


def _literal_views(document: str, levels: int, out: list[bytes]) -> None:
    if levels <= 0 or document.lstrip(_JSON_WHITESPACE)[:1] not in ("{", "["):
        return
    # A valid document has backslashes inside literals only. Without escaped quotes every
    # quote delimits a literal, so the one around a backslash is the quotes around it;
    # otherwise whole literals and what lies between them are skipped (in C) up to it.
    by_quotes = '\\"' not in document
    pos = 0  # outside any literal
    while (slash := document.find("\\", pos)) >= 0:
        if by_quotes:
            start, end = document.rfind('"', pos, slash), document.find('"', slash) + 1
        else:
            start = _JSON_OUTSIDE.match(document, pos, slash + 1).end()  # type: ignore[union-attr]
            literal = _JSON_LITERAL.match(document, start) if start < slash else None
            end = -1 if literal is None else literal.end()
        if start < 0 or end <= slash:
            return  # not a JSON document: the walk scans it as text
        pos = end
        try:
            text = scanstring(document[start:end], 1)[0]
        except ValueError:
            return
        out.append(f'"{text}"'.encode("utf-8", "surrogatepass"))
        if "\\" in text:
            _literal_views(text, levels - 1, out)


def _element_views() -> tuple[Any, Any, Any, Any]:
    """Message types that read a serialised Span or LogRecord in parts, as bytes, in C.

    ``SpanAttributes`` / ``LogRecordAttributes`` keep only the attributes (Span field 9,
    LogRecord field 6): parsing a serialised span with them yields each attribute's
    canonical ``KeyValue`` bytes in order, without Python wrappers for every attribute.
    ``SpanOtherFields`` / ``LogRecordOtherFields`` declare every other field (with its wire
    type), so that their serialisation, after the attributes are discarded as unknown, is
    the span (log record) without them: its name, events, links and status (its body and
    event name) with their tags, as in the whole message.
    """
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="spanline/redactor/element_views.proto", package="spanline.redactor.internal", syntax="proto3"
    )
    for name, number in (("SpanAttributes", 9), ("LogRecordAttributes", 6)):
        message = file.message_type.add(name=name)
        message.field.add(name="attributes", number=number, type=f.TYPE_BYTES, label=f.LABEL_REPEATED)
    others = file.message_type.add(name="SpanOtherFields")
    for name, number, kind, label in (
        ("trace_id", 1, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("span_id", 2, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("trace_state", 3, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("parent_span_id", 4, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("name", 5, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("kind", 6, f.TYPE_INT32, f.LABEL_OPTIONAL),
        ("start_time_unix_nano", 7, f.TYPE_FIXED64, f.LABEL_OPTIONAL),
        ("end_time_unix_nano", 8, f.TYPE_FIXED64, f.LABEL_OPTIONAL),
        ("dropped_attributes_count", 10, f.TYPE_UINT32, f.LABEL_OPTIONAL),
        ("events", 11, f.TYPE_BYTES, f.LABEL_REPEATED),
        ("dropped_events_count", 12, f.TYPE_UINT32, f.LABEL_OPTIONAL),
        ("links", 13, f.TYPE_BYTES, f.LABEL_REPEATED),
        ("dropped_links_count", 14, f.TYPE_UINT32, f.LABEL_OPTIONAL),
        ("status", 15, f.TYPE_BYTES, f.LABEL_OPTIONAL),
        ("flags", 16, f.TYPE_FIXED32, f.LABEL_OPTIONAL),
    ):
        others.field.add(name=name, number=number, type=kind, label=label)
    records = file.message_type.add(name="LogRecordOtherFields")
    for name, number, kind in (
        ("time_unix_nano", 1, f.TYPE_FIXED64),
        ("severity_number", 2, f.TYPE_INT32),
        ("severity_text", 3, f.TYPE_BYTES),
        ("body", 5, f.TYPE_BYTES),
        ("dropped_attributes_count", 7, f.TYPE_UINT32),
        ("flags", 8, f.TYPE_FIXED32),
        ("trace_id", 9, f.TYPE_BYTES),
        ("span_id", 10, f.TYPE_BYTES),
        ("observed_time_unix_nano", 11, f.TYPE_FIXED64),
        ("event_name", 12, f.TYPE_BYTES),
    ):
        records.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"spanline.redactor.internal.{name}"))
        for name in ("SpanAttributes", "LogRecordAttributes", "SpanOtherFields", "LogRecordOtherFields")
    )


_SPAN_ATTRIBUTES, _LOG_RECORD_ATTRIBUTES, _SPAN_OTHER_FIELDS, _LOG_RECORD_OTHER_FIELDS = _element_views()


def span_attribute_bytes(serialized_span: bytes) -> list[bytes]:
    """The serialised ``KeyValue`` of each attribute of a serialised span, in order."""
    view = _SPAN_ATTRIBUTES()
    view.ParseFromString(serialized_span)
    return list(view.attributes)


def span_without_attributes(serialized_span: bytes) -> bytes:
    """A serialised span without its attributes (see :func:`_element_views`): with
    :func:`span_attribute_bytes`, the parts one located pass looks at."""
    view = _SPAN_OTHER_FIELDS()
    view.ParseFromString(serialized_span)
    view.DiscardUnknownFields()
    return view.SerializeToString()  # type: ignore[no-any-return]


def log_record_without_attributes(serialized_record: bytes) -> bytes:
    """A serialised log record without its attributes (see :func:`span_without_attributes`)."""
    view = _LOG_RECORD_OTHER_FIELDS()
    view.ParseFromString(serialized_record)
    view.DiscardUnknownFields()
    return view.SerializeToString()  # type: ignore[no-any-return]


def log_record_attribute_bytes(serialized_record: bytes) -> list[bytes]:
    """The serialised ``KeyValue`` of each attribute of a serialised log record, in order."""
    view = _LOG_RECORD_ATTRIBUTES()
    view.ParseFromString(serialized_record)
    return list(view.attributes)


UNKNOWN_DETECTOR: Final = -1
PROTOBUF_ONLY: Final = -2
SENSITIVE_KEY_HIT: Final = -3


def text_hits(hits: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
    """Located matches as they matter in a JSON document's text: ``(end, detector)`` for
    the triggers (the detector -1 when unknown), None if a sensitive key closes there (or
    ``hits`` is None); matches of protobuf-only patterns are left out."""
    if hits is None:
        return None
    out: list[tuple[int, int]] = []
    for hit in hits:
        code = hit[1]
        if code >= UNKNOWN_DETECTOR:
            out.append(hit)
        elif code == SENSITIVE_KEY_HIT:
            return None
    return out


class _Hits:
    """Per-thread scan state: one bound handler instead of a closure per scan.

    The handler stops the scan at the first match of a pattern with an id below ``limit``,
    except for the patterns in ``coarse`` (element triggers of detectors with refined
    triggers): those only set ``refine``, for a second look with the refined ones.
    """

    __slots__ = ("handler", "limit", "refine")

    def __init__(self, coarse: frozenset[int]) -> None:
        self.limit = 0
        self.refine = False

        def handler(index: int, _start: int, _end: int, _flags: int, _ctx: object) -> bool:
            if index in coarse:
                self.refine = True
                return False
            return index < self.limit

        self.handler = handler


_code = itemgetter(1)


def _stop(_index: int, _start: int, _end: int, _flags: int, _ctx: object) -> bool:
    return True


class Prefilter:
    """Hyperscan databases of detector triggers plus the patterns listed in the module doc.

    Triggers come in groups, one database each: every detector's triggers in one, and bulk
    literal triggers (the name gazetteer: thousands of literals, which compile in
    milliseconds alone but take seconds mixed with the others) in their own. One database
    for all other triggers scans 10-30% faster than one per detector family on GenAI spans
    (measured), and each database costs a call per scan.
    Shared by every project with the same detectors (like :class:`Scanner`); thread-safe
    (databases and scratch per thread).
    """

    def __init__(
        self,
        trigger_groups: Sequence[Sequence[tuple[str | None, str, bool]]],
        *,
        sensitive_keys: bool,
        json_nesting: int,
        max_bytes: int,
        identifier_keys: Sequence[str] = (),
        owners: Sequence[int] = (),
        refined: Sequence[tuple[str | None, str, bool, int]] = (),
    ) -> None:
        """``identifier_keys``: attribute keys whose value the walk always replaces (by a
        pseudonym), matched as the serialised key of a ``KeyValue`` followed by its value.
        ``owners``: the detector of each trigger, in the order of ``trigger_groups``
        (:meth:`Scanner.element_trigger_owners`); without them :meth:`locate_in_text`
        names no detectors and ``refined`` is not used.
        ``refined``: ``(left, body, caseless, detector)`` of the refined triggers
        (:meth:`Scanner.refined_triggers`): where a trigger of that detector matches, the
        bytes are scanned again with these and only their matches count."""
        if not HYPERSCAN_AVAILABLE:
            raise RuntimeError("the prefilter needs hyperscan")
        groups: list[list[tuple[bytes, bool]]] = [
            [(trigger_pattern(left, body), caseless) for left, body, caseless in group]
            for group in trigger_groups
        ]
        if not groups:
            groups = [[]]
        # Ids below text_count matter in text (JSON documents); the rest only in protobuf.
        if sensitive_keys:
            groups[0] += [(p, False) for p in TEXT_PATTERNS]
        element = [(p, False) for p in ELEMENT_PATTERNS[1:]]
        if sensitive_keys:
            element.insert(0, (ELEMENT_PATTERNS[0], False))
        element += [(identifier_key_pattern(k), False) for k in identifier_keys]
        # Ids of the sensitive-key patterns (a key word closing a JSON key), right after
        # the triggers of the first group.
        first = len(groups[0]) - (len(TEXT_PATTERNS) if sensitive_keys else 0)
        self._key_ids = range(first, len(groups[0]))
        numbered: list[list[tuple[bytes, bool, int]]] = []
        next_id = 0
        for group in groups:
            numbered.append([(p, c, next_id + i) for i, (p, c) in enumerate(group)])
            next_id += len(group)
        self._text_count = next_id
        # What a located match of each pattern id means in text (see text_hits): the index of
        # the detector owning the trigger (UNKNOWN_DETECTOR without owners), SENSITIVE_KEY_HIT,
        # or PROTOBUF_ONLY for the patterns that only mean something in serialised protobuf.
        code_of = [UNKNOWN_DETECTOR] * next_id + [PROTOBUF_ONLY] * len(element)
        for i in self._key_ids:
            code_of[i] = SENSITIVE_KEY_HIT
        trigger_ids = [i for i in range(next_id) if i not in self._key_ids]
        # Element triggers of a detector with refined triggers that are not among them are
        # coarse (see TextDetector): located, their matches are replaced by the refined
        # triggers' matches near them; their code says so (COARSE + the detector).
        coarse: set[int] = set()
        refined_only: list[tuple[bytes, bool, int]] = []
        if len(owners) == len(trigger_ids):
            specs = [spec for group in trigger_groups for spec in group]
            final: dict[int, set[tuple[str | None, str, bool]]] = {}
            for left, body, caseless, owner in refined:
                final.setdefault(owner, set()).add((left, body, caseless))
            for i, owner, spec in zip(trigger_ids, owners, specs, strict=True):
                code_of[i] = owner
                if owner in final and spec not in final[owner]:
                    coarse.add(i)
                    code_of[i] = COARSE + owner
            refining = {code_of[i] - COARSE for i in coarse}
            # Numbered by their detector, as the scanner numbers them: both share one
            # database (shared_database).
            refined_only = [
                (trigger_pattern(left, body), caseless, owner)
                for left, body, caseless, owner in refined
                if owner in refining and (left, body, caseless) not in specs
            ]
        self._refined = tuple(refined_only)
        self._coarse = frozenset(coarse)
        self._code_of = code_of
        numbered[0] += [(p, c, next_id + i) for i, (p, c) in enumerate(element)]
        self._groups = [group for group in numbered if group]
        self._patterns_all = [p for group in self._groups for p in group]
        self._levels = json_nesting
        self._max_bytes = max_bytes
        self._local = threading.local()

    def _state(self) -> tuple[list[Any], _Hits, Any]:
        state = getattr(self._local, "state", None)
        if state is None:
            state = (
                [compile_database(group, _hs.HS_FLAG_SINGLEMATCH) for group in self._groups],
                _Hits(self._coarse),
                shared_database(self._refined, _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_MULTILINE)
                if self._refined
                else None,
            )
            self._local.state = state
        return state  # type: ignore[no-any-return]

    def _hit(self, data: bytes, limit: int) -> bool:
        """Whether a pattern with id below ``limit`` matches ``data`` or its JSON views."""
        dbs, hits, refined = self._state()
        # Views are scanned one by one: no joined copy of big values.
        views = [data] if b"\\" not in data else json_view_list(data, self._levels)
        handler = hits.handler
        hits.limit = limit
        hits.refine = False
        try:
            for db in dbs:
                for view in views:
                    db.scan(view, match_event_handler=handler)
            if hits.refine and refined is not None:
                for view in views:
                    refined.scan(view, match_event_handler=_stop)
        except _hs.ScanTerminated:
            return True
        return False

    def _locate_state(self) -> tuple[list[Any], list[tuple[int, int]], Any, Any, list[int]]:
        state = getattr(self._local, "locate", None)
        if state is None:
            hits: list[tuple[int, int]] = []
            append = hits.append
            code_of = self._code_of
            limit = [MAX_LOCATED_MATCHES]  # set by each scan

            def on_match(index: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
                append((end, code_of[index]))
                return len(hits) >= limit[0]

            # Every match reported, to tell which element (and which literal) it is in.
            state = (
                [compile_database(group, 0) for group in self._groups],
                hits,
                on_match,
                shared_database(self._refined, _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_MULTILINE)
                if self._refined
                else None,
                limit,
            )
            self._local.locate = state
        return state  # type: ignore[no-any-return]

    def _located(self, data: bytes, parts: int = 1) -> list[tuple[int, int]] | None:
        """Every match in ``data`` (``parts`` elements joined) as ``(end offset, code)``, by
        offset; None if too many: over MAX_LOCATED_MATCHES, or 8 an element in a big join."""
        dbs, hits, on_match, refined, limit = self._locate_state()
        limit[0] = max(MAX_LOCATED_MATCHES, 8 * parts)
        hits.clear()
        try:
            for db in dbs:
                db.scan(data, match_event_handler=on_match)
            if self._coarse and hits and max(hits, key=_code)[1] >= COARSE:
                coarse = sorted((end, code - COARSE) for end, code in hits if code >= COARSE)
                kept = [hit for hit in hits if hit[1] < COARSE]
                hits.clear()
                if kept:
                    # Something else needs a look anyway: a coarse match counts as it is
                    # (a superset too), for a second scan would rarely spare anything.
                    hits += coarse
                elif refined is not None:
                    hits += confirm_coarse(data, coarse, refined)
                hits.extend(kept)
        except _hs.ScanTerminated:
            return None
        hits.sort()
        return list(hits)

    def locate_in_text(self, data: bytes) -> list[tuple[int, int]] | None:
        """Where the triggers match in ``data`` (a JSON document's raw UTF-8, escapes as they
        are): ``(end offset, detector index or -1)`` of each match, by end offset; None if
        a sensitive key closes there or there are too many matches to be worth locating.

        Only the raw text is scanned: what its JSON escapes decode to is the caller's to
        check (the string literals holding a backslash).
        """
        if len(data) > self._max_bytes:
            return None
        return text_hits(self._located(data))

    def flag_elements(
        self,
        serialized: Sequence[bytes],
        escaped: set[int],
        hits_out: dict[int, list[tuple[int, int]]] | None = None,
        not_keyvalues: Container[int] | None = None,
    ) -> set[int] | None:
        """Indices of the elements that are not clean (whose walk could change something: the
        module doc says why a clean one cannot), in one pass per database.

        An element holding JSON escapes is scanned as it is and in its decoded views, each
        view one more part of the same pass: with no hit in any of them it is clean like any
        other. The views of a serialised ``KeyValue`` (every element not in
        ``not_keyvalues``, when given) are its escaped JSON literals decoded
        (:func:`keyvalue_views`); of any other element, the whole element decoded
        (:func:`json_view_list`). One with hits in its views only is flagged
        and added to ``escaped`` (the caller checks its JSON documents, which decodes them:
        the view's offsets are not the element's). None means "all of them" (so many hits
        that looking element by element is pointless).
        ``hits_out`` receives, per element with a match as it is, ``(end offset in the
        element, code)`` of its matches (see :func:`text_hits`), so that the JSON documents
        in it need no scan of their own.
        """
        data = b"\n".join(serialized)
        flagged: set[int] = set()
        count = len(serialized)
        if len(data) > self._max_bytes:
            # Oversized elements are flagged unscanned; the others are scanned.
            oversized = {i for i, part in enumerate(serialized) if len(part) > self._max_bytes}
            flagged |= oversized
            serialized = [b"" if i in oversized else part for i, part in enumerate(serialized)]
            data = b"\n".join(serialized)
        starts = joined_starts(serialized)
        view_of: list[int] = []  # the element of each decoded view, after the elements
        slash = data.find(b"\\")
        if slash >= 0:
            # From backslash to backslash, one element at a time (not a Python step per element).
            views: list[bytes] = []
            while slash >= 0:
                i = part_of(starts, slash + 1)
                decoded = None
                if not_keyvalues is not None and i not in not_keyvalues:
                    decoded = keyvalue_views(serialized[i], self._levels)
                if decoded is None:
                    decoded = json_view_list(serialized[i], self._levels)[1:]
                views += decoded
                view_of += [i] * len(decoded)
                slash = data.find(b"\\", starts[i + 1])
            if views:
                data = b"\n".join((data, *views))
                views_at = starts.pop()  # the end of the elements' join: where the views start
                starts += joined_starts(views, views_at)
        hits = self._located(data, len(starts))
        if hits is None:
            return None
        in_views: set[int] = set()
        for end, code in hits:
            element = part_of(starts, end)
            if element >= count:
                in_views.add(view_of[element - count])
                continue
            flagged.add(element)
            if hits_out is not None:
                hits_out.setdefault(element, []).append((end - starts[element], code))
        if in_views:
            escaped.update(in_views - flagged)
            flagged |= in_views
        return flagged

    def warm(self) -> None:
        """Compile this thread's databases now (seconds of CPU for a large gazetteer) rather
        than on the first message, which would then wait for them."""
        self._state()
        self._locate_state()

    def clean_text(self, text: str) -> bool:
        """True if redacting ``text`` as a string value (JSON-aware, under a non-sensitive key)
        would change nothing."""
        if len(text) > self._max_bytes:
            return False
        return not self._hit(text.encode("utf-8", "surrogatepass"), self._text_count)
