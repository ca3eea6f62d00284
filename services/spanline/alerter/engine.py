"""Rules, windows and notification policy wired together, driven by any clock.

The service drives it with wall-clock time and Kafka in between the two stages;
``spanline alerts test`` drives the same objects with a virtual clock over a recorded
score file, so what a user checks before deploying is what runs.
"""

from __future__ import annotations

from collections.abc import Callable

from spanline.alerter.compiled import RuleIndex
from spanline.alerter.dispatch import Alert, Dispatcher, FlushJob, Integration, make_inhibitor
from spanline.alerter.evaluate import Evaluator, Transition
from spanline.alerter.fold import Folder, decode_partial
from spanline.alerter.routing import CONSOLE_RECEIVER, Router
from spanline.alerter.rules import RulesFile
from spanline.v1.spanline_pb2 import Score


def integrations_of(rules: RulesFile) -> dict[str, list[Integration]]:
    out: dict[str, list[Integration]] = {
        CONSOLE_RECEIVER: [Integration(CONSOLE_RECEIVER, CONSOLE_RECEIVER, "console")]
    }
    for recv in rules.receivers:
        items = []
        for i, slack in enumerate(recv.slack):
            items.append(Integration(f"{recv.name}/slack/{i}", recv.name, "slack", slack.send_resolved))
        for i, pd in enumerate(recv.pagerduty):
            items.append(Integration(f"{recv.name}/pagerduty/{i}", recv.name, "pagerduty", pd.send_resolved))
        if recv.console or not items:
            items.append(Integration(f"{recv.name}/console", recv.name, "console"))
        out[recv.name] = items
    return out


class Engine:
    def __init__(
        self,
        rules: RulesFile,
        *,
        group_wait_s: float | None = None,
        silenced: Callable[[dict[str, str], float], bool] | None = None,
    ) -> None:
        self.rules = rules
        self.index = RuleIndex.from_rules(rules)
        self.router = Router.from_rules(rules)
        self.router.group_wait_override = group_wait_s
        self.folder = Folder(self.index, self.router)
        self.evaluator = Evaluator(self.index.by_rule())
        self.dispatcher = Dispatcher(self.router, integrations_of(rules))
        self._silenced = silenced
        self._now = 0.0
        self._inhibited = make_inhibitor(list(rules.inhibit_rules), self._firing_labels)

    @property
    def eval_interval_s(self) -> float:
        return self.index.eval_interval_s

    def _firing_labels(self) -> list[dict[str, str]]:
        return [s.labels for _, s in self.evaluator.firing()]

    def muted(self, alert: Alert) -> bool:
        if self._silenced is not None and self._silenced(alert.labels, self._now):
            return True
        return self._inhibited(alert)

    def fold_local(self, score: Score, event_time_s: float, now: float) -> None:
        """Fold and merge in one process (no partial topic in between)."""
        self.folder.fold(score, event_time_s, "", 0)
        for _key, value in self.folder.drain():
            decoded = decode_partial(value)
            self.evaluator.merge(decoded.group_key, {}, decoded.entries, now)

    def evaluate(self, now: float) -> list[Transition]:
        transitions = self.evaluator.evaluate(now)
        for tr in transitions:
            self.dispatcher.on_transition(tr, now)
        return transitions

    def due(self, now: float) -> list[FlushJob]:
        self._now = now
        return self.dispatcher.due(now, self.muted)
