"""How the alerter process uses Python's cyclic garbage collector.

The alerter holds many small long-lived objects (per alert: its fold slot, its series,
one aggregate per time bucket), and each batch of either stage allocates tens of
thousands more that live until the batch ends and form no reference cycles (aggregates,
decoded partial entries). With the collector's defaults those outlive the young
generations, reach the old one as if they were long-lived, and every few batches a full
collection rescans every alert the instance holds: measured, a third to a half of the
fold+merge CPU time with 20,000 alert series. Two settings, both kept here:

- ``spanline.core.collector.gc_paused`` over each batch of both stages: reference
  counting frees the batch's
  objects when it ends; one young-generation collection afterwards (paid by the batch)
  settles what survived (new series and buckets). The block must not await, or other
  tasks would run with the collector off.
- :func:`tune_for_alerter` once at process start: what exists then (modules, rules) is
  frozen out of collections, and a full collection needs ten times as many young ones
  first (``threshold2`` 100 instead of 10). Cycles among long-lived objects, what only a
  full collection frees, are rare here: the state is trees of dicts and aggregates.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 100
"""Second-generation collections between full ones (Python's default: 10)."""


def tune_for_alerter() -> None:
    """Process-wide collector settings of ``spanline run alerter`` (called once, at start)."""
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
