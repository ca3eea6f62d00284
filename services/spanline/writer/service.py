"""Writer: spanline.redacted / scores / alerts / audit -> ClickHouse, exactly once in effect.

receive (four topics, one consumer group) -> process (each message into the row buffer
of its table; a message that cannot be parsed is dead-lettered, the rest of the batch is
written) -> emit (one columnar insert per table; the consumer commits only after every
insert of the batch was acknowledged). Tables are ReplacingMergeTree keyed on the
identity of a span/score/alert/audit message, so a replay replaces rather than
duplicates. A ClickHouse outage raises RetryableError: the consumer pauses and retries
the same batch, lag grows, memory does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spanline.coldtier.governance import GovernanceStore, LedgerCache
from spanline.coldtier.ledger_filter import drop_erased
from spanline.core.consumer_service import ConsumerService
from spanline.core.kafka import BatchPolicy, DlqEntry, DlqReason, InMessage, Outcome, RetryableError
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SIGNAL
from spanline.core.process_memory import bound_arrow_pool, bound_glibc_heap
from spanline.core.startup import StartupError, is_addr_in_use, port_in_use
from spanline.settings import Settings
from spanline.spans.object_store import ObjectStoreError, PayloadOffloader, open_object_store
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import TIME_NS_MAX
from spanline.spans.rows import (
    AlertRows,
    AuditRows,
    LogRows,
    RowBuildError,
    ScoreRows,
    SpanRows,
)
from spanline.writer import metrics
from spanline.writer.config import WriterSettings, dsn_is_embedded, resolve_dsn, resolve_object_store_url
from spanline.writer.store import TABLES, ClickHouseStore, EngineLocked, StoreUnavailable, open_store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    """Row buffers of one batch. Batches are independent so two can be in flight."""

    spans: SpanRows
    logs: LogRows
    scores: ScoreRows
    alerts: AlertRows
    audit: AuditRows

    def buffers(self) -> tuple[SpanRows, LogRows, ScoreRows, AlertRows, AuditRows]:
        return self.spans, self.logs, self.scores, self.alerts, self.audit


class WriteStrategy:
    def __init__(self, settings: Settings, store: ClickHouseStore, offloader: PayloadOffloader) -> None:
        topics = settings.topics
        self.store = store
        self.pricing = PricingTable.load(settings.writer.pricing_file)
        self.offloader = offloader
        # one span buffer for the service's life: the compiled builder keeps its key table
        # (classified attribute keys) across batches; every batch starts from clear()
        self._spans = SpanRows(self.pricing, offloader, settings.writer.span_builder)
        # replays of erased subjects are dropped before the insert (spanline erase)
        self.governance = GovernanceStore.from_settings(settings)
        self.ledger = LedgerCache(self.governance, settings.coldtier.erasure_poll_s)
        self._redacted = topics.redacted
        self._scores = topics.scores
        self._alerts = topics.alerts
        self._audit = topics.audit
        self._build_lock = asyncio.Lock()

    def _new_batch(self) -> _Batch:
        self._spans.clear()
        return _Batch(
            self._spans,
            LogRows(self.offloader),
            ScoreRows(),
            AlertRows(),
            AuditRows(),
        )

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        outcome = Outcome()
        # The rows are built in a worker thread so the event loop keeps fetching the next
        # batch meanwhile (built on the loop, fetch and build took turns: ~40% of the drain
        # rate). The lock keeps the one span buffer to one batch at a time; inserts overlap.
        async with self._build_lock:
            tables = await asyncio.to_thread(self._build, batch, outcome)
        ledger = await asyncio.to_thread(self.ledger.sets)
        if any(ledger.values()):
            tables = [(name, drop_erased(data, ledger, self.governance.digest)[0]) for name, data in tables]
        try:
            for table, data in tables:
                await self.store.insert_async(table, data)
        except StoreUnavailable as exc:
            raise RetryableError(str(exc)) from None
        return outcome

    def _build(self, batch: Sequence[InMessage], outcome: Outcome) -> list[tuple[str, pa.Table]]:
        """Every message of the batch into its table's rows; the tables to insert."""
        rows = self._new_batch()  # a retried batch is rebuilt from its messages
        for msg in batch:
            project = msg.header_str(H_PROJECT, "default")
            received = msg.header_str(H_RECEIVED_AT)
            received_ns = int(received) if received.isdigit() else 0
            if not 0 < received_ns <= TIME_NS_MAX:  # absent or garbage: the broker's time
                received_ns = msg.timestamp_ms * 1_000_000
            try:
                self._add(rows, msg, project, received_ns)
            except RowBuildError as exc:
                outcome.dlq.append(DlqEntry(msg, DlqReason.PARSE_ERROR, str(exc)[:300]))
                log.warning(
                    "message dead-lettered",
                    extra={"reason": DlqReason.PARSE_ERROR, "topic": msg.topic, "offset": msg.offset},
                )
            except ObjectStoreError as exc:
                raise RetryableError(f"object store unavailable: {type(exc).__name__}") from None
        return [(buf.table, buf.take()) for buf in rows.buffers() if len(buf)]

    def _add(self, rows: _Batch, msg: InMessage, project: str, received_ns: int) -> None:
        topic = msg.topic
        if topic == self._redacted:
            signal = msg.header(H_SIGNAL) or b"traces"
            if signal == b"traces":
                rows.spans.add_bytes(msg.value, project, received_ns)
            elif signal == b"logs":
                rows.logs.add_bytes(msg.value, project, received_ns)
            else:
                raise RowBuildError("spans", "unknown spanline-signal header")
        elif topic == self._scores:
            rows.scores.add_bytes(msg.value, project, received_ns)
        elif topic == self._alerts:
            rows.alerts.add_bytes(msg.value, project, received_ns)
        elif topic == self._audit:
            message_id = f"{msg.topic}/{msg.partition}/{msg.offset}"
            rows.audit.add_bytes(msg.value, project, received_ns, message_id=message_id)
        else:  # pragma: no cover - we only subscribe to the four topics
            raise RowBuildError("spans", f"unexpected topic {topic}")

    def warm_up(self) -> None:
        self._spans.warm_up()
        log.info("span row builder", extra={"builder": self._spans.builder_name})

    async def close(self) -> None:
        return None


