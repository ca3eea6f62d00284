"""Every form a data subject's identifier may be stored under.

The redactor replaces identifier attributes (``user.id``, ``gen_ai.conversation.id``...)
with keyed ``<ID:32 hex>`` pseudonyms and values its detectors find (an e-mail used as a
user id) with ``<EMAIL:9f3a1c2b>``-style ones;
``spanline erase`` takes the raw subject and must also find the rows stored under its
pseudonym. The pseudonym is computed with the redactor's own function and per-project key
(never a second implementation), for every project the subject may live in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spanline.settings import Settings

log = logging.getLogger(__name__)

# detectors whose pseudonyms may stand for a user or conversation identifier
_DETECTORS = {"user_id": ("user_id", "email", "phone", "identifier"), "conversation_id": ("conversation_id",)}


def stored_forms(settings: Settings, kind: str, value: str, projects: Iterable[str]) -> list[str]:
    """The raw value plus its pseudonyms under each project's redaction key."""
    forms = [value]
    try:
        from spanline.redactor.errors import PolicyError
        from spanline.redactor.policy import load_policy, resolve
        from spanline.redactor.pseudonym import identifier_pseudonym, pseudonym
    except ImportError:  # pragma: no cover - the redactor ships in the same distribution
        return forms
    r = settings.redactor
    secret = r.pseudonym_secret.get_secret_value().encode("utf-8") if r.pseudonym_secret else None
    try:
        policy = load_policy(r.policy_file)
    except PolicyError:
        log.warning("redaction policy unreadable: erasing raw identifiers only")
        return forms
    for project in sorted(set(projects)):
        try:
            key = resolve(policy, project, global_secret=secret).hmac_key
        except PolicyError:
            continue
        if key is None:
            continue
        # what the redactor writes for an identifier attribute under this project's key
        candidates = [identifier_pseudonym(key, value)]
        candidates += [pseudonym(key, detector, value) for detector in _DETECTORS.get(kind, ())]
        for form in candidates:
            if form not in forms:
                forms.append(form)
    return forms
