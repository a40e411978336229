"""
Tests for L{scep.store}: the records, L{open_store} and the SQLite backend,
on real database files.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from twisted.trial.unittest import TestCase

from scep.store import (
    UNCHANGED,
    AliasRecord,
    AuditRecord,
    Busy,
    CertificateRecord,
    Conflict,
    CRLRecord,
    NotFound,
    Store,
    StoreError,
    TransactionRecord,
    certificate_identifier,
    certificate_record_from_der,
    open_store,
)
from scep.store.sqlite import SQLiteStore

NOW = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
DAY = timedelta(days=1)


def make_certificate(
    name: str,
    *,
    realm: str | None = "democa",
    subject: str = "CN=device",
    issuer_identifier: str | None = "issuer-1",
    serial: int = 1,
    not_before: datetime = NOW - DAY,
    not_after: datetime = NOW + 365 * DAY,
    is_ca: bool = False,
    status: str = "issued",
) -> CertificateRecord:
    """
    A certificate record whose DER is a stand-in made from C{name}.
    """
    der = b"0\x82 fake certificate " + name.encode()
    return CertificateRecord(
        identifier=certificate_identifier(der),
        realm=realm,
        der=der,
        subject=subject,
        issuer="CN=Demo CA,O=Example",
        issuer_identifier=issuer_identifier,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
        public_key_hash="ab" * 32,
        profile="tls_client",
        status=status,
        transaction_id=None,
        is_ca=is_ca,
    )


def make_transaction(
    transaction_id: str = "tx-1",
    *,
    realm: str = "democa",
    status: str = "pending",
    public_key_hash: str = "cd" * 32,
) -> TransactionRecord:
    """
    A pending PKCSReq transaction.
    """
    return TransactionRecord(
        realm=realm,
        transaction_id=transaction_id,
        public_key_hash=public_key_hash,
        status=status,
        message_type=19,
        servername="generic",
        csr=b"0\x82 fake csr",
        subject="CN=device",
        mode="initial",
        created=NOW,
        updated=NOW,
        client_address="192.0.2.7",
    )


def make_audit(action: str = "test", **kwargs: object) -> AuditRecord:
    """
    An audit record at L{NOW}.
    """
    fields: dict[str, object] = {
        "time": NOW,
        "realm": "democa",
        "actor": "tester",
        "action": action,
        "detail": "details",
    }
    fields.update(kwargs)
    return AuditRecord(**fields)  # type: ignore[arg-type]


class StoreTestCase(TestCase):
    """
    Gives each test a fresh SQLite store in its own directory.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.path = os.path.join(self.directory, "state", "scep.db")
        self.store = SQLiteStore(self.path)
        self.addCleanup(self.store.close)

    def second_store(self) -> SQLiteStore:
        """
        Another store on the same file, as another worker would open it.
        """
        other = SQLiteStore(self.path)
        self.addCleanup(other.close)
        return other

    def raw(self) -> sqlite3.Connection:
        """
        A plain SQLite connection on the store's file.
        """
        db = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(db.close)
        return db


