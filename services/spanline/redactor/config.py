"""Settings of the redactor service (section `redactor`, env `SPANLINE_REDACTOR_*`)."""

from __future__ import annotations

from spanline.core.settings import Section


class RedactorSettings(Section):
    pass
