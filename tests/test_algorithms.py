"""
Tests for L{scep.algorithms}: the algorithm tables, content encryption
(CAST5's two forms of parameters among them) and key transport.
"""

from __future__ import annotations

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from twisted.trial.unittest import TestCase

from scep import algorithms, der
from tests import certs


def _ca():
    key = certs.cached_key("cms-ca")
    return key, certs.make_ca(key)


class CipherTests(TestCase):
    """Content encryption and the cipher table."""

    def test_round_trip_every_cipher(self) -> None:
        """Every cipher decrypts what it encrypted, with the table's key and IV sizes."""
        for name, spec in algorithms.CIPHERS.items():
            for data in (b"", b"x", b"0123456789abcdef" * 5):
                key, alg_der, ciphertext = algorithms.encrypt_content(name, data)
                self.assertEqual(len(key), spec.key_size, name)
                self.assertEqual(len(ciphertext) % spec.block_size, 0, name)
                got_spec, iv = algorithms.content_cipher(asn1_algos.EncryptionAlgorithm.load(alg_der))
                self.assertIs(got_spec, spec)
                self.assertEqual(len(iv), spec.iv_size)
                self.assertEqual(algorithms.decrypt_content(spec, key, iv, ciphertext), data, name)

    def test_cast5_round_trip_both_forms(self) -> None:
        """CAST5 decrypts what it encrypted with either form of parameters, and says which it read."""
        spec = algorithms.CIPHERS["cast5"]
        for form in ("iv", "rfc2984"):
            key, alg_der, ciphertext = algorithms.encrypt_content("cast5", b"data", cast5_parameters=form)
            alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
            got_spec, iv = algorithms.content_cipher(alg)
            self.assertIs(got_spec, spec)
            self.assertEqual(algorithms.read_cast5_parameters(alg), (iv, form))
            self.assertEqual(algorithms.decrypt_content(spec, key, iv, ciphertext), b"data", form)

    def test_cast5_parameters(self) -> None:
        """CAST5 parameters are, by default, OpenSSL's: a plain OCTET STRING IV."""
        _, alg_der, _ = algorithms.encrypt_content("cast5", b"data")
        alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
        self.assertEqual(alg["algorithm"].native, "cast5_cbc")
        self.assertEqual(len(asn1_core.OctetString.load(alg["parameters"].dump()).native), 8)

    def test_cast5_rfc2984_parameters(self) -> None:
        """RFC 2984's form is CAST5CBCParameters with the IV and a 128-bit keyLength."""
        _, alg_der, _ = algorithms.encrypt_content("cast5", b"data", cast5_parameters="rfc2984")
        alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
        params = algorithms.CAST5CBCParameters.load(alg["parameters"].dump())
        self.assertEqual(params["key_length"].native, 128)
        self.assertEqual(len(params["iv"].native), 8)

    def test_cast5_rfc2984_default_iv(self) -> None:
        """An absent IV in CAST5CBCParameters is the DEFAULT 0."""
        oid = der.der_oid(algorithms.CIPHERS["cast5"].oid)
        alg_der = der.der_tlv(0x30, oid + der.der_tlv(0x30, der.der_tlv(0x02, b"\x00\x80")))
        alg = asn1_algos.EncryptionAlgorithm.load(alg_der)
        self.assertEqual(algorithms.read_cast5_parameters(alg), (bytes(8), "rfc2984"))

    def test_cast5_bad_parameters(self) -> None:
        """CAST5 parameters in neither form, or with a wrong IV, are refused."""
        oid = der.der_oid(algorithms.CIPHERS["cast5"].oid)
        iv = der.der_tlv(0x04, b"i" * 8)
        for params in (b"", b"\x05\x00", der.der_tlv(0x02, b"\x01"), der.der_tlv(0x30, iv),
                       der.der_tlv(0x30, iv + der.der_tlv(0x04, b"x")), der.der_tlv(0x04, b"i" * 7),
                       der.der_tlv(0x30, der.der_tlv(0x04, b"i" * 9) + der.der_tlv(0x02, b"\x00\x80")),
                       iv + iv):  # fmt: skip
            alg = asn1_algos.EncryptionAlgorithm.load(der.der_tlv(0x30, oid + params))
            self.assertRaises(der.CMSError, algorithms.content_cipher, alg)

    def test_blowfish_registered(self) -> None:
        """asn1crypto knows the Blowfish OID and reads its IV parameter."""
        _, alg_der, _ = algorithms.encrypt_content("blowfish", b"data")
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
        spec = algorithms.CIPHERS["aes128"]
        key, iv = b"k" * 16, b"i" * 16
        for plain in (b"a" * 15 + b"\x00", b"a" * 15 + b"\x11", b"a" * 14 + b"\x01\x02"):
            encryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).encryptor()
            ciphertext = encryptor.update(plain) + encryptor.finalize()
            error = self.assertRaises(
                algorithms.DecryptionFailed, algorithms.decrypt_content, spec, key, iv, ciphertext
            )
            self.assertEqual(str(error), "cannot decrypt the envelope")

    def test_bad_lengths(self) -> None:
        """A wrong key size or a ciphertext that is no whole number of blocks fails."""
        spec = algorithms.CIPHERS["3des"]
        self.assertRaises(
            algorithms.DecryptionFailed, algorithms.decrypt_content, spec, b"k" * 16, b"i" * 8, b"c" * 16
        )
        self.assertRaises(
            algorithms.DecryptionFailed, algorithms.decrypt_content, spec, b"k" * 24, b"i" * 8, b"c" * 15
        )
        self.assertRaises(
            algorithms.DecryptionFailed, algorithms.decrypt_content, spec, b"k" * 24, b"i" * 8, b""
        )

    def test_unknown_cipher(self) -> None:
        """An unknown or unsupported cipher OID is named in the error."""
        error = self.assertRaises(
            algorithms.AlgorithmNotSupported, algorithms.cipher_for_oid, "1.2.840.113549.3.2"
        )
        self.assertIn("rc2", str(error))
        error = self.assertRaises(algorithms.AlgorithmNotSupported, algorithms.cipher_for_oid, "1.2.3.4")
        self.assertIn("1.2.3.4", str(error))

    def test_bad_iv(self) -> None:
        """An IV of the wrong size is refused."""
        alg = asn1_algos.EncryptionAlgorithm({"algorithm": "aes128_cbc", "parameters": b"short"})
        self.assertRaises(der.CMSError, algorithms.content_cipher, alg)


