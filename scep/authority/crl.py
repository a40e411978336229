"""
CRLs: signed by the CA that issued the revoked certificates, numbered, with
a next update; one older than its next update is reissued on demand.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from scep.authority.realm import Realm, Token
from scep.authority.tokens import authority_key_identifier
from scep.store import AuditRecord, Conflict, CRLRecord, Store

CRL_VALIDITY = datetime.timedelta(days=7)

REASONS = {flag.name.lower().replace("_", ""): flag for flag in x509.ReasonFlags}
"""C{keyCompromise}, C{superseded}, ... by their lower-case names without separators."""


def reason_flag(text: str | None) -> x509.ReasonFlags | None:
    """The CRL reason for an openssl-style name (C{keyCompromise}), or C{None}."""
    if not text:
        return None
    return REASONS.get(text.lower().replace("_", "").replace("-", ""))


def issue_crl(store: Store, realm: str, token: Token, key: Any, now: datetime.datetime, *,
              actor: str, validity: datetime.timedelta = CRL_VALIDITY) -> CRLRecord:
    """Sign a new CRL of everything C{token} issued that is revoked by now."""
    number = store.next_crl_number(realm, token.identifier)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(token.certificate.subject)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(token.certificate), critical=False)
    )
    for entry in revoked_entries(store, realm, token, now):
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(key, hashes.SHA256())
    issued = CRLRecord(realm=realm, issuer_identifier=token.identifier, number=number,
                       der=crl.public_bytes(serialization.Encoding.DER),
                       this_update=now, next_update=now + validity)
    store.add_crl(issued, audit=AuditRecord(
        time=now, realm=realm, actor=actor, action="crl issue", identifier=token.identifier,
        detail=f"CRL number {number} of {token.alias}"))
    return issued


def revoked_entries(store: Store, realm: str, token: Token,
                    now: datetime.datetime) -> list[x509.RevokedCertificate]:
    """The CRL entries of C{token}'s certificates revoked by C{now}, with their reasons."""
    entries = []
    for record in store.revoked_certificates(realm, token.identifier):
        if record.revoked_at is None or record.revoked_at > now:
            continue
        entry = x509.RevokedCertificateBuilder().serial_number(record.serial).revocation_date(record.revoked_at)
        flag = reason_flag(record.revocation_reason)
        if flag is not None and flag != x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        entries.append(entry.build())
    return entries


def current_crl(store: Store, realm: Realm, token: Token, now: datetime.datetime, *, actor: str) -> CRLRecord:
    """The latest CRL of C{token}, reissued first if it is due."""
    latest = store.latest_crl(realm.name, token.identifier)
    if latest is not None and latest.next_update is not None and latest.next_update > now:
        return latest
    try:
        return issue_crl(store, realm.name, token, realm.key(token), now, actor=actor)
    except Conflict:
        latest = store.latest_crl(realm.name, token.identifier)
        if latest is None:
            raise
        return latest

