"""Slack Block Kit for one notification, inside Slack's limits whatever the group size.

Limits: 50 blocks a message, 3000 characters a section, 150 a header; Slack also
rejects messages well below the documented total (~13k characters), so at most
``MAX_LISTED`` alerts are listed and the rest are counted in a "+N more" line.
"""

from __future__ import annotations

from typing import Any

from spanline.alerter.dispatch import Alert, Notification

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_LISTED = 20
MAX_TEXT = 3000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _labels(alert: Alert) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")


def title(note: Notification) -> str:
    group = " ".join(f"{k}={v}" for k, v in sorted(note.group_labels.items()) if v)
    if note.firing:
        return f"[FIRING:{len(note.firing)}] {group}".strip()
    return f"[RESOLVED] {group}".strip()


def _section(alert: Alert, resolved: bool) -> dict[str, Any]:
    icon = ":white_check_mark:" if resolved else ":rotating_light:"
    summary = alert.annotations.get("summary", "")
    text = f"{icon} *{alert.rule}* ({_labels(alert)})\n{summary}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION)}}


def build_message(note: Notification) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for chat.postMessage / chat.update / an incoming webhook."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title(note), MAX_HEADER)}}
    ]
    listed = 0
    for alerts, resolved in ((note.firing, False), (note.resolved, True)):
        if not alerts:
            continue
        if resolved and note.firing:
            blocks.append({"type": "divider"})
        shown = alerts[: max(0, MAX_LISTED - listed)]
        for alert in shown:
            blocks.append(_section(alert, resolved))
        listed += len(shown)
        more = len(alerts) - len(shown)
        if more:
            word = "resolved" if resolved else "firing"
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"+{more} more {word}"}]}
            )
    assert len(blocks) <= MAX_BLOCKS
    first = (note.firing or note.resolved)[:1]
    text = title(note)
    if first:
        text += " - " + first[0].annotations.get("summary", first[0].rule)
    return _clip(text, MAX_TEXT), blocks
