"""
Tests for L{scep.der}: DER and BER writing, BER-to-DER re-encoding, and the
reading walker.
"""

from __future__ import annotations

from asn1crypto import core
from twisted.trial.unittest import TestCase

from scep import der


class EncodingTests(TestCase):
    """DER and BER writing and re-encoding."""

    def test_der_tlv_lengths(self) -> None:
        """Short and long definite lengths are encoded minimally."""
        self.assertEqual(der.der_tlv(0x04, b"a" * 5)[:2], b"\x04\x05")
        self.assertEqual(der.der_tlv(0x04, b"a" * 0x80)[:3], b"\x04\x81\x80")
        self.assertEqual(der.der_tlv(0x04, b"a" * 0x1234)[:4], b"\x04\x82\x12\x34")

    def test_ber_octet_string_chunks(self) -> None:
        """A chunked indefinite OCTET STRING reads back as the whole value."""
        encoded = der.ber_octet_string(b"x" * 2500, chunk_size=1000)
        self.assertEqual(encoded[:2], b"\x24\x80")
        self.assertEqual(core.OctetString.load(encoded).native, b"x" * 2500)

    def test_ber_to_der(self) -> None:
        """Indefinite lengths become definite, strings merge and SET members sort."""
        ber = der.ber_indefinite(
            0x30, der.ber_octet_string(b"abcdef", chunk_size=2), b"\x31\x06\x04\x01b\x04\x01a"
        )
        self.assertEqual(der.ber_to_der(ber), bytes.fromhex("301004066162636465663106040161040162"))

    def test_ber_to_der_garbage(self) -> None:
        """Truncated or trailing input is refused."""
        self.assertRaises(der.CMSError, der.ber_to_der, b"\x30\x05\x04\x01")
        self.assertRaises(der.CMSError, der.ber_to_der, b"\x04\x00\x00")
        self.assertRaises(der.CMSError, der.ber_to_der, b"\x30\x80\x04\x01a")

    def test_algorithm_identifier(self) -> None:
        """An AlgorithmIdentifier has NULL parameters."""
        self.assertEqual(der.algorithm_identifier("1.2.840.113549.1.1.1"),
                         bytes.fromhex("300d06092a864886f70d0101010500"))  # fmt: skip


class ReadingTests(TestCase):
    """The walker reads values as received."""

    def test_values(self) -> None:
        """Definite and indefinite values read with their contents and whole encoding."""
        data = der.der_tlv(0x02, b"\x01") + der.ber_octet_string(b"abcd", chunk_size=3) + b"\x00\x00rest"
        first, second = der.values(data)
        self.assertEqual(first, der.TLV(0, 0, 2, b"\x01", b"\x02\x01\x01"))
        self.assertEqual((second.class_, second.constructed, second.tag), (0, 1, 4))
        self.assertEqual(der.octets(second), b"abcd")
        self.assertEqual(der.values(data, 1), [first])
        self.assertEqual(der.integer(first), 1)

    def test_truncated(self) -> None:
        """A value longer than the data is refused."""
        self.assertRaises(der.CMSError, der.values, b"\x04\x05abc")

    def test_expect(self) -> None:
        """expect returns a value with the tag asked for, else names what is malformed."""
        (value,) = der.values(der.der_tlv(0xA0, b""))
        self.assertIs(der.expect(value, 0, "thing", class_=2), value)
        error = self.assertRaises(der.CMSError, der.expect, value, 0, "thing")
        self.assertEqual(str(error), "malformed thing")

    def test_algorithm_oid(self) -> None:
        """The dotted OID of an AlgorithmIdentifier."""
        (value,) = der.values(der.algorithm_identifier("2.16.840.1.101.3.4.2.1"))
        self.assertEqual(der.algorithm_oid(value, "digestAlgorithm"), "2.16.840.1.101.3.4.2.1")
        self.assertEqual(der.dotted(der.der_oid("1.2.3.4")), "1.2.3.4")
