"""
The SCEP (RFC 8894) pkiMessage codec: bytes in, objects out.

The server side parses a request (L{parse_pki_message}), checks it
(L{verify_pki_message}), opens its pkcsPKIEnvelope (L{decrypt_message_data})
and answers with L{build_cert_rep}; the client side (tests, a future client)
uses L{build_pki_message} and L{parse_cert_rep}.  Errors are of two kinds:
L{MessageError} when no CertRep can be built at all (answer HTTP 400), and
L{RequestError} when a signed FAILURE CertRep carrying its failInfo is the
answer.  The CMS layer lives in L{scep.cms}, its algorithms in
L{scep.algorithms}.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from scep import algorithms, cms
from scep.algorithms import AlgorithmNotSupported, Cast5Parameters, DecryptionFailed
from scep.cms import degenerate as build_degenerate
from scep.der import CMSError, der_tlv

PrivateKey = rsa.RSAPrivateKey


class MessageType(enum.IntEnum):
    """messageType values (RFC 8894 section 3.2.1.2; 18 and 20's old names)."""

    CertRep = 3
    RenewalReq = 17
    UpdateReq = 18
    PKCSReq = 19
    CertPoll = 20  # GetCertInitial in the old drafts
    GetCert = 21
    GetCRL = 22


class PKIStatus(enum.IntEnum):
    """pkiStatus values."""

    SUCCESS = 0
    FAILURE = 2
    PENDING = 3


class FailInfo(enum.IntEnum):
    """failInfo values."""

    badAlg = 0
    badMessageCheck = 1
    badRequest = 2
    badTime = 3
    badCertId = 4


class MessageError(ValueError):
    """The bytes are not a usable pkiMessage; str() is a one-line reason."""


class RequestError(Exception):
    """The pkiMessage was read but the request is bad: answer a signed FAILURE."""

    def __init__(self, fail_info: FailInfo, text: str) -> None:
        super().__init__(f"{fail_info.name}: {text}")
        self.fail_info = fail_info
        self.text = text


# -- SCEP attributes (RFC 8894 section 3.2.1), added to asn1crypto's tables ------


class SetOfPrintableString(asn1_core.SetOf):
    """SET OF PrintableString: messageType, pkiStatus, failInfo, transactionID."""

    _child_spec = asn1_core.PrintableString


class SetOfUTF8String(asn1_core.SetOf):
    """SET OF UTF8String: failInfoText."""

    _child_spec = asn1_core.UTF8String


_SCEP_ATTRIBUTES = {
    "2.16.840.1.113733.1.9.2": ("scep_message_type", SetOfPrintableString),
    "2.16.840.1.113733.1.9.3": ("scep_pki_status", SetOfPrintableString),
    "2.16.840.1.113733.1.9.4": ("scep_fail_info", SetOfPrintableString),
    "2.16.840.1.113733.1.9.5": ("scep_sender_nonce", asn1_cms.SetOfOctetString),
    "2.16.840.1.113733.1.9.6": ("scep_recipient_nonce", asn1_cms.SetOfOctetString),
    "2.16.840.1.113733.1.9.7": ("scep_transaction_id", SetOfPrintableString),
    "1.3.6.1.5.5.7.24.1": ("scep_fail_info_text", SetOfUTF8String),
}
(
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_FAIL_INFO,
    OID_SENDER_NONCE,
    OID_RECIPIENT_NONCE,
    OID_TRANSACTION_ID,
    OID_FAIL_INFO_TEXT,
) = _SCEP_ATTRIBUTES
for _oid, (_name, _spec) in _SCEP_ATTRIBUTES.items():
    algorithms.register_oid(asn1_cms.CMSAttributeType, _oid, _name)
    asn1_cms.CMSAttribute._oid_specs.setdefault(_name, _spec)

_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def scep_attribute(oid: str, value: str | bytes) -> bytes:
    """A signed attribute; a string that is no PrintableString goes as UTF8String."""
    if isinstance(value, bytes):
        return cms.attribute(oid, der_tlv(0x04, value))
    if set(value) <= _PRINTABLE and oid != OID_FAIL_INFO_TEXT:
        return cms.attribute(oid, der_tlv(0x13, value.encode("ascii")))
    return cms.attribute(oid, der_tlv(0x0C, value.encode("utf-8")))


# -- pkiMessage ---------------------------------------------------------------------


@dataclass(frozen=True)
class PKIMessage:
    """A parsed pkiMessage; the signature is not verified yet."""

    message_type: int
    transaction_id: str
    sender_nonce: bytes
    recipient_nonce: bytes | None
    pki_status: int | None
    fail_info: int | None
    fail_info_text: str | None
    signer_certificate: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    digest_algorithm: str
    signature_algorithm: str
    signing_time: datetime | None
    enveloped_data: bytes | None = field(repr=False)
    _signed: cms.SignedContent = field(repr=False, compare=False)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:160]


