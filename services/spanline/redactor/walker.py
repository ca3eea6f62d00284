"""Walking values: free text, JSON inside strings, and OTLP ``AnyValue`` trees.

Everything here is iterative (explicit stacks), so a hostile payload cannot exhaust the
interpreter stack; depth and size limits turn garbage into either "treat as text" or a
:class:`RedactionError`, never into a crash or unbounded work.

JSON inside strings (``gen_ai.input.messages``, tool arguments, OpenInference
``input.value``...) is parsed, its string leaves redacted one by one, and re-serialised
only if something changed, so the result is still valid JSON. Parsing and walking a
document costs far more than the detectors on typical (clean) documents, so a document
whose raw text, with its escapes decoded, triggers nothing is left as it is without being
parsed; :mod:`spanline.redactor.prefilter` explains why that is exact. With the fast paths
on, a document with matches is not walked either: only the string literals the prefilter
located, and those with escapes, are redacted (:mod:`spanline.redactor.json_literals`);
the walk remains for what that cannot tell (a match in a key or a number, array items...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanline.redactor.detectors import (
    BUILTIN_DETECTORS,
    KEY_POLICY,
    NER_DETECTORS,
    SENSITIVE_KEY,
    RegexDetector,
    Scanner,
    TextDetector,
    builtin_detectors,
    dictionary_pattern,
    mask_label,
)
from spanline.redactor.errors import RedactionError
from spanline.redactor.json_literals import candidate_values, nesting_depth
from spanline.redactor.ner import FREE_TEXT_KEY, BatchNer
from spanline.redactor.policy import KeyFilter, ResolvedPolicy
from spanline.redactor.prefilter import Prefilter, text_hits
from spanline.redactor.pseudonym import IDENTIFIER_KEYS, IDENTIFIER_PSEUDONYM, identifier_pseudonym, pseudonym

REDACTION_ATTR: Final = "spanline.redaction"
# Pseudo-detector of identifier attributes replaced by their pseudonym (audit counts, metrics).
IDENTIFIER: Final = "identifier"

# A value that already is one of our masks or pseudonyms is left alone (idempotence).
_MASKED = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9a-f]{8}|:[0-9a-f]{32})?>")
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class Limits:
    """Bounds on work per value; see docs/redaction.md."""

    max_json_depth: int = 64
    max_json_nesting: int = 4  # JSON documents inside JSON string leaves inside ...
    max_string_chars: int = 64 * 1024 * 1024


class _TooDeep(Exception):
    pass


class _NotJson:
    pass


_NOT_JSON: Final = _NotJson()


class _Walk:
    pass


# The located path cannot tell: parse and walk the document.
_WALK: Final = _Walk()
_scanstring: Final = json.decoder.scanstring  # type: ignore[attr-defined]
_quoted: Final = json.encoder.encode_basestring  # type: ignore[attr-defined]
# A serialised KeyValue and the prefilter's (end offset, code) matches in it.
Located = tuple[bytes, list[tuple[int, int]]]


class CompiledPolicy:
    """A :class:`ResolvedPolicy` turned into ready-to-run detectors and lookup tables."""

    def __init__(
        self,
        resolved: ResolvedPolicy,
        limits: Limits,
        ner: BatchNer | None = None,
        scanners: dict[tuple[object, ...], Scanner] | None = None,
        prefilters: dict[tuple[object, ...], Prefilter] | None = None,
        *,
        fast_paths: bool = True,
    ) -> None:
        enabled = frozenset(resolved.actions)
        self.ner = ner if ner is not None and enabled & frozenset(NER_DETECTORS) else None
        # Projects with the same detector set share one scanner (and its Hyperscan databases).
        key = (
            enabled,
            tuple((c.name, c.pattern, c.ignore_case) for c in resolved.custom),
            tuple((d.name, tuple(d.terms), d.ignore_case) for d in resolved.dictionary),
            id(self.ner),
            resolved.phone_regions,
            resolved.hmac_key is not None,
        )
        scanner = scanners.get(key) if scanners is not None else None
        if scanner is None:
            detectors: list[TextDetector] = builtin_detectors(
                enabled & frozenset(BUILTIN_DETECTORS), phone_regions=resolved.phone_regions
            )
            for c in resolved.custom:
                flags = re.IGNORECASE if c.ignore_case else 0
                detectors.append(RegexDetector(c.name, re.compile(c.pattern, flags)))
            for d in resolved.dictionary:
                detectors.append(RegexDetector(d.name, dictionary_pattern(d.terms, d.ignore_case)))
            # NER is not a scanner detector: it runs in its own pass over free-text fields
            # (ner_pass), so the prefilter keeps skipping clean elements for everything else.
            scanner = Scanner(detectors)
            if scanners is not None:
                scanners[key] = scanner
        self.project = resolved.project
        self.scanner = scanner
        self.limits = limits
        self.actions: dict[str, str] = dict(resolved.actions)
        self.actions[KEY_POLICY] = "drop"
        # With a key, identifier attributes become joinable pseudonyms (pseudonym.py); without
        # one the detectors handle their values like any other (e.g. an email -> <EMAIL>).
        self.identifier_keys: frozenset[str] = (
            frozenset(IDENTIFIER_KEYS) if resolved.hmac_key is not None else frozenset()
        )
        if self.identifier_keys:
            self.actions[IDENTIFIER] = "pseudonymize"
        self.masks = {d: f"<{mask_label(d)}>" for d in self.actions}
        self.key_filter: KeyFilter = resolved.key_filter
        self.hmac_key = resolved.hmac_key
        self.sensitive_keys = "credential" in enabled
        self._sensitive_cache: dict[str, bool] = {}
        self._id_key_cache: dict[str, bool] = {}
        self.id_context_keys = bool(enabled & _KEY_CONTEXT_DETECTORS)
        # False: the reference walk (every element walked, every document parsed, every
        # text scanned on its own); same results, for benchmarks and equivalence tests.
        self.fast_paths = fast_paths
        self.prefilter: Prefilter | None = None
        literals = self.key_filter.removed_key_literals
        if fast_paths and scanner.triggers_cover_all and literals is not None:
            prefilter = prefilters.get(key) if prefilters is not None else None
            if prefilter is None:
                prefilter = Prefilter(
                    scanner.element_trigger_groups(),
                    sensitive_keys=self.sensitive_keys,
                    json_nesting=limits.max_json_nesting,
                    max_bytes=limits.max_string_chars,
                    identifier_keys=sorted(self.identifier_keys),
                    owners=scanner.element_trigger_owners(),
                    refined=scanner.refined_triggers(),
                )
                if prefilters is not None:
                    prefilters[key] = prefilter
            self.prefilter = prefilter
        self._removed_key_literals = tuple(lit.encode("utf-8") for lit in literals or ())

    def dirty_elements(
        self,
        serialized: list[bytes],
        escaped: set[int],
        hits_out: dict[int, list[tuple[int, int]]] | None = None,
        not_keyvalues: Container[int] | None = None,
    ) -> list[int] | None:
        """Ascending indices of the elements (spans, attributes... serialised by upb) the walk
        may change; None for all of them. ``escaped``, ``hits_out`` and ``not_keyvalues``:
        see :meth:`Prefilter.flag_elements`."""
        if self.prefilter is None:
            return None
        flagged = self.prefilter.flag_elements(serialized, escaped, hits_out, not_keyvalues)
        if flagged is None:
            return None
        for lit in self._removed_key_literals:
            flagged.update(idx for idx, element in enumerate(serialized) if lit in element)
        return sorted(flagged)

    def is_id_context_key(self, key: str) -> bool:
        """Whether a key names a national id (``{"pesel": "..."}``, ``customer.bsn``): its
        value is scanned with the key as context, as if written "pesel: ..."."""
        hit = self._id_key_cache.get(key)
        if hit is None:
            hit = _ID_CONTEXT_KEY.search(key) is not None
            if len(self._id_key_cache) < 100_000:
                self._id_key_cache[key] = hit
        return hit

    def is_sensitive_key(self, key: str) -> bool:
        hit = self._sensitive_cache.get(key)
        if hit is None:
            hit = SENSITIVE_KEY.search(key) is not None
            if len(self._sensitive_cache) < 100_000:
                self._sensitive_cache[key] = hit
        return hit


# Detectors whose context words may sit in the key above a value instead of the text.
_KEY_CONTEXT_DETECTORS: Final = frozenset({"de_idnr", "nl_bsn", "pl_pesel", "se_personnummer", "ssn"})
_ID_CONTEXT_KEY: Final = re.compile(
    r"(?i)pesel|bsn|burgerservice|sofi|steuer|idnr|id_nr|tax.?id|personnummer|personnr|ssn|social.?security"
)


def _non_overlapping(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    found.sort()
    out: list[tuple[int, int, str]] = []
    for f in found:
        if not out or f[0] >= out[-1][1]:
            out.append(f)
    return out


def _json_strings(root: Any, out: list[tuple[Any, Any, str]], max_depth: int) -> None:
    """(container, key or index, text) of every string leaf of a parsed document."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            continue
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if type(v) is str:
                out.append((node, k, v))
            elif isinstance(v, dict | list):
                stack.append((v, depth + 1))


