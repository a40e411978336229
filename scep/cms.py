"""
CMS (RFC 5652) for the SCEP codec: SignedData and EnvelopedData, no SCEP
semantics, no I/O.

This module builds SignedData, EnvelopedData and degenerate certs-only
SignedData (in DER or, for the client side, in the BER that Apple and jscep
send), reads a SignedData into a L{SignedContent} and verifies it, and reads
the recipients and encrypted content of an EnvelopedData.  Reading walks the
values L{scep.der} finds, which costs far less than asn1crypto's objects;
the algorithms and their primitives are in L{scep.algorithms}.
L{scep.message} builds the SCEP layer on top.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding

from scep.algorithms import (
    OID_RSA_ENCRYPTION,
    SIGNATURE_OIDS_BY_NAME,
    AlgorithmNotSupported,
    Cast5Parameters,
    CipherSpec,
    content_cipher,
    digest_name,
    digest_spec,
    encrypt_content,
    signature_algorithm_name,
    wrap_key,
)
from scep.der import (
    TLV,
    CMSError,
    algorithm_identifier,
    algorithm_oid,
    ber_indefinite,
    ber_octet_string,
    ber_to_der,
    der_oid,
    der_tlv,
    dotted,
    expect,
    integer,
    octets,
    values,
)

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"

_OID_DATA_DER = der_oid(OID_DATA)


class SignatureInvalid(CMSError):
    """The messageDigest or the signature does not match."""


# -- SignedData and EnvelopedData building -----------------------------------------


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER of a certificate."""
    return cert.public_bytes(Encoding.DER)


def issuer_and_serial_number(cert: x509.Certificate) -> bytes:
    """The IssuerAndSerialNumber DER of a certificate, its issuer bytes verbatim."""
    return _issuer_and_serial_number(certificate_der(cert))


@functools.lru_cache(maxsize=256)
def _issuer_and_serial_number(cert_der: bytes) -> bytes:
    issuer, serial = _issuer_and_serial(cert_der)
    return der_tlv(0x30, issuer.encoded + serial.encoded)


def _issuer_and_serial(cert_der: bytes) -> tuple[TLV, TLV]:
    """The issuer Name and the serial number INTEGER of a certificate, as encoded in it."""
    tbs = values(values(values(cert_der, 1)[0].contents, 1)[0].contents, 4)
    if tbs[0].class_ == 2 and tbs[0].tag == 0:  # [0] version
        tbs = tbs[1:]
    return expect(tbs[2], 16, "certificate"), expect(tbs[0], 2, "certificate")


def _signed_data(
    version: int,
    digest_algorithms: bytes,
    econtent: bytes | None,
    certificates: Sequence[bytes],
    crls: Sequence[bytes],
    signer_infos: bytes,
    ber: bool,
) -> bytes:
    head = der_tlv(0x02, bytes((version,))) + der_tlv(0x31, digest_algorithms)
    tail = b""
    if certificates:
        tail += der_tlv(0xA0, b"".join(certificates))  # order kept, not DER-sorted
    if crls:
        tail += der_tlv(0xA1, b"".join(crls))
    tail += der_tlv(0x31, signer_infos)
    if ber:
        inner = ber_indefinite(0xA0, ber_octet_string(econtent)) if econtent is not None else b""
        encap = ber_indefinite(0x30, _OID_DATA_DER, inner)
        body = ber_indefinite(0x30, head, encap, tail)
        return ber_indefinite(0x30, der_oid(OID_SIGNED_DATA), ber_indefinite(0xA0, body))
    inner = der_tlv(0xA0, der_tlv(0x04, econtent)) if econtent is not None else b""
    encap = der_tlv(0x30, _OID_DATA_DER + inner)
    body = der_tlv(0x30, head + encap + tail)
    return der_tlv(0x30, der_oid(OID_SIGNED_DATA) + der_tlv(0xA0, body))


