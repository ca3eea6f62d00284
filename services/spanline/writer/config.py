"""Settings of the writer service (section `writer`, env `SPANLINE_WRITER_*`)."""

from __future__ import annotations

from spanline.core.settings import Section


class WriterSettings(Section):
    pass
