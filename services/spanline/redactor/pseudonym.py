"""Keyed pseudonyms.

Values found in text: ``<EMAIL:9f3a1c2b>`` = first 8 hex digits of HMAC-SHA256(project
key, normalised value). Stable within a project, so "the same user wrote both messages"
stays visible to analysts; different across projects and not reversible without the key.
Values are normalised first so formatting does not split one identity into several
tokens (an email's case, a phone number's formatting: E.164 through libphonenumber).

Identifier attributes (``user.id``, ``enduser.id``, session and conversation ids:
:data:`IDENTIFIER_KEYS`) are replaced as a whole by ``<ID:`` + 32 hex digits + ``>``:
per-user queries and erasure keep working, and 128 bits do not collide (8 hex digits
collide by ~77k users). The erasure command finds a subject's rows through
:func:`pseudonymize_identifier`, the one function that computes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from spanline.redactor.detectors import mask_label
from spanline.redactor.detectors.phones import normalise as normalise_phone

_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")
_NUMERIC = frozenset({"card", "iban", "ssn"})

# Attribute keys holding a user, session or conversation identifier (the span model reads
# them into the user_id / conversation_id columns).
IDENTIFIER_KEYS: Final = (
    "user.id",
    "enduser.id",
    "enduser.pseudo.id",
    "gen_ai.user",
    "gen_ai.conversation.id",
    "session.id",
    "conversation.id",
    "traceloop.association.properties.user_id",
    "traceloop.association.properties.session_id",
    "langfuse.user.id",
    "langfuse.session.id",
)
IDENTIFIER_HEX_DIGITS: Final = 32
IDENTIFIER_PSEUDONYM: Final = re.compile(r"<ID:[0-9a-f]{32}>")


def normalise(detector: str, value: str) -> str:
    if detector == "email":
        return value.strip().lower()
    if detector == "phone":
        e164 = normalise_phone(value)
        if e164 is not None:
            return e164
        return value.translate(_SEPARATORS)
    if detector in _NUMERIC:
        return value.translate(_SEPARATORS).upper()
    return value.strip()


def pseudonym(key: bytes, detector: str, value: str) -> str:
    data = normalise(detector, value).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, data, hashlib.sha256).hexdigest()
    return f"<{mask_label(detector)}:{digest[:8]}>"


def identifier_pseudonym(project_key: bytes, value: str) -> str:
    """The pseudonym of an identifier under a project's own key (what the redactor writes).

    The value is taken as sent (only surrounding whitespace removed): ids are case- and
    format-sensitive in the systems that issue them.
    """
    digest = hmac.new(project_key, b"id\x00" + value.strip().encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"<ID:{digest.hexdigest()[:IDENTIFIER_HEX_DIGITS]}>"


def pseudonymize_identifier(project: str, value: str, key: bytes | str) -> str:
    """The value the redactor stores for identifier ``value`` of ``project``.

    Signature: ``pseudonymize_identifier(project: str, value: str, key: bytes | str) -> str``.

    * ``project``: the project id (``spanline-project`` header) the rows belong to.
    * ``value``: the raw subject as the application sent it (``user.id``, ``session.id``,
      ``gen_ai.conversation.id``...), e.g. ``"alice@example.com"``.
    * ``key``: the global pseudonym secret, ``redactor.pseudonym_secret``
      (``SPANLINE_REDACTOR_PSEUDONYM_SECRET``); a ``str`` is UTF-8 encoded. The project's
      key is derived from it as the redactor does (:func:`derive_project_key`). A project
      whose policy names its own secret (``pseudonym_secret_env``/``_file``) uses that
      secret directly: call :func:`identifier_pseudonym` with it instead.

    Returns ``"<ID:" + 32 lower-case hex digits + ">"``, exactly the string in the
    ``user_id``/``conversation_id`` columns and attributes, so erasure can match rows of
    the raw subject. Pure and deterministic; raises nothing for any ``str`` input.
    """
    from spanline.redactor.policy import derive_project_key

    secret = key.encode("utf-8") if isinstance(key, str) else key
    return identifier_pseudonym(derive_project_key(secret, project), value)
