-- spanline hot store, version 1.
-- Placeholders substituted by spanline.writer.migrate: {database}, {hot_days}, {retain_days}.
-- Identity and dedupe: ReplacingMergeTree collapses rows whose ORDER BY key is equal, and only
-- within a partition. Every key below is a function of the record identity alone, so a replayed
-- record lands in the same partition with the same key and replaces itself (newest ingested_at
-- wins). Merges are asynchronous: read with FINAL (or SETTINGS final = 1) to see each record once.
-- Ids are lowercase hex strings (trace 32 chars, span 16 chars), the form every OTel UI prints.
-- Bloom filters cover span/log attribute maps but not resource maps: resource attributes repeat
-- per service (service_name is a column), and those two filters cost ~25% of insert time.

CREATE DATABASE IF NOT EXISTS {database};

CREATE TABLE IF NOT EXISTS {database}.spans
(
    project_id                LowCardinality(String),
    trace_id                  String CODEC(ZSTD(1)),
    span_id                   String CODEC(ZSTD(1)),
    parent_span_id            String CODEC(ZSTD(1)),
    trace_state               String CODEC(ZSTD(1)),
    service_name              LowCardinality(String),
    scope_name                LowCardinality(String),
    scope_version             LowCardinality(String),
    name                      LowCardinality(String),
    kind                      LowCardinality(String),
    start_time                DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    end_time                  DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    duration_ns               UInt64 CODEC(T64, ZSTD(1)),
    status_code               LowCardinality(String),
    status_message            String CODEC(ZSTD(3)),
    genai_convention          LowCardinality(String),
    genai_span_kind           LowCardinality(String),
    operation                 LowCardinality(String),
    provider                  LowCardinality(String),
    request_model             LowCardinality(String),
    response_model            LowCardinality(String),
    input_tokens              Nullable(UInt64),
    output_tokens             Nullable(UInt64),
    cached_input_tokens       Nullable(UInt64),
    reasoning_tokens          Nullable(UInt64),
    total_tokens              Nullable(UInt64),
    cost_usd                  Nullable(Float64),
    pricing_version           LowCardinality(String),
    ttft_ms                   Nullable(Float64),
    finish_reasons            Array(LowCardinality(String)),
    conversation_id           String CODEC(ZSTD(1)),
    user_id                   String CODEC(ZSTD(1)),
    agent_name                LowCardinality(String),
    agent_id                  String CODEC(ZSTD(1)),
    tool_name                 LowCardinality(String),
    tool_call_id              String CODEC(ZSTD(1)),
    input_messages            String CODEC(ZSTD(3)),
    output_messages           String CODEC(ZSTD(3)),
    system_instructions       String CODEC(ZSTD(3)),
    tool_arguments            String CODEC(ZSTD(3)),
    tool_result               String CODEC(ZSTD(3)),
    input_messages_bytes      UInt64 CODEC(T64, ZSTD(1)),
    output_messages_bytes     UInt64 CODEC(T64, ZSTD(1)),
    system_instructions_bytes UInt64 CODEC(T64, ZSTD(1)),
    tool_arguments_bytes      UInt64 CODEC(T64, ZSTD(1)),
    tool_result_bytes         UInt64 CODEC(T64, ZSTD(1)),
    attributes                Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    resource_attributes       Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    events                    String CODEC(ZSTD(3)),
    links                     String CODEC(ZSTD(3)),
    ingested_at               DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_conversation_id conversation_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, toStartOfHour(start_time), trace_id, span_id)
TTL toDateTime(start_time) + INTERVAL {hot_days} DAY DELETE;

CREATE TABLE IF NOT EXISTS {database}.logs
(
    project_id          LowCardinality(String),
    time                DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    observed_time       DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    trace_id            String CODEC(ZSTD(1)),
    span_id             String CODEC(ZSTD(1)),
    record_id           UInt64,
    severity_number     UInt8,
    severity_text       LowCardinality(String),
    event_name          LowCardinality(String),
    service_name        LowCardinality(String),
    scope_name          LowCardinality(String),
    body                String CODEC(ZSTD(3)),
    body_bytes          UInt64 CODEC(T64, ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ingested_at         DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, toStartOfHour(time), trace_id, span_id, record_id)
TTL toDateTime(time) + INTERVAL {hot_days} DAY DELETE;

-- A score's identity is score_id alone (the scorer may re-emit it with a new timestamp),
-- so its key leads with the trace instead of time: re-scored traces still collapse.
CREATE TABLE IF NOT EXISTS {database}.scores
(
    project_id      LowCardinality(String),
    score_id        String,
    trace_id        String CODEC(ZSTD(1)),
    span_id         String CODEC(ZSTD(1)),
    name            LowCardinality(String),
    score_value     Float64,
    score_label     LowCardinality(String),
    explanation     String CODEC(ZSTD(3)),
    evaluator_kind  LowCardinality(String),
    sampling_reason LowCardinality(String),
    sampling_weight Float64,
    time            DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    attributes      Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ingested_at     DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    INDEX idx_time time TYPE minmax GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, trace_id, score_id)
TTL toDateTime(time) + INTERVAL {hot_days} DAY DELETE;

-- Alert state changes and redaction audit counts are the compliance record of what the
-- pipeline did: they are kept for the longer of the hot window and the cold retention.
CREATE TABLE IF NOT EXISTS {database}.alerts
(
    project_id  LowCardinality(String),
    time        DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    fingerprint String,
    rule        LowCardinality(String),
    state       LowCardinality(String),
    severity    LowCardinality(String),
    summary     String CODEC(ZSTD(3)),
    value       Float64,
    threshold   Float64,
    labels      Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    ingested_at DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1))
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, time, fingerprint, state)
TTL toDateTime(time) + INTERVAL {retain_days} DAY DELETE;

-- AuditCount has no id of its own and two redactor replicas may report the same window,
-- so the source message (topic/partition/offset) is part of the identity.
CREATE TABLE IF NOT EXISTS {database}.audit
(
    project_id   LowCardinality(String),
    window_start DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    window_end   DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    detector     LowCardinality(String),
    action       LowCardinality(String),
    signal       LowCardinality(String),
    count        UInt64,
    message_id   String,
    ingested_at  DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1))
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (project_id, window_start, detector, action, signal, message_id)
TTL toDateTime(window_start) + INTERVAL {retain_days} DAY DELETE;
