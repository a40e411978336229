"""
Tests for L{scep.message}: round trips client to server and back, CertRep
contents, acceptance by the OpenSSL command line, and bad input.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from datetime import UTC, datetime
from functools import cache

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from twisted.trial.unittest import SkipTest, TestCase

from scep import algorithms, cms
from scep import clientmessage as cm
from scep import message as m
from scep.der import der_oid, der_tlv
from tests import certs

CIPHERS = ("des", "3des", "aes128", "aes192", "aes256", "blowfish", "cast5")
DIGESTS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
KEY_TRANSPORTS = ("rsaes_pkcs1v15", "rsaes_oaep")


@cache
def pki() -> dict:
    """A CA, an RA, a client with its self-signed certificate and CSR, a stranger."""
    ca_key, client_key, ra_key = certs.cached_key("ca"), certs.cached_key("client"), certs.cached_key("ra")
    ca = certs.make_ca(ca_key)
    csr = certs.make_csr(client_key, "device-1", challenge_password="s3cret")
    return {
        "ca_key": ca_key,
        "ca": ca,
        "ra_key": ra_key,
        "ra": certs.make_certificate(ra_key, "RA", ca, ca_key),
        "client_key": client_key,
        "client": certs.make_self_signed(client_key, "device-1"),
        "csr": csr.public_bytes(Encoding.DER),
        "issued": certs.make_certificate(client_key, "device-1", ca, ca_key, key_encipherment=False),
        "stranger": certs.make_ca(certs.cached_key("stranger"), "Stranger CA"),
        "crl": certs.make_crl(ca, ca_key, (1, 2)),
    }


def request(**kwargs) -> bytes:
    """A PKCSReq from the client to the RA, with overridable arguments."""
    p = pki()
    args = {
        "message_type": m.MessageType.PKCSReq,
        "message_data": p["csr"],
        "recipient_certificate": p["ra"],
        "signer_certificate": p["client"],
        "signer_key": p["client_key"],
        "transaction_id": "4F1C2D5E",
    }
    args.update(kwargs)
    return cm.build_pki_message(**args)


def ra_key_finder(rid: m.RecipientId):
    """Resolve the RA certificate and key."""
    p = pki()
    return (p["ra"], p["ra_key"]) if rid.matches(p["ra"]) else None


def cert_rep(status: m.PKIStatus, **kwargs) -> tuple[m.PKIMessage, bytes]:
    """A request and the RA's CertRep to it."""
    p = pki()
    req = m.parse_pki_message(request())
    args = {"certificates": [p["issued"]]} if status == m.PKIStatus.SUCCESS else {}
    args.update(kwargs)
    return req, m.build_cert_rep(
        request=req, signer_certificate=p["ra"], signer_key=p["ra_key"], status=status, **args
    )


