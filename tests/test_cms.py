"""
Tests for L{scep.cms}: algorithm tables, content encryption, key transport,
BER helpers, and SignedData signing, reading and verification.
"""

from __future__ import annotations

import hashlib

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from twisted.trial.unittest import TestCase

from scep import cms
from tests import certs


def _ca():
    key = certs.cached_key("cms-ca")
    return key, certs.make_ca(key)


class CipherTests(TestCase):
    """Content encryption and the cipher table."""

    def test_round_trip_every_cipher(self) -> None:
        """Every cipher decrypts what it encrypted, with the table's key and IV sizes."""
        for name, spec in cms.CIPHERS.items():
            for data in (b"", b"x", b"0123456789abcdef" * 5):
                key, alg_der, ciphertext = cms.encrypt_content(name, data)
                self.assertEqual(len(key), spec.key_size, name)
                self.assertEqual(len(ciphertext) % spec.block_size, 0, name)
                got_spec, iv = cms.content_cipher(asn1_algos.EncryptionAlgorithm.load(alg_der))
                self.assertIs(got_spec, spec)
                self.assertEqual(len(iv), spec.iv_size)
                self.assertEqual(cms.decrypt_content(spec, key, iv, ciphertext), data, name)

    def test_cast5_parameters(self) -> None:
        """CAST5 parameters are CAST5CBCParameters with the IV and a 128-bit keyLength."""
        _, alg_der, _ = cms.encrypt_content("cast5", b"data")
        alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
        self.assertEqual(alg["algorithm"].native, "cast5_cbc")
        self.assertEqual(alg["parameters"]["key_length"].native, 128)
        self.assertEqual(len(alg["parameters"]["iv"].native), 8)

    def test_blowfish_registered(self) -> None:
        """asn1crypto knows the Blowfish OID and reads its IV parameter."""
        _, alg_der, _ = cms.encrypt_content("blowfish", b"data")
        alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
        self.assertEqual(alg["algorithm"].native, "blowfish_cbc")
        self.assertEqual(len(alg["parameters"].native), 8)

    def test_asn1crypto_tables_extended(self) -> None:
        """The registration adds to asn1crypto's tables and keeps what was there."""
        self.assertEqual(asn1_algos.EncryptionAlgorithmId._map["1.3.14.3.2.7"], "des")
        self.assertEqual(asn1_algos.EncryptionAlgorithmId._map["1.2.840.113533.7.66.10"], "cast5_cbc")
        self.assertEqual(asn1_algos.EncryptionAlgorithmId.unmap("blowfish_cbc"), "1.3.6.1.4.1.3029.1.2")

    def test_bad_padding(self) -> None:
        """Padding that is not strict PKCS#7 fails with the generic error."""
        spec = cms.CIPHERS["aes128"]
        key, iv = b"k" * 16, b"i" * 16
        for plain in (b"a" * 15 + b"\x00", b"a" * 15 + b"\x11", b"a" * 14 + b"\x01\x02"):
            encryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).encryptor()
            ciphertext = encryptor.update(plain) + encryptor.finalize()
            error = self.assertRaises(cms.DecryptionFailed, cms.decrypt_content, spec, key, iv, ciphertext)
            self.assertEqual(str(error), "cannot decrypt the envelope")

    def test_bad_lengths(self) -> None:
        """A wrong key size or a ciphertext that is no whole number of blocks fails."""
        spec = cms.CIPHERS["3des"]
        self.assertRaises(cms.DecryptionFailed, cms.decrypt_content, spec, b"k" * 16, b"i" * 8, b"c" * 16)
        self.assertRaises(cms.DecryptionFailed, cms.decrypt_content, spec, b"k" * 24, b"i" * 8, b"c" * 15)
        self.assertRaises(cms.DecryptionFailed, cms.decrypt_content, spec, b"k" * 24, b"i" * 8, b"")

    def test_unknown_cipher(self) -> None:
        """An unknown or unsupported cipher OID is named in the error."""
        error = self.assertRaises(cms.AlgorithmNotSupported, cms.cipher_for_oid, "1.2.840.113549.3.2")
        self.assertIn("rc2", str(error))
        error = self.assertRaises(cms.AlgorithmNotSupported, cms.cipher_for_oid, "1.2.3.4")
        self.assertIn("1.2.3.4", str(error))

    def test_bad_iv(self) -> None:
        """An IV of the wrong size is refused."""
        alg = asn1_algos.EncryptionAlgorithm({"algorithm": "aes128_cbc", "parameters": b"short"})
        self.assertRaises(cms.CMSError, cms.content_cipher, alg)


