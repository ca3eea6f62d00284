"""Redactor: spanline.raw -> spanline.redacted (+ spanline.audit), fail closed.

receive (raw, possibly sealed by ingest) -> process (open envelope, redact every
reachable string under the project's policy) -> emit (redacted record with the same key
and headers, audit counts per project and detector). Anything that cannot be redacted
goes to `spanline.raw.dlq` as the original bytes and nothing of it goes downstream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from spanline.core.consumer_service import ConsumerService
from spanline.core.envelope import EnvelopeError, Opener, parse_key
from spanline.core.kafka import BatchPolicy, DlqEntry, DlqReason, InMessage, Outcome, OutRecord
from spanline.core.kafka.records import H_ENCRYPTION, H_PROJECT, H_SIGNAL
from spanline.redactor import metrics
from spanline.redactor.engine import RedactionError, Redactor, UndecodableError
from spanline.redactor.report import RedactionReport
from spanline.settings import Settings

log = logging.getLogger(__name__)


class RedactStrategy:
    def __init__(
        self, redactor: Redactor, redacted_topic: str, audit_topic: str, opener: Opener | None
    ) -> None:
        self.redactor = redactor
        self.redacted_topic = redacted_topic
        self.audit_topic = audit_topic
        self.opener = opener

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        outcome = Outcome()
        audit: dict[tuple[str, str], RedactionReport] = {}
        started_ns = time.time_ns()
        for msg in batch:
            signal = msg.header_str(H_SIGNAL, "traces")
            project = msg.header_str(H_PROJECT, "default")
            metrics.BYTES.labels(signal if signal in ("traces", "logs") else "unknown").inc(len(msg.value))
            t0 = time.perf_counter()
            try:
                payload = self._open(msg)
                redacted, report = self.redactor.redact_payload(payload, signal, project)  # type: ignore[arg-type]
            except (UndecodableError, EnvelopeError) as exc:
                self._dead(outcome, msg, DlqReason.DECODE_ERROR, str(exc), signal)
                continue
            except RedactionError as exc:
                self._dead(outcome, msg, DlqReason.REDACTION_FAILED, str(exc), signal)
                continue
            except Exception as exc:  # fail closed on anything unexpected, too
                self._dead(
                    outcome, msg, DlqReason.REDACTION_FAILED, f"internal error ({type(exc).__name__})", signal
                )
                continue
            finally:
                metrics.LATENCY.observe(time.perf_counter() - t0)
            headers = [(k, v) for k, v in msg.headers if k != H_ENCRYPTION]
            outcome.records.append(OutRecord(self.redacted_topic, redacted, msg.key, headers))
            metrics.MESSAGES.labels(signal, "redacted").inc()
            if report:
                audit.setdefault((project, signal), RedactionReport()).merge(report)
        ended_ns = time.time_ns()
        for (project, signal), report in audit.items():
            for count in report.to_audit_counts(project, signal, started_ns, ended_ns):
                outcome.records.append(
                    OutRecord(self.audit_topic, count.SerializeToString(), project.encode("utf-8"))
                )
        return outcome

    def _open(self, msg: InMessage) -> bytes:
        header = msg.header(H_ENCRYPTION)
        if header is None:
            return msg.value
        if self.opener is None:
            raise EnvelopeError("message is encrypted but no security.raw_encryption_key is configured")
        return self.opener.open(header, msg.value, associated=msg.key or b"")

    @staticmethod
    def _dead(
        outcome: Outcome, msg: InMessage, reason: metrics.DlqReasonLabel, detail: str, signal: str
    ) -> None:
        outcome.dlq.append(DlqEntry(msg, reason, detail))
        metrics.DLQ.labels(reason).inc()
        metrics.MESSAGES.labels(signal if signal in ("traces", "logs") else "unknown", "dlq").inc()
        log.warning(
            "message dead-lettered",
            extra={
                "reason": reason,
                "detail": detail[:200],
                "partition": msg.partition,
                "offset": msg.offset,
            },
        )

    async def close(self) -> None:
        return None


def _opener(settings: Settings) -> Opener | None:
    sec = settings.security
    keys = [k.get_secret_value() for k in [sec.raw_encryption_key, *sec.raw_decryption_keys] if k is not None]
    keys = [k for k in keys if k]
    return Opener([parse_key(k) for k in keys]) if keys else None


def build(settings: Settings, redactor: Redactor | None = None) -> ConsumerService:
    metrics.create_known_series()
    topics = settings.topics
    redactor = redactor or Redactor.from_settings(settings.redactor)
    redactor.warm()  # compiled before readiness, on the thread that will redact
    strategy = RedactStrategy(
        redactor,
        topics.redacted,
        topics.audit,
        _opener(settings),
    )
    return ConsumerService(
        name="redactor",
        kafka=settings.kafka,
        topics=[topics.raw],
        group_id=topics.group(settings.kafka, "redactor"),
        strategy=strategy,
        policy=BatchPolicy(max_records=500, max_bytes=8 * 1024 * 1024, max_wait_s=0.05),
    )
