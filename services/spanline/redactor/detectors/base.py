"""What every detector shares: the finding tuple and the names/labels of the built-ins.

A finding is a plain ``(start, end, detector)`` tuple: the engine creates millions of
them on busy pipelines, and tuples are the cheapest thing CPython can allocate.
"""

from __future__ import annotations

import re
from typing import Protocol

Finding = tuple[int, int, str]

# Non-ASCII characters that Python's re.IGNORECASE matches to an ASCII letter (and the
# ASCII letter each stands for): a trigger for a caseless Python pattern must match them too.
UNICODE_FOLDS: dict[str, tuple[str, ...]] = {"i": ("\u0130", "\u0131"), "k": ("\u212a",), "s": ("\u017f",)}
# One character that ``[a-z]`` matches under re.IGNORECASE, as a UTF-8 byte pattern.
CASELESS_LETTER = r"(?:[a-zA-Z]|\xc4[\xb0\xb1]|\xc5\xbf|\xe2\x84\xaa)"


def caseless_word(word: str) -> str:
    """A UTF-8 byte pattern matching ``word`` (ASCII) as ``re.IGNORECASE`` does on ``str``:
    each letter in either case or one of its :data:`UNICODE_FOLDS`. Spelled out, so it
    needs no caseless flag."""
    out: list[str] = []
    for ch in word:
        alts = [f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else re.escape(ch)]
        alts += [
            "".join(f"\\x{b:02x}" for b in fold.encode("utf-8")) for fold in UNICODE_FOLDS.get(ch.lower(), ())
        ]
        out.append(alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")")
    return "".join(out)


NATIONAL_ID_DETECTORS: tuple[str, ...] = (
    "uk_nino",
    "de_idnr",
    "fr_nir",
    "es_dni",
    "it_fiscal_code",
    "nl_bsn",
    "pl_pesel",
    "se_personnummer",
)
PII_DETECTORS: tuple[str, ...] = (
    "email",
    "phone",
    "card",
    "iban",
    "ip",
    "ssn",
    *NATIONAL_ID_DETECTORS,
    "name",
)
SECRET_DETECTORS: tuple[str, ...] = (
    "private_key",
    "anthropic_key",
    "openai_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "google_api_key",
    "jwt",
    "stripe_key",
    "twilio_key",
    "sendgrid_key",
    "huggingface_token",
    "mailgun_key",
    "azure_client_secret",
    "azure_storage_key",
    "authorization",
    "url_password",
    "credential",
)
NER_DETECTORS: tuple[str, ...] = ("person", "location")
BUILTIN_DETECTORS: tuple[str, ...] = PII_DETECTORS + SECRET_DETECTORS

# Names usable in a policy to set the action of a whole family at once.
DETECTOR_GROUPS: dict[str, tuple[str, ...]] = {
    "pii": PII_DETECTORS,
    "secrets": SECRET_DETECTORS,
    "ner": NER_DETECTORS,
}

# Detectors whose findings are checked against sensitive attribute/JSON key names rather than text.
KEY_NAME_DETECTOR = "credential"
# Pseudo-detector for attributes removed by the key allow/deny list (audit and span summary only).
KEY_POLICY = "key_policy"


def mask_label(detector: str) -> str:
    """The typed mask of a detector: ``email`` -> ``EMAIL`` (rendered ``<EMAIL>``)."""
    return detector.upper()


class TextDetector(Protocol):
    """Anything that appends findings for a text.

    A detector may also have ``triggers``: ``(pattern, caseless)`` pairs in the common subset
    of Python and Hyperscan syntax, matched on UTF-8 bytes. They must be a superset: if the
    detector can find anything in a text, one of its triggers matches it. The scanner then
    runs the detector only on texts where a trigger fired.

    A detector may also have ``element_triggers``: ``(left, body, caseless)`` triples used
    to skip whole serialised elements and JSON documents (``spanline.redactor.prefilter``),
    where ordinary triggers fire too often on ids and model names that the detector then
    rejects. They must be a superset of what the detector *finds* where its trigger fires:
    for every finding, ``body`` matches from some position ``p`` of the text inside the
    text, and, if ``left`` is not None, ``p`` is the start of the text or the character
    before ``p`` is not in the character class ``[left]`` (ASCII; any non-ASCII
    character counts as outside). Without them, the ordinary triggers are used.

    A detector may also have ``refined_triggers``, triples like ``element_triggers``,
    which together are a superset of its findings in the same sense. Its element triggers
    that are not among them are *coarse*: a superset still, cheap to scan everything with,
    but firing on what the detector rejects (dates for the number detector). Where a
    coarse trigger fires, the bytes near its match are scanned again with the refined
    triggers, and only their matches count: a refined match covering a finding starts at
    most ``REFINE_BEFORE`` bytes before, and ends at most ``REFINE_AFTER`` bytes after, the
    end of a coarse match covering it (``detectors.scanner``).
    """

    name: str

    def find(self, text: str, out: list[Finding]) -> None: ...
