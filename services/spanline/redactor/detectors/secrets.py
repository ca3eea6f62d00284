"""Credentials: API keys with known prefixes, JWTs, PEM private keys, Authorization values,
passwords in URLs and ``key=value`` pairs whose key names a secret.

Prefixed tokens are found through one trigger regex: text without any known prefix
(the vast majority of chat content) costs a single C-level scan. Where only part of a
match is secret (``Bearer <token>``, ``scheme://user:<password>@host``), only that part
is reported, so the redacted text keeps its shape.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from spanline.redactor.detectors.base import CASELESS_LETTER, Finding, caseless_word

# (detector, pattern, literals one of which every match contains). Group "v", when present,
# is the secret part.
_PREFIXED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "private_key",
        r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
        ("-----BEGIN",),
    ),
    ("anthropic_key", r"(?<![\w\-])sk-ant-[a-z]{2,8}\d{0,3}-[A-Za-z0-9_\-]{20,}+", ("sk-ant-",)),
    ("openai_key", r"(?<![\w\-])sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}+", ("sk-",)),
    (
        "aws_access_key",
        r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    (
        "github_token",
        r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}+|github_pat_[A-Za-z0-9_]{22,255}+)",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (
        "gitlab_token",
        r"(?<![\w\-])gl(?:pat|dt|rt|ptt|soat|ft|imt|cbt|oas|agent)-[A-Za-z0-9_\-]{20,}+",
        ("glpat-", "gldt-", "glrt-", "glptt-", "glsoat-", "glft-", "glimt-", "glcbt-", "gloas-", "glagent-"),
    ),
    (
        "slack_token",
        r"(?<![\w\-])(?:xox[abposer]-[A-Za-z0-9\-]{10,}+|xapp-\d-[A-Za-z0-9\-]{10,}+)"
        r"|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{8,}+",
        ("xox", "xapp-", "hooks.slack.com"),
    ),
    ("google_api_key", r"(?<![\w\-])AIza[0-9A-Za-z_\-]{35}(?![\w\-])", ("AIza",)),
    ("jwt", r"(?<![\w\-])eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]{4,}+\.[A-Za-z0-9_\-]*+", ("eyJ",)),
    # Stripe secret, restricted and test keys; live bodies can be as short as 24 characters.
    (
        "stripe_key",
        r"(?<![\w])(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,247}+(?![\w])",
        ("sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_"),
    ),
    ("twilio_key", r"(?<![\w])SK[0-9a-fA-F]{32}(?![\w])", ("SK",)),
    ("sendgrid_key", r"(?<![\w])SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}(?![\w\-])", ("SG.",)),
    ("huggingface_token", r"(?<![\w])(?:hf_|api_org_)[A-Za-z0-9]{34}(?![\w])", ("hf_", "api_org_")),
    ("mailgun_key", r"(?<![\w\-])(?:pub)?key-[0-9a-f]{32}(?![\w])", ("key-",)),
    (
        "azure_client_secret",
        r"(?<![\w~.\-])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}(?![\w~.\-])",
        ("Q~",),
    ),
    ("azure_storage_key", r"AccountKey=(?P<v>[A-Za-z0-9+/]{86}==)", ("AccountKey=",)),
)
_TRIGGER = re.compile(
    r"-----BEGIN|sk-|A(?:KIA|SIA|BIA|CCA)|gh[pousr]_|github_pat_|gl[a-z]{1,4}-|xox[abposer]-|xapp-"
    r"|hooks\.slack\.com|AIza|eyJ|[sr]k_(?:live|test|prod)_|SK[0-9a-fA-F]{32}|SG\.|hf_|api_org_|key-[0-9a-f]"
    r"|[0-9]Q~|AccountKey="
)

# Authorization header values, with or without a scheme; bare "Bearer <token>" anywhere.
_AUTHORIZATION = re.compile(
    r"(?i)(?:\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|digest|token|apikey|api-key|sso-key)\s+)?+"
    r"|\bbearer\s+)"
    r"(?P<v>(?!<[A-Z_]+(?::[0-9a-f]{8})?>)[A-Za-z0-9\-._~+/=:%]{6,}+)"
)
# Starts with the literal "://" so the regex engine can jump to it; the scheme before it
# does not matter for what is redacted (the password only).
_URL_PASSWORD = re.compile(
    r"://(?<=[A-Za-z0-9+.\-]://)[^\s:/@?#\"'<>]{0,128}:(?P<v>[^\s/?#\"'<>]{1,256})"
    r"@(?=[^\s@/?#\"'<>]{1,255}(?:[/?#\s\"'<>]|\Z))"
)
_CREDENTIAL_WORDS = ("pass", "pwd", "secret", "token", "key", "credential", "auth")
_CREDENTIAL_KV = re.compile(
    r"(?i)(?<![a-z0-9])[a-z0-9_.\-]{0,40}?"
    r"(?:password|passwd|passphrase|pwd|secret|api[_\-]?key|access[_\-]?key|private[_\-]?key|"
    r"auth[_\-]?token|access[_\-]?token|refresh[_\-]?token|session[_\-]?token|token|credentials?)"
    r"(?![a-z])[a-z0-9_.\-]{0,40}[\"']?[ \t\r\n]{0,3}[:=][ \t\r\n]{0,3}[\"']?"
    r"(?P<v>(?!<[A-Z_]+(?::[0-9a-f]{8})?>)[^\s\"',;&<>]{3,512}+)"
)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+](?<![A-Za-z0-9/+].)[A-Za-z0-9/+]{39}(?![A-Za-z0-9/+=])")
_AWS_CONTEXT = ("aws", "secret", "akia", "asia")

# Attribute / JSON key names whose whole value is a credential.
SENSITIVE_KEY = re.compile(
    r"(?i)(?:^|[._\-\s])(?:password|passwd|passphrase|pwd|secret|client[_\-]?secret|api[_\-]?key|apikey|"
    r"x-api-key|access[_\-]?key|secret[_\-]?key|private[_\-]?key|auth[_\-]?token|access[_\-]?token|"
    r"refresh[_\-]?token|id[_\-]?token|session[_\-]?token|token|authorization|cookie|set-cookie|"
    r"credentials?|proxy-authorization)$"
)
# Every alternative of SENSITIVE_KEY ends with one of these (client_secret -> secret,
# x-api-key -> key, refresh_token -> token, proxy-authorization -> authorization...).
SENSITIVE_KEY_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "key",
    "token",
    "authorization",
    "cookie",
    "credential",
    "credentials",
)
# The words every keyword of _CREDENTIAL_KV ends with (its trigger's anchor): the same
# words but the two that name a header rather than a key=value secret.
_CREDENTIAL_KEY_ENDINGS = tuple(w for w in SENSITIVE_KEY_ENDINGS if w not in ("authorization", "cookie"))


# Values that say "no secret here" after a secret-looking key.
_PLACEHOLDERS = frozenset(
    {
        "",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "string",
        "redacted",
        "hidden",
        "changeme_later",
    }
)
# Keys whose value is a password: any value counts, however guessable (that is the point).
_PASSWORD_KEY = re.compile(r"(?i)pass|pwd")
# Bits per character below which a value after an api_key/token/secret key is taken for a
# word (gitleaks' generic-api-key rule uses 3.5 on longer bodies; short keys with mixed
# character classes pass through _looks_random).
_MIN_ENTROPY = 3.5


def shannon_entropy(value: str) -> float:
    """Shannon entropy of the characters of ``value``, in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _looks_random(value: str) -> bool:
    """Tokens mix character classes; words and placeholders ("bearer instrument") do not."""
    has_digit = any(c.isdigit() for c in value)
    has_upper = any(c.isupper() for c in value)
    has_lower = any(c.islower() for c in value)
    return has_digit + has_upper + has_lower >= 2


