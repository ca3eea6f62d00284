"""Alerter: scores folded per second (20 rules, 1,000 groups), threshold-to-notification latency, RSS.

1. Fold + merge, in process: serialized ``Score`` messages go through the same
   strategies the service runs (protobuf decode, rule match, DDSketch/sum fold, partial
   encode, partial decode, window merge), in batches as the consumer hands them over
   (the merge with the garbage collector paused per batch, as ``MergeStrategy`` does).
   Wall-clock rates plus the thread's CPU time per score, which other load on a shared
   machine moves less; collector time outside the timed batches is added to fold+merge
   (``gc_outside_batches_s``). Not included: the merge stage's checkpoint of each
   touched group.
2. Latency, on the bundled broker: an ``AlerterService`` with group_wait 0 and a local
   Slack webhook server; the time from producing the score that crosses a threshold to
   the webhook request arriving (p50/p99 over a number of fresh groups).
3. RSS of this process after the fold run (all 20 x 1,000 series held).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.harness import broker, print_table, verdicts, write_result
from spanline.alerter.collector import FULL_COLLECTION_EVERY, tune_for_alerter
from spanline.alerter.compiled import RuleIndex
from spanline.alerter.evaluate import Evaluator
from spanline.alerter.fold import Folder, decode_partial
from spanline.alerter.routing import Router
from spanline.alerter.rules import parse_rules
from spanline.alerter.service import FoldStrategy
from spanline.core.collector import gc_paused
from spanline.core.kafka import InMessage
from spanline.v1.spanline_pb2 import Score

NAMES = [
    "error",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "tool_errors",
    "empty_output",
    "refusal",
    "truncated",
    "invalid_json",
    "user_feedback",
]


def twenty_rules() -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for name in NAMES:
        rules.append(
            {
                "name": f"{name}-mean",
                "score": name,
                "aggregate": "mean",
                "window": "15m",
                "threshold": {"op": ">", "value": 1e12},
            }
        )
    for name in ("latency_ms", "ttft_ms", "cost_usd", "output_tokens"):
        rules.append(
            {
                "name": f"{name}-p95",
                "score": name,
                "aggregate": "p95",
                "window": "10m",
                "threshold": {"op": ">", "value": 1e12},
            }
        )
    for name in ("refusal", "empty_output"):
        rules.append(
            {
                "name": f"{name}-ratio",
                "score": name,
                "aggregate": "ratio",
                "window": "15m",
                "threshold": {"op": ">", "value": 2},
            }
        )
    rules.append(
        {
            "name": "cost-sum",
            "score": "cost_usd",
            "aggregate": "sum",
            "window": "1h",
            "threshold": {"op": ">", "value": 1e12},
        }
    )
    rules.append(
        {
            "name": "tokens-sum",
            "score": ["input_tokens", "output_tokens"],
            "aggregate": "sum",
            "window": "1h",
            "threshold": {"op": ">", "value": 1e12},
        }
    )
    assert len(rules) == 20
    return {"defaults": {"group_by": ["project", "model"]}, "rules": rules}


def make_scores(n: int, groups: int) -> list[bytes]:
    now = time.time()
    out = []
    models = 10
    for i in range(n):
        g = i % groups
        s = Score(
            score_id=str(i),
            name=NAMES[(i // groups) % len(NAMES)],
            score_value=float((i * 7919) % 5000),
            project_id=f"project-{g // models}",
            evaluator_kind="heuristic",
            sampling_weight=1.0,
            time_unix_nano=int((now - (i % 60)) * 1e9),
            trace_id=i.to_bytes(16, "big"),
        )
        s.attributes["gen_ai.request.model"] = f"model-{g % models}"
        out.append(s.SerializeToString())
    return out


class GcOutsideBatches:
    """Garbage-collector time spent outside the timed batches, to charge it to them.

    The stages pause the collector over a batch, so a collection their allocations made
    due can start later, in the harness building the next batch; in the service it would
    run in the consumer. Either way the alerter pays it: it is added to fold+merge.
    """

    def __init__(self) -> None:
        self.timing = False
        self.wall_s = self.cpu_s = 0.0
        self._start = (0.0, 0.0)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if self.timing:
            return
        if phase == "start":
            self._start = (time.perf_counter(), time.thread_time())
        else:
            self.wall_s += time.perf_counter() - self._start[0]
            self.cpu_s += time.thread_time() - self._start[1]


async def fold_throughput(n: int, groups: int, batch: int) -> dict[str, Any]:
    rules = parse_rules(twenty_rules())
    index = RuleIndex.from_rules(rules)
    router = Router.from_rules(rules)
    strategy = FoldStrategy(Folder(index, router), "partials")
    evaluator = Evaluator(index.by_rule())
    values = make_scores(n, groups)
    fold_s = merge_s = 0.0
    fold_cpu = merge_cpu = 0.0  # thread CPU time: what other load on the machine moves least
    partials = 0
    outside = GcOutsideBatches()
    gc.callbacks.append(outside)
    for start in range(0, n, batch):
        # one batch of messages at a time, as the consumer hands them over: holding all of
        # them would make every full garbage collection scan the whole input (harness cost)
        stop = min(n, start + batch)
        chunk = [InMessage("scores", i % 6, i, None, values[i], [], 0) for i in range(start, stop)]
        outside.timing = True
        t0, c0 = time.perf_counter(), time.thread_time()
        outcome = await strategy.process(chunk)
        t1, c1 = time.perf_counter(), time.thread_time()
        now = time.time()
        with gc_paused():  # as MergeStrategy.process does around a batch
            for rec in outcome.records:
                part = decode_partial(rec.value)
                evaluator.merge(part.group_key, part.src, part.entries, now)
        t2, c2 = time.perf_counter(), time.thread_time()
        outside.timing = False
        fold_s += t1 - t0
        merge_s += t2 - t1
        fold_cpu += c1 - c0
        merge_cpu += c2 - c1
        partials += len(outcome.records)
    gc.callbacks.remove(outside)
    merge_s += outside.wall_s
    merge_cpu += outside.cpu_s
    t0 = time.perf_counter()
    evaluator.evaluate(time.time())
    eval_s = time.perf_counter() - t0
    series = sum(len(g.series) for g in evaluator.groups.values())
    return {
        "scores": n,
        "groups": groups,
        "rules": 20,
        "series": series,
        "partials": partials,
        "fold_scores_per_s": round(n / fold_s),
        "fold_and_merge_scores_per_s": round(n / (fold_s + merge_s)),
        "fold_cpu_us_per_score": round(fold_cpu / n * 1e6, 2),
        "fold_and_merge_cpu_us_per_score": round((fold_cpu + merge_cpu) / n * 1e6, 2),
        "gc_outside_batches_s": round(outside.wall_s, 3),
        "evaluate_all_series_s": round(eval_s, 3),
    }


async def latency(trials: int) -> dict[str, Any]:
    from spanline.alerter.service import AlerterService
    from spanline.core.kafka import OutRecord, Producer
    from spanline.core.kafka.admin import create_topics
    from spanline.settings import load_settings
    from tests.integration.alerter.fake_receivers import FakeReceivers

    fake = await FakeReceivers().start()
    hook = fake.base + "/slack/webhook/T/B/X"
    text = f"""
