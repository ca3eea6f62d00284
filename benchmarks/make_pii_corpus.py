"""Generate the labeled accuracy corpora under tests/data/ (run once; outputs are committed).

``python -m benchmarks.make_pii_corpus`` (needs ``pip install presidio-evaluator``).

* ``tests/data/pii_corpus.jsonl``: sentences generated with presidio-evaluator's
  ``PresidioSentenceFaker`` (fixed seed), from its own templates that contain the entity
  types the redactor detects (email, phone, card, IBAN, IP, SSN) plus GenAI-style templates
  of ours (chat turns, tool arguments, support tickets) fed to the same generator. Other
  entities in the templates (names, addresses, dates, zip codes, ages, URLs...) stay in
  the text as distractors: a detector firing on them counts as a false positive.
  Deviations from presidio-evaluator's defaults, deliberately:
  - its template file spells line breaks as a literal backslash-n; they are turned into
    newlines (as the templates mean them);
  - phone numbers come from its ``PhoneNumberProviderNew`` (US, UK, India, Switzerland,
    Sweden formats), not from the FakeNameGenerator records, whose numbers are national
    digit strings without any country code or formatting ("84 23 30");
  - IBANs come from a provider of ours covering 8 countries, compact and grouped by 4
    (Faker's en_US provider only makes compact GB IBANs). Checksums are valid.
* ``tests/data/secrets_corpus.jsonl``: realistic fake credentials (random, right shape)
  in surrounding text (shell, env files, code, JSON, chat), one labeled span per line.

Each line: ``{"text": ..., "spans": [{"type": ..., "start": ..., "end": ...}]}``.
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path
from typing import Any

SEED = 42
N_PII = 3000
N_SECRETS_PER_TYPE = 40
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"

# Presidio entity names we score, and the redactor detector each maps to.
ENTITY_TO_DETECTOR = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip",
    "US_SSN": "ssn",
}
_OUR_PLACEHOLDERS = (
    "{{phone_number}}",
    "{{email}}",
    "{{credit_card_number}}",
    "{{iban}}",
    "{{ip_address}}",
    "{{ssn}}",
)

GENAI_TEMPLATES = [
    "Hi, I'm {{name}}. Can you update my contact email to {{email}} and my phone to {{phone_number}}?",
    "My card {{credit_card_number}} was charged twice on {{date_time}}, please refund it.",
    "Please wire the deposit to {{iban}} before {{day_of_week}}.",
    "The VPN keeps dropping, my public IP is {{ip_address}} and I'm in {{city}}.",
    "For the tax form: SSN {{ssn}}, born {{date_of_birth}}, living at {{address}}.",
    "You can reach our office at {{phone_number}} or write to {{email}}.",
    "Customer {{name}} ({{email}}) reports that the payment with card ending in "
    "{{credit_card_number}} failed.",
    "Summarize this ticket: user {{name}} from {{ip_address}} could not log in after {{date_time}}.",
    "Draft a reply to {{email}} confirming the refund to IBAN {{iban}}.",
    "Call me back on {{phone_number}}, I'll be available after {{year}}-ish, I mean after 5pm.",
    "I moved to {{address}}; new number {{phone_number}}. Age {{age}}, zip {{zipcode}}.",
    "The webhook from {{ip_address}} returned 403, the admin is {{email}}.",
    "Assistant: I have noted your card number {{credit_card_number}}. Anything else?",
    'Tool call lookup_customer({"email": "{{email}}", "phone": "{{phone_number}}"})',
    '{"customer": {"name": "{{name}}", "iban": "{{iban}}", "ssn": "{{ssn}}"}}',
    "Server logs: connection from {{ip_address}} port 443 accepted for {{user_name}}.",
    "Is {{ssn}} a valid social security number for {{name}}?",
    "Send the invoice to {{company}} at {{email}}, bank account {{iban}}.",
    "My new mobile is {{phone_number}}, the old one was disconnected in {{year}}.",
    "Charge {{credit_card_number}} for the {{job}} subscription, billing zip {{zipcode}}.",
    "Translate to French: 'Please call {{phone_number}} to confirm your appointment on {{date_time}}.'",
    "{{name}} <{{email}}> wrote: the server at {{ip_address}} is down again.",
    "What is the routing for IBAN {{iban}}? It belongs to {{name}} in {{country}}.",
    "User profile: phone={{phone_number}}; email={{email}}; ssn={{ssn}}; city={{city}}",
]


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


_BBAN_FORMATS = {
    "DE": "n18",
    "FR": "n10a11n2",
    "NL": "a4n10",
    "ES": "n20",
    "IT": "a1n10a12",
    "CH": "n17",
    "GB": "a4n14",
    "BE": "n12",
}


def make_iban_provider() -> Any:
    from faker.providers import BaseProvider

    class MultiCountryIbanProvider(BaseProvider):  # type: ignore[misc]
        def iban(self) -> str:
            country = self.random_element(sorted(_BBAN_FORMATS))
            spec = _BBAN_FORMATS[country]
            bban = ""
            i = 0
            while i < len(spec):
                kind, j = spec[i], i + 1
                while j < len(spec) and spec[j].isdigit():
                    j += 1
                count = int(spec[i + 1 : j])
                alphabet = string.digits if kind == "n" else string.ascii_uppercase
                bban += "".join(self.random_element(alphabet) for _ in range(count))
                i = j
            iban = country + _iban_check(country, bban) + bban
            if self.generator.random.random() < 0.5:
                return " ".join(iban[k : k + 4] for k in range(0, len(iban), 4))
            return iban

    return MultiCountryIbanProvider


def make_fixed_clock_provider() -> Any:
    """Faker's dates are relative to *now*; pin them so the corpus is reproducible."""
    import datetime as dt

    from faker.providers import BaseProvider

    start, end = dt.datetime(1970, 1, 1), dt.datetime(2025, 1, 1)

    class FixedClockProvider(BaseProvider):  # type: ignore[misc]
        def date_time(self) -> dt.datetime:
            return self.generator.date_time_between(start_date=start, end_date=end)

        def date_of_birth(self) -> dt.date:
            return self.generator.date_between(start_date=dt.date(1930, 1, 1), end_date=dt.date(2006, 1, 1))

        def year(self) -> str:
            return str(self.generator.random.randint(1970, 2024))

        def day_of_week(self) -> str:
            return self.date_time().strftime("%A")

    return FixedClockProvider


