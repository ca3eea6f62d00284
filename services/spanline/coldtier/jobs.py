"""Placeholder replaced by the erasure module (kept so the service imports)."""

from __future__ import annotations

from typing import Any


def run_pending_cold_erasures(*_: Any) -> None:
    return None
