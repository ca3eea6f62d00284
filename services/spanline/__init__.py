"""spanline: OTLP in, redacted, scored, stored hot and cold, alerted on."""

__version__ = "0.1.0"
