"""The LLM judge of the scorer (sampling, client, budget): owned by the judging work."""
