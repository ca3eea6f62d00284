"""The one span model: how every service reads a trace.

OTLP bytes -> typed GenAI fields (OTel GenAI, OpenInference, OpenLLMetry conventions),
pricing, the claim check for oversized payloads, and the Arrow row builders (Python, and
the compiled ``wire_spans`` extension). The writer, the scorer and the coldtier all import
from here, so a span means the same thing in the hot tier, the cold tier and a score.
"""
