"""Email addresses, IBANs and IPv6 addresses: detectors with a cheap literal trigger."""

from __future__ import annotations

import ipaddress
import re

from spanline.redactor.checksums import iban_valid
from spanline.redactor.detectors.base import Finding

# Bounded local part and labels: linear on garbage like 5 MB of "a.a.a.a...".
_EMAIL = re.compile(
    r"[\w.%+\-]{1,64}@(?:[\w\-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w\-])|"
    r"[\w.%+\-]{1,64}@\[(?:\d{1,3}\.){3}\d{1,3}\]"
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]{1,4}){3,9}(?![A-Za-z0-9])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:\.\d{1,3}){0,3}(?![\w:])")


class EmailDetector:
    name = "email"

    def find(self, text: str, out: list[Finding]) -> None:
        if "@" not in text:
            return
        for m in _EMAIL.finditer(text):
            start, end = m.span()
            # A leading dot or a dot before '@' is punctuation around the address, not part of it.
            while text[start] in ".-+":
                start += 1
            out.append((start, end, "email"))


class IbanDetector:
    name = "iban"

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


class Ipv6Detector:
    name = "ip"

    def find(self, text: str, out: list[Finding]) -> None:
        if ":" not in text:
            return
        for m in _IPV6.finditer(text):
            cand = m.group()
            if cand.count(":") < 2 or len(cand) > 45:
                continue
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            out.append((m.start(), m.end(), "ip"))
