"""The scorer service: redacted traces -> deterministic scores on 100% of traces (+ the judge)."""