class KeyTransportTests(TestCase):
    """RSA key transport."""

    def test_pkcs1v15(self) -> None:
        """PKCS#1 v1.5 wraps with rsaEncryption and NULL parameters."""
        key, cert = _ca()
        alg_der, wrapped = cms.wrap_key("rsaes_pkcs1v15", cert.public_key(), b"k" * 16)
        self.assertEqual(alg_der, bytes.fromhex("300d06092a864886f70d0101010500"))
        name, pad = cms.key_transport_padding(asn1_cms.KeyEncryptionAlgorithm.load(alg_der))
        self.assertEqual(name, "rsaes_pkcs1v15")
        self.assertEqual(cms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_default_parameters(self) -> None:
        """OAEP with SHA-1 sends the all-defaults empty SEQUENCE and unwraps."""
        key, cert = _ca()
        alg_der, wrapped = cms.wrap_key("rsaes_oaep", cert.public_key(), b"k" * 16)
        self.assertTrue(alg_der.endswith(b"\x30\x00"))
        name, pad = cms.key_transport_padding(asn1_cms.KeyEncryptionAlgorithm.load(alg_der))
        self.assertEqual(name, "rsaes_oaep")
        self.assertEqual(cms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_absent_parameters(self) -> None:
        """OAEP without parameters means SHA-1 and MGF1-SHA-1."""
        key, cert = _ca()
        wrapped = cert.public_key().encrypt(b"k" * 16, OAEP(MGF1(hashes.SHA1()), hashes.SHA1(), None))
        alg = asn1_cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep"})
        _, pad = cms.key_transport_padding(alg)
        self.assertEqual(cms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_sha256_parameters(self) -> None:
        """OAEP parameters naming SHA-256 are honoured."""
        key, cert = _ca()
        alg_der, wrapped = cms.wrap_key("rsaes_oaep", cert.public_key(), b"k" * 16, oaep_digest="sha256")
        alg = asn1_cms.KeyEncryptionAlgorithm.load(alg_der)
        self.assertEqual(alg["parameters"]["hash_algorithm"]["algorithm"].native, "sha256")
        _, pad = cms.key_transport_padding(alg)
        self.assertEqual(cms.unwrap_key(pad, key, wrapped), b"k" * 16)
        _, sha1_pad = cms.key_transport_padding(asn1_cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep"}))
        self.assertRaises(cms.DecryptionFailed, cms.unwrap_key, sha1_pad, key, wrapped)

    def test_unknown_key_transport(self) -> None:
        """Other key transport algorithms are named as unsupported."""
        alg = asn1_cms.KeyEncryptionAlgorithm({"algorithm": "aes128_wrap"})
        error = self.assertRaises(cms.AlgorithmNotSupported, cms.key_transport_padding, alg)
        self.assertIn("aes128_wrap", str(error))
        self.assertRaises(cms.AlgorithmNotSupported, cms.wrap_key, "rsa_kem", _ca()[1].public_key(), b"k")


class EncodingTests(TestCase):
    """DER and BER helpers."""

    def test_der_tlv_lengths(self) -> None:
        """Short and long definite lengths are encoded minimally."""
        self.assertEqual(cms.der_tlv(0x04, b"a" * 5)[:2], b"\x04\x05")
        self.assertEqual(cms.der_tlv(0x04, b"a" * 0x80)[:3], b"\x04\x81\x80")
        self.assertEqual(cms.der_tlv(0x04, b"a" * 0x1234)[:4], b"\x04\x82\x12\x34")

    def test_ber_octet_string_chunks(self) -> None:
        """A chunked indefinite OCTET STRING reads back as the whole value."""
        from asn1crypto import core

        encoded = cms.ber_octet_string(b"x" * 2500, chunk_size=1000)
        self.assertEqual(encoded[:2], b"\x24\x80")
        self.assertEqual(core.OctetString.load(encoded).native, b"x" * 2500)

    def test_ber_to_der(self) -> None:
        """Indefinite lengths become definite, strings merge and SET members sort."""
        ber = cms.ber_indefinite(
            0x30, cms.ber_octet_string(b"abcdef", chunk_size=2), b"\x31\x06\x04\x01b\x04\x01a"
        )
        self.assertEqual(cms.ber_to_der(ber), bytes.fromhex("301004066162636465663106040161040162"))

    def test_ber_to_der_garbage(self) -> None:
        """Truncated or trailing input is refused."""
        self.assertRaises(cms.CMSError, cms.ber_to_der, b"\x30\x05\x04\x01")
        self.assertRaises(cms.CMSError, cms.ber_to_der, b"\x04\x00\x00")
        self.assertRaises(cms.CMSError, cms.ber_to_der, b"\x30\x80\x04\x01a")


class SignedDataTests(TestCase):
    """Signing, reading and verifying SignedData."""

    def test_sign_and_verify(self) -> None:
        """A signed content reads back with its signer, digest and signing time."""
        key, cert = _ca()
        for digest in cms.DIGESTS:
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
        self.assertRaises(cms.CMSError, cms.read_signed_data, data)
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
        sha256 = cms.der_oid(cms.DIGESTS["sha256"].oid)
        data = data.replace(sha256, sha256[:-1] + b"\x7f")
        signed = cms.read_signed_data(data)
        self.assertEqual(signed.digest_algorithm, "2.16.840.1.101.3.4.2.127")
        error = self.assertRaises(cms.AlgorithmNotSupported, cms.verify_signed, signed)
        self.assertEqual(str(error), "digest algorithm 2.16.840.1.101.3.4.2.127 not supported")

    def test_degenerate_keeps_order(self) -> None:
        """The degenerate structure keeps certificates in the given order."""
        key, ca = _ca()
        leaf = certs.make_certificate(certs.cached_key("cms-leaf"), "leaf", ca, key)
        for order in ([leaf, ca], [ca, leaf]):
            signed_data = cms.load_content_info(cms.degenerate(order), cms.OID_SIGNED_DATA)
            found, crls = cms.read_certificates(signed_data)
            self.assertEqual([c.dump() for c in found], [cms._cert_der(c) for c in order])
            self.assertEqual(crls, [])
            self.assertEqual(len(signed_data["signer_infos"]), 0)
