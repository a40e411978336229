"""
One PKIOperation after its envelope was opened: the request modes (initial,
renewal, on behalf), authentication, approval, issuance, and the pickup of
an existing transaction by resend or CertPoll; GetCert and GetCRL.

Every refusal is a L{RequestError}, which the caller turns into a signed
CertRep FAILURE.  Transactions are bound to the public key of their CSR:
the same transactionID with another key never reaches the first request's
certificate.
"""

from __future__ import annotations

import datetime
import functools
import hmac
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AttributeOID
from twisted.logger import Logger

from scep import message as scep_message
from scep.authority import crl as crls
from scep.authority.policy import ServerConfig, add_relative, subtract_relative
from scep.authority.profiles import ProfileViolation, build_certificate
from scep.authority.realm import Realm
from scep.message import FailInfo, MessageType, PKIMessage, PKIStatus, RequestError
from scep.store import (
    AuditRecord,
    CertificateRecord,
    Conflict,
    TransactionRecord,
    certificate_identifier,
    certificate_record_from_der,
    public_key_hash,
)

if TYPE_CHECKING:
    from scep.authority.service import Authority, Reply

log = Logger()

MS_TEMPLATE_NAME = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")


@dataclass(frozen=True)
class Outcome:
    body: bytes
    summary: str
    detail: str = ""


