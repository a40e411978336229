"""
The SQLite store: one database file under the state directory.

The queries of the L{scep.store.Store} interface; how the file is opened and
how write transactions are taken is in L{scep.store.sqlite_connection}.
Every method is one short transaction, and every lookup of the request path
is an indexed query (see the indexes in L{scep.store.schema}).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from scep.store import (
    UNCHANGED,
    AliasRecord,
    AuditRecord,
    CertificateRecord,
    Conflict,
    CRLRecord,
    NotFound,
    TransactionRecord,
    Unchanged,
)
from scep.store.schema import (
    encode,
    field_names,
    from_row,
    time_to_text,
    to_row,
)
from scep.store.sqlite_connection import open_database, read, write_transaction

R = TypeVar("R")

_CERT = field_names(CertificateRecord)
_TX = field_names(TransactionRecord)
_CRL = field_names(CRLRecord)
_AUDIT = field_names(AuditRecord)
_SELECT_CERT = f"SELECT {', '.join(_CERT)} FROM certificates "
_SELECT_TX = f"SELECT {', '.join(_TX)} FROM transactions "
_TX_KEY = "WHERE realm = ? AND transaction_id = ?"
# What a retried or approved request may change in its transaction row.
_TX_UPSERT = " ON CONFLICT (realm, transaction_id) DO UPDATE SET " + ", ".join(
    f"{n} = excluded.{n}" for n in _TX if n not in ("realm", "transaction_id", "public_key_hash", "created")
)
_TX_IF_NEW = " ON CONFLICT (realm, transaction_id) DO NOTHING"
# A new request under the transactionID of an issued one: all but the key of the row.
_TX_NEW_REQUEST = [n for n in _TX if n not in ("realm", "transaction_id", "public_key_hash")]
_SUPERSEDE_TX = (
    f"UPDATE transactions SET {', '.join(f'{n} = ?' for n in _TX_NEW_REQUEST)} " + _TX_KEY
    + " AND public_key_hash = ? AND status = 'issued' AND certificate_identifier = ?"
)
_ALIAS_SELECT = (
    "SELECT a.realm, a.alias_group, a.alias, a.identifier, a.notbefore, "
    "a.notafter, c.not_before, c.not_after "
    "FROM aliases a JOIN certificates c ON c.identifier = a.identifier "
)


def _insert(table: str, names: Sequence[str]) -> str:
    """
    An INSERT of these columns into C{table}.
    """
    marks = ", ".join("?" for _ in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"


_INSERT_CERT = _insert("certificates", _CERT)
_INSERT_TX = _insert("transactions", _TX)
_INSERT_AUDIT = _insert("audit", _AUDIT[1:])


class SQLiteStore:
    """
    The L{scep.store.Store} on one SQLite file.

    One connection per instance, used from the thread that opened it.
    """

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._db = open_database(path, busy_timeout)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._db)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return read(self._db, sql, args)

    def _all(self, record_type: type[R], sql: str, args: Sequence[Any]) -> list[R]:
        return [from_row(record_type, row) for row in self._read(sql, args)]

    def _one(self, record_type: type[R], sql: str, args: Sequence[Any]) -> R | None:
        rows = self._read(sql, args)
        return from_row(record_type, rows[0]) if rows else None

    def _bump(self, db: sqlite3.Connection, realms: set[str | None]) -> None:
        """
        Move the alias generation of these realms on.
        """
        for realm in sorted(r for r in realms if r is not None):
            db.execute(
                "INSERT INTO alias_generations (realm, generation) VALUES (?, 1) "
                "ON CONFLICT (realm) DO UPDATE "
                "SET generation = alias_generations.generation + 1",
                (realm,),
            )

    def _append(self, db: sqlite3.Connection, audit: AuditRecord | None) -> int | None:
        if audit is None:
            return None
        cursor = db.execute(_INSERT_AUDIT, to_row(audit, _AUDIT[1:]))
        return cursor.lastrowid

    # certificates

    def _insert_certificate(self, db: sqlite3.Connection, record: CertificateRecord) -> None:
        db.execute(_INSERT_CERT, to_row(record, _CERT))
        if record.is_ca:
            self._bump(db, {record.realm})

    def add_certificate(self, record: CertificateRecord, audit: AuditRecord | None = None) -> None:
        with self._write() as db:
            self._insert_certificate(db, record)
            self._append(db, audit)

    def get_certificate(self, identifier: str) -> CertificateRecord | None:
        sql = _SELECT_CERT + "WHERE identifier = ?"
        return self._one(CertificateRecord, sql, (identifier,))

    def find_certificate(self, issuer_identifier: str, serial: int) -> CertificateRecord | None:
        sql = _SELECT_CERT + "WHERE issuer_identifier = ? AND serial = ?"
        args = (issuer_identifier, encode("serial", serial))
        return self._one(CertificateRecord, sql, args)

    def find_certificate_by_issuer_name(self, issuer: str, serial: int) -> CertificateRecord | None:
        sql = _SELECT_CERT + "WHERE issuer = ? AND serial = ? ORDER BY not_before DESC LIMIT 1"
        return self._one(CertificateRecord, sql, (issuer, encode("serial", serial)))

    def find_ca_certificates(self, subject: str) -> list[CertificateRecord]:
        sql = _SELECT_CERT + "WHERE is_ca = 1 AND subject = ? ORDER BY not_before DESC"
        return self._all(CertificateRecord, sql, (subject,))

    def list_certificates(
        self,
        realm: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CertificateRecord]:
        where, args = _filters(realm=realm, status=status)
        sql = _SELECT_CERT + where + " ORDER BY not_before DESC, identifier LIMIT ? OFFSET ?"
        return self._all(CertificateRecord, sql, (*args, limit, offset))

    def revoke_certificate(
        self, identifier: str, reason: str, when: datetime, actor: str
    ) -> CertificateRecord:
        with self._write() as db:
            row = db.execute(_SELECT_CERT + "WHERE identifier = ?", (identifier,)).fetchone()
            if row is None:
                raise NotFound(f"no certificate {identifier}")
            record = from_row(CertificateRecord, row)
            if record.status == "revoked":
                raise Conflict(f"certificate {identifier} is revoked already")
            record = replace(record, status="revoked", revoked_at=when, revocation_reason=reason)
            db.execute(
                "UPDATE certificates SET status = 'revoked', revoked_at = ?, "
                "revocation_reason = ? WHERE identifier = ?",
                (time_to_text(when), reason, identifier),
            )
            aliased = db.execute("SELECT realm FROM aliases WHERE identifier = ?", (identifier,)).fetchall()
            realms = {r[0] for r in aliased}
            self._bump(db, realms | {record.realm} if record.is_ca else realms)
            self._append(
                db,
                AuditRecord(
                    time=when,
                    realm=record.realm,
                    actor=actor,
                    action="certificate.revoke",
                    transaction_id=record.transaction_id,
                    identifier=identifier,
                    detail=reason,
                ),
            )
        return record

    def active_certificates(self, realm: str, subject: str, now: datetime) -> list[CertificateRecord]:
        sql = _SELECT_CERT + (
            "WHERE realm = ? AND subject = ? AND status = 'issued' AND not_after > ? ORDER BY not_after"
        )
        return self._all(CertificateRecord, sql, (realm, subject, time_to_text(now)))

    def revoked_certificates(self, realm: str, issuer_identifier: str) -> list[CertificateRecord]:
        sql = _SELECT_CERT + (
            "WHERE issuer_identifier = ? AND status = 'revoked' "
            "AND (realm = ? OR realm IS NULL) ORDER BY serial"
        )
        return self._all(CertificateRecord, sql, (issuer_identifier, realm))

    def issue(
        self,
        certificate: CertificateRecord,
        transaction: TransactionRecord,
        audit: AuditRecord,
        expected_status: str | None = None,
    ) -> TransactionRecord:
        issued = replace(transaction, status="issued", certificate_identifier=certificate.identifier)
        key = (transaction.realm, transaction.transaction_id)
        with self._write() as db:
            self._insert_certificate(db, certificate)
            # A new transaction, the usual case, is one INSERT; one that
            # exists is checked first (a Conflict rolls the certificate back).
            inserted = (
                expected_status is None
                and db.execute(_INSERT_TX + _TX_IF_NEW, to_row(issued, _TX)).rowcount == 1
            )
            if not inserted:
                row = db.execute(_SELECT_TX + _TX_KEY, key).fetchone()
                if row is not None:
                    current = from_row(TransactionRecord, row)
                    _check_issuable(current, issued, expected_status)
                    issued = replace(issued, created=current.created)
                elif expected_status is not None:
                    raise NotFound(f"no transaction {transaction.transaction_id}")
                db.execute(_INSERT_TX + _TX_UPSERT, to_row(issued, _TX))
            self._append(db, audit)
        return issued

    # transactions

    def get_transaction(self, realm: str, transaction_id: str) -> TransactionRecord | None:
        return self._one(TransactionRecord, _SELECT_TX + _TX_KEY, (realm, transaction_id))

    def create_transaction(self, record: TransactionRecord, audit: AuditRecord | None = None) -> None:
        with self._write() as db:
            db.execute(_INSERT_TX, to_row(record, _TX))
            self._append(db, audit)

    def supersede_transaction(self, record: TransactionRecord, certificate_identifier: str,
                              audit: AuditRecord | None = None) -> None:
        values = (*to_row(record, _TX_NEW_REQUEST), record.realm, record.transaction_id,
                  record.public_key_hash, certificate_identifier)
        with self._write() as db:
            if db.execute(_SUPERSEDE_TX, values).rowcount != 1:
                raise Conflict(f"transaction {record.transaction_id} did not issue {certificate_identifier} "
                               "for this public key, or was superseded already")
            self._append(db, audit)

    def update_transaction(
        self,
        realm: str,
        transaction_id: str,
        *,
        status: str,
        reason: str | None = None,
        certificate_identifier: str | None = None,
        audit: AuditRecord | None = None,
        expected_status: str | None = None,
        when: datetime | None = None,
    ) -> TransactionRecord:
        if when is None:
            when = audit.time if audit is not None else datetime.now(UTC)
        key = (realm, transaction_id)
        with self._write() as db:
            row = db.execute(_SELECT_TX + _TX_KEY, key).fetchone()
            if row is None:
                raise NotFound(f"no transaction {transaction_id} in realm {realm}")
            current = from_row(TransactionRecord, row)
            if expected_status is not None and current.status != expected_status:
                raise Conflict(f"transaction {transaction_id} is {current.status}, not {expected_status}")
            updated = replace(
                current,
                status=status,
                reason=reason,
                certificate_identifier=certificate_identifier or current.certificate_identifier,
                updated=when,
            )
            names = ("status", "reason", "certificate_identifier", "updated")
            db.execute(
                "UPDATE transactions SET " + ", ".join(f"{n} = ?" for n in names) + " " + _TX_KEY,
                (*to_row(updated, names), *key),
            )
            self._append(db, audit)
        return updated

    def list_transactions(
        self, realm: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[TransactionRecord]:
        where, args = _filters(realm=realm, status=status)
        sql = _SELECT_TX + where + " ORDER BY created, realm, transaction_id LIMIT ?"
        return self._all(TransactionRecord, sql, (*args, limit))

    # aliases

    def add_alias(self, record: AliasRecord, audit: AuditRecord | None = None) -> None:
        names = ("realm", "group", "alias", "identifier", "notbefore", "notafter")
        columns = ["alias_group" if n == "group" else n for n in names]
        with self._write() as db:
            db.execute(_insert("aliases", columns), to_row(record, names))
            self._bump(db, {record.realm})
            self._append(db, audit)

    def get_alias(self, realm: str, alias: str) -> AliasRecord | None:
        sql = _ALIAS_SELECT + "WHERE a.realm = ? AND a.alias = ?"
        return self._one(AliasRecord, sql, (realm, alias))

    def update_alias(
        self,
        realm: str,
        alias: str,
        notbefore: datetime | None | Unchanged = UNCHANGED,
        notafter: datetime | None | Unchanged = UNCHANGED,
        audit: AuditRecord | None = None,
    ) -> AliasRecord:
        with self._write() as db:
            row = db.execute(_ALIAS_SELECT + "WHERE a.realm = ? AND a.alias = ?", (realm, alias)).fetchone()
            if row is None:
                raise NotFound(f"no alias {alias} in realm {realm}")
            record = from_row(AliasRecord, row)
            if not isinstance(notbefore, Unchanged):
                record = replace(record, notbefore=notbefore)
            if not isinstance(notafter, Unchanged):
                record = replace(record, notafter=notafter)
            db.execute(
                "UPDATE aliases SET notbefore = ?, notafter = ? WHERE realm = ? AND alias = ?",
                (*to_row(record, ("notbefore", "notafter")), realm, alias),
            )
            self._bump(db, {realm})
            self._append(db, audit)
        return record

    def remove_alias(self, realm: str, alias: str, audit: AuditRecord | None = None) -> None:
        with self._write() as db:
            cursor = db.execute("DELETE FROM aliases WHERE realm = ? AND alias = ?", (realm, alias))
            if cursor.rowcount == 0:
                raise NotFound(f"no alias {alias} in realm {realm}")
            self._bump(db, {realm})
            self._append(db, audit)

    def list_aliases(self, realm: str, group: str | None = None) -> list[AliasRecord]:
        sql, args = _ALIAS_SELECT + "WHERE a.realm = ?", [realm]
        if group is not None:
            sql += " AND a.alias_group = ?"
            args.append(group)
        sql += " ORDER BY a.alias_group, COALESCE(a.notbefore, c.not_before), a.alias"
        return self._all(AliasRecord, sql, args)

    def next_alias_name(self, realm: str, group: str) -> str:
        prefix = f"{group}-"
        rows = self._read("SELECT alias FROM aliases WHERE realm = ?", (realm,))
        numbers = [
            int(name[len(prefix) :])
            for (name,) in rows
            if name.startswith(prefix) and name[len(prefix) :].isdecimal()
        ]
        return f"{prefix}{max(numbers, default=0) + 1}"

    def aliases_changed_token(self, realm: str) -> int:
        rows = self._read("SELECT generation FROM alias_generations WHERE realm = ?", (realm,))
        return int(rows[0][0]) if rows else 0

    # CRLs

    def add_crl(self, record: CRLRecord, audit: AuditRecord | None = None) -> None:
        with self._write() as db:
            db.execute(_insert("crls", _CRL), to_row(record, _CRL))
            self._append(db, audit)

    def latest_crl(self, realm: str, issuer_identifier: str) -> CRLRecord | None:
        sql = f"SELECT {', '.join(_CRL)} FROM crls " + (
            "WHERE realm = ? AND issuer_identifier = ? ORDER BY number DESC LIMIT 1"
        )
        return self._one(CRLRecord, sql, (realm, issuer_identifier))

    def next_crl_number(self, realm: str, issuer_identifier: str) -> int:
        rows = self._read(
            "SELECT MAX(number) FROM crls WHERE realm = ? AND issuer_identifier = ?",
            (realm, issuer_identifier),
        )
        return 1 if rows[0][0] is None else int(rows[0][0]) + 1

    # audit

    def append_audit(self, record: AuditRecord) -> int:
        with self._write() as db:
            row_id = self._append(db, record)
        assert row_id is not None
        return row_id

    def list_audit(
        self,
        realm: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        where, args = _filters(realm=realm)
        if since is not None:
            where += " AND time >= ?" if where else " WHERE time >= ?"
            args.append(time_to_text(since))
        sql = f"SELECT {', '.join(_AUDIT)} FROM audit{where} ORDER BY id LIMIT ?"
        return self._all(AuditRecord, sql, (*args, limit))

    def close(self) -> None:
        self._db.close()


def _filters(**equal: str | None) -> tuple[str, list[Any]]:
    """
    A WHERE clause matching the given columns that are not None.
    """
    names = [name for name, value in equal.items() if value is not None]
    if not names:
        return "", []
    clause = " WHERE " + " AND ".join(f"{name} = ?" for name in names)
    return clause, [equal[name] for name in names]


def _check_issuable(current: TransactionRecord, issued: TransactionRecord, expected: str | None) -> None:
    """
    Refuse to issue for a transaction that is finished or not ours.
    """
    name = current.transaction_id
    if current.public_key_hash != issued.public_key_hash:
        raise Conflict(f"transaction {name} belongs to another public key")
    if current.status in ("issued", "rejected"):
        raise Conflict(f"transaction {name} is {current.status} already")
    if expected is not None and current.status != expected:
        raise Conflict(f"transaction {name} is {current.status}, not {expected}")
