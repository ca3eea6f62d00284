"""Which services exist and how to build each one from settings.

Imports are lazy so `spanline run ingest` does not load ClickHouse, and a service that
is not built yet simply is not listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spanline.core.service import Component
    from spanline.settings import Settings


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str
    http_port: int
    summary: str
    # Topic suffixes (`TopicSettings.name(suffix)`) the service consumes with the consumer
    # group `TopicSettings.group(kafka, name)`, and those it produces. `spanline up` drains
    # in the order these define: a stage stops once its producers stopped and its group's
    # lag on `inputs` is zero. `()` = a source (stopped first); None = not declared (stopped
    # last, after every declared stage, without a lag check).
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] = ()
    # True for a stage that holds input in open windows (the scorer): its lag stays above
    # zero until they close, so the drain stops it without waiting for zero lag and its
    # stop consumes and scores what is left (lag is checked after it stopped).
    holds_input: bool = False

    def factory(self) -> Callable[[Settings], Component]:
        module = importlib.import_module(self.module)
        return module.build  # type: ignore[no-any-return]

    def available(self) -> bool:
        try:
            importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("spanline"):
                return False
            raise
        return True


# Order matters for `spanline up`: downstream consumers first so nothing waits on them.
SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "alerter",
            "spanline.alerter.service",
            9469,
            "scores -> alert rules -> Slack/PagerDuty + alerts",
            inputs=("scores",),
            outputs=("alerts",),
        ),
        ServiceSpec(
            "coldtier",
            "spanline.coldtier.service",
            9468,
            "redacted/scores -> Iceberg (cold tier: retention, erasure, archives)",
            inputs=("redacted", "scores"),
        ),
        ServiceSpec(
            "writer",
            "spanline.writer.service",
            9466,
            "redacted/scores/alerts/audit -> ClickHouse",
            inputs=("redacted", "scores", "alerts", "audit"),
        ),
        ServiceSpec(
            "scorer",
            "spanline.scorer.service",
            9467,
            "redacted -> trace windows -> deterministic scores (100%) + sampled LLM judge -> scores",
            inputs=("redacted",),
            outputs=("scores",),
            holds_input=True,
        ),
        ServiceSpec(
            "redactor",
            "spanline.redactor.service",
            9465,
            "raw -> redacted + audit (PII/secrets masked)",
            inputs=("raw",),
            outputs=("redacted", "audit"),
        ),
        ServiceSpec(
            "ingest", "spanline.ingest.service", 9464, "OTLP/gRPC -> raw", inputs=(), outputs=("raw",)
        ),
    )
}


def available_services() -> list[ServiceSpec]:
    return [spec for spec in SERVICES.values() if spec.available()]
