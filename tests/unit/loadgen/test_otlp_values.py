from __future__ import annotations

from spanline.loadgen.otlp_values import any_value, json_value, key_value


def test_kinds() -> None:
    assert any_value(True).WhichOneof("value") == "bool_value"
    assert any_value(3).int_value == 3
    assert any_value(0.5).double_value == 0.5
    assert any_value("x").string_value == "x"
    assert [v.string_value for v in any_value(["a", 1]).array_value.values] == ["a", "1"]
    assert any_value(None).string_value == "None"
    assert key_value("k", 1).key == "k"


def test_json_value_keeps_nesting() -> None:
    v = json_value({"role": "user", "parts": [{"n": 1}, 0.5, True], "x": None})
    kv = {e.key: e.value for e in v.kvlist_value.values}
    assert kv["role"].string_value == "user"
    parts = kv["parts"].array_value.values
    assert parts[0].kvlist_value.values[0].value.int_value == 1
    assert parts[1].double_value == 0.5 and parts[2].bool_value is True
    assert kv["x"].string_value == "None"
