"""A one-line behaviour the runner's own tests mutate (not part of spanline)."""

VALUE = 1