def degenerate(certificates: Sequence[x509.Certificate], crls: Sequence[bytes] = ()) -> bytes:
    """A certs-only SignedData ContentInfo (no signers, no content), DER, order kept."""
    return _signed_data(1, b"", None, [certificate_der(c) for c in certificates], list(crls), b"", False)


def attribute(oid: str, value_der: bytes) -> bytes:
    """One Attribute DER with a single value."""
    return der_tlv(0x30, der_oid(oid) + der_tlv(0x31, value_der))


def _time(when: datetime) -> bytes:
    when = when.astimezone(UTC)
    if 1950 <= when.year < 2050:  # RFC 5652 section 11.3: UTCTime in this range
        return der_tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return der_tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def sign_content(
    econtent: bytes | None,
    *,
    signer_certificate: x509.Certificate,
    signer_key: rsa.RSAPrivateKey,
    digest: str = "sha256",
    attributes: Sequence[bytes] = (),
    signing_time: datetime | None | Literal["omit"] = None,
    signature_algorithm: str = "rsaEncryption",
    certificates: Sequence[x509.Certificate] = (),
    ber: bool = False,
    subject_key_identifier: bytes | None = None,
    sort_attributes: bool = True,
) -> bytes:
    """
    A ContentInfo(SignedData) over id-data C{econtent} (absent when None, then
    the messageDigest is that of no octets), signed with RSA PKCS#1 v1.5.

    Signed attributes (DER-sorted): contentType, messageDigest, signingTime
    (now unless given or 'omit') and the L{attribute} DERs C{attributes}.
    C{signature_algorithm} is 'rsaEncryption' or any 'xWithRSAEncryption',
    which becomes the OID matching C{digest}.  C{certificates} are kept in order.
    A C{subject_key_identifier} becomes the sid (version 3) instead of the
    issuerAndSerialNumber; C{sort_attributes} False imitates clients that sign
    the attributes in the order they send them instead of DER order.
    """
    spec = digest_spec(digest)
    digest_value = hashlib.new(spec.name, econtent or b"").digest()
    attrs = [
        attribute(OID_CONTENT_TYPE, _OID_DATA_DER),
        attribute(OID_MESSAGE_DIGEST, der_tlv(0x04, digest_value)),
        *attributes,
    ]
    if signing_time != "omit":
        attrs.append(attribute(OID_SIGNING_TIME, _time(signing_time or datetime.now(UTC))))
    if sort_attributes:
        attrs.sort()
    signed_attrs = b"".join(attrs)
    signature = signer_key.sign(der_tlv(0x31, signed_attrs), PKCS1v15(), spec.hash())
    if signature_algorithm == "rsaEncryption":
        sig_oid = OID_RSA_ENCRYPTION
    elif signature_algorithm.endswith("WithRSAEncryption"):
        sig_oid = spec.rsa_oid
    else:
        sig_oid = SIGNATURE_OIDS_BY_NAME[signature_algorithm]
    digest_alg = algorithm_identifier(spec.oid)
    if subject_key_identifier is None:
        version, sid = 1, issuer_and_serial_number(signer_certificate)
    else:
        version, sid = 3, der_tlv(0x80, subject_key_identifier)
    signer_info = der_tlv(
        0x30,
        der_tlv(0x02, bytes((version,)))
        + sid
        + digest_alg
        + der_tlv(0xA0, signed_attrs)
        + algorithm_identifier(sig_oid)
        + der_tlv(0x04, signature),
    )
    certs = [certificate_der(c) for c in certificates]
    return _signed_data(version, digest_alg, econtent, certs, (), signer_info, ber)


