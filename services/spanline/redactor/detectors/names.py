"""Person names without a model: context phrases, salutations, titles, signatures, and a
gazetteer of given names.

It always runs (NER is optional and costly), so the default policy is not blind to names.
It finds a capitalised name:

* after a phrase that introduces one ("my name is", "I'm", "ich heiße", "je m'appelle",
  "Name:");
* after a salutation at the start of a line or text ("Dear", "Hi", "Hello", "Hallo",
  "Liebe", "Sehr geehrte Frau") or a title ("Mr.", "Ms.", "Dr.", "Prof.", "Herr", "Frau",
  "Mme");
* on the line after a sign-off ("Regards,", "Best,", "Thanks,", "Viele Grüße",
  "Cordialement"), also behind a literal ``\\n`` escape;
* as a known given name (``data/first_names.json``) followed by a capitalised surname.

Precision comes from requiring capitalised words, a stoplist of words that follow
salutations ("Hi There", "Dear Customer", "Hello World") and a gazetteer without given
names that are ordinary words ("Will", "May", "Page"). What it cannot see: a lone surname,
a lower-case name, a name in running text without a known given name. NER covers those.
"""

from __future__ import annotations

import json
import re
from importlib import resources

from spanline.redactor.detectors.base import Finding

_UPPER = "A-ZÀ-ÖØ-ÞŁŚŻŹĆŃ"
_LOWER = "a-zß-öø-ÿłśżźćńąęó"
_WORD = rf"[{_UPPER}][{_LOWER}]+(?:[-'][{_UPPER}][{_LOWER}]+)?"
# One to three capitalised words on one line (a "van"/"von"/"de" particle may join them).
_NAME = rf"{_WORD}(?:[ ](?:(?:van|von|der|de|di|da|del|le|la)[ ])?{_WORD}){{0,2}}"

# Phrases after which a capitalised name follows; "weak" ones ("I'm Tired", "this is
# Important") only count when the first word is a known given name.
_STRONG_INTROS = (
    "my name is",
    "my name's",
    "name is",
    "call me",
    "mein name ist",
    "ich heiße",
    "je m'appelle",
    "me llamo",
    "mi chiamo",
    "name:",
    "full name:",
    "customer:",
    "patient:",
    "contact:",
    "name =",
    "name=",
)
# (Not triggers of their own: they are too common in prose. A weak intro counts when the
# gazetteer's trigger fires on its given name.)
_WEAK_INTROS = ("i am", "i'm", "this is", "ich bin", "je suis", "signed", "from:")
_SALUTATIONS = (
    "dear",
    "hi",
    "hello",
    "hey",
    "hallo",
    "liebe",
    "lieber",
    "sehr geehrte",
    "sehr geehrter",
    "bonjour",
    "hola",
    "ciao",
)
_TITLE = r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|Sr|Sra"
_SIGN_OFFS = (
    "regards",
    "best regards",
    "kind regards",
    "warm regards",
    "best wishes",
    "best",
    "thanks",
    "thank you",
    "many thanks",
    "cheers",
    "sincerely",
    "yours sincerely",
    "yours truly",
    "viele grüße",
    "beste grüße",
    "liebe grüße",
    "mit freundlichen grüßen",
    "gruß",
    "grüße",
    "cordialement",
    "bien à vous",
    "saludos",
    "cordiali saluti",
)


def _alt(phrases: tuple[str, ...]) -> str:
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len, reverse=True))


# Non-ASCII characters that Python's re.IGNORECASE matches to these ASCII letters, in UTF-8.
_FOLDS = {"i": "(?:i|\\xc4\\xb0|\\xc4\\xb1)", "k": "(?:k|\\xe2\\x84\\xaa)", "s": "(?:s|\\xc5\\xbf)"}
# What Python's ``\s`` matches on str, in UTF-8 (Hyperscan's ``\s`` is ASCII only): the ASCII
# spaces and separators, U+0085, the no-break space U+00A0, U+1680, U+2000-U+200A,
# U+2028/2029, U+202F, U+205F and U+3000.
_UNICODE_SPACE = (
    "(?:[\\t-\\r \\x1c-\\x1f]|\\xc2[\\x85\\xa0]|\\xe1\\x9a\\x80|\\xe2\\x80[\\x80-\\x8a\\xa8\\xa9\\xaf]"
    "|\\xe2\\x81\\x9f|\\xe3\\x80\\x80)"
)
# Where the rules allow a space between a phrase and the name: a no-break space counts too.
_GAP = "[ \\t\u00a0]"
_NBSP_UTF8 = "\\xc2\\xa0"


