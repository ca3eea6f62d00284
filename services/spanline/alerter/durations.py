"""Durations as people write them in rule files (``30s``, ``5m``, ``2h``, ``7d``, ``1h30m``).

Prometheus and Alertmanager spell durations this way; accepting the same spelling means a
rule copied from either reads the same here.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class DurationError(ValueError):
    pass


def parse_duration(value: object) -> float:
    """Seconds in `value`: a string like ``1h30m``, or a bare number of seconds."""
    if isinstance(value, bool):
        raise DurationError("a duration like 30s, 5m, 2h or 7d is required")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise DurationError("a duration like 30s, 5m, 2h or 7d is required")
    text = value.strip()
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise DurationError(f"{value!r} is not a duration (use e.g. 30s, 5m, 2h, 7d, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back to the same value."""
    if seconds == 0:
        return "0s"
    out = []
    rest = seconds
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        whole = int(rest // size)
        if whole:
            out.append(f"{whole}{unit}")
            rest -= whole * size
    if rest:
        out.append(f"{rest:g}s")
    return "".join(out)
