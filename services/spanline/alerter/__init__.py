"""Alerter: rules over spanline.scores, Alertmanager-grade notification to Slack and PagerDuty."""