def generate_pii(n: int = N_PII, seed: int = SEED) -> list[dict[str, Any]]:
    import numpy as np
    from faker import Faker
    from presidio_evaluator.data_generator import (
        PresidioSentenceFaker,
        presidio_additional_entity_providers,
        presidio_templates_file_path,
    )
    from presidio_evaluator.data_generator.faker_extensions.datasets import load_fake_person_df

    # Its template file writes line breaks as a literal backslash-n; real text has newlines.
    templates = [
        line.strip().replace("\\n", "\n").replace("\\,", ",")
        for line in presidio_templates_file_path.read_text().splitlines()
        if any(p in line for p in _OUR_PLACEHOLDERS)
    ]
    templates += GENAI_TEMPLATES
    # The record loader draws name formats at random: seed before it, not only after.
    random.seed(seed)
    np.random.seed(seed)
    Faker.seed(seed)
    records = load_fake_person_df().drop(columns=["phone_number"])
    faker = PresidioSentenceFaker(
        locale="en_US",
        lower_case_ratio=0.05,
        sentence_templates=templates,
        entity_providers=[
            *presidio_additional_entity_providers,
            make_iban_provider(),
            make_fixed_clock_provider(),
        ],
        base_records=records,
        random_seed=seed,
    )
    faker.add_entity_type_mapping("user_name", "USER_NAME")
    faker.add_entity_type_mapping("company", "ORGANIZATION")
    out = []
    for sample in faker.generate_new_fake_sentences(num_samples=n):
        spans = [
            {"type": s.entity_type, "start": s.start_position, "end": s.end_position}
            for s in sorted(sample.spans, key=lambda s: s.start_position)
        ]
        out.append({"text": sample.full_text, "spans": spans})
    return out


