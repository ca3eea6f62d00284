"""Prometheus metrics of the alerter (names prefixed ``spanline_alerter_``).

Labels are bounded: rule names come from the operator's rule file, receivers and
integration kinds from its receivers; never group label values (projects, models).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram

from spanline.core.metric_series import create_series


class NotificationOutcome(StrEnum):
    """The ``outcome`` label of ``spanline_alerter_notifications_total``."""

    SENT = "sent"
    FAILED = "failed"  # retries exhausted: the group is tried again on a later flush
    REJECTED = "rejected"  # the receiver refused it for good (4xx)
    LOGGED = "logged"  # recorded in the notification log only (send_resolved off)


SCORES_FOLDED = Counter("spanline_alerter_scores_folded_total", "Scores folded into partial aggregates")
PARTIALS_MERGED = Counter(
    "spanline_alerter_partials_merged_total",
    "Partial aggregates merged, by outcome (applied, replayed)",
    ["outcome"],
)
LATE_DROPPED = Counter(
    "spanline_alerter_late_scores_dropped_total", "Scores older than window + allowed lateness"
)
EVALUATIONS = Counter(
    "spanline_alerter_rule_evaluations_total", "Rule evaluations of owned alert series", ["rule"]
)
ALERTS = Gauge("spanline_alerter_alerts", "Alert series by state on this instance", ["state"])
TRANSITIONS = Counter(
    "spanline_alerter_transitions_total", "Alerts that started firing or resolved", ["rule", "to"]
)
NOTIFICATIONS = Counter(
    "spanline_alerter_notifications_total",
    "Notifications by receiver, integration kind and outcome (sent, failed, rejected, logged)",
    ["receiver", "kind", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "spanline_alerter_delivery_seconds",
    "Time to deliver one notification, retries included",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DELIVERY_RETRIES = Counter("spanline_alerter_delivery_retries_total", "Retried delivery attempts", ["kind"])
META_ALERTS = Counter("spanline_alerter_meta_alerts_total", "Meta-alerts about a failing receiver")
CHECKPOINT_AGE = Gauge(
    "spanline_alerter_checkpoint_age_seconds", "Seconds since the last checkpoint was written"
)
PARTIAL_LAG_SECONDS = Gauge(
    "spanline_alerter_partial_lag_seconds",
    "Age of the newest partial aggregate when the merge stage read it (fold -> merge delay)",
)
OWNED_GROUPS = Gauge("spanline_alerter_owned_groups", "Notification groups this instance evaluates")


def create_known_series(integrations: Iterable[tuple[str, str]]) -> None:
    """Notification series at 0 from start-up for each configured (receiver, kind), so the
    delivery panel shows 0 and the first failure is an increase."""
    for receiver, kind in set(integrations):
        create_series(NOTIFICATIONS, [receiver], [kind], NotificationOutcome)
