"""
Tests for L{scep.cms}: EnvelopedData building and reading, and SignedData
signing, reading and verification.
"""

from __future__ import annotations

import hashlib

from asn1crypto import cms as asn1_cms
from twisted.trial.unittest import TestCase

from scep import algorithms, cms
from scep.der import CMSError, der_oid
from tests import certs


def _ca():
    key = certs.cached_key("cms-ca")
    return key, certs.make_ca(key)


class EnvelopedDataTests(TestCase):
    """Enveloping to a recipient and reading the envelope back."""

    def test_round_trip(self) -> None:
        """An envelope names its recipient and decrypts with the recipient's key."""
        key, cert = _ca()
        for cipher in algorithms.CIPHERS:
            for ber in (False, True):
                data = cms.envelope(b"content", cert, cipher=cipher, key_transport="rsaes_oaep", ber=ber)
                (recipient,), encrypted_content_info = cms.read_enveloped_data(data)
                self.assertEqual(recipient.serial, cert.serial_number)
                spec, iv, ciphertext = cms.read_encrypted_content(encrypted_content_info)
                self.assertEqual(spec.name, cipher)
                algorithm = asn1_cms.KeyEncryptionAlgorithm.load(recipient.key_encryption_algorithm)
                _, pad = algorithms.key_transport_padding(algorithm)
                content_key = algorithms.unwrap_key(pad, key, recipient.encrypted_key)
                self.assertEqual(algorithms.decrypt_content(spec, content_key, iv, ciphertext), b"content")

    def test_cast5_parameters(self) -> None:
        """CAST5 envelopes carry the form of parameters asked for; both read back."""
        _, cert = _ca()
        for form in ("iv", "rfc2984"):
            data = cms.envelope(b"content", cert, cipher="cast5", cast5_parameters=form)
            _, encrypted_content_info = cms.read_enveloped_data(data)
            algorithm = cms.content_encryption_algorithm(encrypted_content_info)
            self.assertEqual(algorithms.read_cast5_parameters(algorithm)[1], form)
            self.assertEqual(cms.read_encrypted_content(encrypted_content_info)[0].name, "cast5")


class SignedDataTests(TestCase):
    """Signing, reading and verifying SignedData."""

    def test_sign_and_verify(self) -> None:
        """A signed content reads back with its signer, digest and signing time."""
        key, cert = _ca()
        for digest in algorithms.DIGESTS:
            data = cms.sign_content(
                b"hello", signer_certificate=cert, signer_key=key, digest=digest, certificates=[cert]
            )
            signed = cms.read_signed_data(data)
            self.assertEqual(signed.econtent, b"hello")
            self.assertEqual(signed.digest_algorithm, digest)
            self.assertEqual(signed.signature_algorithm, "rsaEncryption")
            self.assertEqual(signed.signer_certificate, cert)
            self.assertIsNotNone(signed.signing_time)
            cms.verify_signed(signed)

    def test_signature_algorithm_names(self) -> None:
        """'xWithRSAEncryption' is sent as the OID that matches the digest."""
        key, cert = _ca()
        data = cms.sign_content(
            b"x", signer_certificate=cert, signer_key=key, digest="sha384",
            signature_algorithm="sha256WithRSAEncryption", certificates=[cert],
        )  # fmt: skip
        signed = cms.read_signed_data(data)
        self.assertEqual(signed.signature_algorithm, "sha384WithRSAEncryption")
        cms.verify_signed(signed)

    def test_subject_key_identifier_sid(self) -> None:
        """A signer identified by subjectKeyIdentifier is found (SignedData version 3)."""
        key, cert = _ca()
        data = cms.sign_content(
            b"x", signer_certificate=cert, signer_key=key, certificates=[cert],
            subject_key_identifier=b"\x01\x02\x03",
        )  # fmt: skip
        self.assertRaises(CMSError, cms.read_signed_data, data)
        from cryptography import x509

        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        data = cms.sign_content(
            b"x", signer_certificate=cert, signer_key=key, certificates=[cert], subject_key_identifier=ski
        )
        signed = cms.read_signed_data(data)
        self.assertEqual(asn1_cms.ContentInfo.load(data)["content"]["version"].native, "v3")
        cms.verify_signed(signed)

    def test_detached_digest(self) -> None:
        """Without eContent, the messageDigest is that of no octets."""
        key, cert = _ca()
        signed = cms.read_signed_data(
            cms.sign_content(None, signer_certificate=cert, signer_key=key, certificates=[cert])
        )
        self.assertIsNone(signed.econtent)
        self.assertEqual(cms.attribute_value(signed, cms.OID_MESSAGE_DIGEST), hashlib.sha256(b"").digest())
        cms.verify_signed(signed)

    def test_unsorted_attributes_verify_as_sent(self) -> None:
        """Attributes signed in the order they were sent verify from the original bytes."""
        key, cert = _ca()
        data = cms.sign_content(
            b"x", signer_certificate=cert, signer_key=key, certificates=[cert], sort_attributes=False
        )
        cms.verify_signed(cms.read_signed_data(data))

    def test_reordered_attributes_fall_back_to_der(self) -> None:
        """Attributes signed in DER order but sent in another order verify by re-encoding."""
        key, cert = _ca()
        data = cms.sign_content(b"x", signer_certificate=cert, signer_key=key, certificates=[cert])
        signed = cms.read_signed_data(data)
        attrs = asn1_cms.ContentInfo.load(data)["content"]["signer_infos"][0]["signed_attrs"]
        dumps = [a.dump() for a in attrs]
        tampered = data.replace(b"".join(dumps), b"".join(reversed(dumps)))
        self.assertNotEqual(tampered, data)
        reordered = cms.read_signed_data(tampered)
        self.assertNotEqual(reordered.signed_attrs, signed.signed_attrs)
        cms.verify_signed(reordered)

    def test_tampered_signature(self) -> None:
        """A changed signature is reported as such."""
        key, cert = _ca()
        data = bytearray(cms.sign_content(b"x", signer_certificate=cert, signer_key=key, certificates=[cert]))
        data[-1] ^= 1
        error = self.assertRaises(cms.SignatureInvalid, cms.verify_signed, cms.read_signed_data(bytes(data)))
        self.assertEqual(str(error), "signature does not verify")

    def test_unknown_digest(self) -> None:
        """An unknown digest OID is reported by its OID."""
        key, cert = _ca()
        data = cms.sign_content(b"x", signer_certificate=cert, signer_key=key, certificates=[cert])
        sha256 = der_oid(algorithms.DIGESTS["sha256"].oid)
        data = data.replace(sha256, sha256[:-1] + b"\x7f")
        signed = cms.read_signed_data(data)
        self.assertEqual(signed.digest_algorithm, "2.16.840.1.101.3.4.2.127")
        error = self.assertRaises(algorithms.AlgorithmNotSupported, cms.verify_signed, signed)
        self.assertEqual(str(error), "digest algorithm 2.16.840.1.101.3.4.2.127 not supported")

    def test_degenerate_keeps_order(self) -> None:
        """The degenerate structure keeps certificates in the given order."""
        key, ca = _ca()
        leaf = certs.make_certificate(certs.cached_key("cms-leaf"), "leaf", ca, key)
        for order in ([leaf, ca], [ca, leaf]):
            signed_data = cms.load_content_info(cms.degenerate(order), cms.OID_SIGNED_DATA)
            found, crls = cms.read_certificates(signed_data)
            self.assertEqual([c.dump() for c in found], [cms.certificate_der(c) for c in order])
            self.assertEqual(crls, [])
            self.assertEqual(len(signed_data["signer_infos"]), 0)