def batch_policy(w: WriterSettings) -> BatchPolicy:
    """The writer's batches: by rows (a message counts as 4), bytes and time; two in flight
    (one built while the other is inserted); the free heap returned when none is left."""
    return BatchPolicy(
        max_records=max(1, w.batch_max_rows // 4),
        max_bytes=w.batch_max_bytes,
        max_wait_s=w.batch_max_wait_s,
        retry_initial_s=w.insert_backoff_initial_s,
        retry_max_s=w.insert_backoff_max_s,
        max_inflight=2,
        release_heap_when_idle=True,
    )


class WriterService:
    """The writer component: the shared consumer plus the ClickHouse store it owns."""

    name = "writer"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: ClickHouseStore | None = None
        self.inner: ConsumerService | None = None
        self._endpoint: object | None = None

    async def start(self) -> None:
        s = self.settings
        metrics.create_known_series(TABLES)
        bound_glibc_heap()  # before the worker threads allocate
        bound_arrow_pool()
        started = time.monotonic()
        try:
            self.store = await asyncio.to_thread(open_store, s)
        except EngineLocked as exc:  # another process owns the data directory: restarting cannot help
            raise StartupError(str(exc), kind="data_dir_locked") from None
        await asyncio.to_thread(_sync_holds, s, self.store)  # legal holds suspend the hot TTL
        w = s.writer
        offloader = PayloadOffloader(
            open_object_store(
                resolve_object_store_url(s), s3_endpoint_url=w.s3_endpoint_url, s3_region=w.s3_region
            ),
            w.payload_offload_bytes,
        )
        strategy = WriteStrategy(s, self.store, offloader)
        await asyncio.to_thread(strategy.warm_up)
        topics = s.topics
        self.inner = ConsumerService(
            name=self.name,
            kafka=s.kafka,
            topics=[topics.redacted, topics.scores, topics.alerts, topics.audit],
            group_id=topics.group(s.kafka, "writer"),
            strategy=strategy,
            policy=batch_policy(w),
        )
        if dsn_is_embedded(resolve_dsn(s)):
            from spanline.query.endpoint import start_query_endpoint

            try:
                self._endpoint = await asyncio.to_thread(start_query_endpoint, s)
            except OSError as exc:
                self.store.close()
                if is_addr_in_use(exc):
                    raise port_in_use(w.query_host, w.query_port, "writer.query_port") from None
                raise
        log.info(
            "writer ready",
            extra={
                "database": w.database,
                "embedded": self._endpoint is not None,
                "open_s": round(time.monotonic() - started, 2),
            },
        )

    async def run(self) -> None:
        assert self.inner is not None, "start() first"
        jobs = asyncio.create_task(self._erasure_jobs()) if self._endpoint is not None else None
        try:
            await self.inner.run()
        finally:
            if jobs is not None:
                jobs.cancel()
            if self._endpoint is not None:
                self._endpoint.stop()  # type: ignore[attr-defined]
                self._endpoint = None
            if self.store is not None:
                self.store.close()
                self.store = None

    async def _erasure_jobs(self) -> None:
        """`spanline erase`, `hold` and `archive export` against a running pipeline: this
        process owns the embedded store, so it runs the hot tier's part (coldtier/jobs.py),
        between inserts."""
        from spanline.coldtier.jobs import run_hot_owner_jobs
        from spanline.writer.config import chdb_path

        s = self.settings
        governance = GovernanceStore.from_settings(s)
        data_dir = chdb_path(resolve_dsn(s))
        while True:
            await asyncio.sleep(s.coldtier.erasure_poll_s)
            store = self.store
            if store is None:
                return
            try:
                await asyncio.to_thread(
                    self._locked_erasures, store, governance, data_dir, run_hot_owner_jobs
                )
            except Exception as exc:
                log.error("erasure jobs failed", extra={"error": type(exc).__name__})

    @staticmethod
    def _locked_erasures(
        store: ClickHouseStore, governance: GovernanceStore, data_dir: Any, run: Any
    ) -> None:
        with store._insert_lock:  # one statement at a time on the embedded client
            run(store.client, store.database, data_dir, governance)

    async def stop(self) -> None:
        if self.inner is not None:
            await self.inner.stop()

    def ready(self) -> bool:
        return self.inner is not None and self.inner.ready()

    def endpoints(self) -> dict[str, str]:
        """What `spanline up` prints and publishes for `spanline query` to find."""
        url = getattr(self._endpoint, "url", None)
        return {"query": url} if url else {}


def _sync_holds(settings: Settings, store: ClickHouseStore) -> None:
    """At start-up, before any insert: the hot TTLs leave the held projects alone. The
    TTL keeps the holds last applied, so a failure here loses nothing; the job loop retries."""
    from spanline.coldtier.jobs import sync_hot_holds

    try:
        sync_hot_holds(store.client, store.database, GovernanceStore.from_settings(settings))
    except Exception as exc:
        log.error("legal hold sync failed", extra={"error": type(exc).__name__})


def build(settings: Settings) -> WriterService:
    return WriterService(settings)
