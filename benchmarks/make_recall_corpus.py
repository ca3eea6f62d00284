"""Generate the redaction-recall corpus, ``benchmarks/data/redaction_recall.jsonl`` (committed).

``python -m benchmarks.make_recall_corpus`` (needs ``faker``, in the dev extra).
presidio-evaluator's generator was not used: its templates are US-centric and its fake
records hold no European ids; this generator is ours, with a fixed seed.

Per locale (en_US, en_GB, de_DE): person names (with and without a context phrase),
street addresses, phone numbers in the locale's national formats (Faker's, half of them
after a context word), national identifiers with valid check digits (every id kind,
spread over the locales, after the phrase a person would write), secrets of every kind in
:mod:`benchmarks.fake_pii`, and benign sentences of the kind LLM apps carry (numbers,
dates, versions, order ids, model names, no personal data).

Each line: ``{"text", "locale", "kind", "spans": [{"type", "start", "end"}]}`` with
``kind`` one of ``pii`` or ``benign`` and span types ``PERSON``, ``ADDRESS``, ``PHONE``,
``SECRET:<kind>`` and ``ID:<detector>``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from faker import Faker

from benchmarks.fake_pii import NATIONAL_IDS, SECRETS, secret_in_context

SEED = 20261206
LOCALES = ("en_US", "en_GB", "de_DE")
OUT = Path(__file__).resolve().parent / "data" / "redaction_recall.jsonl"
N_PERSON, N_ADDRESS, N_PHONE, N_ID_PER_KIND, N_SECRET_PER_KIND, N_BENIGN = 80, 30, 80, 12, 8, 150

PERSON_TEMPLATES = {
    "en": [
        "Hi, my name is {name} and I can't log in.",
        "Please forward this to {name} before Friday.",
        "{name} asked whether the refund went through.",
        "Dear {name},\nyour ticket has been updated.",
        "Thanks for the help!\nBest regards,\n{name}",
        "The contract was signed by {name} yesterday.",
        "Can you summarise the email from {name}?",
        "I spoke with {name} about the delayed shipment.",
    ],
    "de": [
        "Hallo, mein Name ist {name} und ich komme nicht mehr in mein Konto.",
        "Bitte leiten Sie das an {name} weiter.",
        "{name} hat nach der Rückerstattung gefragt.",
        "Sehr geehrte/r {name},\nIhr Ticket wurde aktualisiert.",
        "Danke für die Hilfe!\nViele Grüße\n{name}",
        "Der Vertrag wurde gestern von {name} unterschrieben.",
        "Kannst du die Mail von {name} zusammenfassen?",
    ],
}
ADDRESS_TEMPLATES = {
    "en": ["Ship it to {v} please.", "My new address is {v}.", "Invoice address: {v}"],
    "de": ["Bitte an {v} liefern.", "Meine neue Adresse ist {v}.", "Rechnungsadresse: {v}"],
}
PHONE_TEMPLATES = {
    "en": [
        "Call me on {v} after five.",
        "Phone: {v}",
        "You can reach the office at {v}.",
        "{v} is my number",
    ],
    "de": ["Rufen Sie mich unter {v} an.", "Telefon: {v}", "Erreichbar unter {v}.", "{v} ist meine Nummer"],
}
BENIGN_TEMPLATES = [
    "Summarise the Q{q} report in {n} bullet points.",
    "Order #{order} shipped on {date} and should arrive within {n} days.",
    "Upgrade the SDK from {ver} to {ver2} and rerun the tests.",
    "The model {model} answered in {ms} ms with {tok} output tokens.",
    "Translate 'the meeting moved to room {room}' into German.",
    "Our revenue grew {pct}% to {amount} EUR in {year}.",
    "Generate a SQL query that counts orders per day since {date}.",
    "Why does build {build} fail with exit code {code}?",
    "Set max_tokens to {tok} and temperature to 0.{q}.",
    "The invoice {order} totals {amount} USD, due {date}.",
    "Write a haiku about the Berlin Wall and the river Spree.",
    "Compare {model} and {model2} on latency and cost.",
    "The cluster has {n} nodes with {tok} GiB of memory each.",
    "Retry the request; the API returned HTTP {code} at {time}.",
    "Tracking number {order}{q} is out for delivery.",
    "Please explain how Kafka consumer groups rebalance.",
    "Die Bestellung {order} wurde am {date} verschickt.",
    "Wie viele Tokens kostet ein Prompt mit {tok} Wörtern?",
    "Das Meeting ist um {time} in Raum {room}.",
    "Schreibe eine kurze Zusammenfassung des Artikels über Python {ver}.",
]
MODELS = (
    "gpt-4o",
    "claude-sonnet-4",
    "Claude Sonnet 4.5",
    "gemini-2.0-flash",
    "Llama 3.1 70B",
    "mistral-large",
)


def _benign(rng: random.Random) -> str:
    return rng.choice(BENIGN_TEMPLATES).format(
        q=rng.randint(1, 4),
        n=rng.randint(2, 12),
        order=rng.randint(10_000_000, 99_999_999),
        date=f"{rng.randint(2023, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        ver=f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        ver2=f"{rng.randint(5, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        model=rng.choice(MODELS),
        model2=rng.choice(MODELS),
        ms=rng.randint(80, 9000),
        tok=rng.randint(16, 4096),
        room=rng.randint(100, 999),
        pct=rng.randint(1, 60),
        amount=f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}",
        year=rng.randint(2019, 2026),
        build=rng.randint(1000, 99999),
        code=rng.choice([400, 401, 403, 404, 429, 500, 502, 503]),
        time=f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    )


def _row(text: str, locale: str, spans: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {
        "text": text,
        "locale": locale,
        "kind": "pii" if spans else "benign",
        "spans": [{"type": t, "start": s, "end": e} for t, s, e in spans],
    }


def _fill(template: str, value: str, label: str, locale: str) -> dict[str, Any]:
    head, _, tail = template.partition("{v}" if "{v}" in template else "{name}")
    text = head + value + tail
    return _row(text, locale, [(label, len(head), len(head) + len(value))])


def generate() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    rows: list[dict[str, Any]] = []
    id_kinds = sorted(NATIONAL_IDS)
    for li, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(SEED + li)
        lang = "de" if locale.startswith("de") else "en"
        for _ in range(N_PERSON):
            name = fake.name() if rng.random() < 0.8 else fake.first_name() + " " + fake.last_name()
            rows.append(_fill(rng.choice(PERSON_TEMPLATES[lang]), name, "PERSON", locale))
        for _ in range(N_ADDRESS):
            address = fake.address().replace("\n", ", ")
            rows.append(_fill(rng.choice(ADDRESS_TEMPLATES[lang]), address, "ADDRESS", locale))
        for _ in range(N_PHONE):
            phone = fake.phone_number()
            rows.append(_fill(rng.choice(PHONE_TEMPLATES[lang]), phone, "PHONE", locale))
        for kind in id_kinds:
            generator, phrases = NATIONAL_IDS[kind]
            for _ in range(N_ID_PER_KIND):
                value = generator(rng)
                ending = rng.choice([".", "", " \u2013 please update it.", "\n"])
                template = rng.choice(phrases) + " {v}" + ending
                rows.append(_fill(template, value, f"ID:{kind}", locale))
        for kind in sorted(SECRETS):
            for _ in range(N_SECRET_PER_KIND):
                value = SECRETS[kind](rng)
                text, at = secret_in_context(kind, value, rng)
                rows.append(_row(text, locale, [(f"SECRET:{kind}", at, at + len(value))]))
        for _ in range(N_BENIGN):
            rows.append(_row(_benign(rng), locale, []))
    return rows


def main() -> None:
    rows = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
