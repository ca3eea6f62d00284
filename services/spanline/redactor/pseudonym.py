"""Keyed pseudonyms: ``<EMAIL:9f3a1c2b>`` = first 8 hex digits of HMAC-SHA256(project key, value).

Stable within a project, so "the same user wrote both messages" stays visible to analysts;
different across projects and not reversible without the key. Values are normalised
first so formatting does not split one identity into several tokens (an email's case,
the separators in a phone or card number).
"""

from __future__ import annotations

import hashlib
import hmac

from spanline.redactor.detectors import mask_label

_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")
_NUMERIC = frozenset({"phone", "card", "iban", "ssn"})


def normalise(detector: str, value: str) -> str:
    if detector == "email":
        return value.strip().lower()
    if detector in _NUMERIC:
        return value.translate(_SEPARATORS).upper()
    return value.strip()


def pseudonym(key: bytes, detector: str, value: str) -> str:
    data = normalise(detector, value).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, data, hashlib.sha256).hexdigest()
    return f"<{mask_label(detector)}:{digest[:8]}>"