class KeyTransportTests(TestCase):
    """RSA key transport."""

    def test_pkcs1v15(self) -> None:
        """PKCS#1 v1.5 wraps with rsaEncryption and NULL parameters."""
        key, cert = _ca()
        alg_der, wrapped = algorithms.wrap_key("rsaes_pkcs1v15", cert.public_key(), b"k" * 16)
        self.assertEqual(alg_der, bytes.fromhex("300d06092a864886f70d0101010500"))
        name, pad = algorithms.key_transport_padding(asn1_cms.KeyEncryptionAlgorithm.load(alg_der))
        self.assertEqual(name, "rsaes_pkcs1v15")
        self.assertEqual(algorithms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_default_parameters(self) -> None:
        """OAEP with SHA-1 sends the all-defaults empty SEQUENCE and unwraps."""
        key, cert = _ca()
        alg_der, wrapped = algorithms.wrap_key("rsaes_oaep", cert.public_key(), b"k" * 16)
        self.assertTrue(alg_der.endswith(b"\x30\x00"))
        name, pad = algorithms.key_transport_padding(asn1_cms.KeyEncryptionAlgorithm.load(alg_der))
        self.assertEqual(name, "rsaes_oaep")
        self.assertEqual(algorithms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_absent_parameters(self) -> None:
        """OAEP without parameters means SHA-1 and MGF1-SHA-1."""
        key, cert = _ca()
        wrapped = cert.public_key().encrypt(b"k" * 16, OAEP(MGF1(hashes.SHA1()), hashes.SHA1(), None))
        alg = asn1_cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep"})
        _, pad = algorithms.key_transport_padding(alg)
        self.assertEqual(algorithms.unwrap_key(pad, key, wrapped), b"k" * 16)

    def test_oaep_sha256_parameters(self) -> None:
        """OAEP parameters naming SHA-256 are honoured."""
        key, cert = _ca()
        alg_der, wrapped = algorithms.wrap_key(
            "rsaes_oaep", cert.public_key(), b"k" * 16, oaep_digest="sha256"
        )
        alg = asn1_cms.KeyEncryptionAlgorithm.load(alg_der)
        self.assertEqual(alg["parameters"]["hash_algorithm"]["algorithm"].native, "sha256")
        _, pad = algorithms.key_transport_padding(alg)
        self.assertEqual(algorithms.unwrap_key(pad, key, wrapped), b"k" * 16)
        sha1 = asn1_cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep"})
        _, sha1_pad = algorithms.key_transport_padding(sha1)
        self.assertRaises(algorithms.DecryptionFailed, algorithms.unwrap_key, sha1_pad, key, wrapped)

    def test_unknown_key_transport(self) -> None:
        """Other key transport algorithms are named as unsupported."""
        alg = asn1_cms.KeyEncryptionAlgorithm({"algorithm": "aes128_wrap"})
        error = self.assertRaises(algorithms.AlgorithmNotSupported, algorithms.key_transport_padding, alg)
        self.assertIn("aes128_wrap", str(error))
        self.assertRaises(
            algorithms.AlgorithmNotSupported, algorithms.wrap_key, "rsa_kem", _ca()[1].public_key(), b"k"
        )