_LEFT_BOUNDARY = re.compile(r"^\(\?<!\[([^\]]+)\]\)")


def _after_escapes(pattern: str) -> str:
    """Let a token start right after a literal ``\\n``/``\\r``/``\\t`` (a ``repr()``'d log
    line), whose letter would otherwise fail the word-boundary lookbehind."""
    return _LEFT_BOUNDARY.sub(lambda m: f"(?:(?<![{m.group(1)}])|(?<=\\\\[nrt]))", pattern, count=1)


class PrefixedSecretDetector:
    """API keys and tokens recognisable by their prefix, each reported under its own name."""

    name = "prefixed_secrets"
    triggers: tuple[tuple[str, bool], ...] = ((_TRIGGER.pattern, False),)

    def __init__(self, enabled: frozenset[str]) -> None:
        self._patterns = [
            (name, re.compile(_after_escapes(pattern), re.DOTALL if name == "private_key" else 0), literal)
            for name, pattern, literal in _PREFIXED
            if name in enabled
        ]

    def find(self, text: str, out: list[Finding]) -> None:
        for name, pattern, literals in self._patterns:
            if any(literal in text for literal in literals):
                for m in pattern.finditer(text):
                    if name == "openai_key" and not _looks_random(m.group()[3:]):
                        continue
                    if "v" in pattern.groupindex:
                        out.append((m.start("v"), m.end("v"), name))
                    else:
                        out.append((m.start(), m.end(), name))