def _repeats_a_key(s: str) -> bool:
    """Whether an object of the JSON document ``s`` (known to parse) repeats a key."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> None:
        nonlocal repeated
        if len(items) > 1 and not repeated:
            repeated = len({k for k, _ in items}) != len(items)

    json.loads(s, object_pairs_hook=pairs)
    return repeated


def _may_hold_json(s: str) -> bool:
    """Whether :meth:`MessageWalk.string` would try ``s`` as JSON (its first non-space is a bracket)."""
    first = s[0]
    if first in _WHITESPACE:
        first = s.lstrip(_WHITESPACE)[:1]
    return first == "{" or first == "["


# One encoder per style (ensure_ascii, spaced): json.dumps with arguments builds one per call.
_ENCODERS: Final = {
    (ascii_only, spaced): json.JSONEncoder(
        ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"), allow_nan=True
    )
    for ascii_only in (False, True)
    for spaced in (False, True)
}


def _dump(obj: Any, original: str) -> str:
    """Re-serialise in roughly the style of the original (escaping, separators)."""
    head = original[:512]
    spaced = '": ' in head or '", ' in head or ", " in head
    return _ENCODERS["\\u" in original, spaced].encode(obj)


class MessageWalk:
    """Redaction state of one message: counts of the current element and of the whole message.

    Not shared between messages or threads; :class:`CompiledPolicy` is the shared, read-only part.
    """

    __slots__ = ("arrays", "counts", "dropped", "findings", "p", "reparsed", "stripped", "total")

    def __init__(self, policy: CompiledPolicy) -> None:
        self.p = policy
        # Findings per text within this message: agent traces repeat the whole conversation
        # in every chat span, so the same prompts and tool results come back again and again.
        # Lives as long as the message (which holds the same values anyway), never longer.
        self.findings: dict[str, list[tuple[int, int, str]]] = {}
        # Top-level JSON arrays redacted in this message (see _known_prefix).
        self.arrays: list[tuple[str, list[Any], dict[str, int], bool, bool]] = []
        self.counts: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.dropped = False
        self.stripped = False  # a client-sent spanline.redaction was removed (not counted)
        self.reparsed = False  # a JSON document with a repeated key was stored as parsed

    @property
    def changed(self) -> bool:
        """Whether the walk modified the message (every modification but one is counted)."""
        return bool(self.total or self.counts) or self.stripped or self.reparsed

    # -- element bookkeeping -------------------------------------------------------------

    def flush(self, attributes: Any | None) -> None:
        """Close the current element: record ``spanline.redaction`` on it and add to the message total."""
        counts = self.counts
        if not counts:
            return
        if attributes is not None:
            summary = ",".join(f"{d}={n}" for d, n in sorted(counts.items()))
            attributes.add(key=REDACTION_ATTR, value=AnyValue(string_value=summary))
        total = self.total
        for d, n in counts.items():
            total[d] = total.get(d, 0) + n
        self.counts = {}

    # -- text and JSON -------------------------------------------------------------------

    def _apply(self, s: str, findings: list[tuple[int, int, str]]) -> str:
        p = self.p
        counts = self.counts
        parts: list[str] = []
        pos = 0
        for start, end, det in findings:
            action = p.actions[det]
            counts[det] = counts.get(det, 0) + 1
            if action == "pseudonymize" and p.hmac_key is not None:
                repl = pseudonym(p.hmac_key, det, s[start:end])
            else:
                repl = p.masks[det]
                if action == "drop":
                    self.dropped = True
            parts.append(s[pos:start])
            parts.append(repl)
            pos = end
        parts.append(s[pos:])
        return "".join(parts)

    def text(self, s: str) -> str | None:
        """Redact ``s`` as free text; None when nothing was found."""
        if not s:
            return None
        if len(s) > self.p.limits.max_string_chars:
            raise RedactionError("a string value exceeds redactor.max_string_chars")
        findings = self.findings.get(s)
        if findings is None:
            findings = self.p.scanner.scan(s)
            if self.p.fast_paths:
                self.findings[s] = findings
        if not findings:
            return None
        return self._apply(s, findings)

    def string(
        self,
        s: str,
        key: str | None,
        nesting: int = 0,
        prechecked: bool = False,
        located: Located | None = None,
    ) -> str | None:
        """Redact a string value found under ``key``: whole-value credential, JSON, or text.

        ``prechecked``: the prefilter already said the value may need redaction.
        ``located``: the serialised ``KeyValue`` holding ``s`` and the prefilter's matches
        in it (:meth:`Prefilter.flag_elements`), so a JSON document in it is not scanned again.
        """
        if not s:
            return None
        p = self.p
        if key is not None and p.sensitive_keys and p.is_sensitive_key(key):
            if _MASKED.fullmatch(s):
                return None
            return self._apply(s, [(0, len(s), "credential")])
        first = s[0]
        if first in _WHITESPACE:
            first = s.lstrip(_WHITESPACE)[:1]
        if (first == "{" or first == "[") and nesting < p.limits.max_json_nesting:
            if len(s) > p.limits.max_string_chars:
                raise RedactionError("a string value exceeds redactor.max_string_chars")
            result = _WALK if p.prefilter is None else self._located_json(s, nesting, located)
            if result is _WALK:
                if not prechecked and p.prefilter is not None and p.prefilter.clean_text(s):
                    return None  # parsed or not, nothing in it can be found
                result = self._json(s, nesting)
            if result is not _NOT_JSON:
                return result  # type: ignore[return-value]
        if key is not None and p.id_context_keys and len(s) <= 64 and p.is_id_context_key(key):
            return self._text_under_key(s, key)
        return self.text(s)

    def _text_under_key(self, s: str, key: str) -> str | None:
        """Scan ``s`` as "key: s" (context words of national ids), keeping findings inside ``s``."""
        prefix = f"{key}: "
        shift = len(prefix)
        found = [(a - shift, b - shift, d) for a, b, d in self.p.scanner.scan(prefix + s) if a >= shift]
        if not found:
            return None
        return self._apply(s, found)

    def number(self, value: int) -> str | None:
        """Integers long enough to be a card, phone or SSN are checked like text."""
        if -100_000_000 < value < 100_000_000:
            return None
        return self.text(str(value))  # with the message's memo of findings

    def _located_json(self, s: str, nesting: int, located: Located | None) -> str | _NotJson | _Walk | None:
        """Redact a JSON document through the string literals the prefilter located
        (:mod:`spanline.redactor.json_literals`): each is decoded and redacted as the walk
        would redact that leaf, the others are not looked at. ``_WALK`` when the document
        needs the walk (a sensitive key, a match outside member values, too deep...).

        The result is what the walk returns: the document re-serialised by :func:`_dump`
        when something changed (parsed again after the redacted literals are put in).
        """
        p = self.p
        assert p.prefilter is not None
        data = s.encode("utf-8", "surrogatepass")
        ends: list[tuple[int, int]] | None
        if located is not None and (offset := len(located[0]) - len(data)) > 0 and located[0].endswith(data):
            # The document closes its serialised KeyValue: its matches are already located.
            ends = text_hits([(end - offset, code) for end, code in located[1] if end > offset])
        else:
            ends = p.prefilter.locate_in_text(data)
        if ends is None:
            return _WALK
        if not ends and b"\\" not in data:
            return None  # parsed or not, nothing in it can be found
        try:
            obj = json.loads(s)
        except (ValueError, RecursionError):
            return _NOT_JSON
        if not isinstance(obj, dict | list):
            return _NOT_JSON
        if (
            data.count(b"[") + data.count(b"{") > p.limits.max_json_depth
            and nesting_depth(data) > p.limits.max_json_depth
        ):
            return _WALK
        found = candidate_values(data, ends)
        if found is None:
            return _WALK
        replaced: list[tuple[int, int, str]] = []
        memo = self.findings
        id_key = p.is_id_context_key if p.id_context_keys else None
        for start, end, key, detectors in found:
            raw = data[start:end].decode("utf-8", "surrogatepass")
            if detectors is None:
                new = self.string(_scanstring(raw, 1)[0], key, nesting + 1)
            else:
                value = raw[1:-1]
                if _may_hold_json(value) or (id_key is not None and len(value) <= 64 and id_key(key)):
                    new = self.string(value, key, nesting + 1)
                else:
                    # What string() -> text() does, with the detectors already known.
                    findings = memo.get(value)
                    if findings is None:
                        findings = memo[value] = p.scanner.scan_triggered(value, detectors)
                    new = self._apply(value, findings) if findings else None
            if new is not None:
                replaced.append((start, end, new))
        if not replaced:
            return None
        pieces: list[bytes] = []
        last = 0
        for start, end, new in replaced:
            pieces.append(data[last:start])
            pieces.append(_quoted(new).encode("utf-8", "surrogatepass"))
            last = end
        pieces.append(data[last:])
        return _dump(json.loads(b"".join(pieces).decode("utf-8", "surrogatepass")), s)

    def _json(self, s: str, nesting: int) -> str | _NotJson | None:
        remember = self.p.fast_paths and nesting == 0 and s[:1] == "[" and s[-1:] == "]"
        known = self._known_prefix(s) if remember else None
        try:
            obj = json.loads(s if known is None else "[" + s[len(known[0]) :])
        except (ValueError, RecursionError):
            if known is None:
                return _NOT_JSON
            known, obj = None, None  # the tail alone is no array: let the whole decide
            try:
                obj = json.loads(s)
            except (ValueError, RecursionError):
                return _NOT_JSON
        if not isinstance(obj, dict | list) or (known is not None and not obj):
            if known is None:
                return _NOT_JSON
            return self._json_without_prefix(s)
        saved_counts = dict(self.counts)
        saved_dropped = self.dropped
        self.dropped = False  # to know whether this document asks for a drop
        if known is not None:
            _, items, delta, prefix_changed, self.dropped = known
            counts = self.counts
            for d, n in delta.items():
                counts[d] = counts.get(d, 0) + n
        try:
            changed = self._walk_json(obj, nesting)
        except _TooDeep:
            self.counts.clear()
            self.counts.update(saved_counts)
            self.dropped = saved_dropped
            return _NOT_JSON
        dropped = self.dropped
        self.dropped = saved_dropped or dropped
        if known is not None and isinstance(obj, list):
            obj = items + obj
            changed = changed or prefix_changed
        if remember:
            delta = {
                d: n - saved_counts.get(d, 0) for d, n in self.counts.items() if n != saved_counts.get(d, 0)
            }
            self.arrays.append((s, obj, delta, changed, dropped))
        if not changed:
            if not _repeats_a_key(s):
                return None
            # a repeated key's earlier values never reached the walk: the document is
            # stored as parsed (last value wins, as JSON readers see it), never as sent
            self.reparsed = True
        return _dump(obj, s)

    def _json_without_prefix(self, s: str) -> str | _NotJson | None:
        arrays, self.arrays = self.arrays, []
        try:
            return self._json(s, 0)
        finally:
            self.arrays = arrays + self.arrays

    def _known_prefix(self, s: str) -> tuple[str, list[Any], dict[str, int], bool, bool] | None:
        """A top-level array already redacted in this message whose items start ``s``.

        Chat spans repeat the conversation so far in ``gen_ai.input.messages``: the array
        of one span is the previous span's array plus new items (``[a, b]`` then ``[a, b,
        c]``). Then only the new items are parsed and walked; the known ones, their counts
        and drop flag are reused. Items sit at depth 2 of a top-level document either way,
        and ``[a, b, c]`` parses to the items of ``[a, b]`` and of ``[c]`` when both parse.
        """
        known: tuple[str, list[Any], dict[str, int], bool, bool]
        for known in reversed(self.arrays):
            t = known[0]
            if len(t) < len(s) and known[1] and s[len(t) - 1] == "," and s.startswith(t[:-1]):
                return known
        return None

    def _leaf(self, value: Any, key: str | None, nesting: int) -> Any:
        """New value for a JSON leaf, or None if unchanged."""
        if type(value) is str:
            return self.string(value, key, nesting + 1)
        if type(value) is int:
            return self.number(value)
        return None

    def _walk_json(self, root: dict[str, Any] | list[Any], nesting: int) -> bool:
        """Redact every string leaf, long integer and non-identifier key of a parsed document.

        The tree is first collected (nothing changes before it is known to be shallow
        enough). Leaves under sensitive keys and leaves that may hold JSON are redacted
        whatever they contain; texts already scanned in this message reuse their findings;
        the others are prefiltered in one pass (:meth:`Scanner.flag_texts`) and only the
        flagged ones go through the detectors.
        """
        p = self.p
        max_depth = p.limits.max_json_depth
        max_chars = p.limits.max_string_chars  # longer leaves must reach text() and fail there
        sensitive = p.is_sensitive_key if p.sensitive_keys else None
        id_key = p.is_id_context_key if p.id_context_keys else None
        memo = self.findings if p.fast_paths else None
        todo: list[tuple[Any, Any, Any, str | None]] = []  # (container, key or index, value, context key)
        pending: list[tuple[Any, Any, Any, str | None]] = []  # waiting for the prefilter
        texts: list[str] = []  # what the scanner would see for each pending leaf, then each key
        keys: list[tuple[dict[str, Any], str]] = []
        stack: list[tuple[Any, int, str | None]] = [(root, 1, None)]
        while stack:
            node, depth, ctx = stack.pop()
            if depth > max_depth:
                raise _TooDeep
            if isinstance(node, dict):
                pairs: Iterable[tuple[Any, Any]] = node.items()
                for k, v in pairs:
                    kind = type(v)
                    if kind is str:
                        if v:
                            if (
                                (sensitive is not None and sensitive(k))
                                or (id_key is not None and id_key(k))
                                or _may_hold_json(v)
                                or len(v) > max_chars
                            ):
                                todo.append((node, k, v, k))
                            elif memo is not None and (known := memo.get(v)) is not None:
                                if known:
                                    todo.append((node, k, v, k))
                            else:
                                pending.append((node, k, v, k))
                                texts.append(v)
                    elif kind is int:
                        if not -100_000_000 < v < 100_000_000:
                            pending.append((node, k, v, k))
                            texts.append(str(v))
                    elif isinstance(v, dict | list):
                        stack.append((v, depth + 1, k))
                    if len(k) > 5 and not k.isidentifier() and not (memo is not None and memo.get(k) == []):
                        keys.append((node, k))
            else:
                forced = ctx is not None and sensitive is not None and sensitive(ctx)
                for i, v in enumerate(node):
                    kind = type(v)
                    if kind is str:
                        if v:
                            if forced or _may_hold_json(v) or len(v) > max_chars:
                                todo.append((node, i, v, ctx))
                            elif memo is not None and (known := memo.get(v)) is not None:
                                if known:
                                    todo.append((node, i, v, ctx))
                            else:
                                pending.append((node, i, v, ctx))
                                texts.append(v)
                    elif kind is int:
                        if not -100_000_000 < v < 100_000_000:
                            pending.append((node, i, v, ctx))
                            texts.append(str(v))
                    elif isinstance(v, dict | list):
                        stack.append((v, depth + 1, ctx))
        n_pending = len(pending)
        texts.extend(k for _, k in keys)
        flagged = (p.scanner.flag_texts(texts) if p.fast_paths else None) if texts else {}
        if flagged is None or memo is None:
            todo.extend(pending)
        else:
            scan = p.scanner.scan_triggered
            for index, leaf in enumerate(pending):
                detectors = flagged.get(index)
                value = leaf[2]
                if type(value) is not str:
                    if detectors is not None:
                        todo.append(leaf)  # a long integer: number() scans its digits
                elif detectors is None:
                    memo[value] = []  # no trigger fires in it: the scanner would find nothing
                else:
                    found = memo[value] = scan(value, detectors)
                    if found:
                        todo.append(leaf)
        changed = False
        for container, ref, value, ctx in todo:
            new = self._leaf(value, ctx, nesting)
            if new is not None:
                container[ref] = new
                changed = True
        renamed: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
        for index, (node, k) in enumerate(keys, n_pending):
            if flagged is not None and index not in flagged and len(k) <= max_chars:
                continue
            nk = self.text(k)
            if nk is not None:
                renamed.setdefault(id(node), (node, {}))[1][k] = nk
        for node, names in renamed.values():
            items = [(names.get(k, k), v) for k, v in node.items()]
            node.clear()
            node.update(items)
            changed = True
        return changed

    # -- NER (only where the policy enables it) ------------------------------------------

    def ner_texts(self, texts: list[str]) -> list[str | None]:
        """Redact names/locations in ``texts`` (one ``nlp.pipe`` batch); None where unchanged."""
        ner = self.p.ner
        assert ner is not None
        actions = self.p.actions
        todo = [i for i, t in enumerate(texts) if ner.worth_tagging(t)]
        out: list[str | None] = [None] * len(texts)
        if not todo:
            return out
        for i, found in zip(todo, ner.find_many([texts[i] for i in todo]), strict=True):
            found = [f for f in found if f[2] in actions and not _MASKED.fullmatch(texts[i][f[0] : f[1]])]
            if found:
                out[i] = self._apply(texts[i], _non_overlapping(found))
        return out

    def ner_value(self, value: AnyValue) -> None:
        """NER over a free-text ``AnyValue``: a string (JSON documents: every string leaf) or
        the strings of an array/kvlist."""
        strings: list[tuple[Any, Any, str]] = []  # (container, key or index, text)
        docs: list[tuple[AnyValue, Any]] = []
        stack = [value]
        while stack:
            v = stack.pop()
            kind = v.WhichOneof("value")
            if kind == "string_value":
                s = v.string_value
                if _may_hold_json(s):
                    try:
                        obj = json.loads(s)
                    except (ValueError, RecursionError):
                        obj = None
                    if isinstance(obj, dict | list):
                        docs.append((v, obj))
                        _json_strings(obj, strings, self.p.limits.max_json_depth)
                        continue
                strings.append((v, None, s))
            elif kind == "array_value":
                stack.extend(v.array_value.values)
            elif kind == "kvlist_value":
                stack.extend(kv.value for kv in v.kvlist_value.values)
        if not strings:
            return
        new = self.ner_texts([t for _, _, t in strings])
        changed_docs: set[int] = set()
        for (container, ref, _), replacement in zip(strings, new, strict=True):
            if replacement is None:
                continue
            if ref is None:
                container.string_value = replacement
            else:
                container[ref] = replacement
                changed_docs.add(id(container))
        for v, obj in docs:
            if changed_docs:
                v.string_value = _dump(obj, v.string_value)

    def ner_pass(self, attrs: Any, body: AnyValue | None = None) -> None:
        """NER over the free-text attributes of one element (and a log body), then fold its
        counts into the element's ``spanline.redaction`` summary."""
        for kv in attrs:
            if kv.key != REDACTION_ATTR and FREE_TEXT_KEY.match(kv.key):
                self.ner_value(kv.value)
        if body is not None:
            self.ner_value(body)
        if not self.counts:
            return
        merged = dict(self.counts)
        for idx, kv in enumerate(attrs):
            if kv.key == REDACTION_ATTR:
                for part in kv.value.string_value.split(","):
                    d, _, n = part.partition("=")
                    if n.isdigit():
                        merged[d] = merged.get(d, 0) + int(n)
                del attrs[idx]
                break
        total = self.total
        for d, n in self.counts.items():
            total[d] = total.get(d, 0) + n
        self.counts = {}
        summary = ",".join(f"{d}={n}" for d, n in sorted(merged.items()))
        attrs.add(key=REDACTION_ATTR, value=AnyValue(string_value=summary))

    def json_value(self, value: Any) -> Any:
        """Redact an already-parsed JSON value (CLI ``jsonl``); returns the (possibly new) value."""
        if isinstance(value, dict | list):
            try:
                self._walk_json(value, 0)
            except _TooDeep:
                raise RedactionError("JSON nested deeper than redactor.max_json_depth") from None
            return value
        new = self._leaf(value, None, -1)
        return value if new is None else new

    # -- OTLP ----------------------------------------------------------------------------

    def any_value(
        self, root: AnyValue, key: str | None, prechecked: bool = False, located: Located | None = None
    ) -> None:
        stack: list[tuple[AnyValue, str | None]] = [(root, key)]
        while stack:
            v, k = stack.pop()
            kind = v.WhichOneof("value")
            if kind == "string_value":
                if v is root:
                    new = self.string(v.string_value, k, 0, prechecked, located)
                else:
                    new = self.string(v.string_value, k, 0)
                if new is not None:
                    v.string_value = new
            elif kind == "kvlist_value":
                for kv in v.kvlist_value.values:
                    name = kv.key
                    if len(name) > 5 and not name.isidentifier():
                        new_name = self.text(name)
                        if new_name is not None:
                            kv.key = name = new_name
                    stack.append((kv.value, name))
            elif kind == "array_value":
                stack.extend((item, k) for item in v.array_value.values)
            elif kind == "bytes_value":
                # Not necessarily UTF-8: surrogateescape keeps undecodable bytes as they are.
                text = v.bytes_value.decode("utf-8", "surrogateescape")
                new = self.string(text, k)
                if new is not None:
                    v.bytes_value = new.encode("utf-8", "surrogateescape")
            elif kind == "int_value":
                new = self.number(v.int_value)
                if new is not None:
                    v.string_value = new

    def _identifier(self, value: AnyValue, key: str) -> None:
        """Replace a user/session/conversation id by its keyed pseudonym (idempotent)."""
        kind = value.WhichOneof("value")
        if kind == "string_value":
            raw = value.string_value
            if not raw or IDENTIFIER_PSEUDONYM.fullmatch(raw):
                return
        elif kind == "int_value":
            raw = str(value.int_value)
        else:
            self.any_value(value, key)
            return
        assert self.p.hmac_key is not None
        value.string_value = identifier_pseudonym(self.p.hmac_key, raw)
        self.counts[IDENTIFIER] = self.counts.get(IDENTIFIER, 0) + 1

    def attributes(
        self,
        attrs: Any,
        only: Iterable[int] | None = None,
        unverified: Container[int] = (),
        located: tuple[list[bytes], dict[int, list[tuple[int, int]]]] | None = None,
    ) -> None:
        """Apply the key policy and redact every value of a repeated ``KeyValue`` field.

        ``only``: ascending indices of the attributes to look at, when the others are
        known to need nothing (:meth:`CompiledPolicy.dirty_elements`); the prefilter has
        already looked at them, except those in ``unverified``. ``located``: the serialised
        attributes that were looked at, and the matches in each (see :meth:`string`).
        """
        keep = self.p.key_filter.keep
        identifiers = self.p.identifier_keys
        remove: list[int] | None = None
        kv: KeyValue
        pairs = enumerate(attrs) if only is None else ((idx, attrs[idx]) for idx in only)
        for idx, kv in pairs:
            key = kv.key
            if key == REDACTION_ATTR:
                remove = remove or []
                remove.append(idx)  # only the redactor may say what the redactor did
                self.stripped = True
                continue
            if not keep(key):
                self.counts[KEY_POLICY] = self.counts.get(KEY_POLICY, 0) + 1
                remove = remove or []
                remove.append(idx)
                continue
            if key in identifiers:
                self._identifier(kv.value, key)
                continue
            self.dropped = False
            self.any_value(
                kv.value,
                key,
                only is not None and idx not in unverified,
                None if located is None else (located[0][idx], located[1].get(idx, [])),
            )
            if self.dropped:
                remove = remove or []
                remove.append(idx)
        if remove:
            for idx in reversed(remove):
                del attrs[idx]
        self.dropped = False