class RoundTripTests(TestCase):
    """Client to server: build, parse, verify, decrypt."""

    def check(self, cipher: str, **options) -> None:
        p = pki()
        for digest in DIGESTS:
            for key_transport in KEY_TRANSPORTS:
                for ber in (False, True):
                    combo = f"{cipher}/{digest}/{key_transport}/ber={ber}"
                    data = request(
                        cipher=cipher, digest=digest, key_transport=key_transport, ber=ber, **options
                    )
                    self.assertEqual(data[:2] == b"\x30\x80", ber, combo)
                    msg = m.parse_pki_message(data)
                    m.verify_pki_message(msg)
                    self.assertEqual(msg.digest_algorithm, digest, combo)
                    self.assertEqual(msg.signer_certificate, p["client"], combo)
                    decrypted = m.decrypt_message_data(msg, ra_key_finder)
                    self.assertEqual(decrypted.content, p["csr"], combo)
                    self.assertEqual(decrypted.cipher, cipher, combo)
                    self.assertEqual(decrypted.key_transport, key_transport, combo)

    def test_des(self) -> None:
        """Single DES round trips with every digest, key transport and encoding."""
        self.check("des")

    def test_3des(self) -> None:
        """3DES round trips with every digest, key transport and encoding."""
        self.check("3des")

    def test_aes128(self) -> None:
        """AES-128 round trips with every digest, key transport and encoding."""
        self.check("aes128")

    def test_aes192(self) -> None:
        """AES-192 round trips with every digest, key transport and encoding."""
        self.check("aes192")

    def test_aes256(self) -> None:
        """AES-256 round trips with every digest, key transport and encoding."""
        self.check("aes256")

    def test_blowfish(self) -> None:
        """Blowfish round trips with every digest, key transport and encoding."""
        self.check("blowfish")

    def test_cast5(self) -> None:
        """CAST5 round trips with every digest, key transport and encoding."""
        self.check("cast5")

    def test_cast5_rfc2984(self) -> None:
        """CAST5 with RFC 2984's CAST5CBCParameters round trips too."""
        self.check("cast5", cast5_parameters="rfc2984")

    def test_attributes(self) -> None:
        """The SCEP attributes and the signing details read back as sent."""
        when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        nonce = b"n" * 16
        msg = m.parse_pki_message(
            request(
                message_type=20,
                sender_nonce=nonce,
                signing_time=when,
                signature_algorithm="sha256WithRSAEncryption",
            )
        )
        self.assertEqual(
            (msg.message_type, msg.transaction_id, msg.sender_nonce, msg.recipient_nonce, msg.pki_status),
            (m.MessageType.CertPoll, "4F1C2D5E", nonce, None, None),
        )
        self.assertEqual(msg.signing_time, when)
        self.assertEqual(msg.signature_algorithm, "sha256WithRSAEncryption")
        self.assertEqual(msg.certificates, (pki()["client"],))
        m.verify_pki_message(msg)

    def test_signing_time_omitted(self) -> None:
        """A message without signingTime parses with signing_time None and verifies."""
        msg = m.parse_pki_message(request(signing_time="omit"))
        self.assertIsNone(msg.signing_time)
        m.verify_pki_message(msg)

    def test_fresh_sender_nonce(self) -> None:
        """Without a given nonce, each message gets a fresh 16-byte senderNonce."""
        a, b = m.parse_pki_message(request()), m.parse_pki_message(request())
        self.assertEqual(len(a.sender_nonce), 16)
        self.assertNotEqual(a.sender_nonce, b.sender_nonce)

    def test_scep_attribute_oids_registered(self) -> None:
        """asn1crypto reads the SCEP attributes by name once this module is loaded."""
        signed_data = asn1_cms.ContentInfo.load(request())["content"]
        attrs = {
            a["type"].native: a["values"][0].native for a in signed_data["signer_infos"][0]["signed_attrs"]
        }
        self.assertEqual(attrs["scep_message_type"], "19")
        self.assertEqual(attrs["scep_transaction_id"], "4F1C2D5E")
        self.assertEqual(len(attrs["scep_sender_nonce"]), 16)
        self.assertEqual(attrs["content_type"], "data")

    def test_oaep_sha256(self) -> None:
        """OAEP with SHA-256 parameters is decrypted."""
        msg = m.parse_pki_message(request(key_transport="rsaes_oaep", oaep_digest="sha256"))
        self.assertEqual(m.decrypt_message_data(msg, ra_key_finder).content, pki()["csr"])

    def test_recipients(self) -> None:
        """message_recipients lists the issuerAndSerialNumber of the recipient."""
        p = pki()
        (rid,) = m.message_recipients(m.parse_pki_message(request()))
        self.assertTrue(rid.matches(p["ra"]))
        self.assertFalse(rid.matches(p["ca"]))
        self.assertEqual(rid.serial, p["ra"].serial_number)
        self.assertTrue(m.RecipientId.for_certificate(p["ra"]).matches(p["ra"]))
        ski = m.RecipientId(
            subject_key_identifier=m.RecipientId.for_certificate(p["ra"]).subject_key_identifier
        )
        self.assertTrue(ski.matches(p["ra"]))

    def test_issuer_and_serial(self) -> None:
        """IssuerAndSerialNumber and IssuerAndSubject round trip."""
        p = pki()
        issuer, serial = m.parse_issuer_and_serial(m.issuer_and_serial(p["issued"]))
        self.assertEqual((x509.Name.from_rfc4514_string(p["ca"].subject.rfc4514_string()), serial),
                         (p["issued"].issuer, p["issued"].serial_number))  # fmt: skip
        self.assertEqual(issuer, p["ca"].subject.public_bytes())
        subject = p["issued"].subject.public_bytes()
        self.assertEqual(m.parse_issuer_and_subject(m.issuer_and_subject(issuer, subject)), (issuer, subject))

    def test_bad_issuer_and_serial(self) -> None:
        """Malformed GetCert, GetCRL and CertPoll bodies are badRequest."""
        for parse in (m.parse_issuer_and_serial, m.parse_issuer_and_subject):
            for data in (b"", b"\x30\x03\x02\x01", b"garbage", pki()["csr"]):
                error = self.assertRaises(m.RequestError, parse, data)
                self.assertEqual(error.fail_info, m.FailInfo.badRequest)


