"""
The client's side of the codec: what a SCEP client sends (any pkiMessage,
in DER or BER, with any algorithm the server side reads) and how it reads
the CertRep back.  Pure, like L{scep.message}: bytes in, objects out.  The
tests, C{scep.client} and the benchmark build their requests with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography import x509

from scep import cms
from scep.algorithms import Cast5Parameters
from scep.message import (
    OID_MESSAGE_TYPE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    FailInfo,
    MessageError,
    PKIStatus,
    PrivateKey,
    RecipientId,
    RequestError,
    decrypt_message_data,
    one_line,
    parse_degenerate,
    parse_pki_message,
    scep_attribute,
    verify_pki_message,
)


def build_pki_message(
    *,
    message_type: int,
    message_data: bytes | None,
    recipient_certificate: x509.Certificate | None,
    signer_certificate: x509.Certificate,
    signer_key: PrivateKey,
    transaction_id: str,
    sender_nonce: bytes | None = None,
    cipher: str = "aes128",
    digest: str = "sha256",
    key_transport: str = "rsaes_pkcs1v15",
    signing_time: datetime | None | Literal["omit"] = None,
    signature_algorithm: str = "rsaEncryption",
    ber: bool = False,
    extra_certificates: Sequence[x509.Certificate] = (),
    envelope: bytes | None = None,
    oaep_digest: str = "sha1",
    cast5_parameters: Cast5Parameters = "iv",
) -> bytes:
    """
    What a SCEP client sends.  C{message_data} (PKCS#10, IssuerAndSerialNumber
    or IssuerAndSubject DER) is enveloped to C{recipient_certificate}; None
    omits the envelope, and C{envelope} puts given bytes in its place.
    C{ber} sends indefinite lengths and chunked OCTET STRINGs, as Apple and
    jscep do.  C{signing_time} None means now, 'omit' leaves it out.
    C{cast5_parameters} is the form of CAST5 parameters.
    """
    if envelope is None and message_data is not None:
        if recipient_certificate is None:
            raise ValueError("recipient_certificate is needed to envelope message_data")
        envelope = cms.envelope(
            message_data,
            recipient_certificate,
            cipher=cipher,
            key_transport=key_transport,
            oaep_digest=oaep_digest,
            cast5_parameters=cast5_parameters,
            ber=ber,
        )
    attributes = [
        scep_attribute(OID_MESSAGE_TYPE, str(int(message_type))),
        scep_attribute(OID_TRANSACTION_ID, transaction_id),
        scep_attribute(OID_SENDER_NONCE, os.urandom(16) if sender_nonce is None else sender_nonce),
    ]
    return cms.sign_content(
        envelope,
        signer_certificate=signer_certificate,
        signer_key=signer_key,
        digest=digest,
        attributes=attributes,
        signing_time=signing_time,
        signature_algorithm=signature_algorithm,
        certificates=[signer_certificate, *extra_certificates],
        ber=ber,
    )


def verify_signed_data(data: bytes) -> tuple[bytes, x509.Certificate]:
    """The content and signer of a SignedData signed by its embedded signer."""
    try:
        signed = cms.read_signed_data(data)
        cms.verify_signed(signed)
    except Exception as e:  # noqa: BLE001
        raise MessageError(one_line(e)) from None
    return signed.econtent or b"", signed.signer_certificate


@dataclass(frozen=True)
class CertRep:
    """A verified and decrypted CertRep, as a client sees it."""

    status: PKIStatus
    fail_info: FailInfo | None
    fail_info_text: str | None
    transaction_id: str
    sender_nonce: bytes
    recipient_nonce: bytes | None
    certificates: list[x509.Certificate]
    crls: list[bytes]
    signer_certificate: x509.Certificate
    cipher: str | None
    digest: str
    message_type: int


def parse_cert_rep(
    data: bytes, *, recipient_key: PrivateKey, recipient_certificate: x509.Certificate
) -> CertRep:
    """Verify a CertRep, decrypt a SUCCESS envelope and read the certificates."""
    msg = parse_pki_message(data)
    try:
        verify_pki_message(msg)
        status = PKIStatus(-1 if msg.pki_status is None else msg.pki_status)
        fail_info = None if msg.fail_info is None else FailInfo(msg.fail_info)
    except (RequestError, ValueError) as e:
        raise MessageError(f"bad CertRep: {e}") from None
    certificates: list[x509.Certificate] = []
    crls: list[bytes] = []
    cipher = None
    if status == PKIStatus.SUCCESS:
        mine = RecipientId.for_certificate(recipient_certificate)

        def find_key(rid: RecipientId) -> tuple[x509.Certificate, PrivateKey] | None:
            if rid == mine or rid.matches(recipient_certificate):
                return recipient_certificate, recipient_key
            return None

        try:
            decrypted = decrypt_message_data(msg, find_key)
        except RequestError as e:
            raise MessageError(f"bad CertRep: {e}") from None
        cipher = decrypted.cipher
        certificates, crls = parse_degenerate(decrypted.content)
    return CertRep(
        status=status,
        fail_info=fail_info,
        fail_info_text=msg.fail_info_text,
        transaction_id=msg.transaction_id,
        sender_nonce=msg.sender_nonce,
        recipient_nonce=msg.recipient_nonce,
        certificates=certificates,
        crls=crls,
        signer_certificate=msg.signer_certificate,
        cipher=cipher,
        digest=msg.digest_algorithm,
        message_type=msg.message_type,
    )
