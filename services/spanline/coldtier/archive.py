"""Signed, verifiable audit archives: a BagIt bag (RFC 8493) plus a DSSE-signed in-toto
statement.

Layout::

    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
    data/<table>/<YYYY-MM-DD>.parquet
    statement.dsse.json      (DSSE envelope: in-toto Statement v1, Ed25519)

The statement's subjects are every other file of the bag (data and tag files) with its
SHA-256; its predicate holds the project, time range, record counts per table (and how
many came from each tier), schema version, source snapshot ids, exporter and key id.
BagIt gives any archivist's tool a fixity check; the signature proves who exported it and
that nothing was changed since.
A verifier needs only this module (or any DSSE/BagIt tool) and the public key, which is
published out of band: the one beside a bag proves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from spanline import __version__
from spanline.coldtier.tables import SCHEMA_VERSION, TABLES

if TYPE_CHECKING:
    from spanline.settings import Settings

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://spanline.dev/audit-archive/v1"
ENVELOPE = "statement.dsse.json"
_TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt")


# -- keys ------------------------------------------------------------------------------------
def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def keygen(prefix: str) -> tuple[Path, Path, str]:
    private = Ed25519PrivateKey.generate()
    priv_path, pub_path = Path(prefix + ".pem"), Path(prefix + ".pub.pem")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path, key_id(private.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


# -- DSSE ------------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(statement: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}],
    }


# -- export ----------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    records: dict[str, int]
    files: int
    key_id: str
    by_tier: dict[str, dict[str, int]]


def export(
    settings: Settings,
    *,
    project: str,
    start: datetime,
    end: datetime,
    tables: list[str],
    key_path: Path,
    out: Path,
    progress: Callable[[str, int, int], None] | None = None,
    timeout_s: float = 600.0,
) -> ExportResult:
    """Both tiers' rows of ``project`` in ``[start, end)``: every cold row, plus the hot rows
    the cold tier does not hold yet (archive_sources.py), each record once."""
    from spanline.coldtier.archive_sources import cold_rows, hot_rows
    from spanline.coldtier.governance import GovernanceStore
    from spanline.coldtier.tables import ensure_tables

    key = load_private(key_path)
    _, cold = ensure_tables(settings)
    governance = GovernanceStore.from_settings(settings)
    bag = out if out.suffix != ".tar" else Path(tempfile.mkdtemp(prefix="spanline-bag-")) / out.stem
    bag.mkdir(parents=True, exist_ok=False)
    records: dict[str, int] = {}
    by_tier: dict[str, dict[str, int]] = {}
    snapshots: dict[str, int | None] = {}
    data_files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="spanline-archive-") as work, _removed_on_error(bag):
        for i, name in enumerate(tables):
            spec = TABLES[name]
            t = cold[name]
            t.refresh()
            snap = t.current_snapshot()
            snapshots[name] = snap.snapshot_id if snap else None
            from_cold = cold_rows(t, spec, project, start, end)
            if progress:
                progress(f"read {name} (cold)", 2 * i + 1, 2 * len(tables))
            from_hot = hot_rows(
                settings,
                governance,
                table=name,
                project=project,
                start=start,
                end=end,
                cold=from_cold,
                workdir=Path(work),
                timeout_s=timeout_s,
            )
            if progress:
                progress(f"read {name} (hot)", 2 * i + 2, 2 * len(tables))
            by_tier[name] = {"cold": from_cold.num_rows, "hot": from_hot.num_rows}
            data = pa.concat_tables([from_cold, from_hot])
            records[name] = data.num_rows
            if data.num_rows == 0:
                continue
            data = data.sort_by([(k, "ascending") for k in spec.sort_keys])
            days = pc.strftime(data.column(spec.time_column), format="%Y-%m-%d").to_pylist()
            (bag / "data" / name).mkdir(parents=True, exist_ok=True)
            for day in sorted(set(days)):
                mask = pc.equal(pa.array(days), day)
                path = bag / "data" / name / f"{day}.parquet"
                pq.write_table(data.filter(mask), path, compression="zstd")
                data_files.append(path)
    if progress:
        progress("hash", 0, len(data_files))
    manifest = []
    oxum_bytes = 0
    for i, path in enumerate(sorted(data_files)):
        manifest.append(f"{_sha256(path)}  {path.relative_to(bag).as_posix()}")
        oxum_bytes += path.stat().st_size
        if progress:
            progress("hash", i + 1, len(data_files))
    (bag / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    (bag / "manifest-sha256.txt").write_text("".join(line + "\n" for line in manifest), encoding="utf-8")
    now = datetime.now(UTC)
    info = [
        f"Bag-Software-Agent: spanline {__version__}",
        f"Bagging-Date: {now.date().isoformat()}",
        f"Payload-Oxum: {oxum_bytes}.{len(data_files)}",
        f"External-Description: spanline audit archive of project {project}, "
        f"{start.isoformat()} to {end.isoformat()}",
        f"External-Identifier: {project}/{start.isoformat()}/{end.isoformat()}",
    ]
    (bag / "bag-info.txt").write_text("".join(line + "\n" for line in info), encoding="utf-8")
    tag_lines = [f"{_sha256(bag / n)}  {n}" for n in _TAG_FILES]
    (bag / "tagmanifest-sha256.txt").write_text("".join(line + "\n" for line in tag_lines), encoding="utf-8")
    subjects = [
        {"name": p.relative_to(bag).as_posix(), "digest": {"sha256": _sha256(p)}}
        for p in sorted(_bag_files(bag))
    ]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "project": project,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "records": records,
            "records_by_tier": by_tier,
            "schema_version": SCHEMA_VERSION,
            "source_snapshots": snapshots,
            "hot_source": f"clickhouse database {settings.writer.database}",
            "exporter": f"spanline {__version__}",
            "created_at": now.isoformat(timespec="seconds"),
            "key_id": key_id(key.public_key()),
        },
    }
    (bag / ENVELOPE).write_text(json.dumps(sign_envelope(statement, key), indent=2), encoding="utf-8")
    final = bag
    if out.suffix == ".tar":
        with tarfile.open(out, "w") as tar:
            tar.add(bag, arcname=out.stem)
        final = out
    return ExportResult(final, records, len(data_files), key_id(key.public_key()), by_tier)


@contextmanager
def _removed_on_error(bag: Path) -> Iterator[None]:
    """A failed read leaves no half-written bag behind (the directory was ours)."""
    try:
        yield
    except BaseException:
        shutil.rmtree(bag, ignore_errors=True)
        raise


def _bag_files(bag: Path) -> Iterator[Path]:
    for p in bag.rglob("*"):
        if p.is_file() and p.name != ENVELOPE:
            yield p


# -- verify ----------------------------------------------------------------------------------
@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="spanline-verify-") as tmp:
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
        roots = [p for p in Path(tmp).iterdir() if p.is_dir()]
        yield roots[0] if len(roots) == 1 else Path(tmp)


def verify(path: Path, public: Ed25519PublicKey) -> list[str]:
    """Every problem found, each naming the file or field; empty means the archive is intact."""
    with _opened(path) as bag:
        return _verify_bag(bag, public)


def _verify_bag(bag: Path, public: Ed25519PublicKey) -> list[str]:
    problems: list[str] = []
    env_path = bag / ENVELOPE
    if not env_path.is_file():
        return [f"{ENVELOPE}: missing (no signed statement)"]
    try:
        env = json.loads(env_path.read_text(encoding="utf-8"))
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = env["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{ENVELOPE}: unreadable envelope ({type(exc).__name__})"]
    if env.get("payloadType") != PAYLOAD_TYPE:
        problems.append(f"{ENVELOPE}: payloadType is {env.get('payloadType')!r}, expected {PAYLOAD_TYPE}")
    good = False
    for s in sigs:
        try:
            public.verify(base64.b64decode(s["sig"]), pae(env.get("payloadType", ""), payload))
            good = True
        except (InvalidSignature, ValueError, KeyError, TypeError):
            continue
    if not good:
        claimed = ", ".join(str(s.get("keyid")) for s in sigs if isinstance(s, dict))
        problems.append(
            f"{ENVELOPE}: signature does not verify with the given public key {key_id(public)} "
            f"(envelope names {claimed or 'no key'}): wrong key, or the statement was changed"
        )
    try:
        statement = json.loads(payload)
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        predicate = statement["predicate"]
    except (ValueError, KeyError, TypeError):
        return [*problems, f"{ENVELOPE}: statement is not an in-toto statement"]
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"{ENVELOPE}: _type is {statement.get('_type')!r}")
    present = {p.relative_to(bag).as_posix() for p in _bag_files(bag)}
    for name in sorted(set(subjects) - present):
        problems.append(f"{name}: listed in the statement but missing")
    for name in sorted(present - set(subjects)):
        problems.append(f"{name}: not listed in the statement (extra file)")
    for name in sorted(set(subjects) & present):
        if _sha256(bag / name) != subjects[name]:
            problems.append(f"{name}: SHA-256 differs from the signed statement")
    problems += _verify_bagit(bag)
    counts: dict[str, int] = {}
    for name in present:
        if name.startswith("data/") and name.endswith(".parquet"):
            table = name.split("/")[1]
            try:
                counts[table] = counts.get(table, 0) + pq.ParquetFile(bag / name).metadata.num_rows
            except (OSError, pa.ArrowException):
                problems.append(f"{name}: not a readable Parquet file")
    for table, expected in dict(predicate.get("records", {})).items():
        if counts.get(table, 0) != expected:
            problems.append(
                f"records of {table}: statement says {expected}, data files hold {counts.get(table, 0)}"
            )
    return problems


def _verify_bagit(bag: Path) -> list[str]:
    problems = []
    for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        path = bag / manifest
        if not path.is_file():
            problems.append(f"{manifest}: missing (not a BagIt bag)")
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            digest, _, name = line.partition("  ")
            target = bag / name
            if not target.is_file():
                problems.append(f"{name}: listed in {manifest} but missing")
            elif _sha256(target) != digest:
                problems.append(f"{name}: SHA-256 differs from {manifest}")
    payload = (
        {p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file()}
        if (bag / "data").is_dir()
        else set()
    )
    listed = (
        {
            line.partition("  ")[2]
            for line in (bag / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
        if (bag / "manifest-sha256.txt").is_file()
        else set()
    )
    for name in sorted(payload - listed):
        problems.append(f"{name}: payload file not in manifest-sha256.txt")
    return problems
