"""Dead-letter records: the original bytes plus headers that say where and why."""

from __future__ import annotations

from spanline.core.kafka.records import OutRecord
from spanline.core.kafka.strategy import DlqEntry

H_ERROR_REASON = "spanline-error-reason"
H_ERROR_DETAIL = "spanline-error-detail"
H_ERROR_SERVICE = "spanline-error-service"
H_SOURCE_TOPIC = "spanline-source-topic"
H_SOURCE_PARTITION = "spanline-source-partition"
H_SOURCE_OFFSET = "spanline-source-offset"

_MAX_DETAIL = 512


def dlq_topic(source_topic: str) -> str:
    return f"{source_topic}.dlq"


def dlq_record(entry: DlqEntry, service: str) -> OutRecord:
    msg = entry.message
    detail = entry.detail[:_MAX_DETAIL]
    headers = [(k, v) for k, v in msg.headers if not k.startswith("spanline-error-")]
    headers += [
        (H_ERROR_REASON, entry.reason.encode("utf-8")),
        (H_ERROR_DETAIL, detail.encode("utf-8", "replace")),
        (H_ERROR_SERVICE, service.encode("utf-8")),
        (H_SOURCE_TOPIC, msg.topic.encode("utf-8")),
        (H_SOURCE_PARTITION, str(msg.partition).encode("ascii")),
        (H_SOURCE_OFFSET, str(msg.offset).encode("ascii")),
    ]
    return OutRecord(topic=dlq_topic(msg.topic), key=msg.key, value=msg.value, headers=headers)
