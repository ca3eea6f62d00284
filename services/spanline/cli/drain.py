"""Stopping `spanline up` without losing what is still queued: the drain.

The bundled broker keeps topics in memory, so whatever a stage has not consumed when
the broker stops is gone. Stopping each service after its in-flight batch is therefore
not enough: sources stop first (nothing new comes in), then each consumer stage keeps
running until its consumer group has committed everything on its input topics, and
only then stops. The order comes from what each :class:`ServiceSpec` declares it
consumes and produces, so new services join the drain by declaring their topics.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from spanline.components import ServiceSpec
from spanline.core.kafka.lag import GroupLag, LagProbe
from spanline.core.settings import KafkaSettings, TopicSettings


class DrainChild(Protocol):
    spec: ServiceSpec

    def running(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Leftover:
    topic: str
    group: str
    service: str
    records: int


def stage_order(specs: Sequence[ServiceSpec]) -> list[list[ServiceSpec]]:
    """Stages in stop order: sources, then consumers whose producers are all stopped.

    A cycle (a service reading what a later one writes) is broken by stopping every
    remaining consumer together; undeclared services come last.
    """
    sources = [s for s in specs if s.inputs == ()]
    pending = [s for s in specs if s.inputs]
    undeclared = [s for s in specs if s.inputs is None]
    stages: list[list[ServiceSpec]] = [sources] if sources else []
    stopped = {s.name for s in sources}
    while pending:
        ready = [
            s
            for s in pending
            if all(
                p.name in stopped or p.name == s.name
                for topic in s.inputs or ()
                for p in specs
                if topic in p.outputs
            )
        ]
        if not ready:
            ready = list(pending)
        stages.append(ready)
        stopped.update(s.name for s in ready)
        pending = [s for s in pending if s.name not in stopped]
    if undeclared:
        stages.append(undeclared)
    return stages


class Drain:
    """Runs the drain; `stop` stops a list of children (signals them, waits) and
    `keep_alive` restarts a child that died while its input was being drained."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: TopicSettings,
        children: Sequence[DrainChild],
        stop: Callable[[list[DrainChild]], None],
        keep_alive: Callable[[DrainChild], None],
        say: Callable[[str], None],
        timeout_s: float,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.children = list(children)
        self._stop = stop
        self._keep_alive = keep_alive
        self._say = say
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self._tty = sys.stdout.isatty()

    def _group(self, spec: ServiceSpec) -> str:
        return self.topics.group(self.kafka, spec.name)

    def _inputs(self, spec: ServiceSpec) -> list[str]:
        return [self.topics.name(s) for s in spec.inputs or ()]

    def run(self) -> list[Leftover]:
        """Drain every stage; return what was left per topic (empty: nothing lost)."""
        by_name = {c.spec.name: c for c in self.children}
        consumers = [c.spec for c in self.children if c.spec.inputs]
        groups = {self._group(s): self._inputs(s) for s in consumers}
        loop = asyncio.new_event_loop()
        probe: LagProbe | None = LagProbe(self.kafka, groups)
        try:
            try:
                loop.run_until_complete(probe.start())  # type: ignore[union-attr]
            except Exception as exc:
                self._say(f"cannot measure consumer lag ({type(exc).__name__}): stopping without draining")
                probe = None
            for stage in stage_order([c.spec for c in self.children]):
                members = [by_name[s.name] for s in stage]
                waited = [s for s in stage if s.inputs and not s.holds_input]
                if probe is not None and waited:
                    self._wait_for_zero_lag(loop, probe, waited, by_name)
                self._stop(members)
            if probe is None:
                return []
            return self._leftovers(loop, probe, consumers)
        finally:
            if probe is not None:
                loop.run_until_complete(probe.close())
            loop.close()

    def _measure(self, loop: asyncio.AbstractEventLoop, probe: LagProbe) -> list[GroupLag] | None:
        try:
            return loop.run_until_complete(asyncio.wait_for(probe.lag(), 15))
        except Exception as exc:
            self._say(f"cannot measure consumer lag ({type(exc).__name__}); retrying")
            return None

    def _wait_for_zero_lag(
        self,
        loop: asyncio.AbstractEventLoop,
        probe: LagProbe,
        stage: list[ServiceSpec],
        by_name: dict[str, DrainChild],
    ) -> None:
        wanted = {self._group(s) for s in stage}
        owner = {self._group(s): s.name for s in stage}
        last_line = ""
        last_print = 0.0
        started = time.monotonic()
        while True:
            for spec in stage:
                self._keep_alive(by_name[spec.name])
            lags = self._measure(loop, probe)
            if lags is not None:
                mine = [g for g in lags if g.group in wanted]
                if all(g.total == 0 for g in mine):
                    if self._tty and last_line:
                        print(file=sys.stdout, flush=True)
                    waited = time.monotonic() - started
                    self._say(f"{', '.join(s.name for s in stage)}: input drained ({waited:.1f}s)")
                    return
                parts = [
                    f"{topic} {left:,} left ({owner[g.group]})"
                    for g in mine
                    for topic, left in g.by_topic.items()
                    if left
                ]
                remaining = max(0.0, self.deadline - time.monotonic())
                line = f"draining: {', '.join(parts)}  ({remaining:.0f}s of grace left)"
                now = time.monotonic()
                if self._tty:
                    print(f"\r[spanline up] {line}\033[K", end="", file=sys.stdout, flush=True)
                    last_line = line
                elif now - last_print >= 2.0:
                    self._say(line)
                    last_print = now
            if time.monotonic() >= self.deadline:
                if self._tty and last_line:
                    print(file=sys.stdout, flush=True)
                self._say(f"grace period of {self.timeout_s:g}s ran out while draining")
                return
            time.sleep(0.5)

    def _leftovers(
        self, loop: asyncio.AbstractEventLoop, probe: LagProbe, consumers: list[ServiceSpec]
    ) -> list[Leftover]:
        lags = None
        for _ in range(3):
            lags = self._measure(loop, probe)
            if lags is not None:
                break
        if lags is None:
            return []
        owner = {self._group(s): s.name for s in consumers}
        return [
            Leftover(topic, g.group, owner[g.group], left)
            for g in lags
            for topic, left in g.by_topic.items()
            if left
        ]