def envelope(
    content: bytes,
    recipient_certificate: x509.Certificate,
    *,
    cipher: str = "aes128",
    key_transport: str = "rsaes_pkcs1v15",
    oaep_digest: str = "sha1",
    cast5_parameters: Cast5Parameters = "iv",
    ber: bool = False,
) -> bytes:
    """
    A ContentInfo(EnvelopedData) of id-data C{content} for one RSA recipient;
    CAST5 parameters in the form C{cast5_parameters} says.
    """
    public_key = recipient_certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmNotSupported("the recipient certificate has no RSA key")
    key, content_alg, ciphertext = encrypt_content(cipher, content, cast5_parameters=cast5_parameters)
    key_alg, encrypted_key = wrap_key(key_transport, public_key, key, oaep_digest=oaep_digest)
    ktri = b"\x02\x01\x00" + issuer_and_serial_number(recipient_certificate) + key_alg
    recipients = der_tlv(0x31, der_tlv(0x30, ktri + der_tlv(0x04, encrypted_key)))
    head = _OID_DATA_DER + content_alg
    if ber:
        eci = ber_indefinite(0x30, head, ber_octet_string(ciphertext, tag=0xA0))
        body = ber_indefinite(0x30, b"\x02\x01\x00", recipients, eci)
        return ber_indefinite(0x30, der_oid(OID_ENVELOPED_DATA), ber_indefinite(0xA0, body))
    eci = der_tlv(0x30, head + der_tlv(0x80, ciphertext))
    body = der_tlv(0x30, b"\x02\x01\x00" + recipients + eci)
    return der_tlv(0x30, der_oid(OID_ENVELOPED_DATA) + der_tlv(0xA0, body))


# -- EnvelopedData reading ---------------------------------------------------------------


@dataclass(frozen=True)
class KeyTransRecipient:
    """
    A KeyTransRecipientInfo as received: its rid (issuer and serial, or
    subjectKeyIdentifier), its keyEncryptionAlgorithm DER and encryptedKey.
    """

    issuer: bytes | None
    serial: int | None
    subject_key_identifier: bytes | None
    key_encryption_algorithm: bytes
    encrypted_key: bytes


def read_enveloped_data(data: bytes) -> tuple[list[KeyTransRecipient], bytes]:
    """
    The key transport recipients of a ContentInfo(EnvelopedData) and its
    EncryptedContentInfo, still encoded (see L{read_encrypted_content}).
    """
    fields = _content(data, OID_ENVELOPED_DATA)[1:]  # after the version
    if fields[0].class_ == 2 and fields[0].tag == 0:  # [0] originatorInfo
        fields = fields[1:]
    recipients = []
    for info in values(expect(fields[0], 17, "recipientInfos").contents):
        if info.class_ == 2 and 1 <= info.tag <= 4:  # kari, kekri, pwri, ori
            continue
        _, rid, algorithm, encrypted_key = values(expect(info, 16, "recipientInfo").contents)
        issuer = serial = ski = None
        if rid.class_ == 0 and rid.tag == 16:  # issuerAndSerialNumber
            name, serial_number = values(rid.contents)
            issuer, serial = expect(name, 16, "rid").encoded, integer(expect(serial_number, 2, "rid"))
        else:
            ski = octets(expect(rid, 0, "rid", class_=2))
        recipients.append(
            KeyTransRecipient(
                issuer, serial, ski, expect(algorithm, 16, "keyEncryptionAlgorithm").encoded,
                octets(expect(encrypted_key, 4, "encryptedKey")),
            )
        )  # fmt: skip
    return recipients, expect(fields[1], 16, "encryptedContentInfo").encoded


def read_encrypted_content(encrypted_content_info: bytes) -> tuple[CipherSpec, bytes, bytes]:
    """
    The cipher, IV and encryptedContent octets of an EncryptedContentInfo.
    The octets come primitive, or BER constructed of chunks: Go's pkcs7
    (micromdm's scepclient) sends a constructed [0] around one OCTET STRING.
    """
    _, algorithm, *rest = values(values(encrypted_content_info)[0].contents)
    spec, iv = content_cipher(asn1_algos.EncryptionAlgorithm.load(algorithm.encoded))
    ciphertext = b""
    for value in rest:
        if value.class_ == 2 and value.tag == 0:
            ciphertext = octets(value)
            break
    return spec, iv, ciphertext


