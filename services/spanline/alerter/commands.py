"""``spanline alerts ...``: lint and test rule files, manage silences.

Exit codes: 0 ok, 1 bad input or a broker error, 2 an invalid rule file or usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spanline.alerter.durations import DurationError, parse_duration


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")
    p = subparsers.add_parser("alerts", help="alert rules: lint, test against recorded scores, silences")
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    lp = sub.add_parser("lint", help="validate a rule file; errors name the rule and the key")
    lp.add_argument("file", type=Path, nargs="?", help="rule file (default: the shipped default rules)")
    lp.set_defaults(func=cmd_lint)

    tp = sub.add_parser(
        "test",
        help="run rules over a recorded score file (JSON lines) with a virtual clock",
        description=(
            "Prints every firing, resolve and notification the rules and routes would produce. "
            'Score lines: {"time": RFC3339|unix-seconds, "name": ..., "value": ..., "project": ..., '
            '"evaluator_kind": ..., "sampling_weight": ..., "label": ..., "attributes": {...}}.'
        ),
    )
    tp.add_argument("rules", type=Path, help="rule file")
    tp.add_argument("--scores", type=Path, required=True, help="JSON-lines score file")
    tp.add_argument("--tail", default="1h", help="keep the clock running this long after the last score (1h)")
    tp.set_defaults(func=cmd_test)

    sp = sub.add_parser("silence", parents=[common], help="mute matching alerts for a while")
    sp.add_argument(
        "--match", action="append", default=[], metavar="NAME=VALUE", help="k=v, k!=v or k=~regex"
    )
    sp.add_argument("--for", dest="duration", default="2h", help="how long (default 2h)")
    sp.add_argument("--comment", default="", help="why (shown in `silences`)")
    sp.add_argument("--by", default="", help="who (default: $USER)")
    sp.set_defaults(func=cmd_silence)

    ls = sub.add_parser("silences", parents=[common], help="list active and pending silences")
    ls.set_defaults(func=cmd_silences)

    ep = sub.add_parser("expire", parents=[common], help="end a silence now")
    ep.add_argument("id", help="silence id (from `silences`)")
    ep.set_defaults(func=cmd_expire)


def cmd_lint(args: argparse.Namespace) -> int:
    from spanline.alerter.rules import RulesError, load_rules

    try:
        rules = load_rules(args.file)
    except RulesError as exc:
        print(f"spanline alerts lint: {exc}", file=sys.stderr)
        return 2
    print(
        f"ok: {len(rules.rules)} rules, {len(rules.receivers)} receivers, "
        f"{len(rules.inhibit_rules)} inhibit rules"
    )
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from spanline.alerter.replay import ScoreFileError, print_events, read_scores, simulate
    from spanline.alerter.rules import RulesError, load_rules

    try:
        rules = load_rules(args.rules)
        tail = parse_duration(args.tail)
    except (RulesError, DurationError) as exc:
        print(f"spanline alerts test: {exc}", file=sys.stderr)
        return 2
    try:
        scores = read_scores(args.scores)
    except ScoreFileError as exc:
        print(f"spanline alerts test: {exc}", file=sys.stderr)
        return 1
    counts = print_events(simulate(rules, scores, tail), scores[0][0] if scores else None, sys.stdout)
    print(
        f"{len(scores)} scores: {counts['fired']} fired, {counts['resolved']} resolved, "
        f"{counts['notified']} notifications",
        file=sys.stderr,
    )
    return 0


def cmd_silence(args: argparse.Namespace) -> int:
    import asyncio
    import getpass
    import time

    from spanline.alerter.silences import SilenceError, new_silence
    from spanline.alerter.topics_io import write_silence
    from spanline.settings import load_settings

    try:
        duration = parse_duration(args.duration)
        silence = new_silence(args.match, time.time(), duration, args.comment, args.by or getpass.getuser())
    except (SilenceError, DurationError) as exc:
        print(f"spanline alerts silence: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    try:
        asyncio.run(write_silence(settings, silence))
    except Exception as exc:
        print(f"spanline alerts silence: cannot store the silence: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(silence.id)
    return 0


def cmd_silences(args: argparse.Namespace) -> int:
    import asyncio
    import time
    from datetime import UTC, datetime

    from spanline.alerter.topics_io import read_silences
    from spanline.settings import load_settings

    settings = load_settings(args.config)
    try:
        silences = asyncio.run(read_silences(settings))
    except Exception as exc:
        print(f"spanline alerts silences: cannot read silences: {type(exc).__name__}", file=sys.stderr)
        return 1
    now = time.time()
    for s in silences.active(now):
        ends = datetime.fromtimestamp(s.ends_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        state = "active" if s.active(now) else "pending"
        matchers = ",".join(str(m) for m in s.matchers)
        print(f"{s.id}  {state:<7} until {ends}  {matchers}  by={s.created_by}  {s.comment}")
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import time

    from spanline.alerter.topics_io import read_silences, write_silence
    from spanline.settings import load_settings

    settings = load_settings(args.config)
    try:
        silences = asyncio.run(read_silences(settings))
        found = silences.by_id.get(args.id)
        if found is None:
            print(f"spanline alerts expire: no silence {args.id}", file=sys.stderr)
            return 1
        now = time.time()
        asyncio.run(write_silence(settings, dataclasses.replace(found, ends_at=min(found.ends_at, now))))
    except Exception as exc:
        print(f"spanline alerts expire: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"expired {args.id}")
    return 0