class CertRepTests(TestCase):
    """Server to client: build_cert_rep parsed back with parse_cert_rep."""

    def parse(self, data: bytes) -> cm.CertRep:
        p = pki()
        return cm.parse_cert_rep(data, recipient_key=p["client_key"], recipient_certificate=p["client"])

    def test_success_every_cipher(self) -> None:
        """SUCCESS carries the issued certificate, encrypted with each cipher."""
        p = pki()
        for cipher in CIPHERS:
            req, data = cert_rep(m.PKIStatus.SUCCESS, cipher=cipher)
            rep = self.parse(data)
            self.assertEqual(rep.status, m.PKIStatus.SUCCESS)
            self.assertEqual(rep.cipher, cipher)
            self.assertEqual(rep.certificates, [p["issued"]])
            self.assertEqual(rep.message_type, m.MessageType.CertRep)
            self.assertEqual(rep.transaction_id, req.transaction_id)
            self.assertEqual(rep.recipient_nonce, req.sender_nonce)
            self.assertEqual(len(rep.sender_nonce), 16)
            self.assertNotEqual(rep.sender_nonce, req.sender_nonce)
            self.assertEqual(rep.signer_certificate, p["ra"])
            self.assertIsNone(rep.fail_info)

    def test_cast5_parameters_mirrored(self) -> None:
        """A CAST5 reply has the form of parameters the request had; OpenSSL's after another cipher."""
        p = pki()
        cases = (("cast5", "iv", "iv"), ("cast5", "rfc2984", "rfc2984"),
                 ("aes128", "rfc2984", "iv"), ("blowfish", "rfc2984", "iv"))  # fmt: skip
        for cipher, form, expected in cases:
            req = m.parse_pki_message(request(cipher=cipher, cast5_parameters=form))
            data = m.build_cert_rep(request=req, signer_certificate=p["ra"], signer_key=p["ra_key"],
                                    status=m.PKIStatus.SUCCESS, certificates=[p["issued"]],
                                    cipher="cast5")  # fmt: skip
            _, encrypted_content_info = cms.read_enveloped_data(m.parse_pki_message(data).enveloped_data)
            algorithm = cms.content_encryption_algorithm(encrypted_content_info)
            self.assertEqual(algorithms.read_cast5_parameters(algorithm)[1], expected, (cipher, form))
            rep = self.parse(data)
            self.assertEqual((rep.cipher, rep.certificates), ("cast5", [p["issued"]]))

    def test_success_options(self) -> None:
        """Certificates keep their order; CRLs, digest, OAEP and extra certificates are honoured."""
        p = pki()
        _, data = cert_rep(
            m.PKIStatus.SUCCESS, certificates=[p["issued"], p["ca"]], crls=[p["crl"]], digest="sha512",
            key_transport="rsaes_oaep", extra_certificates=[p["ca"]],
        )  # fmt: skip
        rep = self.parse(data)
        self.assertEqual(rep.certificates, [p["issued"], p["ca"]])
        self.assertEqual(rep.crls, [p["crl"]])
        self.assertEqual(rep.digest, "sha512")
        self.assertEqual(m.parse_pki_message(data).certificates, (p["ra"], p["ca"]))

    def test_success_envelope_recipient(self) -> None:
        """The reply is encrypted to the issuerAndSerialNumber of the request signer."""
        _, data = cert_rep(m.PKIStatus.SUCCESS)
        (rid,) = m.message_recipients(m.parse_pki_message(data))
        self.assertEqual(rid, m.RecipientId(*m.parse_issuer_and_serial(m.issuer_and_serial(pki()["client"]))))

    def test_failure(self) -> None:
        """FAILURE carries failInfo and failInfoText, no pkcsPKIEnvelope: an empty id-data content."""
        req, data = cert_rep(
            m.PKIStatus.FAILURE, fail_info=m.FailInfo.badAlg, fail_info_text="DES is not allowed é"
        )
        rep = self.parse(data)
        self.assertEqual((rep.status, rep.fail_info, rep.fail_info_text),
                         (m.PKIStatus.FAILURE, m.FailInfo.badAlg, "DES is not allowed é"))  # fmt: skip
        self.assertEqual((rep.certificates, rep.cipher), ([], None))
        self.assertEqual(rep.recipient_nonce, req.sender_nonce)
        self.assertEqual(rep.transaction_id, req.transaction_id)
        msg = m.parse_pki_message(data)
        self.assertIsNone(msg.enveloped_data)
        encap = asn1_cms.ContentInfo.load(data)["content"]["encap_content_info"]
        self.assertEqual(encap.dump(), bytes.fromhex("300f06092a864886f70d010701a0020400"))

    def test_failure_default_fail_info(self) -> None:
        """FAILURE without a failInfo says badRequest, and no failInfoText."""
        rep = self.parse(cert_rep(m.PKIStatus.FAILURE)[1])
        self.assertEqual((rep.fail_info, rep.fail_info_text), (m.FailInfo.badRequest, None))

    def test_pending(self) -> None:
        """PENDING carries neither failInfo nor a pkcsPKIEnvelope: an empty id-data content."""
        req, data = cert_rep(m.PKIStatus.PENDING)
        rep = self.parse(data)
        self.assertEqual((rep.status, rep.fail_info, rep.certificates), (m.PKIStatus.PENDING, None, []))
        self.assertIsNone(m.parse_pki_message(data).enveloped_data)
        encap = asn1_cms.ContentInfo.load(data)["content"]["encap_content_info"]
        self.assertEqual(encap["content"].contents, b"")
        self.assertEqual(rep.recipient_nonce, req.sender_nonce)

    def test_transaction_id_verbatim(self) -> None:
        """transactionIDs, PrintableString or not, are echoed verbatim."""
        p = pki()
        for tid in ("AbC+/=09 xyz", "id_with_underscore", "ünïcode"):
            req = m.parse_pki_message(request(transaction_id=tid))
            data = m.build_cert_rep(request=req, signer_certificate=p["ra"], signer_key=p["ra_key"], status=2)
            self.assertEqual(self.parse(data).transaction_id, tid)

    def test_tampered_cert_rep(self) -> None:
        """parse_cert_rep refuses a CertRep whose signature does not verify."""
        data = bytearray(cert_rep(m.PKIStatus.PENDING)[1])
        data[-1] ^= 1
        self.assertRaises(m.MessageError, self.parse, bytes(data))

    def test_signed_data(self) -> None:
        """build_signed_data verifies with verify_signed_data; a degenerate round trips."""
        p = pki()
        content = m.build_degenerate([p["ca"], p["ra"]], [p["crl"]])
        self.assertEqual(m.parse_degenerate(content), ([p["ca"], p["ra"]], [p["crl"]]))
        data = m.build_signed_data(content, signer_certificate=p["ra"], signer_key=p["ra_key"])
        self.assertEqual(cm.verify_signed_data(data), (content, p["ra"]))
        self.assertRaises(m.MessageError, cm.verify_signed_data, data[:-1] + bytes([data[-1] ^ 1]))
        self.assertRaises(m.MessageError, m.parse_degenerate, b"junk")


