"""
The store: certificates, aliases, transactions, CRLs and the audit log.

This module is the public face of the storage layer: the record types, the
exceptions, the L{Store} interface every backend implements, and
L{open_store}, which picks a backend from a database URL or a path.

The store is synchronous: the authority's worker processes and the operator
CLI call it directly (no Twisted here).  Every method is one short database
transaction; the methods that take an C{audit} record append it in the same
transaction as the change it describes.

All datetimes are timezone-aware UTC; a naive datetime is refused.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import unquote, urlparse

__all__ = [
    "UNCHANGED",
    "AliasRecord",
    "AuditRecord",
    "Busy",
    "CRLRecord",
    "CertificateRecord",
    "Conflict",
    "NotFound",
    "Store",
    "StoreError",
    "TransactionRecord",
    "Unchanged",
    "certificate_identifier",
    "certificate_record_from_der",
    "open_store",
    "public_key_hash",
]


# Exceptions


class StoreError(Exception):
    """The store could not do what was asked."""


class Conflict(StoreError):
    """
    A uniqueness rule or an expected state was violated: the row exists
    already, a serial number is taken for this issuer, or another process
    changed the row first.
    """


class NotFound(StoreError):
    """The row to change (or a row it refers to) does not exist."""


class Busy(StoreError):
    """
    The database stayed locked by another process for longer than the busy
    timeout.  Retrying later may succeed.
    """


class Unchanged(enum.Enum):
    """The type of L{UNCHANGED}."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED
"""
Passed to an update method: leave this field as it is (as opposed to
C{None}, which clears it).
"""


# Helpers


