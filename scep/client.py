"""
A SCEP client over HTTP, built on the codec: what the tests and the
benchmark use to speak to a server the way a device does.

Synchronous (C{urllib}) on purpose: a test or a load generator calls it in
a plain loop or from threads.  Every message type, cipher and digest the
codec builds can be sent, by POST or by GET.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AttributeOID, NameOID

from scep import clientmessage, message
from scep.clientmessage import CertRep
from scep.message import MessageType


class HTTPFailure(Exception):
    """The server answered with an HTTP error instead of a SCEP message."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}")
        self.status = status
        self.body = body
        self.content_type = content_type


def transaction_id_for(key: Any) -> str:
    """Like sscep: the hex MD5 of the public key, upper case."""
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.md5(spki, usedforsecurity=False).hexdigest().upper()


def self_signed(key: Any, subject: x509.Name) -> x509.Certificate:
    """The throwaway certificate a client signs its first request with."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )


def make_csr(key: Any, common_name: str, *, challenge: str | None = None,
             sans: list[x509.GeneralName] | None = None,
             extensions: list[x509.ExtensionType] | None = None,
             subject: x509.Name | None = None) -> x509.CertificateSigningRequest:
    """A PKCS#10 request with an optional challengePassword and SANs."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode("utf-8"))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


@dataclass
class Client:
    """
    A device talking to one SCEP URL (C{http://host:port/scep/<endpoint>}).

    C{ra} is the certificate requests are encrypted to; L{get_ca} fills it.
    """

    url: str
    cipher: str = "aes128"
    digest: str = "sha256"
    method: str = "POST"
    ra: x509.Certificate | None = None
    timeout: float = 30.0

    def _http(self, operation: str, data: bytes | None = None, message_param: bytes | None = None,
              extra: dict[str, str] | None = None) -> tuple[str, bytes]:
        query = {"operation": operation, **(extra or {})}
        target = self.url + "?" + urllib.parse.urlencode(query)
        if message_param is not None:
            target += "&message=" + urllib.parse.quote(base64.b64encode(message_param).decode("ascii"), safe="")
        request = urllib.request.Request(target, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/x-pki-message")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as e:
            raise HTTPFailure(e.code, e.read(), e.headers.get("Content-Type", "")) from None

    def get_ca_caps(self) -> list[str]:
        return self._http("GetCACaps")[1].decode("ascii").split()

    def get_ca(self) -> list[x509.Certificate]:
        """
        GetCACert; remembers the RA (the certificate with keyEncipherment,
        or the one CA certificate of a server without an RA).
        """
        content_type, body = self._http("GetCACert")
        if content_type.startswith("application/x-x509-ca-cert"):
            self.ra = x509.load_der_x509_certificate(body)
            return [self.ra]
        certificates, _ = message.parse_degenerate(body)
        for certificate in certificates:
            try:
                usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if usage.key_encipherment:
                self.ra = certificate
                break
        return certificates

    def get_next_ca(self) -> tuple[list[x509.Certificate], x509.Certificate]:
        """GetNextCACert: the next certificates and who signed them."""
        _, body = self._http("GetNextCACert")
        content, signer = clientmessage.verify_signed_data(body)
        return message.parse_degenerate(content)[0], signer

    def send(self, data: bytes, extra: dict[str, str] | None = None) -> bytes:
        """One PKIOperation, by POST or GET; the raw CertRep."""
        if self.method == "GET":
            return self._http("PKIOperation", message_param=data, extra=extra)[1]
        return self._http("PKIOperation", data=data, extra=extra)[1]

    def request(self, message_type: int, message_data: bytes | None, *, key: Any,
                certificate: x509.Certificate, transaction_id: str,
                extra: dict[str, str] | None = None, **options: Any) -> CertRep:
        """Build, send and read back one pkiMessage signed by C{certificate}."""
        if self.ra is None:
            self.get_ca()
        options.setdefault("cipher", self.cipher)
        options.setdefault("digest", self.digest)
        data = clientmessage.build_pki_message(
            message_type=message_type, message_data=message_data, recipient_certificate=self.ra,
            signer_certificate=certificate, signer_key=key, transaction_id=transaction_id, **options)
        reply = self.send(data, extra)
        return clientmessage.parse_cert_rep(reply, recipient_key=key, recipient_certificate=certificate)

    def enroll(self, key: Any, csr: x509.CertificateSigningRequest, *,
               signer: tuple[Any, x509.Certificate] | None = None, transaction_id: str | None = None,
               message_type: int = MessageType.PKCSReq, extra: dict[str, str] | None = None,
               **options: Any) -> CertRep:
        """
        PKCSReq (or RenewalReq) for C{csr}; signed with a self-signed
        certificate over C{key}, or with C{signer} (key, certificate) to renew.
        """
        signer_key, signer_cert = signer or (key, self_signed(key, csr.subject))
        return self.request(message_type, csr.public_bytes(serialization.Encoding.DER), key=signer_key,
                            certificate=signer_cert, transaction_id=transaction_id or transaction_id_for(key),
                            extra=extra, **options)

    def poll(self, key: Any, certificate: x509.Certificate, issuer: x509.Name, subject: x509.Name,
             transaction_id: str, **options: Any) -> CertRep:
        """CertPoll (GetCertInitial) for a pending transaction."""
        data = message.issuer_and_subject(issuer.public_bytes(), subject.public_bytes())
        return self.request(MessageType.CertPoll, data, key=key, certificate=certificate,
                            transaction_id=transaction_id, **options)

    def get_cert(self, key: Any, certificate: x509.Certificate, wanted: x509.Certificate,
                 **options: Any) -> CertRep:
        return self.request(MessageType.GetCert, message.issuer_and_serial(wanted), key=key,
                            certificate=certificate, transaction_id=transaction_id_for(key) + "-getcert",
                            **options)

    def get_crl(self, key: Any, certificate: x509.Certificate, of: x509.Certificate, **options: Any) -> CertRep:
        return self.request(MessageType.GetCRL, message.issuer_and_serial(of), key=key,
                            certificate=certificate, transaction_id=transaction_id_for(key) + "-getcrl",
                            **options)
