"""Audit archives: export from a real Iceberg table, verify, and every tampering fails."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bagit
import pytest

from spanline.cli.main import main
from spanline.coldtier import archive
from spanline.coldtier.commit import append_batch
from spanline.coldtier.tables import SPANS, ensure_tables, to_iceberg_arrow
from spanline.settings import load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from tests.integration.coldtier.conftest import trace_value


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("archive")
    s = load_settings(None, data_dir=str(root / "data"))
    rows = SpanRows(PricingTable.load(None), None)
    now_ns = time.time_ns()
    for day in (1, 2):
        for _ in range(3):
            rows.add_bytes(trace_value(os.urandom(16), 2, t0=now_ns - day * 86_400 * 10**9), "p1", 1)
    rows.add_bytes(trace_value(os.urandom(16), 2, t0=now_ns - 86_400 * 10**9), "other", 1)
    _, tables = ensure_tables(s)
    append_batch(tables["spans"], "spans", to_iceberg_arrow(rows.take(), SPANS), {}, 1)
    priv, pub, _ = archive.keygen(str(root / "key"))
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    end = datetime.now(UTC).isoformat()
    bag = root / "bag"
    result = archive.export(
        s,
        project="p1",
        start=datetime.fromisoformat(start),
        end=datetime.fromisoformat(end),
        tables=["spans", "scores"],
        key_path=priv,
        out=bag,
    )
    assert result.records == {"spans": 12, "scores": 0}
    return bag, pub, root


def _copy(bag: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bag, dst)
    return dst


def test_verify_passes_and_bagit_accepts(exported: tuple[Path, Path, Path]) -> None:
    bag, pub, _ = exported
    assert archive.verify(bag, archive.load_public(pub)) == []
    assert main(["archive", "verify", str(bag), "--pubkey", str(pub)]) == 0
    bagit.Bag(str(bag)).validate()


def test_flipped_byte_in_data_file_fails(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bag = _copy(exported[0], tmp_path)
    target = sorted((bag / "data" / "spans").iterdir())[0]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    problems = archive.verify(bag, archive.load_public(exported[1]))
    assert any(target.name in p and "SHA-256" in p for p in problems), problems


def test_edited_count_in_statement_fails(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bag = _copy(exported[0], tmp_path)
    env = json.loads((bag / archive.ENVELOPE).read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["records"]["spans"] = 11
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (bag / archive.ENVELOPE).write_text(json.dumps(env))
    problems = archive.verify(bag, archive.load_public(exported[1]))
    assert any("signature does not verify" in p for p in problems), problems
    assert any("records of spans" in p for p in problems), problems


def test_wrong_key_fails(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, other_pub, _ = archive.keygen(str(tmp_path / "other"))
    problems = archive.verify(exported[0], archive.load_public(other_pub))
    assert len(problems) == 1 and "signature does not verify" in problems[0]
    assert main(["archive", "verify", str(exported[0]), "--pubkey", str(other_pub)]) == 1


def test_missing_and_extra_files_fail(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bag = _copy(exported[0], tmp_path)
    gone = sorted((bag / "data" / "spans").iterdir())[0]
    gone.unlink()
    (bag / "data" / "spans" / "extra.parquet").write_bytes(b"PAR1")
    problems = archive.verify(bag, archive.load_public(exported[1]))
    assert any(gone.name in p and "missing" in p for p in problems), problems
    assert any("extra.parquet" in p and "not listed" in p for p in problems), problems


def test_tar_export_via_cli(
    exported: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pub, root = exported
    monkeypatch.setenv("SPANLINE_DATA_DIR", str(root / "data"))
    out = tmp_path / "a.tar"
    code = main([
        "archive", "export", "--project", "p1", "--from", "2000-01-01", "--to", "2100-01-01",
        "--tables", "spans", "--key", str(root / "key.pem"), "--out", str(out),
    ])  # fmt: skip
    assert code == 0 and out.is_file()
    assert main(["archive", "verify", str(out), "--pubkey", str(pub)]) == 0