def content_encryption_algorithm(encrypted_content_info: bytes) -> asn1_algos.EncryptionAlgorithm:
    """The contentEncryptionAlgorithm of an EncryptedContentInfo."""
    return asn1_algos.EncryptionAlgorithm.load(values(values(encrypted_content_info)[0].contents)[1].encoded)


# -- SignedData reading and verification ---------------------------------------------


@dataclass(frozen=True)
class SignedContent:
    """What L{read_signed_data} found: enough to verify the signature later."""

    econtent: bytes | None
    econtent_type: str
    certificates: tuple[x509.Certificate, ...]
    signer_certificate: x509.Certificate
    digest_algorithm: str
    signature_algorithm: str
    signed_attrs: bytes
    attributes: dict[str, bytes]
    """The encoding of the first value of each signed attribute, by dotted OID."""
    signature: bytes
    signing_time: datetime | None


def load_content_info(data: bytes, expected: str) -> Any:
    """The content of a ContentInfo of type C{expected} (dotted OID), DER or BER."""
    info = asn1_cms.ContentInfo.load(data)
    _check_content_type(info["content_type"].dotted, expected)
    return info["content"]


def _check_content_type(content_type: str, expected: str) -> None:
    if content_type != expected:
        name = asn1_cms.ContentType._map.get(content_type, content_type)
        want = asn1_cms.ContentType._map.get(expected, expected)
        raise CMSError(f"content type is {name}, not {want}")


def read_certificates(signed_data: Any) -> tuple[list[Any], list[bytes]]:
    """The asn1crypto certificates and the CRL DERs of a SignedData."""
    certs = [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]
    crls = [c.chosen.dump() for c in signed_data["crls"] or () if c.name == "crl"]
    return certs, crls


def _content(data: bytes, expected: str) -> list[TLV]:
    """The fields of the content of a ContentInfo of type C{expected}, like L{load_content_info}."""
    info = values(expect(values(data)[0], 16, "ContentInfo").contents)
    _check_content_type(dotted(expect(info[0], 6, "ContentInfo").encoded), expected)
    content = values(expect(info[1], 0, "ContentInfo", class_=2).contents)[0]
    return values(expect(content, 16, "ContentInfo").contents)


def _find_signer(sid: TLV, certs: list[bytes]) -> int:
    """The index of the certificate the sid of a signerInfo names."""
    if sid.class_ == 0 and sid.tag == 16:  # issuerAndSerialNumber
        issuer, serial_number = values(sid.contents)
        serial = integer(expect(serial_number, 2, "sid"))
        for index, cert in enumerate(certs):
            cert_issuer, cert_serial = _issuer_and_serial(cert)
            if integer(cert_serial) == serial and (
                cert_issuer.encoded == issuer.encoded
                or asn1_x509.Name.load(cert_issuer.encoded) == asn1_x509.Name.load(issuer.encoded)
            ):
                return index
    else:
        ski = octets(expect(sid, 0, "sid", class_=2))
        for index, cert in enumerate(certs):
            parsed = asn1_x509.Certificate.load(cert)
            if ski in (parsed.key_identifier, parsed.public_key.sha1):
                return index
    raise CMSError("signer certificate not found in the message")


