"""
Throwaway keys, certificates and CSRs for the tests, made at test time, and
L{Requester}, a SCEP client made of our codec's client side.

RSA key generation dominates test time, so L{cached_key} keeps a few keys per
process; use L{make_key} when a fresh key matters.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from scep import clientmessage, message

_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def make_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def cached_key(label: str) -> rsa.RSAPrivateKey:
    """The RSA-2048 key called C{label}, generated once per process."""
    if label not in _KEYS:
        _KEYS[label] = make_key()
    return _KEYS[label]


def name(common_name: str) -> x509.Name:
    """A Name with an organisation and the given common name."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SCEP Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(key: rsa.RSAPrivateKey, common_name: str = "Test CA") -> x509.Certificate:
    """A self-signed CA certificate (keyCertSign, cRLSign, digitalSignature, keyEncipherment)."""
    subject = name(common_name)
    return (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=True, key_cert_sign=True),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def make_certificate(
    key: rsa.RSAPrivateKey,
    common_name: str,
    ca_certificate: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    digital_signature: bool = True,
    key_encipherment: bool = True,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A leaf certificate for C{key} signed by the CA, with the given key usage and SANs."""
    builder = (
        _builder(name(common_name), ca_certificate.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=digital_signature, key_encipherment=key_encipherment),
            critical=True,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def make_self_signed(key: rsa.RSAPrivateKey, common_name: str = "client") -> x509.Certificate:
    """A SCEP client's throwaway self-signed certificate (digitalSignature, keyEncipherment)."""
    subject = name(common_name)
    return (
        _builder(subject, subject, key.public_key())
        .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def make_csr(
    key: rsa.RSAPrivateKey,
    common_name: str = "client",
    challenge_password: str | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR for C{key}, with a challengePassword attribute when given."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(name(common_name))
    if challenge_password is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge_password.encode("utf-8"))
    return builder.sign(key, hashes.SHA256())


def make_crl(
    ca_certificate: x509.Certificate, ca_key: rsa.RSAPrivateKey, revoked: tuple[int, ...] = ()
) -> bytes:
    """A DER CRL of the CA revoking the given serials."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=1))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(Encoding.DER)


def der(value: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """The DER of a certificate or CSR."""
    return value.public_bytes(Encoding.DER)


def broken_pop(csr: x509.CertificateSigningRequest) -> bytes:
    """The DER of C{csr} with its signature damaged: it fails proof of possession."""
    data = bytearray(der(csr))
    data[-1] ^= 0x01
    return bytes(data)


class Requester:
    """
    A SCEP client for the tests: a key, the certificate it signs its
    pkiMessages with (a self-signed one unless given), and our codec's
    client side to build requests and read the CertReps.
    """

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate | None = None,
                 common_name: str = "client") -> None:
        self.key = key
        self.certificate = certificate or make_self_signed(key, common_name)

    def csr(self, key: rsa.RSAPrivateKey | None = None, challenge: str | None = None) -> bytes:
        """A PKCS#10 DER for C{key} (default: ours) with this client's subject."""
        subject = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return der(make_csr(key or self.key, str(subject), challenge_password=challenge))

    def message(self, message_type: int, message_data: bytes | None, recipient: x509.Certificate, *,
                transaction_id: str | None = None, **options: Any) -> bytes:
        """A signed pkiMessage; C{options} go to L{clientmessage.build_pki_message}."""
        return clientmessage.build_pki_message(
            message_type=message_type, message_data=message_data, recipient_certificate=recipient,
            signer_certificate=self.certificate, signer_key=self.key,
            transaction_id=transaction_id or os.urandom(8).hex(), **options)

    def read(self, reply: bytes) -> clientmessage.CertRep:
        """Verify and open a CertRep answering one of our messages."""
        return clientmessage.parse_cert_rep(reply, recipient_key=self.key, recipient_certificate=self.certificate)


def poll_data(issuer: x509.Certificate, subject: x509.Name) -> bytes:
    """The IssuerAndSubject of a CertPoll for C{subject} to the CA C{issuer}."""
    return message.issuer_and_subject(issuer.subject.public_bytes(), subject.public_bytes())
