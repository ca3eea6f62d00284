"""Topic management: every topic (docs/architecture.md) with partitions and retention from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from spanline.core.kafka.connection import common_kwargs
from spanline.core.settings import KafkaSettings, RetentionSettings, TopicSettings

log = logging.getLogger(__name__)

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(topics: TopicSettings, retention: RetentionSettings) -> list[TopicSpec]:
    """Every topic of docs/architecture.md, with its retention. DLQs of raw keep raw's short life."""

    def ms(value: float, unit: int) -> str:
        return str(int(value * unit))

    raw_ret = ms(retention.raw_hours, _HOUR_MS)
    dlq_ret = ms(retention.dlq_days, _DAY_MS)
    p = topics.partitions
    specs = [
        TopicSpec(topics.raw, p, {"retention.ms": raw_ret, "cleanup.policy": "delete"}),
        TopicSpec(topics.redacted, p, {"retention.ms": ms(retention.redacted_days, _DAY_MS)}),
        TopicSpec(topics.scores, p, {"retention.ms": ms(retention.scores_days, _DAY_MS)}),
        TopicSpec(topics.alerts, p, {"cleanup.policy": "compact"}),
        TopicSpec(topics.audit, p, {"retention.ms": ms(retention.audit_days, _DAY_MS)}),
        # alerter-internal (docs/architecture.md): partials live as long as the scores they fold
        TopicSpec(topics.alerter_partials, p, {"retention.ms": ms(retention.scores_days, _DAY_MS)}),
        TopicSpec(topics.alerter_checkpoints, p, {"cleanup.policy": "compact"}),
        TopicSpec(topics.alerter_silences, 1, {"cleanup.policy": "compact"}),
        # raw's DLQ holds unredacted data: it inherits raw's short retention.
        TopicSpec(TopicSettings.dlq(topics.raw), p, {"retention.ms": raw_ret}),
    ]
    for source in (topics.redacted, topics.scores, topics.alerts, topics.audit, topics.alerter_partials):
        specs.append(TopicSpec(TopicSettings.dlq(source), p, {"retention.ms": dlq_ret}))
    return specs


@dataclass(slots=True)
class TopicReport:
    created: list[str]
    existing: list[str]


async def create_topics(
    kafka: KafkaSettings, topics: TopicSettings, retention: RetentionSettings, replication: int | None = None
) -> TopicReport:
    """Create missing topics; idempotent. Existing topics are reported, not altered."""
    admin = AIOKafkaAdminClient(**common_kwargs(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        report = TopicReport(created=[], existing=[])
        for spec in topic_specs(topics, retention):
            if spec.name in existing:
                report.existing.append(spec.name)
                continue
            new = NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication or topics.replication_factor,
                topic_configs=spec.config,
            )
            try:
                await admin.create_topics([new])
                report.created.append(spec.name)
            except TopicAlreadyExistsError:
                report.existing.append(spec.name)
            except KafkaError as exc:
                raise RuntimeError(f"cannot create topic {spec.name}: {type(exc).__name__}: {exc}") from None
        return report
    finally:
        await admin.close()