def read_signed_data(data: bytes) -> SignedContent:
    """Read a ContentInfo(SignedData) with one signerInfo; does not verify it."""
    fields = _content(data, OID_SIGNED_DATA)
    encap = values(expect(fields[2], 16, "encapContentInfo").contents)
    econtent = None
    if len(encap) > 1:  # [0] EXPLICIT OCTET STRING
        explicit = expect(encap[1], 0, "eContent", class_=2)
        econtent = octets(expect(values(explicit.contents)[0], 4, "eContent"))
    certs = [
        c.encoded
        for field in fields[3:-1]
        if field.class_ == 2 and field.tag == 0  # [0] certificates, not [1] crls
        for c in values(field.contents)
        if c.class_ == 0 and c.tag == 16  # a Certificate, not another CertificateChoices
    ]
    signer_infos = values(expect(fields[-1], 17, "signerInfos").contents)
    if not signer_infos:
        raise CMSError("no signerInfo")
    signer_info = values(expect(signer_infos[0], 16, "signerInfo").contents)
    signer = _find_signer(signer_info[1], certs)
    raw_attrs = signer_info[3]
    if raw_attrs.class_ != 2 or raw_attrs.tag != 0:
        raise CMSError("no signed attributes")
    signed_attrs = b"\x31" + raw_attrs.encoded[1:]
    attributes: dict[str, bytes] = {}
    for attr in values(raw_attrs.contents):
        attr_type, attr_values = values(expect(attr, 16, "signed attribute").contents)
        oid = dotted(expect(attr_type, 6, "signed attribute").encoded)
        first = values(expect(attr_values, 17, "signed attribute").contents, 1)
        if first:
            attributes.setdefault(oid, first[0].encoded)
    signing_time = None
    if OID_SIGNING_TIME in attributes:
        try:
            signing_time = asn1_cms.Time.load(attributes[OID_SIGNING_TIME]).native
        except ValueError:
            signing_time = None
    loaded = tuple(x509.load_der_x509_certificate(c) for c in certs)
    return SignedContent(
        econtent=econtent,
        econtent_type=dotted(expect(encap[0], 6, "encapContentInfo").encoded),
        certificates=loaded,
        signer_certificate=loaded[signer],
        digest_algorithm=digest_name(algorithm_oid(signer_info[2], "digestAlgorithm")),
        signature_algorithm=signature_algorithm_name(algorithm_oid(signer_info[4], "signatureAlgorithm")),
        signed_attrs=signed_attrs,
        attributes=attributes,
        signature=octets(expect(signer_info[5], 4, "signature")),
        signing_time=signing_time,
    )


def attribute_value(signed: SignedContent, oid: str) -> Any:
    """The native value of the first value of a signed attribute, or None."""
    value = signed.attributes.get(oid)
    return None if value is None else asn1_core.load(value).native


def verify_signed(signed: SignedContent) -> None:
    """
    Check the messageDigest against the eContent octets and the RSA PKCS#1 v1.5
    signature over the signed attributes (as received, then re-encoded as DER).
    """
    spec = digest_spec(signed.digest_algorithm)
    if signed.signature_algorithm not in SIGNATURE_OIDS_BY_NAME:
        raise AlgorithmNotSupported(f"signature algorithm {signed.signature_algorithm} not supported")
    public_key = signed.signer_certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmNotSupported("only RSA signer keys are supported")
    content_type = attribute_value(signed, OID_CONTENT_TYPE)
    if content_type is not None and asn1_cms.ContentType.unmap(content_type) != signed.econtent_type:
        raise SignatureInvalid("contentType attribute does not match the content")
    expected = attribute_value(signed, OID_MESSAGE_DIGEST)
    actual = hashlib.new(spec.name, signed.econtent or b"").digest()
    if not isinstance(expected, bytes) or not hmac.compare_digest(expected, actual):
        raise SignatureInvalid("messageDigest does not match the content")
    for candidate in _signed_attrs_encodings(signed.signed_attrs):
        try:
            public_key.verify(signed.signature, candidate, PKCS1v15(), spec.hash())
            return
        except InvalidSignature:
            continue
    raise SignatureInvalid("signature does not verify")


def _signed_attrs_encodings(original: bytes) -> Iterator[bytes]:
    """The signed attributes as received, then (only if asked) re-encoded as DER."""
    yield original
    try:
        der = ber_to_der(original)
    except CMSError:
        return
    if der != original:
        yield der