def _int_attribute(signed: cms.SignedContent, oid: str, name: str) -> int | None:
    value = cms.attribute_value(signed, oid)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip().isdigit():
        raise MessageError(f"invalid {name}")
    return int(value)


def _pki_message(signed: cms.SignedContent) -> PKIMessage:
    message_type = _int_attribute(signed, OID_MESSAGE_TYPE, "messageType")
    if message_type is None:
        raise MessageError("missing messageType")
    transaction_id = cms.attribute_value(signed, OID_TRANSACTION_ID)
    if not isinstance(transaction_id, str) or not transaction_id:
        raise MessageError("missing or invalid transactionID")
    sender_nonce = cms.attribute_value(signed, OID_SENDER_NONCE)
    if not isinstance(sender_nonce, bytes) or not sender_nonce:
        raise MessageError("missing or invalid senderNonce")
    recipient_nonce = cms.attribute_value(signed, OID_RECIPIENT_NONCE)
    text = cms.attribute_value(signed, OID_FAIL_INFO_TEXT)
    return PKIMessage(
        message_type=message_type,
        transaction_id=transaction_id,
        sender_nonce=sender_nonce,
        recipient_nonce=recipient_nonce if isinstance(recipient_nonce, bytes) else None,
        pki_status=_int_attribute(signed, OID_PKI_STATUS, "pkiStatus"),
        fail_info=_int_attribute(signed, OID_FAIL_INFO, "failInfo"),
        fail_info_text=text if isinstance(text, str) else None,
        signer_certificate=signed.signer_certificate,
        certificates=signed.certificates,
        digest_algorithm=signed.digest_algorithm,
        signature_algorithm=signed.signature_algorithm,
        signing_time=signed.signing_time,
        enveloped_data=signed.econtent or None,
        _signed=signed,
    )


def parse_pki_message(data: bytes) -> PKIMessage:
    """
    Parse a ContentInfo(SignedData) pkiMessage, DER or BER, without verifying
    the signature; raise L{MessageError}, and only that, if it is unusable.
    """
    if not data:
        raise MessageError("empty pkiMessage")
    try:
        return _pki_message(cms.read_signed_data(bytes(data)))
    except MessageError:
        raise
    except CMSError as e:
        raise MessageError(one_line(e)) from None
    except Exception as e:  # noqa: BLE001 - anything from garbage is a bad message
        raise MessageError(f"malformed pkiMessage: {one_line(e)}") from None


def verify_pki_message(msg: PKIMessage) -> None:
    """Check the messageDigest and the signature, or raise L{RequestError}."""
    try:
        cms.verify_signed(msg._signed)
    except AlgorithmNotSupported as e:
        raise RequestError(FailInfo.badAlg, str(e)) from None
    except CMSError as e:
        raise RequestError(FailInfo.badMessageCheck, str(e)) from None
    except Exception as e:  # noqa: BLE001 - a malformed attribute fails the check
        raise RequestError(FailInfo.badMessageCheck, f"cannot verify: {one_line(e)}") from None


# -- pkcsPKIEnvelope ---------------------------------------------------------------


@dataclass(frozen=True)
class RecipientId:
    """The rid of a KeyTransRecipientInfo."""

    issuer: bytes | None = None
    serial: int | None = None
    subject_key_identifier: bytes | None = None

    @classmethod
    def for_certificate(cls, cert: x509.Certificate) -> RecipientId:
        """The issuerAndSerialNumber (and SKI, if any) of C{cert}."""
        return cls(_issuer(cert), cert.serial_number, _key_identifiers(cert)[0])

    def matches(self, cert: x509.Certificate) -> bool:
        """Whether this identifies C{cert}."""
        if self.subject_key_identifier is not None:
            return self.subject_key_identifier in _key_identifiers(cert)
        if self.issuer is None or self.serial != cert.serial_number:
            return False
        issuer = _issuer(cert)
        return issuer == self.issuer or asn1_x509.Name.load(issuer) == asn1_x509.Name.load(self.issuer)


# What identifies a certificate as a recipient, read once per certificate (the
# RA's, in the server): certificates compare and hash by their DER.


@functools.lru_cache(maxsize=64)
def _issuer(cert: x509.Certificate) -> bytes:
    """The issuer Name DER of C{cert}, verbatim."""
    issuer, _ = parse_issuer_and_serial(cms.issuer_and_serial_number(cert))
    return issuer


