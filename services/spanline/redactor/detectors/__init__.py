"""Detectors: regex + checksum finders for PII and secrets, and the scanner that combines them."""

from spanline.redactor.detectors.base import (
    BUILTIN_DETECTORS,
    DETECTOR_GROUPS,
    KEY_POLICY,
    NER_DETECTORS,
    PII_DETECTORS,
    SECRET_DETECTORS,
    Finding,
    TextDetector,
    mask_label,
)
from spanline.redactor.detectors.custom import RegexDetector, dictionary_pattern
from spanline.redactor.detectors.scanner import Scanner, builtin_detectors
from spanline.redactor.detectors.secrets import SENSITIVE_KEY

__all__ = [
    "BUILTIN_DETECTORS",
    "DETECTOR_GROUPS",
    "KEY_POLICY",
    "NER_DETECTORS",
    "PII_DETECTORS",
    "SECRET_DETECTORS",
    "SENSITIVE_KEY",
    "Finding",
    "RegexDetector",
    "Scanner",
    "TextDetector",
    "builtin_detectors",
    "dictionary_pattern",
    "mask_label",
]