# -- secrets -----------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def _rand(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secret_value(kind: str, rng: random.Random) -> str:
    if kind == "openai_key":
        return rng.choice(["sk-proj-", "sk-", "sk-svcacct-"]) + _rand(
            rng, rng.choice([48, 56, 100]), _ALNUM + "_-"
        )
    if kind == "anthropic_key":
        return "sk-ant-api03-" + _rand(rng, 93, _ALNUM + "_-") + "AA"
    if kind == "aws_access_key":
        return rng.choice(["AKIA", "ASIA"]) + _rand(rng, 16, string.ascii_uppercase + string.digits)
    if kind == "aws_secret_key":
        return _rand(rng, 40, _ALNUM + "/+")
    if kind == "github_token":
        if rng.random() < 0.3:
            return "github_pat_" + _rand(rng, 22) + "_" + _rand(rng, 59)
        return rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + _rand(rng, 36)
    if kind == "gitlab_token":
        return "glpat-" + _rand(rng, 20, _ALNUM + "_-")
    if kind == "slack_token":
        return (
            rng.choice(["xoxb-", "xoxp-"])
            + "-".join(_rand(rng, 12, string.digits) for _ in range(2))
            + "-"
            + _rand(rng, 24)
        )
    if kind == "google_api_key":
        return "AIza" + _rand(rng, 35, _ALNUM + "_-")
    if kind == "jwt":

        def seg(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = seg({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
        payload = seg(
            {"sub": _rand(rng, 10, string.digits), "name": "x", "iat": rng.randrange(10**9, 2 * 10**9)}
        )
        return f"{header}.{payload}.{_rand(rng, 43, _ALNUM + '_-')}"
    if kind == "private_key":
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        body = "\n".join(_rand(rng, 64, _ALNUM + "+/") for _ in range(rng.randrange(3, 8)))
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
    if kind == "authorization":  # RFC 6750 b64token alphabet
        return _rand(rng, rng.randrange(16, 48), _ALNUM + "-._~+/")
    if kind == "url_password":
        return _rand(rng, rng.randrange(8, 24), _ALNUM + "!*_-")
    if kind == "credential":
        return _rand(rng, rng.randrange(8, 24), _ALNUM + "!#%*_-")
    raise ValueError(kind)


# (detector, template); {v} is the secret. Templates mirror where keys leak in LLM traffic.
_SECRET_TEMPLATES: list[tuple[str, str]] = [
    ("openai_key", "export OPENAI_API_KEY={v}"),
    ("openai_key", 'client = OpenAI(api_key="{v}")'),
    ("openai_key", "My key is {v} why does it return 401?"),
    ("anthropic_key", "ANTHROPIC_API_KEY={v}"),
    ("anthropic_key", "I pasted {v} into the config but Claude says unauthorized"),
    ("aws_access_key", "aws_access_key_id = {v}"),
    ("aws_access_key", "The IAM user key {v} was rotated yesterday."),
    ("aws_secret_key", "aws_secret_access_key = {v}"),
    ("aws_secret_key", "export AWS_SECRET_ACCESS_KEY={v}"),
    ("aws_secret_key", "AWS creds: secret {v}"),
    ("github_token", "git clone https://{v}@github.com/acme/app.git"),
    ("github_token", "GITHUB_TOKEN={v} gh pr list"),
    ("gitlab_token", 'curl --header "PRIVATE-TOKEN: {v}" https://gitlab.example.com/api/v4/projects'),
    ("gitlab_token", "use this gitlab token: {v}"),
    ("slack_token", "SLACK_BOT_TOKEN={v}"),
    ("slack_token", "slack_client = WebClient(token='{v}')"),
    ("google_api_key", "https://maps.googleapis.com/maps/api/geocode/json?address=x&key={v}"),
    ("google_api_key", "GOOGLE_API_KEY: {v}"),
    ("jwt", "Cookie: session={v}"),
    ("jwt", "the id_token I got back is {v} can you decode it?"),
    ("private_key", "Here is my deploy key:\n{v}\nWhy does ssh reject it?"),
    ("private_key", '{{"private_key": "{v_json}"}}'),
    ("authorization", "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/items"),
    ("authorization", 'headers = {{"Authorization": "Basic {v}"}}'),
    ("url_password", "DATABASE_URL=postgres://app_user:{v}@db.internal:5432/orders"),
    ("url_password", "connect with mongodb://admin:{v}@mongo-0.example.net/admin?tls=true"),
    ("credential", "password={v}"),
    ("credential", "DB_PASSWORD: {v}"),
    ("credential", '{{"username": "svc", "client_secret": "{v}"}}'),
    ("credential", "Server=tcp:sql.example.net;User ID=app;Password={v};Encrypt=True"),
]


def generate_secrets(per_type: int = N_SECRETS_PER_TYPE, seed: int = SEED) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for kind, template in _SECRET_TEMPLATES:
        by_kind.setdefault(kind, []).append(template)
    out = []
    for kind in sorted(by_kind):
        for i in range(per_type):
            template = by_kind[kind][i % len(by_kind[kind])]
            value = _secret_value(kind, rng)
            if "{v_json}" in template:
                encoded = json.dumps(value)[1:-1]
                text = template.format(v_json=encoded)
                start = text.index(encoded)
                end = start + len(encoded)
            else:
                text = template.format(v=value)
                start = text.index(value)
                end = start + len(value)
            out.append({"text": text, "spans": [{"type": kind, "start": start, "end": end}]})
    return out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> int:
    pii = generate_pii()
    write_jsonl(DATA / "pii_corpus.jsonl", pii)
    secrets = generate_secrets()
    write_jsonl(DATA / "secrets_corpus.jsonl", secrets)
    for name in ("pii_corpus.jsonl", "secrets_corpus.jsonl"):
        p = DATA / name
        print(f"{p}: {sum(1 for _ in p.open())} lines, {p.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
