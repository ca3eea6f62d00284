from __future__ import annotations

import pytest

from spanline.query.readonly import QueryRejected, check_readonly_sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select count() from spans FINAL;  ",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW TABLES",
        "DESCRIBE TABLE spans",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE spans",
        "-- comment\nSELECT 'a;b', \"odd;name\" FROM spans",
        "SELECT 'file(''/etc/passwd'')' AS not_a_call",
        "/* drop table */ SELECT 1",
        "(SELECT 1) UNION ALL (SELECT 2)",
    ],
)
def test_accepts_read_only(sql: str) -> None:
    assert check_readonly_sql(sql)


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO spans VALUES (1)", "read-only"),
        ("DROP TABLE spans", "read-only"),
        ("ALTER TABLE spans DELETE WHERE 1", "read-only"),
        ("SET readonly = 0", "read-only"),
        ("SYSTEM STOP MERGES", "read-only"),
        ("SELECT 1; DROP TABLE spans", "one statement"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file"),
        ("SELECT * FROM url('http://169.254.169.254/', 'RawBLOB')", "url"),
        ("SELECT * FROM s3 ('s3://b/k')", "s3"),
        ("SELECT * FROM remote('h', system.one)", "remote"),
        ("SELECT * FROM Python(x)", "Python"),
        ("SELECT 1 SETTINGS readonly=0", "readonly"),
        ("SELECT 1 SETTINGS max_result_rows = 0", "max_result_rows"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("", "empty"),
        ("-- only a comment", "empty"),
    ],
)
def test_rejects(sql: str, why: str) -> None:
    with pytest.raises(QueryRejected, match=why):
        check_readonly_sql(sql)