class OpenTests(StoreTestCase):
    """
    Tests for L{open_store} and how the database file is set up.
    """

    def test_plain_path(self) -> None:
        """
        A plain path opens an SQLite store on that file.
        """
        store = open_store(os.path.join(self.directory, "other.db"))
        self.addCleanup(store.close)
        self.assertIsInstance(store, SQLiteStore)

    def test_sqlite_url(self) -> None:
        """
        C{sqlite:///abs/path.db} opens the absolute path.
        """
        path = os.path.abspath(os.path.join(self.directory, "url.db"))
        store = open_store("sqlite://" + path)
        self.addCleanup(store.close)
        self.assertIsInstance(store, SQLiteStore)
        self.assertTrue(os.path.exists(path))

    def test_postgresql_not_yet(self) -> None:
        """
        A PostgreSQL URL is refused with a clear StoreError.
        """
        error = self.assertRaises(StoreError, open_store, "postgresql://scep@db.example/scep")
        self.assertIn("not implemented", str(error))

    def test_unknown_scheme(self) -> None:
        """
        An unknown URL scheme is a StoreError.
        """
        self.assertRaises(StoreError, open_store, "mysql://db/scep")

    def test_file_mode(self) -> None:
        """
        The missing parent directory is created, and the file and its WAL
        files are mode 0600.
        """
        self.store.append_audit(make_audit())
        for suffix in ("", "-wal", "-shm"):
            mode = stat.S_IMODE(os.stat(self.path + suffix).st_mode)
            self.assertEqual(mode, 0o600, suffix)

    def test_implements_store(self) -> None:
        """
        SQLiteStore provides the Store interface (checked by mypy too).
        """
        store: Store = self.store
        for name in dir(Store):
            if not name.startswith("_"):
                self.assertTrue(callable(getattr(store, name)), name)

    def test_pragmas(self) -> None:
        """
        The database runs in WAL mode with foreign keys and synchronous=NORMAL.
        """
        db = self.store._db
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA foreign_keys").fetchone()[0], 1)
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 1)
        self.assertGreaterEqual(db.execute("PRAGMA busy_timeout").fetchone()[0], 1000)
        self.assertEqual(self.raw().execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_two_stores_share_a_file(self) -> None:
        """
        Two stores on one file see each other's writes.
        """
        other = self.second_store()
        record = make_certificate("shared")
        self.store.add_certificate(record)
        self.assertEqual(other.get_certificate(record.identifier), record)
        other.create_transaction(make_transaction("from-other"))
        self.assertIsNotNone(self.store.get_transaction("democa", "from-other"))

    def test_busy(self) -> None:
        """
        A writer that cannot get the lock within the busy timeout gets Busy,
        a StoreError; readers are not blocked (WAL).
        """
        impatient = SQLiteStore(self.path, busy_timeout=0)
        self.addCleanup(impatient.close)
        holder = self.raw()
        holder.execute("BEGIN IMMEDIATE")
        self.addCleanup(holder.execute, "ROLLBACK")
        self.assertRaises(Busy, impatient.append_audit, make_audit())
        self.assertEqual(impatient.list_audit(), [])

    def test_reopen(self) -> None:
        """
        Reopening the file keeps the data and the schema version.
        """
        record = make_certificate("kept")
        self.store.add_certificate(record)
        self.store.close()
        self.store = SQLiteStore(self.path)
        self.assertEqual(self.store.get_certificate(record.identifier), record)
        versions = self.raw().execute("SELECT version FROM schema_version").fetchall()
        self.assertEqual(versions, [(1,)])

    def test_newer_schema_refused(self) -> None:
        """
        A database written by a newer schema version is refused.
        """
        self.raw().execute("UPDATE schema_version SET version = 99")
        error = self.assertRaises(StoreError, SQLiteStore, self.path)
        self.assertIn("newer", str(error))


class CertificateTests(StoreTestCase):
    """
    Tests for the certificate methods.
    """

    def test_identifier(self) -> None:
        """
        The identifier is the unpadded base64url SHA-1 of the DER.
        """
        self.assertEqual(certificate_identifier(b""), "2jmj7l5rSw0yVb_vlWAYkK_YBwk")

    def test_round_trip(self) -> None:
        """
        A certificate reads back equal to what was written.
        """
        record = replace(
            make_certificate("round", realm=None, is_ca=True),
            revoked_at=None,
            transaction_id="tx-9",
        )
        self.store.add_certificate(record)
        self.assertEqual(self.store.get_certificate(record.identifier), record)
        self.assertIsNone(self.store.get_certificate("nope"))

    def test_large_serial(self) -> None:
        """
        Serials above 2**64 (up to 160 bits) round-trip and can be found.
        """
        serial = 2**159 + 12345
        record = make_certificate("big", serial=serial)
        self.store.add_certificate(record)
        found = self.store.find_certificate("issuer-1", serial)
        self.assertEqual(found, record)
        assert found is not None
        self.assertEqual(found.serial, serial)
        self.assertIsNone(self.store.find_certificate("issuer-1", 2**64 + 12345))

    def test_find_by_issuer_name(self) -> None:
        """
        A certificate can be found by issuer name and serial.
        """
        record = make_certificate("named", serial=77)
        self.store.add_certificate(record)
        found = self.store.find_certificate_by_issuer_name("CN=Demo CA,O=Example", 77)
        self.assertEqual(found, record)
        self.assertIsNone(self.store.find_certificate_by_issuer_name("CN=Other", 77))

    def test_find_ca_certificates(self) -> None:
        """
        The CA certificates of a subject, newest first; end-entity ones are not CAs.
        """
        old = make_certificate("ca-1", subject="CN=Demo CA,O=Example", is_ca=True, serial=1, not_before=NOW - 9 * DAY)
        new = make_certificate("ca-2", subject="CN=Demo CA,O=Example", is_ca=True, serial=2)
        leaf = make_certificate("leaf", subject="CN=Demo CA,O=Example", serial=3)
        for record in (old, new, leaf):
            self.store.add_certificate(record)
        self.assertEqual(self.store.find_ca_certificates("CN=Demo CA,O=Example"), [new, old])
        self.assertEqual(self.store.find_ca_certificates("CN=Other"), [])

    def test_duplicates(self) -> None:
        """
        A duplicate identifier, or a serial taken for the issuer, conflicts.
        """
        self.store.add_certificate(make_certificate("one", serial=5))
        self.assertRaises(Conflict, self.store.add_certificate, make_certificate("one", serial=6))
        self.assertRaises(Conflict, self.store.add_certificate, make_certificate("two", serial=5))
        self.store.add_certificate(make_certificate("three", serial=5, issuer_identifier="issuer-2"))

    def test_naive_datetime_refused(self) -> None:
        """
        A naive datetime is refused, and nothing is written.
        """
        record = make_certificate("naive", not_before=datetime(2025, 1, 1))
        self.assertRaises(ValueError, self.store.add_certificate, record)
        self.assertEqual(self.store.list_certificates(), [])

    def test_list(self) -> None:
        """
        Listing filters by realm and status and pages newest first.
        """
        records = [make_certificate(f"c{i}", serial=i, not_before=NOW - i * DAY) for i in range(5)]
        for record in records:
            self.store.add_certificate(record)
        self.store.add_certificate(make_certificate("x", realm="other", serial=99))
        self.assertEqual(self.store.list_certificates("democa"), records)
        self.assertEqual(self.store.list_certificates("democa", limit=2, offset=1), records[1:3])
        self.assertEqual(len(self.store.list_certificates()), 6)
        self.store.revoke_certificate(records[2].identifier, "keyCompromise", NOW, "op")
        revoked = self.store.list_certificates(status="revoked")
        self.assertEqual([r.identifier for r in revoked], [records[2].identifier])

    def test_revoke(self) -> None:
        """
        Revoking marks the certificate and writes an audit row; revoking
        again conflicts; an unknown certificate is not found.
        """
        record = make_certificate("rev")
        self.store.add_certificate(record)
        revoked = self.store.revoke_certificate(record.identifier, "superseded", NOW, "alice")
        expected = replace(record, status="revoked", revoked_at=NOW, revocation_reason="superseded")
        self.assertEqual(revoked, expected)
        self.assertEqual(self.store.get_certificate(record.identifier), expected)
        [audit] = self.store.list_audit()
        self.assertEqual(
            (audit.actor, audit.action, audit.identifier, audit.detail),
            ("alice", "certificate.revoke", record.identifier, "superseded"),
        )
        self.assertRaises(
            Conflict,
            self.store.revoke_certificate,
            record.identifier,
            "superseded",
            NOW,
            "alice",
        )
        self.assertRaises(NotFound, self.store.revoke_certificate, "nope", "x", NOW, "alice")

    def test_active_certificates(self) -> None:
        """
        Active certificates are the realm's issued, unexpired ones of the
        subject.
        """
        active = make_certificate("active", serial=1)
        self.store.add_certificate(active)
        self.store.add_certificate(
            make_certificate("expired", serial=2, not_after=NOW - timedelta(seconds=1))
        )
        revoked = make_certificate("revoked", serial=3)
        self.store.add_certificate(revoked)
        self.store.revoke_certificate(revoked.identifier, "x", NOW, "op")
        self.store.add_certificate(make_certificate("other", serial=4, subject="CN=x"))
        self.store.add_certificate(make_certificate("realm", realm="r2", serial=5))
        self.assertEqual(self.store.active_certificates("democa", "CN=device", NOW), [active])

    def test_revoked_certificates(self) -> None:
        """
        The revoked certificates of an issuer include imported ones without a
        realm, and no other issuer's.
        """
        records = [
            make_certificate("a", serial=1),
            make_certificate("b", serial=2, realm=None),
            make_certificate("c", serial=3),
            make_certificate("d", serial=4, issuer_identifier="issuer-2"),
        ]
        for record in records:
            self.store.add_certificate(record)
        for record in records[:2] + records[3:]:
            self.store.revoke_certificate(record.identifier, "x", NOW, "op")
        revoked = self.store.revoked_certificates("democa", "issuer-1")
        self.assertEqual([r.serial for r in revoked], [1, 2])

    def test_record_from_der(self) -> None:
        """
        A real certificate is parsed into a record.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name.from_rfc4514_string("CN=Root,O=Example")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(2**100)
            .not_valid_before(NOW.replace(microsecond=0))
            .not_valid_after(NOW.replace(microsecond=0) + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(Encoding.DER)
        record = certificate_record_from_der(der, realm="democa")
        self.assertEqual(record.identifier, certificate_identifier(der))
        self.assertEqual(record.subject, "CN=Root,O=Example")
        self.assertEqual(record.serial, 2**100)
        self.assertTrue(record.is_ca)
        self.assertEqual(len(record.public_key_hash), 64)
        self.store.add_certificate(record)
        self.assertEqual(self.store.get_certificate(record.identifier), record)


class TransactionTests(StoreTestCase):
    """
    Tests for the transaction methods.
    """

    def test_round_trip(self) -> None:
        """
        A transaction reads back equal to what was written, with its audit row.
        """
        record = make_transaction()
        self.store.create_transaction(record, make_audit("request.create"))
        self.assertEqual(self.store.get_transaction("democa", "tx-1"), record)
        self.assertIsNone(self.store.get_transaction("other", "tx-1"))
        self.assertEqual([a.action for a in self.store.list_audit()], ["request.create"])

    def test_duplicate(self) -> None:
        """
        Creating an existing transaction conflicts, and its audit row is not
        written.
        """
        self.store.create_transaction(make_transaction())
        self.assertRaises(
            Conflict,
            self.store.create_transaction,
            make_transaction(),
            make_audit(),
        )
        self.assertEqual(self.store.list_audit(), [])

    def test_update(self) -> None:
        """
        Updating sets the status, reason and time.
        """
        self.store.create_transaction(make_transaction())
        later = NOW + DAY
        updated = self.store.update_transaction("democa", "tx-1", status="rejected", reason="no", when=later)
        self.assertEqual(
            updated,
            replace(make_transaction(), status="rejected", reason="no", updated=later),
        )
        self.assertEqual(self.store.get_transaction("democa", "tx-1"), updated)

    def test_update_missing(self) -> None:
        """
        Updating an unknown transaction raises NotFound.
        """
        self.assertRaises(NotFound, self.store.update_transaction, "democa", "nope", status="failed")

    def test_supersede(self) -> None:
        """
        A new request replaces an issued transaction's row only while it
        still names the certificate it issued, for the same public key.
        """
        issued, other = make_certificate("issued", serial=1), make_certificate("other", serial=2)
        self.store.add_certificate(issued)
        self.store.add_certificate(other)
        self.store.create_transaction(replace(make_transaction(), status="issued",
                                              certificate_identifier=issued.identifier))
        renewal = replace(make_transaction(), status="approved", mode="renewal", signer_identifier=issued.identifier,
                          created=NOW + DAY, updated=NOW + DAY)
        for certificate, record in ((other.identifier, renewal),
                                    (issued.identifier, replace(renewal, public_key_hash="ef" * 32)),
                                    (issued.identifier, replace(renewal, transaction_id="tx-2"))):
            self.assertRaises(Conflict, self.store.supersede_transaction, record, certificate, make_audit())
        self.assertEqual(self.store.list_audit(), [])
        self.store.supersede_transaction(renewal, issued.identifier, make_audit("renew"))
        self.assertEqual(self.store.get_transaction("democa", "tx-1"), renewal)
        self.assertEqual([a.action for a in self.store.list_audit()], ["renew"])
        self.assertRaises(Conflict, self.store.supersede_transaction, renewal, issued.identifier, make_audit())

    def test_expected_status_race(self) -> None:
        """
        Of two operators racing to approve and reject, the second conflicts
        and leaves the first one's decision.
        """
        self.store.create_transaction(make_transaction())
        other = self.second_store()
        other.update_transaction(
            "democa",
            "tx-1",
            status="rejected",
            expected_status="pending",
            audit=make_audit("request.reject"),
        )
        self.assertRaises(
            Conflict,
            self.store.update_transaction,
            "democa",
            "tx-1",
            status="failed",
            expected_status="pending",
            audit=make_audit("request.fail"),
        )
        current = self.store.get_transaction("democa", "tx-1")
        assert current is not None
        self.assertEqual(current.status, "rejected")
        self.assertEqual([a.action for a in self.store.list_audit()], ["request.reject"])

    def test_list(self) -> None:
        """
        Listing filters by realm and status, oldest first.
        """
        for i in range(3):
            record = replace(make_transaction(f"tx-{i}"), created=NOW + i * DAY)
            self.store.create_transaction(record)
        self.store.create_transaction(make_transaction("r2", realm="r2"))
        self.store.update_transaction("democa", "tx-1", status="failed")
        pending = self.store.list_transactions("democa", "pending")
        self.assertEqual([t.transaction_id for t in pending], ["tx-0", "tx-2"])
        self.assertEqual(len(self.store.list_transactions()), 4)
        self.assertEqual(len(self.store.list_transactions(limit=1)), 1)


class IssueTests(StoreTestCase):
    """
    Tests for L{SQLiteStore.issue}.
    """

    def test_issue_new(self) -> None:
        """
        Issuing stores the certificate, the issued transaction and the audit
        row.
        """
        cert = make_certificate("issued")
        result = self.store.issue(cert, make_transaction(), make_audit("issue"))
        self.assertEqual(self.store.get_certificate(cert.identifier), cert)
        stored = self.store.get_transaction("democa", "tx-1")
        self.assertEqual(stored, result)
        assert stored is not None
        self.assertEqual((stored.status, stored.certificate_identifier), ("issued", cert.identifier))
        self.assertEqual([a.action for a in self.store.list_audit()], ["issue"])

    def test_issue_pending(self) -> None:
        """
        Issuing for a pending transaction updates it and keeps its creation
        time.
        """
        self.store.create_transaction(make_transaction())
        cert = make_certificate("approved")
        later = replace(make_transaction(), created=NOW + DAY, updated=NOW + DAY)
        self.store.issue(cert, later, make_audit(), expected_status="pending")
        stored = self.store.get_transaction("democa", "tx-1")
        assert stored is not None
        self.assertEqual(
            (stored.status, stored.created, stored.updated),
            ("issued", NOW, NOW + DAY),
        )

    def test_atomic(self) -> None:
        """
        If the certificate cannot be inserted, neither the transaction nor the
        audit row is written.
        """
        cert = make_certificate("dup")
        self.store.add_certificate(cert)
        self.assertRaises(Conflict, self.store.issue, cert, make_transaction(), make_audit())
        self.assertIsNone(self.store.get_transaction("democa", "tx-1"))
        self.assertEqual(self.store.list_audit(), [])

    def test_atomic_pending(self) -> None:
        """
        A failed issue leaves an existing pending transaction pending.
        """
        cert = make_certificate("dup")
        self.store.add_certificate(cert)
        self.store.create_transaction(make_transaction())
        self.assertRaises(Conflict, self.store.issue, cert, make_transaction(), make_audit())
        self.assertEqual(self.store.get_transaction("democa", "tx-1"), make_transaction())
        self.assertEqual(self.store.list_audit(), [])

    def test_never_twice(self) -> None:
        """
        A transaction issued already, rejected, or bound to another key gets
        no second certificate.
        """
        self.store.issue(make_certificate("first"), make_transaction(), make_audit())
        second = make_certificate("second", serial=2)
        for transaction in [
            make_transaction(),
            make_transaction(public_key_hash="ef" * 32),
        ]:
            self.assertRaises(Conflict, self.store.issue, second, transaction, make_audit())
        self.store.create_transaction(make_transaction("tx-2", status="rejected"))
        self.assertRaises(Conflict, self.store.issue, second, make_transaction("tx-2"), make_audit())
        self.assertIsNone(self.store.get_certificate(second.identifier))
        self.assertEqual(len(self.store.list_audit()), 1)


class AliasTests(StoreTestCase):
    """
    Tests for the alias methods.
    """

    def add_root(self, name: str, start: datetime, **kwargs: object) -> AliasRecord:
        """
        Store a CA certificate valid from C{start} and alias it as C{name}.
        """
        cert = make_certificate(
            name,
            serial=len(self.store.list_certificates()) + 1,
            not_before=start,
            not_after=start + 10 * DAY,
        )
        self.store.add_certificate(cert)
        alias = AliasRecord(
            realm="democa",
            group=str(kwargs.pop("group", "root")),
            alias=name,
            identifier=cert.identifier,
            **kwargs,  # type: ignore[arg-type]
        )
        self.store.add_alias(alias)
        return alias

    def test_round_trip(self) -> None:
        """
        An alias reads back with its certificate's dates joined in.
        """
        alias = self.add_root("root-1", NOW, notafter=NOW + 5 * DAY)
        stored = self.store.get_alias("democa", "root-1")
        expected = replace(alias, cert_not_before=NOW, cert_not_after=NOW + 10 * DAY)
        self.assertEqual(stored, expected)
        assert stored is not None
        self.assertEqual(stored.effective_not_before, NOW)
        self.assertEqual(stored.effective_not_after, NOW + 5 * DAY)
        self.assertTrue(stored.valid_at(NOW + DAY))
        self.assertFalse(stored.valid_at(NOW + 6 * DAY))
        self.assertIsNone(self.store.get_alias("democa", "root-2"))

    def test_order(self) -> None:
        """
        Aliases list by group, then effective notbefore (the override wins).
        """
        self.add_root("root-1", NOW)
        self.add_root("root-2", NOW - 5 * DAY, notbefore=NOW + DAY)
        self.add_root("root-3", NOW - DAY)
        self.add_root("ca-signer-1", NOW + 3 * DAY, group="ca-signer")
        names = [a.alias for a in self.store.list_aliases("democa")]
        self.assertEqual(names, ["ca-signer-1", "root-3", "root-1", "root-2"])
        roots = self.store.list_aliases("democa", "root")
        self.assertEqual([a.alias for a in roots], ["root-3", "root-1", "root-2"])
        self.assertEqual(roots[2].effective_not_before, NOW + DAY)
        self.assertEqual(self.store.list_aliases("other"), [])

    def test_conflicts(self) -> None:
        """
        An alias name taken in the realm conflicts; an unknown certificate is
        not found.
        """
        alias = self.add_root("root-1", NOW)
        self.assertRaises(Conflict, self.store.add_alias, alias)
        self.assertRaises(NotFound, self.store.add_alias, replace(alias, alias="x", identifier="nope"))

    def test_update(self) -> None:
        """
        Updating changes only the fields given; None clears an override.
        """
        self.add_root("root-1", NOW, notbefore=NOW + DAY, notafter=NOW + 2 * DAY)
        updated = self.store.update_alias("democa", "root-1", notafter=NOW + 3 * DAY)
        self.assertEqual((updated.notbefore, updated.notafter), (NOW + DAY, NOW + 3 * DAY))
        updated = self.store.update_alias("democa", "root-1", notbefore=None, notafter=UNCHANGED)
        self.assertEqual((updated.notbefore, updated.notafter), (None, NOW + 3 * DAY))
        self.assertEqual(self.store.get_alias("democa", "root-1"), updated)
        self.assertRaises(NotFound, self.store.update_alias, "democa", "root-9", notbefore=None)

    def test_remove(self) -> None:
        """
        A removed alias is gone, with its audit row; removing it again is
        NotFound.
        """
        self.add_root("root-1", NOW)
        self.store.remove_alias("democa", "root-1", make_audit("alias.remove"))
        self.assertEqual(self.store.list_aliases("democa"), [])
        self.assertEqual([a.action for a in self.store.list_audit()], ["alias.remove"])
        self.assertRaises(NotFound, self.store.remove_alias, "democa", "root-1")

    def test_next_alias_name(self) -> None:
        """
        The next name follows the highest number of the group in the realm.
        """
        self.assertEqual(self.store.next_alias_name("democa", "root"), "root-1")
        self.add_root("root-1", NOW)
        self.add_root("root-7", NOW + DAY)
        self.add_root("root-extra", NOW + 2 * DAY)
        self.add_root("ca-signer-3", NOW, group="ca-signer")
        self.assertEqual(self.store.next_alias_name("democa", "root"), "root-8")
        self.assertEqual(self.store.next_alias_name("democa", "ca-signer"), "ca-signer-4")
        self.assertEqual(self.store.next_alias_name("democa", "scep"), "scep-1")
        self.assertEqual(self.store.next_alias_name("other", "root"), "root-1")

    def test_changed_token(self) -> None:
        """
        The token moves when an alias or an aliased certificate changes, and
        not when an ordinary certificate is issued.
        """
        tokens = [self.store.aliases_changed_token("democa")]
        self.add_root("root-1", NOW)
        tokens.append(self.store.aliases_changed_token("democa"))
        self.store.update_alias("democa", "root-1", notafter=NOW + DAY)
        tokens.append(self.store.aliases_changed_token("democa"))
        alias = self.store.get_alias("democa", "root-1")
        assert alias is not None
        self.store.revoke_certificate(alias.identifier, "x", NOW, "op")
        tokens.append(self.store.aliases_changed_token("democa"))
        self.store.remove_alias("democa", "root-1")
        tokens.append(self.store.aliases_changed_token("democa"))
        self.assertEqual(len(set(tokens)), len(tokens))
        self.store.issue(make_certificate("leaf", serial=1000), make_transaction(), make_audit())
        self.assertEqual(self.store.aliases_changed_token("democa"), tokens[-1])
        self.assertEqual(self.second_store().aliases_changed_token("democa"), tokens[-1])
        self.assertEqual(self.store.aliases_changed_token("other"), 0)


class CRLTests(StoreTestCase):
    """
    Tests for the CRL methods.
    """

    def make_crl(self, number: int) -> CRLRecord:
        """
        A CRL record with this number.
        """
        return CRLRecord(
            realm="democa",
            issuer_identifier="issuer-1",
            number=number,
            der=b"0\x82 crl %d" % number,
            this_update=NOW,
            next_update=NOW + DAY,
        )

    def test_round_trip(self) -> None:
        """
        The latest CRL is the highest number; numbers go on from there.
        """
        self.assertIsNone(self.store.latest_crl("democa", "issuer-1"))
        self.assertEqual(self.store.next_crl_number("democa", "issuer-1"), 1)
        for number in (1, 3, 2):
            self.store.add_crl(self.make_crl(number))
        self.assertEqual(self.store.latest_crl("democa", "issuer-1"), self.make_crl(3))
        self.assertEqual(self.store.next_crl_number("democa", "issuer-1"), 4)
        self.assertEqual(self.store.next_crl_number("democa", "issuer-2"), 1)

    def test_duplicate(self) -> None:
        """
        A CRL number taken for the issuer conflicts.
        """
        self.store.add_crl(self.make_crl(1))
        self.assertRaises(Conflict, self.store.add_crl, self.make_crl(1))


class AuditTests(StoreTestCase):
    """
    Tests for the audit log.
    """

    def test_round_trip(self) -> None:
        """
        Appended rows read back in order with their ids.
        """
        first = make_audit("a", transaction_id="tx-1", identifier="id-1")
        row_id = self.store.append_audit(first)
        self.store.append_audit(make_audit("b", realm=None, time=NOW + DAY))
        rows = self.store.list_audit()
        self.assertEqual(rows[0], replace(first, id=row_id))
        self.assertEqual([r.action for r in rows], ["a", "b"])
        self.assertEqual([r.action for r in self.store.list_audit("democa")], ["a"])
        self.assertEqual([r.action for r in self.store.list_audit(since=NOW + DAY)], ["b"])
        self.assertEqual(len(self.store.list_audit(limit=1)), 1)

    def test_append_only(self) -> None:
        """
        The database refuses to update or delete audit rows.
        """
        self.store.append_audit(make_audit())
        db = self.raw()
        self.assertRaises(sqlite3.IntegrityError, db.execute, "UPDATE audit SET actor = 'mallory'")
        self.assertRaises(sqlite3.IntegrityError, db.execute, "DELETE FROM audit")
        self.assertEqual(self.store.list_audit()[0].actor, "tester")


class QueryPlanTests(StoreTestCase):
    """
    The request path's queries use indexes, never a table scan.
    """

    def plans(self, call: object, *args: object) -> list[str]:
        """
        The query plans of the SELECTs that C{call(*args)} runs.
        """
        statements: list[str] = []
        db = self.store._db
        db.set_trace_callback(statements.append)
        try:
            call(*args)  # type: ignore[operator]
        finally:
            db.set_trace_callback(None)
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        self.assertTrue(selects)
        return [" | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + s)) for s in selects]

    def assertIndexed(self, call: object, *args: object) -> None:
        """
        Every SELECT of C{call} searches an index and scans no table.
        """
        for plan in self.plans(call, *args):
            self.assertNotRegex(plan, r"(^|\| )SCAN ")
            self.assertRegex(plan, r"USING (INDEX|PRIMARY KEY|COVERING INDEX|INTEGER PRIMARY KEY)")

    def test_request_path(self) -> None:
        """
        The lookups of an enrollment are indexed.
        """
        self.store.add_certificate(make_certificate("c"))
        self.assertIndexed(self.store.get_certificate, "id")
        self.assertIndexed(self.store.find_certificate, "issuer-1", 2**70)
        self.assertIndexed(self.store.find_certificate_by_issuer_name, "CN=Demo CA", 2**70)
        self.assertIndexed(self.store.get_transaction, "democa", "tx-1")
        self.assertIndexed(self.store.active_certificates, "democa", "CN=device", NOW)
        self.assertIndexed(self.store.aliases_changed_token, "democa")

    def test_ca_path(self) -> None:
        """
        The lookups behind GetCACert and CRL issuance are indexed.
        """
        self.assertIndexed(self.store.get_alias, "democa", "root-1")
        self.assertIndexed(self.store.list_aliases, "democa", "root")
        self.assertIndexed(self.store.revoked_certificates, "democa", "issuer-1")
        self.assertIndexed(self.store.find_ca_certificates, "CN=Demo CA")
        [plan] = self.plans(self.store.revoked_certificates, "democa", "issuer-1")
        self.assertIn("certificates_issuer_status", plan)
        self.assertNotIn("TEMP B-TREE", plan)
        self.assertIndexed(self.store.latest_crl, "democa", "issuer-1")
        self.assertIndexed(self.store.next_crl_number, "democa", "issuer-1")