def certificate_identifier(der: bytes) -> str:
    """
    The identifier of a certificate: base64url of the SHA-1 of its DER,
    without padding (as OpenXPKI names certificates).
    """
    digest = hashlib.sha1(der, usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_key_hash(spki_der: bytes) -> str:
    """
    The hex SHA-256 of a DER SubjectPublicKeyInfo: how the store names a
    public key (transactions are bound to it).
    """
    return hashlib.sha256(spki_der).hexdigest()


# Records


@dataclass(frozen=True, kw_only=True)
class CertificateRecord:
    """A certificate the store knows: issued here or imported."""

    identifier: str
    realm: str | None
    der: bytes
    subject: str
    issuer: str
    issuer_identifier: str | None
    serial: int
    not_before: datetime
    not_after: datetime
    public_key_hash: str
    profile: str | None = None
    status: str = "issued"
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    transaction_id: str | None = None
    is_ca: bool = False


@dataclass(frozen=True, kw_only=True)
class TransactionRecord:
    """
    A SCEP transaction, keyed by (realm, transactionID) and bound to the
    public key of its CSR.  C{signer_identifier} names the certificate of
    ours that signed a renewal or a request on behalf; C{signer_key_hash}
    is the key that signed the request, whoever's certificate it was.
    """

    realm: str
    transaction_id: str
    public_key_hash: str
    status: str
    message_type: int
    servername: str
    csr: bytes
    subject: str
    mode: str
    created: datetime
    updated: datetime
    certificate_identifier: str | None = None
    reason: str | None = None
    client_address: str | None = None
    signer_identifier: str | None = None
    signer_key_hash: str | None = None


@dataclass(frozen=True, kw_only=True)
class AliasRecord:
    """
    An alias binds a certificate to a group of a realm (root-1, ca-signer-2,
    scep-1, ...), with an optional notbefore/notafter override of the
    certificate's own validity.

    C{cert_not_before} and C{cert_not_after} are the certificate's own dates;
    the store fills them in when it reads aliases and ignores them when it
    writes one.
    """

    realm: str
    group: str
    alias: str
    identifier: str
    notbefore: datetime | None = None
    notafter: datetime | None = None
    cert_not_before: datetime | None = None
    cert_not_after: datetime | None = None

    @property
    def effective_not_before(self) -> datetime | None:
        """The override if set, else the certificate's notBefore."""
        return self.notbefore if self.notbefore is not None else self.cert_not_before

    @property
    def effective_not_after(self) -> datetime | None:
        """The override if set, else the certificate's notAfter."""
        return self.notafter if self.notafter is not None else self.cert_not_after

    def valid_at(self, when: datetime) -> bool:
        """Whether C{when} lies inside the effective window."""
        start, end = self.effective_not_before, self.effective_not_after
        return (start is None or start <= when) and (end is None or when < end)


@dataclass(frozen=True, kw_only=True)
class CRLRecord:
    """A CRL issued for one CA certificate of a realm."""

    realm: str
    issuer_identifier: str
    number: int
    der: bytes
    this_update: datetime
    next_update: datetime | None


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """
    One line of the append-only audit log.  C{id} is assigned by the store;
    leave it C{None} when appending.
    """

    id: int | None = None
    time: datetime
    realm: str | None
    actor: str
    action: str
    transaction_id: str | None = None
    identifier: str | None = None
    detail: str = ""


def certificate_record_from_der(
    der: bytes,
    *,
    realm: str | None,
    issuer_identifier: str | None = None,
    profile: str | None = None,
    transaction_id: str | None = None,
) -> CertificateRecord:
    """Parse a DER certificate into an 'issued' L{CertificateRecord}."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
    )

    cert = x509.load_der_x509_certificate(der)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        is_ca = constraints.value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return CertificateRecord(
        identifier=certificate_identifier(der),
        realm=realm,
        der=der,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        issuer_identifier=issuer_identifier,
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        public_key_hash=public_key_hash(spki),
        profile=profile,
        transaction_id=transaction_id,
        is_ca=is_ca,
    )


# The interface


class Store(Protocol):
    """
    What every storage backend offers.  Each method is one database
    transaction.
    """

    # certificates

    def add_certificate(self, record: CertificateRecord, audit: AuditRecord | None = None) -> None:
        """
        Insert a certificate.  L{Conflict} if the identifier, or the serial
        for this issuer, is taken.
        """

    def get_certificate(self, identifier: str) -> CertificateRecord | None:
        """The certificate with this identifier."""

    def find_certificate(self, issuer_identifier: str, serial: int) -> CertificateRecord | None:
        """The certificate with this serial from this issuer."""

    def find_certificate_by_issuer_name(self, issuer: str, serial: int) -> CertificateRecord | None:
        """
        The certificate with this serial from an issuer of this RFC 4514 name
        (the newest, should two CA generations share a name and a serial).
        """

    def find_ca_certificates(self, subject: str) -> list[CertificateRecord]:
        """The CA certificates with this RFC 4514 subject, newest first (an issuer's generations)."""

    def list_certificates(
        self,
        realm: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CertificateRecord]:
        """Certificates, newest notBefore first."""

    def revoke_certificate(
        self, identifier: str, reason: str, when: datetime, actor: str
    ) -> CertificateRecord:
        """
        Mark a certificate revoked and log it.  L{NotFound} if unknown,
        L{Conflict} if it is revoked already.
        """

    def active_certificates(self, realm: str, subject: str, now: datetime) -> list[CertificateRecord]:
        """
        The realm's certificates for this subject that are issued and not
        expired at C{now}.
        """

    def revoked_certificates(self, realm: str, issuer_identifier: str) -> list[CertificateRecord]:
        """
        The revoked certificates of an issuer (for its CRL): those of the
        realm and those imported without a realm.
        """

    def issue(
        self,
        certificate: CertificateRecord,
        transaction: TransactionRecord,
        audit: AuditRecord,
        expected_status: str | None = None,
    ) -> TransactionRecord:
        """
        In one database transaction: insert the certificate, insert or update
        the transaction with status 'issued' and the certificate's
        identifier, append the audit row.  L{Conflict} if the transaction is
        issued or rejected already, belongs to another public key, or its
        status is not C{expected_status}.
        """

    # transactions

    def get_transaction(self, realm: str, transaction_id: str) -> TransactionRecord | None:
        """The transaction, if any."""

    def create_transaction(self, record: TransactionRecord, audit: AuditRecord | None = None) -> None:
        """Insert a transaction; L{Conflict} if it exists."""

    def supersede_transaction(self, record: TransactionRecord, certificate_identifier: str,
                              audit: AuditRecord | None = None) -> None:
        """
        Replace the row of an issued transaction with a new request under
        its transactionID (a renewal that keeps the key, from a client that
        derives the transactionID from it): only while the row is issued
        with C{certificate_identifier} for C{record}'s public key, else
        L{Conflict}.  The old certificate keeps its transactionID.
        """

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
        """
        Set the status and reason of a transaction (and its certificate
        identifier, if given).  L{NotFound} if it does not exist,
        L{Conflict} if C{expected_status} is given and differs.
        """

    def list_transactions(
        self, realm: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[TransactionRecord]:
        """Transactions, oldest first."""

    # aliases

    def add_alias(self, record: AliasRecord, audit: AuditRecord | None = None) -> None:
        """
        Insert an alias.  L{Conflict} if the name is taken in the realm (or
        the certificate is in the group already), L{NotFound} if the
        certificate is unknown.
        """

    def get_alias(self, realm: str, alias: str) -> AliasRecord | None:
        """One alias, with its certificate's dates."""

    def update_alias(
        self,
        realm: str,
        alias: str,
        notbefore: datetime | None | Unchanged = UNCHANGED,
        notafter: datetime | None | Unchanged = UNCHANGED,
        audit: AuditRecord | None = None,
    ) -> AliasRecord:
        """Change the overrides of an alias; L{NotFound} if it does not exist."""

    def remove_alias(self, realm: str, alias: str, audit: AuditRecord | None = None) -> None:
        """Remove an alias; L{NotFound} if it does not exist."""

    def list_aliases(self, realm: str, group: str | None = None) -> list[AliasRecord]:
        """Aliases ordered by group, then effective notbefore, then name."""

    def next_alias_name(self, realm: str, group: str) -> str:
        """The next free generation name of a group: C{root-1}, C{root-2}, ..."""

    def aliases_changed_token(self, realm: str) -> int:
        """
        A number that changes whenever an alias of the realm, or a
        certificate an alias refers to, or a CA certificate of the realm
        changes.  Cheap: poll it before using a cached GetCACert answer.
        """

    # CRLs

    def add_crl(self, record: CRLRecord, audit: AuditRecord | None = None) -> None:
        """Store a CRL; L{Conflict} if its number is taken for the issuer."""

    def latest_crl(self, realm: str, issuer_identifier: str) -> CRLRecord | None:
        """The CRL of the issuer with the highest number."""

    def next_crl_number(self, realm: str, issuer_identifier: str) -> int:
        """One more than the highest CRL number of the issuer (1 for the first)."""

    # audit

    def append_audit(self, record: AuditRecord) -> int:
        """Append to the audit log; returns the new row's id."""

    def list_audit(
        self,
        realm: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit rows in the order they were written."""

    def close(self) -> None:
        """Release the connection."""


def open_store(url_or_path: str) -> Store:
    """
    Open the store named by a database URL or a file path.

    A plain path or C{sqlite:///abs/path.db} opens SQLite; PostgreSQL URLs
    are recognised but not supported yet.
    """
    if "://" not in url_or_path:
        if not url_or_path:
            raise StoreError("empty database path")
        from scep.store.sqlite import SQLiteStore

        return SQLiteStore(url_or_path)
    parsed = urlparse(url_or_path)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"{url_or_path!r}: a sqlite URL names a local file: sqlite:///abs/path.db")
        path = unquote(parsed.path)
        if not path or path == "/":
            raise StoreError(f"{url_or_path!r}: no database file in the URL")
        from scep.store.sqlite import SQLiteStore

        return SQLiteStore(path)
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        raise StoreError(
            f"{scheme}: the PostgreSQL store is not implemented yet; use sqlite:///path/to/scep.db"
        )
    raise StoreError(f"{url_or_path!r}: unknown database scheme {scheme!r}")