@functools.lru_cache(maxsize=64)
def _key_identifiers(cert: x509.Certificate) -> tuple[bytes | None, bytes]:
    """The subjectKeyIdentifier of C{cert} (None without one) and the SHA-1 of its public key."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = None
    return ski, asn1_x509.Certificate.load(cms.certificate_der(cert)).public_key.sha1


def _recipient_infos(msg: PKIMessage) -> tuple[bytes, list[tuple[RecipientId, cms.KeyTransRecipient]]]:
    if msg.enveloped_data is None:
        raise RequestError(FailInfo.badRequest, "the message has no pkcsPKIEnvelope")
    try:
        recipients, encrypted_content_info = cms.read_enveloped_data(msg.enveloped_data)
    except Exception as e:  # noqa: BLE001
        raise RequestError(FailInfo.badRequest, f"malformed pkcsPKIEnvelope: {one_line(e)}") from None
    return encrypted_content_info, [
        (RecipientId(r.issuer, r.serial, r.subject_key_identifier), r) for r in recipients
    ]


def message_recipients(msg: PKIMessage) -> list[RecipientId]:
    """The KeyTransRecipientInfo recipients of the pkcsPKIEnvelope."""
    return [rid for rid, _ in _recipient_infos(msg)[1]]


@dataclass(frozen=True)
class Decrypted:
    """The decrypted messageData and the algorithms the client chose."""

    content: bytes
    cipher: str
    key_transport: str


def decrypt_message_data(
    msg: PKIMessage, find_key: Callable[[RecipientId], tuple[x509.Certificate, PrivateKey] | None]
) -> Decrypted:
    """Open the pkcsPKIEnvelope with the first recipient C{find_key} resolves."""
    encrypted_content_info, recipients = _recipient_infos(msg)
    for rid, ktri in recipients:
        found = find_key(rid)
        if found is None:
            continue
        _, private_key = found
        try:
            algorithm = asn1_cms.KeyEncryptionAlgorithm.load(ktri.key_encryption_algorithm)
            key_transport, pad = algorithms.key_transport_padding(algorithm)
            spec, iv, ciphertext = cms.read_encrypted_content(encrypted_content_info)
            encrypted_key = ktri.encrypted_key
        except AlgorithmNotSupported as e:
            raise RequestError(FailInfo.badAlg, str(e)) from None
        except Exception as e:  # noqa: BLE001
            raise RequestError(FailInfo.badRequest, f"malformed pkcsPKIEnvelope: {one_line(e)}") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise RequestError(FailInfo.badAlg, "only RSA key transport is supported")
        try:
            key = algorithms.unwrap_key(pad, private_key, encrypted_key)
            content = algorithms.decrypt_content(spec, key, iv, ciphertext)
        except DecryptionFailed:
            raise RequestError(FailInfo.badMessageCheck, "cannot decrypt the envelope") from None
        return Decrypted(content, spec.name, key_transport)
    raise RequestError(FailInfo.badRequest, "message is not encrypted to a certificate of this server")


# -- building -------------------------------------------------------------------------


def build_cert_rep(
    *,
    request: PKIMessage,
    signer_certificate: x509.Certificate,
    signer_key: PrivateKey,
    status: PKIStatus,
    fail_info: FailInfo | None = None,
    fail_info_text: str | None = None,
    certificates: Sequence[x509.Certificate] = (),
    crls: Sequence[bytes] = (),
    cipher: str = "aes128",
    digest: str = "sha256",
    key_transport: str = "rsaes_pkcs1v15",
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """
    A signed CertRep answering C{request}, DER.  SUCCESS envelopes a degenerate
    SignedData of C{certificates} and C{crls} to the request's signer
    certificate; FAILURE (failInfo defaults to badRequest) and PENDING carry an
    empty content.  CAST5 parameters take the form the request's had, or else
    OpenSSL's (see L{algorithms.Cast5Parameters}).
    """
    status = PKIStatus(status)
    attributes = [
        scep_attribute(OID_MESSAGE_TYPE, str(int(MessageType.CertRep))),
        scep_attribute(OID_PKI_STATUS, str(int(status))),
        scep_attribute(OID_TRANSACTION_ID, request.transaction_id),
        scep_attribute(OID_SENDER_NONCE, os.urandom(16)),
        scep_attribute(OID_RECIPIENT_NONCE, request.sender_nonce),
    ]
    # FAILURE and PENDING carry no pkcsPKIEnvelope, but an empty id-data
    # eContent rather than none: OpenSSL's PKCS7_verify (certmonger) refuses
    # a SignedData without content ("no content"), and micromdm and step-ca
    # answer the same way.
    econtent = b""
    if status == PKIStatus.FAILURE:
        failure = FailInfo.badRequest if fail_info is None else FailInfo(fail_info)
        attributes.append(scep_attribute(OID_FAIL_INFO, str(int(failure))))
        if fail_info_text is not None:
            attributes.append(scep_attribute(OID_FAIL_INFO_TEXT, fail_info_text))
    elif status == PKIStatus.SUCCESS:
        econtent = cms.envelope(
            build_degenerate(certificates, crls),
            request.signer_certificate,
            cipher=cipher,
            key_transport=key_transport,
            cast5_parameters=_cast5_parameters(request) if cipher == "cast5" else "iv",
        )
    return cms.sign_content(
        econtent,
        signer_certificate=signer_certificate,
        signer_key=signer_key,
        digest=digest,
        attributes=attributes,
        certificates=[signer_certificate, *extra_certificates],
    )


def _cast5_parameters(request: PKIMessage) -> Cast5Parameters:
    """The form of the CAST5 parameters of the request's envelope; OpenSSL's if it used another cipher."""
    if request.enveloped_data is None:
        return "iv"
    try:
        _, encrypted_content_info = cms.read_enveloped_data(request.enveloped_data)
        algorithm = cms.content_encryption_algorithm(encrypted_content_info)
        if algorithm["algorithm"].dotted != algorithms.CIPHERS["cast5"].oid:
            return "iv"
        return algorithms.read_cast5_parameters(algorithm)[1]
    except Exception:  # noqa: BLE001 - not readable as CAST5: OpenSSL's form
        return "iv"


def build_signed_data(
    content: bytes,
    *,
    signer_certificate: x509.Certificate,
    signer_key: PrivateKey,
    digest: str = "sha256",
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """A SignedData over id-data C{content} (GetNextCACert), DER."""
    return cms.sign_content(
        content,
        signer_certificate=signer_certificate,
        signer_key=signer_key,
        digest=digest,
        certificates=[signer_certificate, *extra_certificates],
    )


def parse_degenerate(data: bytes) -> tuple[list[x509.Certificate], list[bytes]]:
    """The certificates (in order) and CRL DERs of a degenerate SignedData."""
    try:
        certs, crls = cms.read_certificates(cms.load_content_info(data, cms.OID_SIGNED_DATA))
        return [x509.load_der_x509_certificate(c.dump()) for c in certs], crls
    except Exception as e:  # noqa: BLE001
        raise MessageError(f"malformed degenerate PKCS#7: {one_line(e)}") from None


# -- messageData of GetCert, GetCRL and CertPoll ---------------------------------------


class IssuerAndSubject(asn1_core.Sequence):
    """RFC 8894 section 3.3.3: IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }."""

    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    """The IssuerAndSerialNumber DER of C{certificate} (GetCert, GetCRL)."""
    return cms.issuer_and_serial_number(certificate)


def parse_issuer_and_serial(data: bytes) -> tuple[bytes, int]:
    """(issuer Name DER, serial) of an IssuerAndSerialNumber."""
    try:
        isn = asn1_cms.IssuerAndSerialNumber.load(data, strict=True)
        issuer = isn["issuer"]
        issuer.native  # noqa: B018 - force a full parse
        return issuer.dump(), int(isn["serial_number"].native)
    except Exception as e:  # noqa: BLE001
        raise RequestError(FailInfo.badRequest, f"malformed IssuerAndSerialNumber: {one_line(e)}") from None


def issuer_and_subject(issuer_name_der: bytes, subject_name_der: bytes) -> bytes:
    """The IssuerAndSubject DER (CertPoll) of two Name DERs."""
    return IssuerAndSubject(
        {"issuer": asn1_x509.Name.load(issuer_name_der), "subject": asn1_x509.Name.load(subject_name_der)}
    ).dump()


def parse_issuer_and_subject(data: bytes) -> tuple[bytes, bytes]:
    """(issuer Name DER, subject Name DER) of an IssuerAndSubject."""
    try:
        ias = IssuerAndSubject.load(data, strict=True)
        issuer, subject = ias["issuer"], ias["subject"]
        issuer.native, subject.native  # noqa: B018 - force a full parse
        return issuer.dump(), subject.dump()
    except Exception as e:  # noqa: BLE001
        raise RequestError(FailInfo.badRequest, f"malformed IssuerAndSubject: {one_line(e)}") from None
