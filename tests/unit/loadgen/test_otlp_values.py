from __future__ import annotations

from spanline.loadgen.otlp_values import any_value, key_value


def test_kinds() -> None:
    assert any_value(True).WhichOneof("value") == "bool_value"
    assert any_value(3).int_value == 3
    assert any_value(0.5).double_value == 0.5
    assert any_value("x").string_value == "x"
    assert [v.string_value for v in any_value(["a", 1]).array_value.values] == ["a", "1"]
    assert any_value(None).string_value == "None"
    assert key_value("k", 1).key == "k"