class BadInputTests(TestCase):
    """Garbage, truncation, tampering and unusable envelopes."""

    def assertMessageError(self, data: bytes) -> m.MessageError:
        try:
            m.parse_pki_message(data)
        except m.MessageError as e:
            self.assertNotIn("\n", str(e))
            self.assertTrue(str(e))
            return e
        self.fail(f"parsed: {data[:40]!r}")

    def test_garbage(self) -> None:
        """Empty, random and non-CMS bytes are a MessageError."""
        rng = random.Random(8894)
        for data in (
            b"",
            b"\x00",
            b"hello",
            b"\x30\x80",
            b"\x30\x00",
            pki()["csr"],
            bytes(rng.randrange(256) for _ in range(500)),
        ):
            self.assertMessageError(data)

    def test_truncated(self) -> None:
        """A DER or BER message truncated anywhere is a MessageError."""
        for ber in (False, True):
            data = request(ber=ber)
            for end in range(0, len(data), 50):
                self.assertMessageError(data[:end])
            self.assertMessageError(data[:-1])

    def test_mutated(self) -> None:
        """Random byte changes give a message or a MessageError, never anything else."""
        rng = random.Random(1)
        data = request()
        for _ in range(300):
            mutated = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                m.parse_pki_message(bytes(mutated))
            except m.MessageError:
                pass

    def test_wrong_content_type(self) -> None:
        """An EnvelopedData or a Data ContentInfo is not a pkiMessage."""
        msg = m.parse_pki_message(request())
        error = self.assertMessageError(msg.enveloped_data)
        self.assertEqual(str(error), "content type is enveloped_data, not signed_data")
        self.assertMessageError(bytes.fromhex("300f06092a864886f70d010701a0020400"))

    def test_no_signer(self) -> None:
        """A degenerate SignedData or a signer missing from the certificates is refused."""
        p = pki()
        self.assertEqual(str(self.assertMessageError(m.build_degenerate([p["ca"]]))), "no signerInfo")
        data = cms.sign_content(
            b"x", signer_certificate=p["client"], signer_key=p["client_key"], certificates=[p["ca"]]
        )
        self.assertEqual(str(self.assertMessageError(data)), "signer certificate not found in the message")

    def test_missing_attributes(self) -> None:
        """Missing or invalid messageType, transactionID or senderNonce are refused."""
        p = pki()
        good = {
            m.OID_MESSAGE_TYPE: m.scep_attribute(m.OID_MESSAGE_TYPE, "19"),
            m.OID_TRANSACTION_ID: m.scep_attribute(m.OID_TRANSACTION_ID, "t"),
            m.OID_SENDER_NONCE: m.scep_attribute(m.OID_SENDER_NONCE, b"n" * 16),
        }
        bad = [m.scep_attribute(m.OID_MESSAGE_TYPE, "nineteen"), m.scep_attribute(m.OID_SENDER_NONCE, b""),
               cms.attribute(m.OID_SENDER_NONCE, der_tlv(0x13, b"x"))]  # fmt: skip
        cases = [{k: v for k, v in good.items() if k != oid} for oid in good]
        cases += [
            {**good, oid: attr}
            for attr, oid in zip(
                bad, (m.OID_MESSAGE_TYPE, m.OID_SENDER_NONCE, m.OID_SENDER_NONCE), strict=True
            )
        ]
        for attributes in cases:
            data = cms.sign_content(
                b"x", signer_certificate=p["client"], signer_key=p["client_key"],
                attributes=list(attributes.values()), certificates=[p["client"]],
            )  # fmt: skip
            self.assertMessageError(data)

    def test_tampered_signature(self) -> None:
        """A changed signature parses but fails verification with badMessageCheck."""
        data = bytearray(request())
        data[-5] ^= 0x40
        error = self.assertRaises(m.RequestError, m.verify_pki_message, m.parse_pki_message(bytes(data)))
        self.assertEqual(
            (error.fail_info, error.text), (m.FailInfo.badMessageCheck, "signature does not verify")
        )

    def test_tampered_message_digest(self) -> None:
        """A changed messageDigest, or changed content, fails with badMessageCheck."""
        data = request()
        msg = m.parse_pki_message(data)
        digest = hashlib.sha256(msg.enveloped_data).digest()
        for tampered in (data.replace(digest, bytes(32)), data.replace(msg.enveloped_data[-16:], bytes(16))):
            error = self.assertRaises(m.RequestError, m.verify_pki_message, m.parse_pki_message(tampered))
            self.assertEqual(error.fail_info, m.FailInfo.badMessageCheck)
            self.assertIn("messageDigest", error.text)

    def test_unknown_digest(self) -> None:
        """An unknown digest algorithm is badAlg naming it."""
        sha256 = der_oid(algorithms.DIGESTS["sha256"].oid)
        data = request().replace(sha256, sha256[:-1] + b"\x7f")
        error = self.assertRaises(m.RequestError, m.verify_pki_message, m.parse_pki_message(data))
        self.assertEqual(
            (error.fail_info, error.text),
            (m.FailInfo.badAlg, "digest algorithm 2.16.840.1.101.3.4.2.127 not supported"),
        )

    def test_unknown_recipient(self) -> None:
        """A message encrypted to another certificate is badRequest."""
        msg = m.parse_pki_message(request(recipient_certificate=pki()["stranger"]))
        error = self.assertRaises(m.RequestError, m.decrypt_message_data, msg, ra_key_finder)
        self.assertEqual((error.fail_info, error.text),
                         (m.FailInfo.badRequest, "message is not encrypted to a certificate of this server"))  # fmt: skip

    def test_wrong_key(self) -> None:
        """A recipient resolved to the wrong private key cannot decrypt: badMessageCheck."""
        msg = m.parse_pki_message(request())
        error = self.assertRaises(
            m.RequestError, m.decrypt_message_data, msg, lambda rid: (pki()["ra"], pki()["ca_key"])
        )
        self.assertEqual(
            (error.fail_info, error.text), (m.FailInfo.badMessageCheck, "cannot decrypt the envelope")
        )

    def test_unknown_cipher(self) -> None:
        """An unknown content cipher OID is badAlg naming the OID."""
        p = pki()
        aes = der_oid(algorithms.CIPHERS["aes128"].oid)
        envelope = cms.envelope(p["csr"], p["ra"]).replace(aes, aes[:-1] + b"\x7f")
        msg = m.parse_pki_message(request(envelope=envelope))
        error = self.assertRaises(m.RequestError, m.decrypt_message_data, msg, ra_key_finder)
        self.assertEqual(error.fail_info, m.FailInfo.badAlg)
        self.assertIn("2.16.840.1.101.3.4.1.127", error.text)

    def test_bad_cast5_parameters(self) -> None:
        """CAST5 parameters in neither form are badRequest; a CAST5 reply to them takes OpenSSL's form."""
        p = pki()
        envelope = cms.envelope(p["csr"], p["ra"], cipher="cast5")
        cast5 = der_oid(algorithms.CIPHERS["cast5"].oid)
        iv = envelope[envelope.index(cast5) + len(cast5) :][:10]
        msg = m.parse_pki_message(request(envelope=envelope.replace(cast5 + iv, cast5 + b"\x02\x08" + iv[2:])))
        error = self.assertRaises(m.RequestError, m.decrypt_message_data, msg, ra_key_finder)
        self.assertEqual(error.fail_info, m.FailInfo.badRequest)
        self.assertEqual(error.text, "malformed pkcsPKIEnvelope: bad parameters for cast5")
        data = m.build_cert_rep(request=msg, signer_certificate=p["ra"], signer_key=p["ra_key"],
                                status=m.PKIStatus.SUCCESS, cipher="cast5")  # fmt: skip
        _, encrypted_content_info = cms.read_enveloped_data(m.parse_pki_message(data).enveloped_data)
        algorithm = cms.content_encryption_algorithm(encrypted_content_info)
        self.assertEqual(algorithms.read_cast5_parameters(algorithm)[1], "iv")

    def test_unknown_key_transport(self) -> None:
        """An unknown key transport OID is badAlg."""
        p = pki()
        rsa = der_oid(algorithms.OID_RSA_ENCRYPTION)
        envelope = cms.envelope(p["csr"], p["ra"]).replace(rsa, rsa[:-1] + b"\x7f")
        error = self.assertRaises(
            m.RequestError,
            m.decrypt_message_data,
            m.parse_pki_message(request(envelope=envelope)),
            ra_key_finder,
        )
        self.assertEqual(error.fail_info, m.FailInfo.badAlg)

    def test_no_or_bad_envelope(self) -> None:
        """A message without a pkcsPKIEnvelope, or with junk in its place, is badRequest."""
        msg = m.parse_pki_message(request(message_data=None))
        self.assertIsNone(msg.enveloped_data)
        m.verify_pki_message(msg)
        for bad in (msg, m.parse_pki_message(request(envelope=b"\x30\x03\x02\x01\x00"))):
            error = self.assertRaises(m.RequestError, m.decrypt_message_data, bad, ra_key_finder)
            self.assertEqual(error.fail_info, m.FailInfo.badRequest)
            self.assertNotIn("\n", error.text)


