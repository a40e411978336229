"""
The store's tables and indexes, and how values are written into them.

One schema for every backend: the DDL below uses portable SQL, with the few
column types that differ between SQLite and PostgreSQL filled in per
dialect by L{ddl}.  Values are stored the same way everywhere:

  - datetimes as fixed-width ISO 8601 UTC text
    (C{2024-01-02T03:04:05.000000Z}), so text order is time order and the
    columns index and compare without date functions;
  - serial numbers as lowercase hex text (they run to 160 bits, past any SQL
    integer);
  - booleans as 0/1 in SQLite, BOOLEAN in PostgreSQL.

C{alias_generations} holds one counter per realm that the store bumps
whenever the realm's CA material (aliases, the certificates they name, CA
certificates) changes; workers poll it to know when to rebuild cached
GetCACert answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

R = TypeVar("R")

SCHEMA_VERSION = 1

_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "blob": "BLOB",
        "boolean": "INTEGER",
        "bigint": "INTEGER",
        "audit_id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgresql": {
        "blob": "BYTEA",
        "boolean": "BOOLEAN",
        "bigint": "BIGINT",
        "audit_id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}

_TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS certificates (
    identifier TEXT NOT NULL PRIMARY KEY,
    realm TEXT,
    der {blob} NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    issuer_identifier TEXT,
    serial TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    public_key_hash TEXT NOT NULL,
    profile TEXT,
    status TEXT NOT NULL CHECK (status IN ('issued', 'revoked')),
    revoked_at TEXT,
    revocation_reason TEXT,
    transaction_id TEXT,
    is_ca {boolean} NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS certificates_issuer_serial
    ON certificates (issuer_identifier, serial);
CREATE INDEX IF NOT EXISTS certificates_issuer_name_serial
    ON certificates (issuer, serial);
CREATE INDEX IF NOT EXISTS certificates_subject
    ON certificates (realm, subject, status, not_after);
CREATE INDEX IF NOT EXISTS certificates_issuer_status
    ON certificates (issuer_identifier, status, serial);
CREATE INDEX IF NOT EXISTS certificates_realm_status
    ON certificates (realm, status, not_before);
CREATE INDEX IF NOT EXISTS certificates_ca_subject
    ON certificates (subject) WHERE is_ca = 1;

CREATE TABLE IF NOT EXISTS transactions (
    realm TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    public_key_hash TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'issued', 'rejected', 'failed')),
    message_type INTEGER NOT NULL,
    servername TEXT NOT NULL,
    csr {blob} NOT NULL,
    subject TEXT NOT NULL,
    certificate_identifier TEXT REFERENCES certificates (identifier),
    reason TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('initial', 'renewal', 'onbehalf')),
    client_address TEXT,
    signer_identifier TEXT,
    signer_key_hash TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (realm, transaction_id)
);
CREATE INDEX IF NOT EXISTS transactions_status
    ON transactions (status, created);
CREATE INDEX IF NOT EXISTS transactions_certificate
    ON transactions (certificate_identifier);

CREATE TABLE IF NOT EXISTS aliases (
    realm TEXT NOT NULL,
    alias TEXT NOT NULL,
    alias_group TEXT NOT NULL,
    identifier TEXT NOT NULL REFERENCES certificates (identifier),
    notbefore TEXT,
    notafter TEXT,
    PRIMARY KEY (realm, alias)
);
CREATE UNIQUE INDEX IF NOT EXISTS aliases_identifier
    ON aliases (identifier, realm, alias_group);

CREATE TABLE IF NOT EXISTS alias_generations (
    realm TEXT NOT NULL PRIMARY KEY,
    generation {bigint} NOT NULL
);

CREATE TABLE IF NOT EXISTS crls (
    realm TEXT NOT NULL,
    issuer_identifier TEXT NOT NULL,
    number {bigint} NOT NULL,
    der {blob} NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT,
    PRIMARY KEY (realm, issuer_identifier, number)
);

CREATE TABLE IF NOT EXISTS audit (
    id {audit_id},
    time TEXT NOT NULL,
    realm TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    transaction_id TEXT,
    identifier TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE INDEX IF NOT EXISTS audit_realm_time ON audit (realm, time);
"""

# The audit log is append-only: the database itself refuses to change it.
_SQLITE_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
"""


def ddl(dialect: str) -> list[str]:
    """
    The statements that create the schema (idempotently) in C{dialect}
    (C{"sqlite"} or C{"postgresql"}), without the version row.

    The PostgreSQL backend still has to add its own append-only rule for the
    audit table.
    """
    try:
        types = _TYPES[dialect]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {dialect!r}") from None
    statements = [s.strip() for s in _TABLES.format(**types).split(";")]
    statements = [s for s in statements if s]
    if dialect == "sqlite":
        # Trigger bodies contain semicolons: split on END instead.
        for body in _SQLITE_TRIGGERS.split("END;"):
            if body.strip():
                statements.append(body.strip() + " END")
    return statements


# Values and rows, shared by the backends.

_TIMES = frozenset(
    {
        "not_before",
        "not_after",
        "revoked_at",
        "created",
        "updated",
        "notbefore",
        "notafter",
        "cert_not_before",
        "cert_not_after",
        "this_update",
        "next_update",
        "time",
    }
)


def time_to_text(value: datetime) -> str:
    """
    A timezone-aware datetime as fixed-width UTC text; naive ones are
    refused.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store keeps UTC times")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"
    )


def text_to_time(text: str) -> datetime:
    """
    The inverse of L{time_to_text}.
    """
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def serial_to_text(serial: int) -> str:
    """
    A serial number as canonical lowercase hex (a leading '-' for the
    negative serials some old CAs wrote).
    """
    return format(serial, "x")


def encode(name: str, value: Any) -> Any:
    """
    The column value for the record field C{name}.
    """
    if value is None:
        return None
    if name in _TIMES:
        return time_to_text(value)
    if name == "serial":
        return serial_to_text(value)
    if isinstance(value, bool):
        return int(value)
    return value


def decode(name: str, value: Any) -> Any:
    """
    The record field C{name} for a column value.
    """
    if value is None:
        return None
    if name in _TIMES:
        return text_to_time(value)
    if name == "serial":
        return int(value, 16)
    if name == "is_ca":
        return bool(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def field_names(record_type: type[Any]) -> tuple[str, ...]:
    """
    The field names of a record class, in order: the column order of its
    table (the alias C{group} is the column C{alias_group}).
    """
    return tuple(f.name for f in fields(record_type))


def to_row(record: Any, names: Sequence[str]) -> tuple[Any, ...]:
    """
    The column values of C{record} for the fields C{names}.
    """
    return tuple(encode(name, getattr(record, name)) for name in names)


def from_row(record_type: type[R], row: Sequence[Any]) -> R:
    """
    A record from a row holding all its fields in order.
    """
    names = field_names(record_type)
    return record_type(**{n: decode(n, v) for n, v in zip(names, row, strict=True)})