version: 1
defaults: {{eval_interval: 0.1s, for: 0s, min_samples: 1, allowed_lateness: 5s}}
rules:
  - {{name: err, score: error, aggregate: max, window: 10s, bucket: 1s, threshold: {{op: ">", value: 0.5}}}}
route: {{receiver: s, group_by: [alertname, project], group_wait: 0s, group_interval: 1h}}
receivers: [{{name: s, slack: [{{mode: webhook, webhook_url: "{hook}"}}]}}]
"""
    workdir = Path(tempfile.mkdtemp(prefix="alerter-bench-"))
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(text)
    with broker(workdir) as b:
        settings = load_settings(
            None,
            kafka={"bootstrap": b.bootstrap, "session_timeout_ms": 3000, "linger_ms": 0},
            topics={"prefix": "bench", "partitions": 3},
            alerter={
                "rules_file": str(rules_file),
                "tick_s": 0.02,
                "fold_batch_max_wait_s": 0.02,
                "slack_min_post_interval_s": 0,
            },
        )
        await create_topics(settings.kafka, settings.topics, settings.retention)
        from spanline.alerter.rules import load_rules

        service = AlerterService(settings, load_rules(rules_file))
        task = asyncio.create_task(service.run())
        while not (service.ready() and service.owned):
            await asyncio.sleep(0.05)
        producer = Producer(settings.kafka)
        await producer.start()
        lat: list[float] = []
        for i in range(trials):
            s = Score(name="error", score_value=1.0, project_id=f"p{i}", time_unix_nano=time.time_ns())
            before = len(fake.requests)
            t0 = time.monotonic()
            await producer.send_all(
                [OutRecord(settings.topics.scores, s.SerializeToString(), os.urandom(16))]
            )
            while len(fake.requests) == before and time.monotonic() - t0 < 10:
                await asyncio.sleep(0.002)
            lat.append(fake.requests[-1].at - t0)
            await asyncio.sleep(0.05)
        await producer.stop()
        await service.stop()
        await task
    await fake.stop()
    lat.sort()
    return {
        "trials": trials,
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
        "settings": "group_wait 0, eval_interval 0.1 s, tick 0.02 s, fold batch wait 0.02 s",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scores", type=int, default=300_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args(argv)
    tune_for_alerter()  # what `spanline run alerter` does at start (collector settings)
    fold = asyncio.run(fold_throughput(args.scores, args.groups, args.batch))
    rss_mb = round(psutil.Process().memory_info().rss / 2**20, 1)
    lat = asyncio.run(latency(args.trials))
    rate = fold["fold_and_merge_scores_per_s"]
    data = {
        "fold": {
            **fold,
            "collector": "paused over each batch; process: frozen at start, full collection every "
            f"{FULL_COLLECTION_EVERY} second-generation ones (as spanline run alerter)",
        },
        "rss_mb_after_fold": rss_mb,
        "latency": lat,
        **verdicts({"fold_and_merge_scores_per_s": (">= 50000", rate >= 50_000)}),
    }
    print_table(
        "alerter",
        [
            ("fold scores/s", str(fold["fold_scores_per_s"])),
            ("fold+merge scores/s", str(fold["fold_and_merge_scores_per_s"])),
            ("fold+merge CPU per score", f"{fold['fold_and_merge_cpu_us_per_score']} us"),
            ("series held", str(fold["series"])),
            ("evaluate all series", f"{fold['evaluate_all_series_s']} s"),
            ("RSS after fold", f"{rss_mb} MB"),
            ("score -> webhook p50", f"{lat['p50_ms']} ms"),
            ("score -> webhook p99", f"{lat['p99_ms']} ms"),
        ],
    )
    write_result("alerter_bench", data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
