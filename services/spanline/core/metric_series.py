"""Creating a labelled metric's known series at start-up, before anything counts.

prometheus_client creates a labelled series on its first ``.labels(...)``. A failure
counter that a healthy service never increments would otherwise have no series at all:
its dashboard panel shows "No data" instead of 0, and an alert on ``increase()`` misses
the first failure (the series is born at 1). Each service therefore calls this for its
bounded label values when it starts, with the values taken from the enum or constant its
increment sites use, so the two cannot drift apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from prometheus_client.metrics import MetricWrapperBase


def create_series(metric: MetricWrapperBase, *label_values: Iterable[str]) -> None:
    """Create (at 0) every series of ``metric`` for the product of ``label_values``,
    one iterable per label in the metric's label order. Existing series keep their value."""
    for values in itertools.product(*(tuple(v) for v in label_values)):
        metric.labels(*values)