def openssl() -> str:
    """The openssl binary, or a skip (a failure if SCEP_REQUIRE_CLIENTS=1)."""
    path = "/usr/bin/openssl"
    if not os.path.exists(path):
        path = shutil.which("openssl") or ""
    if not path:
        if os.environ.get("SCEP_REQUIRE_CLIENTS") == "1":
            raise AssertionError("openssl is required (SCEP_REQUIRE_CLIENTS=1) but missing")
        raise SkipTest("openssl command line not installed")
    return path


class OpenSSLTests(TestCase):
    """The OpenSSL command line accepts what we build, and we read what it builds."""

    def setUp(self) -> None:
        self.binary = openssl()
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def pem(self, name: str, cert: x509.Certificate) -> str:
        return self.write(name, cert.public_bytes(Encoding.PEM))

    def key(self, name: str, key) -> str:
        return self.write(name, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))

    def run_openssl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([self.binary, *args], capture_output=True, timeout=60)
        if check and done.returncode:
            self.fail(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return done

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.directory, name), "rb") as f:
            return f.read()

    def test_cert_rep_verifies(self) -> None:
        """openssl cms -verify accepts a SUCCESS CertRep and outputs its envelope."""
        _, data = cert_rep(m.PKIStatus.SUCCESS)
        out = os.path.join(self.directory, "envelope.der")
        self.run_openssl(
            "cms", "-verify", "-noverify", "-inform", "DER", "-in", self.write("rep.der", data), "-out", out
        )
        self.assertEqual(self.read("envelope.der"), m.parse_pki_message(data).enveloped_data)
        ra = self.pem("ra.pem", pki()["ra"])
        self.run_openssl("cms", "-verify", "-noverify", "-nointern", "-certfile", ra, "-inform", "DER",
                         "-in", self.write("rep.der", data), "-out", out)  # fmt: skip
        self.run_openssl("pkcs7", "-inform", "DER", "-print", "-noout", "-in", self.write("rep.der", data))

    def test_failure_and_pending_verify(self) -> None:
        """
        openssl verifies FAILURE and PENDING CertReps without being given
        content: with the CMS API, and with the PKCS#7 API that certmonger
        uses, which refuses a SignedData without content ("no content").
        """
        for status in (m.PKIStatus.FAILURE, m.PKIStatus.PENDING):
            _, data = cert_rep(status, fail_info=m.FailInfo.badTime if status == m.PKIStatus.FAILURE else None)
            rep = self.write("rep.der", data)
            self.run_openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", rep, "-out", os.devnull)
            self.run_openssl("smime", "-verify", "-noverify", "-inform", "DER", "-in", rep, "-out", os.devnull)

    def test_attributes_visible(self) -> None:
        """asn1parse shows the SCEP attribute OIDs in the signed attributes."""
        _, data = cert_rep(m.PKIStatus.FAILURE, fail_info_text="no")
        text = self.run_openssl(
            "asn1parse", "-inform", "DER", "-in", self.write("rep.der", data)
        ).stdout.decode()
        for oid in ("2.16.840.1.113733.1.9.2", "2.16.840.1.113733.1.9.3", "2.16.840.1.113733.1.9.4",
                    "2.16.840.1.113733.1.9.5", "2.16.840.1.113733.1.9.6", "2.16.840.1.113733.1.9.7",
                    "1.3.6.1.5.5.7.24.1", "messageDigest", "signingTime", "contentType"):  # fmt: skip
            self.assertIn(oid, text)

    def decrypt_all(self, ciphers: tuple[str, ...], *providers: str) -> list[str]:
        """Decrypt CertRep envelopes with openssl; the ciphers it does not support."""
        p = pki()
        cert, key = self.pem("client.pem", p["client"]), self.key("client.key", p["client_key"])
        unsupported = []
        for cipher in ciphers:
            for key_transport in KEY_TRANSPORTS:
                _, data = cert_rep(m.PKIStatus.SUCCESS, cipher=cipher, key_transport=key_transport)
                envelope = self.write("envelope.der", m.parse_pki_message(data).enveloped_data)
                out = os.path.join(self.directory, "degenerate.der")
                args = ("cms", "-decrypt", "-inform", "DER", "-in", envelope, "-recip", cert, "-inkey", key)
                done = self.run_openssl(*args, *providers, "-out", out, check=False)
                if done.returncode and b"unsupported" in done.stderr.lower():
                    unsupported.append(cipher)
                    continue
                self.assertEqual(done.returncode, 0, f"{cipher}/{key_transport}: {done.stderr!r}")
                self.assertEqual(self.read("degenerate.der"), m.build_degenerate([p["issued"]]))
                printed = self.run_openssl("pkcs7", "-inform", "DER", "-print_certs", "-in", out).stdout
                self.assertIn(b"CN=device-1", printed.replace(b" = ", b"="))
        return sorted(set(unsupported))

    def test_envelope_decrypts(self) -> None:
        """openssl cms -decrypt opens AES and 3DES CertRep envelopes; the degenerate prints."""
        self.assertEqual(self.decrypt_all(("3des", "aes128", "aes192", "aes256")), [])

    def test_envelope_decrypts_legacy(self) -> None:
        """openssl cms -decrypt, with OpenSSL 3's legacy provider, opens DES, Blowfish and CAST5 envelopes."""
        unsupported = self.decrypt_all(("des", "blowfish", "cast5"), "-provider", "legacy", "-provider", "default")
        if unsupported:
            raise SkipTest(f"openssl lacks {', '.join(unsupported)} even with its legacy provider")

    def test_degenerate_prints(self) -> None:
        """openssl pkcs7 -print_certs reads build_degenerate output, in order, with the CRL."""
        p = pki()
        path = self.write("deg.der", m.build_degenerate([p["ra"], p["ca"]], [p["crl"]]))
        printed = self.run_openssl("pkcs7", "-inform", "DER", "-print_certs", "-in", path).stdout.replace(
            b" = ", b"="
        )
        self.assertLess(
            printed.index(b"subject=O=SCEP Test, CN=RA"), printed.index(b"subject=O=SCEP Test, CN=Test CA")
        )
        self.assertIn(b"Certificate Revocation List", printed)

    def test_requests_verify(self) -> None:
        """openssl verifies our DER and BER requests and extracts the envelope."""
        for ber in (False, True):
            data = request(ber=ber, digest="sha1", signature_algorithm="sha1WithRSAEncryption")
            out = os.path.join(self.directory, "env.der")
            self.run_openssl(
                "cms",
                "-verify",
                "-noverify",
                "-inform",
                "DER",
                "-in",
                self.write("req.der", data),
                "-out",
                out,
            )
            self.assertEqual(self.read("env.der"), m.parse_pki_message(data).enveloped_data)

    def test_signed_data_verifies(self) -> None:
        """openssl verifies build_signed_data (GetNextCACert)."""
        p = pki()
        data = m.build_signed_data(
            m.build_degenerate([p["ca"]]), signer_certificate=p["ra"], signer_key=p["ra_key"]
        )
        self.run_openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", self.write("next.der", data))

    def test_openssl_envelope_decrypts(self) -> None:
        """An envelope made by openssl (PKCS#1 v1.5 and OAEP-SHA-256) is decrypted."""
        p = pki()
        ra, csr = self.pem("ra.pem", p["ra"]), self.write("csr.der", p["csr"])
        for cipher, options in (("-aes128", ()), ("-des3", ()),
                                ("-aes256", ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"))):  # fmt: skip
            out = os.path.join(self.directory, "env.der")
            self.run_openssl("cms", "-encrypt", "-binary", cipher, "-outform", "DER", "-in", csr, "-out", out,
                             "-recip", ra, *options)  # fmt: skip
            msg = m.parse_pki_message(request(envelope=self.read("env.der")))
            decrypted = m.decrypt_message_data(msg, ra_key_finder)
            self.assertEqual(decrypted.content, p["csr"])

    def test_openssl_legacy_envelope_decrypts(self) -> None:
        """
        An envelope made by openssl with OpenSSL 3's legacy provider (DES,
        Blowfish, CAST5 with its plain OCTET STRING IV) is decrypted, and a
        CAST5 reply to it is one openssl decrypts.
        """
        p = pki()
        ra, csr = self.pem("ra.pem", p["ra"]), self.write("csr.der", p["csr"])
        legacy = ("-provider", "legacy", "-provider", "default")
        for option, cipher in (("-des-cbc", "des"), ("-bf-cbc", "blowfish"), ("-cast5-cbc", "cast5")):
            for padding in ((), ("-keyopt", "rsa_padding_mode:oaep")):
                out = os.path.join(self.directory, "env.der")
                done = self.run_openssl("cms", "-encrypt", "-binary", option, "-outform", "DER",
                                        "-in", csr, "-out", out, "-recip", ra, *padding, *legacy,
                                        check=False)  # fmt: skip
                if done.returncode and b"unsupported" in done.stderr.lower():
                    raise SkipTest(f"openssl lacks {cipher} even with its legacy provider")
                self.assertEqual(done.returncode, 0, done.stderr)
                req = m.parse_pki_message(request(envelope=self.read("env.der")))
                decrypted = m.decrypt_message_data(req, ra_key_finder)
                self.assertEqual((decrypted.content, decrypted.cipher), (p["csr"], cipher))
        data = m.build_cert_rep(request=req, signer_certificate=p["ra"], signer_key=p["ra_key"],
                                status=m.PKIStatus.SUCCESS, certificates=[p["issued"]],
                                cipher="cast5")  # fmt: skip
        envelope = self.write("reply.der", m.parse_pki_message(data).enveloped_data)
        cert, key = self.pem("client.pem", p["client"]), self.key("client.key", p["client_key"])
        self.run_openssl("cms", "-decrypt", "-inform", "DER", "-in", envelope, "-recip", cert, "-inkey", key,
                         *legacy)  # fmt: skip

    def test_openssl_signed_data_parses(self) -> None:
        """A SignedData made by openssl (sha1, BER streaming) verifies with verify_signed_data."""
        p = pki()
        out = os.path.join(self.directory, "signed.der")
        self.run_openssl("cms", "-sign", "-nodetach", "-binary", "-md", "sha1", "-stream", "-outform", "DER",
                         "-in", self.write("content", b"payload" * 200), "-signer", self.pem("ra.pem", p["ra"]),
                         "-inkey", self.key("ra.key", p["ra_key"]), "-out", out)  # fmt: skip
        self.assertEqual(cm.verify_signed_data(self.read("signed.der")), (b"payload" * 200, p["ra"]))
