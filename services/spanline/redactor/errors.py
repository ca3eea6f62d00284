"""Exceptions of the redaction engine.

The service's contract is fail-closed (docs/architecture.md): anything the engine cannot finish must
reach the caller as a :class:`RedactionError`, so the message goes to the DLQ instead of
downstream. Messages never contain payload values, only what kind of thing went wrong.
"""

from __future__ import annotations


class RedactionError(Exception):
    """A message could not be redacted completely; its content must not go downstream."""


class UndecodableError(RedactionError):
    """The payload is not a valid OTLP protobuf of the announced signal."""


class PolicyError(Exception):
    """The redaction policy (file or settings) is invalid; the message is for an operator."""