def _bytes_alt(phrases: tuple[str, ...]) -> str:
    """The phrases as a Hyperscan pattern on UTF-8 (any non-ASCII letter as any 2-byte
    sequence, and the non-ASCII case folds of i, k and s, so that a caseless match stays a
    superset of Python's Unicode case folding)."""
    out = []
    for p in phrases:
        body = "".join(
            _FOLDS[ch]
            if ch in _FOLDS
            else ch
            if ch.isascii() and ch.isalnum()
            else _UNICODE_SPACE + "+"
            if ch == " "
            else "(?:[\\xc0-\\xff][\\x80-\\xbf])"
            if not ch.isascii()
            else re.escape(ch)
            for ch in p
        )
        out.append(body)
    return "|".join(out)


# One regex per rule, each run only when cheap substring checks say it can match (a
# superset: every phrase contains the checked word); one regex with all rules costs a
# Python-level attempt at every position of every text a trigger fired on.
_RULES: tuple[tuple[str, re.Pattern[str], tuple[str, ...], bool], ...] = (
    (
        "n",
        re.compile(rf"(?i:(?<![\w])(?:{_alt(_STRONG_INTROS)})){_GAP}*(?P<n>{_NAME})"),
        tuple({max(p.split(), key=len) for p in _STRONG_INTROS}),
        True,
    ),
    (
        "w",
        re.compile(rf"(?i:(?<![\w])(?:{_alt(_WEAK_INTROS)})){_GAP}*(?P<w>{_NAME})"),
        tuple({max(p.split(), key=len) for p in _WEAK_INTROS}),
        True,
    ),
    (
        "s",
        re.compile(
            rf"(?:^|(?<=[\n\r>])|(?<=\\n)|(?<=[.!?][ ]))[ \t]*(?i:{_alt(_SALUTATIONS)})[ ,\u00a0]+"
            rf"(?:(?i:frau|herr|mr\.?|mrs\.?|ms\.?|dr\.?)[ \u00a0]+)?(?P<s>{_NAME})",
            re.MULTILINE,
        ),
        (*(p.split()[0] for p in _SALUTATIONS if p != "hi"), "hi ", "hi,", "hi\u00a0"),
        True,
    ),
    (
        "t",
        re.compile(rf"(?<![\w])(?:{_TITLE})\.?[ \u00a0]+(?P<t>{_NAME})"),
        tuple(t + sep for t in _TITLE.split("|") for sep in (". ", " ", ".  ", ".\u00a0", "\u00a0")),
        False,
    ),
    (
        "g",
        re.compile(
            rf"(?i:(?<![\w])(?:{_alt(_SIGN_OFFS)}))[ \t]*[,!.]?[ \t]*"
            rf"(?:\r?\n|\\n|\\r\\n)+[ \t]*(?P<g>{_NAME})"
        ),
        tuple({p.split()[0] for p in _SIGN_OFFS}),
        True,
    ),
)
_CAPITALISED_RUN = re.compile(rf"(?<![\w])(?P<first>{_WORD})[ ]+(?P<rest>{_WORD}(?:[ ]{_WORD})?)")

# Capitalised words that follow salutations, intros and titles without being names.
NOT_NAMES = frozenset(
    """
    There All Everyone Team Folks Guys World Customer Customers Sir Madam Madame Friend Friends
    Colleagues Support Sales Admin Sirs Mum Mom Dad User Users Assistant Claude Gpt Chatgpt
    The This That These Those It Its You Your We Our They Their He She His Her I Me My A An
    Not Just Also Here Now Sorry Happy Glad Ready Sure Fine Good Great Okay Ok Yes No Thanks
    Thank Looking Writing Trying Going Working New Back Available Interested Able Done
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April
    May June July August September October November December Today Tomorrow Yesterday
    Hope Please Let Can Could Would Should Will What When Where Why How Which Who Whom
    English German French Spanish Italian Dutch Polish Swedish American British European
    Kunde Kundin Damen Herren Team Alle Zusammen Bonjour Merci Madame Monsieur Der Die Das
    Python Java Rust Docker Kubernetes Api Http Json Sql Linux Windows Mac Google Amazon
    Microsoft Apple Openai Anthropic Meta Github Gitlab Slack Stripe Azure Aws
    Sonnet Opus Haiku Gemini Gemma Llama Mistral Mixtral Grok Qwen Phi Command Titan Nova Pro
    Kafka Redis Postgres Postgresql Mysql Spark Flink Django Flask React Angular Vue Node Deno
    Flash Mini Turbo Instruct Chat Code Vision Embed Sora Dall Whisper Claude Gpt Bard Jurassic
    """.split()
)


def _load_given_names() -> frozenset[str]:
    data = resources.files("spanline.redactor.detectors").joinpath("data/first_names.json").read_text("utf-8")
    names: list[str] = json.loads(data)["first_names"]
    return frozenset(names) - NOT_NAMES


GIVEN_NAMES = _load_given_names()


