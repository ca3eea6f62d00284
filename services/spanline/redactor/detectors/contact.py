"""Email addresses, IBANs and IPv6 addresses: detectors with a cheap literal trigger."""

from __future__ import annotations

import ipaddress
import re

from spanline.redactor.checksums import iban_countries, iban_valid
from spanline.redactor.detectors.base import Finding

# Bounded local part and labels: linear on garbage like 5 MB of "a.a.a.a...".
_EMAIL = re.compile(
    r"[\w.%+\-]{1,64}@(?:[\w\-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w\-])|"
    r"[\w.%+\-]{1,64}@\[(?:[0-9]{1,3}\.){3}[0-9]{1,3}\]"
)
_IBAN = re.compile(r"[A-Za-z](?<![A-Za-z0-9].)[A-Za-z][0-9]{2}(?:[ \-]?[A-Za-z0-9]{1,4}){3,9}(?![A-Za-z0-9])")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


class EmailDetector:
    name = "email"
    triggers = ((r"@", False),)
    # A finding has a local-part character before '@' and a domain label and dot (or an
    # address literal) after it; bytes >= 0x80 stand for Unicode word characters.
    element_triggers = ((None, r"[A-Za-z0-9_.%+\-\x80-\xff]@(?:[A-Za-z0-9_\-\x80-\xff]+\.|\[[0-9])", False),)

    def find(self, text: str, out: list[Finding]) -> None:
        ats = text.count("@")
        if not ats:
            return
        if ats > 64:
            matches = list(_EMAIL.finditer(text))
        else:
            # Few '@': match in a window around each one instead of trying every word start.
            matches = []
            n = len(text)
            done = 0
            at = text.find("@")
            while at != -1:
                m = _EMAIL.search(text, max(done, at - 64), min(n, at + 600))
                while m is not None and m.end() <= at:  # an earlier '@' in the window that did not match
                    m = _EMAIL.search(text, m.end(), min(n, at + 600))
                if m is not None and m.start() <= at:
                    matches.append(m)
                    done = m.end()
                    at = text.find("@", done)
                else:
                    at = text.find("@", at + 1)
        for m in matches:
            start, end = m.span()
            # A leading dot or a dot before '@' is punctuation around the address, not part of it.
            while text[start] in ".-+":
                start += 1
            if text.endswith("://", 0, start) or (
                start > 0 and text[start - 1] == ":" and "://" in text[max(0, start - 160) : start]
            ):
                continue  # URL userinfo (scheme://user@host, scheme://user:password@host): not an email
            out.append((start, end, "email"))


class IbanDetector:
    name = "iban"
    # A valid IBAN has at least 11 alphanumerics after country and check digits.
    triggers = ((r"[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11}", False),)
    # _IBAN starts with a letter not preceded by an ASCII letter or digit. Spelling out
    # the registered country codes skips most hex ids ("call_cd33af01...", "chatcmpl-af94...")
    # but scans 3x slower: a refined trigger (see TextDetector), looked at only where the
    # element trigger fires. Any case: iban_valid reads the value upper-cased.
    element_triggers = (("A-Za-z0-9", triggers[0][0], False),)
    refined_triggers = (
        ("A-Za-z0-9", "(?:" + "|".join(iban_countries()) + r")[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11}", True),
    )

    def find(self, text: str, out: list[Finding]) -> None:
        for m in _IBAN.finditer(text):
            raw = m.group()
            compact = raw.replace(" ", "").replace("-", "").upper()
            if iban_valid(compact):
                out.append((m.start(), m.end(), "iban"))
                continue
            # The greedy tail may have swallowed the next word ("... GB82WEST12345698765432 and").
            for cut in range(len(raw) - 1, 14, -1):
                if raw[cut - 1] in " -" or raw[cut] not in " -":
                    continue
                compact = raw[:cut].replace(" ", "").replace("-", "").upper()
                if iban_valid(compact):
                    out.append((m.start(), m.start() + cut, "iban"))
                    break


def _ipv6_span(cand: str) -> tuple[int, int] | None:
    """The valid address in a run, allowing one stray colon at either end ("fe80::1: down")."""
    for lo, hi in ((0, len(cand)), (0, len(cand) - 1), (1, len(cand)), (1, len(cand) - 1)):
        part = cand[lo:hi]
        if part.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(part)
        except ValueError:
            continue
        return lo, hi
    return None


class Ipv6Detector:
    name = "ip"
    # Every address ipaddress accepts either compresses zeros ("::") or writes out 8
    # groups (or 6 and a dotted quad): six "group:" in a row. Clock times ("10:45:12"),
    # which fill logs and chat, have neither.
    triggers = ((r"::|(?:[0-9A-Fa-f]{1,4}:){6}", False),)

    def find(self, text: str, out: list[Finding]) -> None:
        # Expand maximal runs of hex digits, colons and dots around each colon; cheaper than
        # a regex on prose full of "Note:" and "10:45", and exact thanks to ipaddress.
        chars = _IPV6_CHARS
        n = len(text)
        i = text.find(":")
        while i != -1:
            start = i
            while start > 0 and text[start - 1] in chars:
                start -= 1
            end = i + 1
            while end < n and text[end] in chars:
                end += 1
            while end > start and text[end - 1] == ".":
                end -= 1
            while start < end and text[start] == ".":
                start += 1
            cand = text[start:end]
            if (
                2 <= cand.count(":")
                and len(cand) <= 45
                and (start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_"))
                and (end == n or not (text[end].isalnum() or text[end] == "_"))
            ):
                hit = _ipv6_span(cand)
                if hit is not None:
                    out.append((start + hit[0], start + hit[1], "ip"))
            i = text.find(":", max(end, i + 1))