class AuthorizationDetector:
    name = "authorization"
    triggers = ((r"bearer|authorization", True),)

    def find(self, text: str, out: list[Finding]) -> None:
        low = text.lower()
        if "bearer" not in low and "authorization" not in low:
            return
        for m in _AUTHORIZATION.finditer(text):
            v = m.group("v")
            if len(v) >= 16 or any(c.isdigit() for c in v):
                out.append((m.start("v"), m.end("v"), "authorization"))


class UrlPasswordDetector:
    name = "url_password"
    triggers = ((r"://[^\s:/@]*:[^\s/]+@", False),)

    def find(self, text: str, out: list[Finding]) -> None:
        if "://" not in text:
            return
        for m in _URL_PASSWORD.finditer(text):
            out.append((m.start("v"), m.end("v"), "url_password"))


class AwsSecretDetector:
    """40-character AWS secret access keys, only near an AWS/secret context word."""

    name = "aws_secret_key"
    triggers = ((r"aws|secret|akia|asia", True),)

    def find(self, text: str, out: list[Finding]) -> None:
        low = text.lower()
        if not any(w in low for w in _AWS_CONTEXT):
            return
        for m in _AWS_SECRET.finditer(text):
            if not _looks_random(m.group()):
                continue
            window = low[max(0, m.start() - 120) : m.start()]
            if any(w in window for w in _AWS_CONTEXT):
                out.append((m.start(), m.end(), "aws_secret_key"))


class CredentialDetector:
    """``password=...``, ``"api_key": "..."``: the value after a key that names a secret."""

    name = "credential"
    # Superset of _CREDENTIAL_KV: every keyword of it ends with one of these words, which
    # no letter follows (so "max_tokens": 1024 and "prompt_tokens": 66, in every GenAI
    # payload, fire nothing), then the rest of the key within its budget, then ':' or '='.
    # Letters as re.IGNORECASE sees them (caseless_word, CASELESS_LETTER), not ASCII only.
    triggers = (
        (
            "(?:"
            + "|".join(caseless_word(w) for w in _CREDENTIAL_KEY_ENDINGS)
            + r")(?:[0-9_.\-](?:"
            + CASELESS_LETTER
            + r"|[0-9_.\-]){0,39})?[\"']?[ \t\r\n]{0,3}[:=]",
            False,
        ),
    )

    def find(self, text: str, out: list[Finding]) -> None:
        if "=" not in text and ":" not in text:
            return
        low = text.lower()
        if not any(w in low for w in _CREDENTIAL_WORDS):
            return
        for m in _CREDENTIAL_KV.finditer(text):
            v = m.group("v")
            if v.isdigit() and len(v) < 8:
                continue
            if v.lower().strip("*x.") in _PLACEHOLDERS or not v.strip("*x.X"):
                continue  # "api_key=None", "token: ***", "password: xxxxxx"
            if not _PASSWORD_KEY.search(m.group()[: m.start("v") - m.start()]) and not (
                _looks_random(v) or shannon_entropy(v) >= _MIN_ENTROPY
            ):
                continue  # "token: string", "secret=hello": a word, not a generated key
            out.append((m.start("v"), m.end("v"), "credential"))