def _utf8_literal(word: str) -> str:
    """``word`` as a pattern on UTF-8 bytes (Hyperscan), ASCII characters as they are."""
    return "".join(ch if ch.isascii() else "".join(f"\\x{b:02x}" for b in ch.encode("utf-8")) for ch in word)


def _gazetteer_literals() -> tuple[str, ...]:
    """A given name then a space, one pure literal per name: Hyperscan compiles thousands of
    literals in milliseconds, while one alternation of them takes seconds."""
    return tuple(_utf8_literal(n) + " " for n in sorted(GIVEN_NAMES))


# The first two letters of _WORD as a pattern on UTF-8 bytes: an ASCII capital or any
# two-byte character of the Latin-1 Supplement / Latin Extended-A blocks (where every
# non-ASCII letter of _UPPER and _LOWER lives), then an ASCII small letter or such a character.
_UPPER_LOWER_UTF8 = r"(?:[A-Z]|[\xc3-\xc5][\x80-\xbf])(?:[a-z]|[\xc3-\xc5][\x80-\xbf])"
assert all(0xC0 <= ord(c) <= 0x17F for c in "ÀÖØÞŁŚŻŹĆŃßöøÿłśżźćńąęó")


class NameDetector:
    """Finds ``name``: see the module doc."""

    name = "name"
    # Thousands of literal triggers (given name + space): compiled into Hyperscan databases
    # of their own by the scanner and the prefilter; a superset of the gazetteer rule.
    bulk_triggers: tuple[str, ...] = _gazetteer_literals()
    # The salutation and title triggers include the start of the capitalised name that the
    # rules require after them (_NAME opens with an upper-case then a lower-case letter), so
    # "Hello, I need..." and "Hi there" do not fire: most chat turns open with a greeting.
    # A salutation opens a line or the text (after spaces), or follows a literal "\n": as an
    # element trigger (see TextDetector) it must not follow a word character, which also
    # fires at the start of a protobuf string whatever its length byte is.
    _salutation = (
        r"(?i:" + _bytes_alt(_SALUTATIONS) + r")(?:[ ,]|" + _NBSP_UTF8 + r")+"
        # (the optional title, "Frau", "Mr.": any short word, so that Unicode case folds
        # such as "mr" + U+017F long s stay covered)
        r"(?:[^ ,]{1,8}(?:[ ]|" + _NBSP_UTF8 + r")+)?" + _UPPER_LOWER_UTF8
    )
    element_triggers: tuple[tuple[str | None, str, bool], ...] = (
        # An intro counts only before a capitalised name (_GAP* then _NAME): "call me on
        # +44 ..." and "name: string" do not fire. (Caseless only in the phrase, as the rule.)
        (
            None,
            r"(?i:" + _bytes_alt(_STRONG_INTROS) + r")(?:[ \t]|" + _NBSP_UTF8 + r")*" + _UPPER_LOWER_UTF8,
            False,
        ),
        ("A-Za-z0-9_", _salutation, False),
        (None, r"\\n" + _salutation, False),
        (None, r"(?:" + _TITLE + r")\.?(?:[ ]|" + _NBSP_UTF8 + r")+" + _UPPER_LOWER_UTF8, False),
        (None, r"(?:" + _bytes_alt(_SIGN_OFFS) + r")[ \t]*[,!.]?[ \t]*(?:\r?\n|\\n|\\r\\n)", True),
    )
    triggers: tuple[tuple[str, bool], ...] = tuple(
        (body if left is None else rf"(?:^|[^{left}]){body}", caseless)
        for left, body, caseless in element_triggers
    )

    def find(self, text: str, out: list[Finding]) -> None:
        low = text.lower()
        has_newline = "\n" in text or "\\n" in text
        matches = [
            m
            for group, pattern, words, caseless in _RULES
            if (group != "g" or has_newline) and any(w in (low if caseless else text) for w in words)
            for m in pattern.finditer(text)
        ]
        for m in matches:
            group = m.lastgroup
            if group is None:
                continue
            start, end = m.span(group)
            value = m.group(group)
            words = value.split(" ")
            while words and words[-1] in NOT_NAMES:
                words.pop()
            if not words or words[0] in NOT_NAMES:
                continue
            if group == "w" and (
                words[0] not in GIVEN_NAMES or text[start + len(words[0]) : start + len(words[0]) + 1] != " "
            ):
                continue  # (the gazetteer literal "<given name> " is the trigger of this rule)
            end = start + len(" ".join(words))
            out.append((start, end, "name"))
        for m in _CAPITALISED_RUN.finditer(text):
            if m.group("first") not in GIVEN_NAMES:
                continue
            rest = m.group("rest").split(" ")
            while rest and rest[-1] in NOT_NAMES:
                rest.pop()
            if not rest:
                continue
            end = m.start("rest") + len(" ".join(rest))
            out.append((m.start(), end, "name"))