def spki_hash(key: Any) -> str:
    return public_key_hash(key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


class Enrollment:
    """One request being answered; C{run()} gives the L{Outcome}."""

    def __init__(self, authority: Authority, realm: Realm, server: ServerConfig, request: PKIMessage,
                 decrypted: scep_message.Decrypted | None, reply: Reply, *, params: dict[str, str],
                 client_address: str, endpoint: str) -> None:
        self.authority = authority
        self.store = authority.store
        self.realm = realm
        self.server = server
        self.request = request
        self.decrypted = decrypted
        self.reply = reply
        self.params = params
        self.client = client_address
        self.endpoint = endpoint
        self.now = authority.now()

    def run(self) -> Outcome:
        kind = self.request.message_type
        if kind in (MessageType.PKCSReq, MessageType.RenewalReq):
            return self.enroll()
        if kind == MessageType.CertPoll:
            return self.poll()
        if kind == MessageType.GetCert:
            return self.get_cert()
        if kind == MessageType.GetCRL:
            return self.get_crl()
        raise RequestError(FailInfo.badRequest, f"messageType {kind} is not a request this server answers")

    def content(self) -> bytes:
        if self.decrypted is None:
            raise RequestError(FailInfo.badRequest, "the request carries no pkcsPKIEnvelope")
        return self.decrypted.content

    def audit(self, action: str, detail: str, identifier: str | None = None) -> AuditRecord:
        return AuditRecord(time=self.now, realm=self.realm.name, actor=f"client {self.client}",
                           action=action, transaction_id=self.request.transaction_id,
                           identifier=identifier, detail=detail)

    # PKCSReq and RenewalReq

    def enroll(self) -> Outcome:
        csr = self.csr()
        key_hash = spki_hash(csr.public_key())
        existing = self.store.get_transaction(self.realm.name, self.request.transaction_id)
        if existing is None:
            mode, predecessor = self.mode(csr, key_hash)
            return self.new_request(csr, key_hash, mode, predecessor)
        if self.renews(existing, key_hash):
            # A renewal signed by the certificate this very transaction
            # issued, keeping its key: clients that derive the transactionID
            # from the key (certmonger, micromdm's scepclient) renew under
            # the transactionID of the initial request.  Refused unless
            # policy.allow_key_reuse; a new request in place if allowed.
            mode, predecessor = self.mode(csr, key_hash)
            if mode == "renewal":
                return self.new_request(csr, key_hash, mode, predecessor,
                                        supersedes=existing.certificate_identifier)
        elif existing.mode == "initial" and self.our_signer is not None:
            # Signed by a certificate of ours, this is a renewal, not a
            # resend: check it as one (a key kept without allow_key_reuse
            # is refused) before answering from the transaction.
            self.mode(csr, key_hash)
        return self.resume(existing, key_hash)

    def renews(self, existing: TransactionRecord, key_hash: str) -> bool:
        """Whether the request is signed by the certificate C{existing} issued, for the same key."""
        return (self.our_signer is not None and existing.status == "issued"
                and existing.certificate_identifier == self.our_signer.identifier
                and existing.public_key_hash == key_hash)

    def new_request(self, csr: x509.CertificateSigningRequest, key_hash: str, mode: str,
                    predecessor: CertificateRecord | None, supersedes: str | None = None) -> Outcome:
        """
        Issue, hold for approval, or refuse a request that is not a resend;
        with C{supersedes}, in place of the issued transaction that issued
        that certificate.
        """
        reasons = self.approval_reasons(csr, mode, predecessor)
        reason = "; ".join(reasons) or None
        if reason is None and supersedes is None:
            return self.issue(csr, self.transaction(csr, key_hash, mode, "issued", None), predecessor)
        if reason is not None and not self.server.allow_man_approv and reasons != ["manual authentication"]:
            self.store.append_audit(self.audit("reject", reason))
            raise RequestError(FailInfo.badRequest, "the request needs approval, which this server "
                               "does not allow: " + reason)
        record = self.transaction(csr, key_hash, mode, "pending" if reason else "approved", reason)
        try:
            if supersedes is None:
                self.store.create_transaction(record, audit=self.audit("pending", reason or ""))
            else:
                detail = f"new {mode} request in place of the one that issued {supersedes}"
                self.store.supersede_transaction(record, supersedes, audit=self.audit(
                    "pending" if reason else "renew", f"{detail}: {reason}" if reason else detail))
        except Conflict:
            existing = self.store.get_transaction(self.realm.name, self.request.transaction_id)
            assert existing is not None
            return self.resume(existing, key_hash)
        if reason is not None:
            return Outcome(self.reply.build(PKIStatus.PENDING), f"PENDING ({reason})",
                           f"subject={record.subject!r}")
        return self.pickup(record)

    def csr(self) -> x509.CertificateSigningRequest:
        """The PKCS#10 of the request, its proof of possession checked."""
        try:
            csr = x509.load_der_x509_csr(self.content())
        except ValueError:
            raise RequestError(FailInfo.badRequest, "messageData is not a PKCS#10 request") from None
        try:
            valid = csr.is_signature_valid
        except Exception:
            valid = False
        if not valid:
            raise RequestError(FailInfo.badMessageCheck,
                               "the CSR's signature (proof of possession) does not verify")
        return csr

    def approval_reasons(self, csr: x509.CertificateSigningRequest, mode: str,
                         predecessor: CertificateRecord | None) -> list[str]:
        """
        Why the request cannot be issued at once; empty when it can.

        @raise RequestError: when it is not authenticated and this server
            does not allow manual authentication.
        """
        reasons = []
        if mode == "initial" and not self.authenticate(csr):
            if not self.server.allow_man_authen:
                self.store.append_audit(self.audit("reject", "not authenticated: wrong or missing challenge"))
                raise RequestError(FailInfo.badRequest, "wrong or missing challenge password")
            reasons.append("manual authentication")
        if self.server.max_active_certs:
            subject = csr.subject.rfc4514_string()
            active = [c for c in self.store.active_certificates(self.realm.name, subject, self.now)
                      if predecessor is None or c.identifier != predecessor.identifier]
            if len(active) >= self.server.max_active_certs:
                reasons.append(f"{len(active)} active certificates for this subject "
                               f"(max_active_certs {self.server.max_active_certs})")
        points = self.server.eligibility_points(mode)
        if points < self.server.approval_points:
            reasons.append(f"approval ({points} of {self.server.approval_points} points)")
        return reasons

    def transaction(self, csr: x509.CertificateSigningRequest, key_hash: str, mode: str,
                    status: str, reason: str | None) -> TransactionRecord:
        return TransactionRecord(
            realm=self.realm.name, transaction_id=self.request.transaction_id,
            public_key_hash=key_hash, status=status, message_type=self.request.message_type,
            servername=self.server.servername, csr=csr.public_bytes(serialization.Encoding.DER),
            subject=csr.subject.rfc4514_string(), mode=mode, created=self.now, updated=self.now,
            reason=reason, client_address=self.client,
            signer_identifier=self.our_signer.identifier if mode != "initial" and self.our_signer else None,
            signer_key_hash=self.signer_key_hash,
        )

    @functools.cached_property
    def signer_key_hash(self) -> str:
        return spki_hash(self.request.signer_certificate.public_key())

    @functools.cached_property
    def our_signer(self) -> CertificateRecord | None:
        """The request's signer certificate when this realm's issuing CA issued it."""
        signer_der = self.request.signer_certificate.public_bytes(serialization.Encoding.DER)
        record = self.store.get_certificate(certificate_identifier(signer_der))
        if record is None or record.realm != self.realm.name or record.is_ca:
            return None
        issuers = {token.identifier for token in self.realm.tokens("ca-signer")}
        return record if record.issuer_identifier in issuers else None

    def mode(self, csr: x509.CertificateSigningRequest,
             key_hash: str) -> tuple[str, CertificateRecord | None]:
        """
        Initial, renewal or on behalf, by signer, subject and key, as OpenXPKI
        tells them apart.  A signer we did not issue makes an initial request;
        ours with the subject of the CSR a renewal (with a new key unless
        C{policy.allow_key_reuse}, inside the renewal window); ours with
        another subject a request on behalf of that subject when authorized
        signers are configured, else an initial one.
        A RenewalReq must be signed by a certificate of ours.
        """
        renewal_req = self.request.message_type == MessageType.RenewalReq
        record = self.our_signer
        if record is None:
            if renewal_req:
                raise RequestError(FailInfo.badRequest,
                                   "a RenewalReq must be signed by a certificate this CA issued")
            return "initial", None
        self.check_signer(record)
        if not self.same_subject(csr, record):
            if self.server.authorized_signer:
                self.check_onbehalf(record)
                return "onbehalf", None
            if renewal_req:
                raise RequestError(FailInfo.badRequest,
                                   "a renewal must keep the subject of the certificate that signs it")
            return "initial", None
        if record.public_key_hash == key_hash and not self.server.allow_key_reuse:
            raise RequestError(FailInfo.badRequest, "renewal must use a new key; this CSR reuses the old one")
        self.check_window(record)
        return "renewal", record

    def check_signer(self, record: CertificateRecord) -> None:
        if record.status == "revoked":
            raise RequestError(FailInfo.badRequest, "the signer certificate is revoked")
        if not record.not_before <= self.now <= record.not_after:
            raise RequestError(FailInfo.badRequest, "the signer certificate is expired or not yet valid")

    def same_subject(self, csr: x509.CertificateSigningRequest, record: CertificateRecord) -> bool:
        """Whether the CSR asks for the subject of C{record}, as given or as its profile renders it."""
        if record.subject == csr.subject.rfc4514_string():
            return True
        try:
            profile = self.realm.profiles[self.profile_name(csr)]
            return record.subject == profile.subject_for(csr.subject).rfc4514_string()
        except (ProfileViolation, RequestError):
            return False

    def window_start(self, record: CertificateRecord) -> datetime.datetime:
        """When a certificate's renewal window opens: renewal_period before it expires."""
        return subtract_relative(record.not_after, self.server.renewal_period)

    def check_window(self, record: CertificateRecord) -> None:
        """A renewal is accepted only when the signer expires within renewal_period, or with allow_replace."""
        window_start = self.window_start(record)
        if self.now < window_start and not self.server.allow_replace:
            raise RequestError(FailInfo.badRequest, "renewal outside the renewal window: the certificate "
                               f"expires {record.not_after:%Y-%m-%d}, renewal opens {window_start:%Y-%m-%d}")

    def check_onbehalf(self, record: CertificateRecord) -> None:
        """The signer must match one authorized_signer rule (the keys of a rule are ANDed)."""
        for rule in self.server.authorized_signer:
            if rule.subject is not None and not rule.subject.search(record.subject):
                continue
            if rule.identifier is not None and rule.identifier != record.identifier:
                continue
            if rule.profile is not None and rule.profile != record.profile:
                continue
            if rule.issuer_alias is not None:
                aliases = {t.identifier: t.alias for t in self.realm.tokens("ca-signer")}
                if aliases.get(record.issuer_identifier or "") != rule.issuer_alias:
                    continue
            return
        raise RequestError(FailInfo.badRequest, "the signer is not an authorized signer for enrollment on behalf")

    def authenticate(self, csr: x509.CertificateSigningRequest) -> bool:
        """Anonymous, HMAC over the PEM CSR, then the static challenge."""
        if self.server.allow_anon_enroll:
            return True
        if self.server.hmac is not None:
            expected = hmac.new(self.server.hmac.encode("utf-8"), csr_pem(csr), "sha256").hexdigest()
            given = self.params.get("url_signature", "").strip().lower()
            if given and hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace")):
                return True
        if self.server.challenge is not None:
            try:
                password = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
            except (x509.AttributeNotFound, ValueError):
                return False
            return hmac.compare_digest(bytes(password), self.server.challenge.encode("utf-8"))
        return False

    def profile_name(self, csr: x509.CertificateSigningRequest) -> str:
        wanted = self.params.get("url_profile")
        if wanted is not None:
            profile = self.server.profile_map.get(wanted)
            if profile is None:
                raise RequestError(FailInfo.badRequest, "the requested profile (url_profile) is not mapped on this server")
            return profile
        try:
            extension = csr.extensions.get_extension_for_oid(MS_TEMPLATE_NAME).value
        except (x509.ExtensionNotFound, ValueError):
            extension = None
        template = _bmp_string(extension.value) if isinstance(extension, x509.UnrecognizedExtension) else None
        if template is not None and template in self.server.profile_map:
            return self.server.profile_map[template]
        return self.server.cert_profile

    def issue(self, csr: x509.CertificateSigningRequest, transaction: TransactionRecord,
              predecessor: CertificateRecord | None, expected_status: str | None = None) -> Outcome:
        signer = self.realm.current("ca-signer")
        assert signer is not None
        profile = self.realm.profiles[self.profile_name(csr)]
        not_after = None
        if transaction.mode == "initial" and self.server.initial_validity is not None:
            not_after = add_relative(self.now, self.server.initial_validity)
        elif predecessor is not None and self.now < self.window_start(predecessor):
            # A replace (allow_replace, before the renewal window): the new
            # certificate ends when the one it replaces would have.
            not_after = predecessor.not_after
        try:
            certificate = build_certificate(csr, profile, issuer_certificate=signer.certificate,
                                            issuer_key=self.realm.key(signer), now=self.now,
                                            not_after=not_after)
        except ProfileViolation as e:
            self.store.append_audit(self.audit("reject", str(e)))
            raise RequestError(FailInfo.badRequest, str(e)) from None
        der = certificate.public_bytes(serialization.Encoding.DER)
        record = certificate_record_from_der(der, realm=self.realm.name, issuer_identifier=signer.identifier,
                                             profile=profile.name, transaction_id=transaction.transaction_id)
        serial = f"{certificate.serial_number:x}"
        try:
            self.store.issue(record, transaction, self.audit(
                "issue", f"{transaction.mode} serial {serial} profile {profile.name} {record.subject}",
                record.identifier), expected_status=expected_status)
        except Conflict:
            existing = self.store.get_transaction(self.realm.name, transaction.transaction_id)
            if existing is None:
                raise
            return self.resume(existing, transaction.public_key_hash)
        self.after_issue(record, transaction.mode, predecessor)
        return Outcome(self.success(record), f"SUCCESS issued serial {serial} ({transaction.mode})",
                       f"subject={record.subject!r}")

    def after_issue(self, record: CertificateRecord, mode: str, predecessor: CertificateRecord | None) -> None:
        """Revoke what the policy says the new certificate replaces."""
        if mode == "initial" and self.server.auto_revoke_existing_certs:
            for old in self.store.active_certificates(self.realm.name, record.subject, self.now):
                if old.identifier != record.identifier:
                    self.store.revoke_certificate(old.identifier, "superseded", self.now, f"policy {record.identifier}")
        if mode == "renewal" and predecessor is not None and self.server.revoke_on_replace is not None:
            reason, delay = self.server.revoke_on_replace
            when = add_relative(self.now, delay) if delay is not None else self.now
            self.store.revoke_certificate(predecessor.identifier, reason, when, f"policy {record.identifier}")

    def success(self, record: CertificateRecord) -> bytes:
        certificates = [x509.load_der_x509_certificate(record.der)]
        if self.server.chain in ("chain", "fullchain"):
            certificates += self.authority.chain(self.realm, "ca-signer")
        if self.server.chain == "fullchain":
            certificates += self.authority.chain(self.realm, "root")
        return self.reply.build(PKIStatus.SUCCESS, certificates=certificates)

    def resume(self, existing: TransactionRecord, key_hash: str) -> Outcome:
        """Answer a resent request for a key from its stored transaction."""
        if existing.public_key_hash != key_hash:
            self.refuse_other_key()
        if not self.may_continue(existing):
            self.refuse_other_signer()
        return self.pickup(existing)

    def refuse_other_key(self) -> None:
        self.store.append_audit(self.audit("reject", "transactionID reused with another public key"))
        raise RequestError(FailInfo.badRequest, "this transactionID belongs to a request with another public key")

    def refuse_other_signer(self) -> None:
        self.store.append_audit(self.audit("reject", "transaction continued by another signer"))
        raise RequestError(FailInfo.badRequest, "this transaction was started by another signer: "
                           "sign with the request's key or the certificate that signed it")

    def pickup(self, existing: TransactionRecord) -> Outcome:
        """Answer a resent request or a poll from the stored transaction."""
        if existing.status == "issued" and existing.certificate_identifier:
            record = self.store.get_certificate(existing.certificate_identifier)
            if record is not None:
                return Outcome(self.success(record), f"SUCCESS (transaction picked up) serial {record.serial:x}")
        if existing.status == "pending":
            return Outcome(self.reply.build(PKIStatus.PENDING), "PENDING (transaction picked up)")
        if existing.status == "approved":
            csr = x509.load_der_x509_csr(existing.csr)
            return self.issue(csr, replace(existing, updated=self.now), self.predecessor(existing),
                              expected_status="approved")
        reason = existing.reason or existing.status
        raise RequestError(FailInfo.badRequest, f"the request was {existing.status}: {reason}")

    def predecessor(self, existing: TransactionRecord) -> CertificateRecord | None:
        """The certificate an approved renewal replaces: the one that signed the request."""
        if existing.mode != "renewal" or existing.signer_identifier is None:
            return None
        return self.store.get_certificate(existing.signer_identifier)

    # CertPoll, GetCert, GetCRL

    def poll(self) -> Outcome:
        _, subject = scep_message.parse_issuer_and_subject(self.content())
        existing = self.store.get_transaction(self.realm.name, self.request.transaction_id)
        if existing is None:
            raise RequestError(FailInfo.badCertId, "no transaction with this transactionID")
        if not _same_name(_name(subject), existing.subject):
            raise RequestError(FailInfo.badCertId, "the subject in the CertPoll does not match the transaction")
        if not self.may_continue(existing):
            self.refuse_other_key()
        return self.pickup(existing)

    def may_continue(self, existing: TransactionRecord) -> bool:
        """
        A resend or a poll is signed with the key of the CSR, or with the key
        that signed the request (the old certificate of a renewal, an
        operator's of a request on behalf, an MDM's), as long as that
        certificate, where it is ours, is not revoked.
        """
        if self.signer_key_hash == existing.public_key_hash:
            return True
        if self.signer_key_hash != existing.signer_key_hash:
            return False
        return self.our_signer is None or self.our_signer.status != "revoked"

    def get_cert(self) -> Outcome:
        issuer, serial = scep_message.parse_issuer_and_serial(self.content())
        record = self.store.find_certificate_by_issuer_name(_name(issuer).rfc4514_string(), serial)
        if record is None or record.realm not in (self.realm.name, None):
            # Another realm's certificates are not this endpoint's to give.
            raise RequestError(FailInfo.badCertId, f"no certificate with serial {serial:x} from that issuer")
        certificate = x509.load_der_x509_certificate(record.der)
        return Outcome(self.reply.build(PKIStatus.SUCCESS, certificates=[certificate]),
                       f"SUCCESS certificate serial {serial:x}")

    def get_crl(self) -> Outcome:
        issuer, serial = scep_message.parse_issuer_and_serial(self.content())
        issuer_name = _name(issuer).rfc4514_string()
        record = self.store.find_certificate_by_issuer_name(issuer_name, serial)
        cas = self.realm.tokens("ca-signer") + self.realm.tokens("root")
        token = None
        if record is not None and record.issuer_identifier:
            token = next((t for t in cas if t.identifier == record.issuer_identifier), None)
        if token is None:
            token = next((t for t in reversed(cas) if t.certificate.subject.rfc4514_string() == issuer_name), None)
        if token is None:
            raise RequestError(FailInfo.badCertId, "no CRL for that issuer here")
        current = crls.current_crl(self.store, self.realm, token, self.now, actor=f"client {self.client}")
        return Outcome(self.reply.build(PKIStatus.SUCCESS, crls=[current.der]),
                       f"SUCCESS CRL number {current.number}")


def _name(der: bytes) -> x509.Name:
    """An X.509 Name from its DER, as the codec hands it out."""
    try:
        return _load_name(der)
    except Exception:
        raise RequestError(FailInfo.badRequest, "the issuer or subject name cannot be read") from None


def _same_name(asked: x509.Name, stored: str) -> bool:
    """Whether a Name is the one stored as an RFC 4514 string."""
    if asked.rfc4514_string() == stored:
        return True
    try:
        return asked == x509.Name.from_rfc4514_string(stored)
    except ValueError:
        return False


def _load_name(der: bytes) -> x509.Name:
    # cryptography reads a Name only inside a larger structure, so
    # asn1crypto parses it and each attribute is rebuilt.
    parsed = asn1_x509.Name.load(der)
    rdns = []
    for rdn in parsed.chosen:
        attributes = []
        for attribute in rdn:
            oid = x509.ObjectIdentifier(attribute["type"].dotted)
            value = attribute["value"].native
            attributes.append(x509.NameAttribute(oid, str(value)))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _bmp_string(value: bytes) -> str | None:
    """The template name inside Microsoft's certificateTemplateName extension."""
    try:
        return str(core.BMPString.load(value).native)
    except Exception:
        return None
