"""Claimed tests for sample_target: one pins the value, one cannot tell (a survivor)."""

from tests.unit.mutation.sample_target import VALUE


def test_value_is_one() -> None:
    assert VALUE == 1


def test_value_is_an_int() -> None:
    assert isinstance(VALUE, int)
