"""
CMS (RFC 5652) primitives for the SCEP codec: no SCEP semantics, no I/O.

This module knows the algorithm tables (content ciphers, digests, RSA key
transport and signature), content encryption with strict PKCS#7 padding, the
building of SignedData, EnvelopedData and degenerate certs-only SignedData
(in DER or, for the client side, in the BER that Apple and jscep send), the
reading of a SignedData into a L{SignedContent}, and a generic BER-to-DER
converter.  Structure is handled by asn1crypto (a SignedData is read by walking
the values its parser finds, which costs far less than its objects), every
cryptographic primitive by C{cryptography}.  L{scep.message} builds the SCEP layer on top.

Dangerous choices are kept because old clients need them and are named as such:
single DES ('des', 56-bit key, brute-forceable) and MD5 ('md5', collisions) must
never be chosen for replies; RFC 8894 section 2.9 says MUST NOT.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers import algorithms as decrepit
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP, PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_MGF1 = "1.2.840.113549.1.1.8"


class CMSError(ValueError):
    """A CMS structure cannot be read, verified or decrypted."""


class AlgorithmNotSupported(CMSError):
    """An algorithm is unknown or not supported; str() names it."""


class DecryptionFailed(CMSError):
    """Decryption failed; deliberately says nothing about why (padding oracle)."""


class SignatureInvalid(CMSError):
    """The messageDigest or the signature does not match."""


# -- ASN.1 registrations (extend asn1crypto's tables, never replace them) -----


class CAST5CBCParameters(asn1_core.Sequence):
    """RFC 2144 / RFC 2984: SEQUENCE { iv OCTET STRING DEFAULT 0, keyLength INTEGER }."""

    _fields = [
        ("iv", asn1_core.OctetString, {"optional": True}),
        ("key_length", asn1_core.Integer),
    ]


def _register_oid(cls: Any, dotted: str, name: str) -> None:
    cls._map.setdefault(dotted, name)
    if cls._reverse_map is not None:
        cls._reverse_map.setdefault(cls._map[dotted], dotted)


_register_oid(asn1_algos.EncryptionAlgorithmId, "1.3.6.1.4.1.3029.1.2", "blowfish_cbc")
_register_oid(asn1_algos.EncryptionAlgorithmId, "1.2.840.113533.7.66.10", "cast5_cbc")
asn1_algos.EncryptionAlgorithm._oid_specs.setdefault("blowfish_cbc", asn1_core.OctetString)
asn1_algos.EncryptionAlgorithm._oid_specs.setdefault("cast5_cbc", CAST5CBCParameters)


# -- algorithm tables ----------------------------------------------------------


@dataclass(frozen=True)
class CipherSpec:
    """A CBC content cipher: name, OID, key, block and IV sizes in bytes."""

    name: str
    oid: str
    key_size: int
    block_size: int
    iv_size: int

    def algorithm(self, key: bytes) -> Any:
        """The C{cryptography} block cipher for C{key}."""
        if self.name == "des":
            # Single DES (dangerous, 56-bit) as TripleDES with K1=K2=K3.
            return decrepit.TripleDES(key * 3)
        if self.name == "3des":
            return decrepit.TripleDES(key)
        if self.name == "blowfish":
            return decrepit.Blowfish(key)
        if self.name == "cast5":
            return decrepit.CAST5(key)
        return algorithms.AES(key)


CIPHERS: dict[str, CipherSpec] = {
    c.name: c
    for c in (
        CipherSpec("des", "1.3.14.3.2.7", 8, 8, 8),  # DANGEROUS: single DES
        CipherSpec("3des", "1.2.840.113549.3.7", 24, 8, 8),
        CipherSpec("aes128", "2.16.840.1.101.3.4.1.2", 16, 16, 16),
        CipherSpec("aes192", "2.16.840.1.101.3.4.1.22", 24, 16, 16),
        CipherSpec("aes256", "2.16.840.1.101.3.4.1.42", 32, 16, 16),
        CipherSpec("blowfish", "1.3.6.1.4.1.3029.1.2", 16, 8, 8),
        CipherSpec("cast5", "1.2.840.113533.7.66.10", 16, 8, 8),
    )
}
_CIPHERS_BY_OID = {c.oid: c for c in CIPHERS.values()}


@dataclass(frozen=True)
class DigestSpec:
    """A digest: name, OID, the OID of RSA PKCS#1 v1.5 with it, and its hash."""

    name: str
    oid: str
    rsa_oid: str
    hash: type[hashes.HashAlgorithm]

    @property
    def rsa_name(self) -> str:
        """The conventional name of RSA with this digest, e.g. sha256WithRSAEncryption."""
        return f"{self.name}WithRSAEncryption"


DIGESTS: dict[str, DigestSpec] = {
    d.name: d
    for d in (
        # DANGEROUS: MD5 is broken; accepted only to verify old Cisco requests.
        DigestSpec("md5", "1.2.840.113549.2.5", "1.2.840.113549.1.1.4", hashes.MD5),
        DigestSpec("sha1", "1.3.14.3.2.26", "1.2.840.113549.1.1.5", hashes.SHA1),
        DigestSpec("sha224", "2.16.840.1.101.3.4.2.4", "1.2.840.113549.1.1.14", hashes.SHA224),
        DigestSpec("sha256", "2.16.840.1.101.3.4.2.1", "1.2.840.113549.1.1.11", hashes.SHA256),
        DigestSpec("sha384", "2.16.840.1.101.3.4.2.2", "1.2.840.113549.1.1.12", hashes.SHA384),
        DigestSpec("sha512", "2.16.840.1.101.3.4.2.3", "1.2.840.113549.1.1.13", hashes.SHA512),
    )
}
_DIGESTS_BY_OID = {d.oid: d for d in DIGESTS.values()}
# Signature algorithm OID -> (conventional name, digest it implies or None).
SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    OID_RSA_ENCRYPTION: ("rsaEncryption", None),
    "1.3.14.3.2.29": ("sha1WithRSASignature", "sha1"),
    **{d.rsa_oid: (d.rsa_name, d.name) for d in DIGESTS.values()},
}
_SIGNATURE_OIDS_BY_NAME = {name: oid for oid, (name, _) in SIGNATURE_ALGORITHMS.items()}
KEY_TRANSPORTS = ("rsaes_pkcs1v15", "rsaes_oaep")


def cipher_for_oid(oid: str) -> CipherSpec:
    """The content cipher for a dotted OID, or L{AlgorithmNotSupported}."""
    try:
        return _CIPHERS_BY_OID[oid]
    except KeyError:
        name = asn1_algos.EncryptionAlgorithmId._map.get(oid)
        label = f"{name} ({oid})" if name else oid
        raise AlgorithmNotSupported(f"content cipher {label} not supported") from None


def digest_name(oid: str) -> str:
    """The digest name for a dotted OID, or the OID itself when unknown."""
    spec = _DIGESTS_BY_OID.get(oid)
    return spec.name if spec else oid


def signature_algorithm_name(oid: str) -> str:
    """The conventional name of a signature algorithm OID, or the OID itself."""
    known = SIGNATURE_ALGORITHMS.get(oid)
    return known[0] if known else oid


def digest_spec(name: str) -> DigestSpec:
    """The digest called C{name}, or L{AlgorithmNotSupported}."""
    try:
        return DIGESTS[name]
    except KeyError:
        raise AlgorithmNotSupported(f"digest algorithm {name} not supported") from None


# -- content encryption and key transport --------------------------------------


def encrypt_content(cipher: str, data: bytes) -> tuple[bytes, bytes, bytes]:
    """Encrypt C{data} under a fresh key: (key, AlgorithmIdentifier DER, ciphertext)."""
    spec = CIPHERS[cipher]
    key, iv = os.urandom(spec.key_size), os.urandom(spec.iv_size)
    padder = padding.PKCS7(spec.block_size * 8).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    params = der_tlv(0x04, iv)
    if spec.name == "cast5":  # CAST5CBCParameters { iv, keyLength in bits }
        params = der_tlv(0x30, params + der_tlv(0x02, (spec.key_size * 8).to_bytes(2, "big")))
    return key, der_tlv(0x30, der_oid(spec.oid) + params), ciphertext


def content_cipher(alg: asn1_algos.EncryptionAlgorithm) -> tuple[CipherSpec, bytes]:
    """The cipher and IV of a content-encryption algorithm identifier."""
    spec = cipher_for_oid(alg["algorithm"].dotted)
    params = alg["parameters"]
    if spec.name == "cast5":
        iv = params["iv"].native if params["iv"].native is not None else bytes(8)
    else:
        iv = params.native
    if not isinstance(iv, bytes) or len(iv) != spec.iv_size:
        raise CMSError(f"bad IV for {spec.name}")
    return spec, iv


def decrypt_content(spec: CipherSpec, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Decrypt and strictly unpad; every failure is the same L{DecryptionFailed}."""
    variable = spec.name in ("blowfish", "cast5")
    if (len(key) != spec.key_size and not (variable and 5 <= len(key) <= 16)) or (
        not ciphertext or len(ciphertext) % spec.block_size
    ):
        raise DecryptionFailed("cannot decrypt the envelope")
    try:
        decryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(spec.block_size * 8).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptionFailed("cannot decrypt the envelope") from None


def _oaep(hash_name: str, mgf_hash_name: str, label: bytes | None) -> OAEP:
    return OAEP(MGF1(digest_spec(mgf_hash_name).hash()), digest_spec(hash_name).hash(), label or None)


def wrap_key(
    key_transport: str, public_key: rsa.RSAPublicKey, key: bytes, *, oaep_digest: str = "sha1"
) -> tuple[bytes, bytes]:
    """Encrypt a content key to an RSA key: (AlgorithmIdentifier DER, encrypted key)."""
    if key_transport == "rsaes_pkcs1v15":
        return der_tlv(0x30, der_oid(OID_RSA_ENCRYPTION) + _NULL), public_key.encrypt(key, PKCS1v15())
    if key_transport != "rsaes_oaep":
        raise AlgorithmNotSupported(f"key transport {key_transport} not supported")
    params = b""  # RSAES-OAEP-params with all defaults (SHA-1, MGF1-SHA-1)
    if oaep_digest != "sha1":
        digest = _algorithm_identifier(DIGESTS[oaep_digest].oid)
        params = der_tlv(0xA0, digest) + der_tlv(0xA1, der_tlv(0x30, der_oid(OID_MGF1) + digest))
    algorithm = der_tlv(0x30, der_oid(OID_RSAES_OAEP) + der_tlv(0x30, params))
    return algorithm, public_key.encrypt(key, _oaep(oaep_digest, oaep_digest, None))


def key_transport_padding(alg: asn1_cms.KeyEncryptionAlgorithm) -> tuple[str, PKCS1v15 | OAEP]:
    """The key transport name and padding of an algorithm identifier."""
    oid = alg["algorithm"].dotted
    if oid == OID_RSA_ENCRYPTION:
        return "rsaes_pkcs1v15", PKCS1v15()
    if oid != OID_RSAES_OAEP:
        name = asn1_cms.KeyEncryptionAlgorithmId._map.get(oid, oid)
        raise AlgorithmNotSupported(f"key transport {name} not supported")
    params = alg["parameters"]
    if not isinstance(params, asn1_algos.RSAESOAEPParams):
        return "rsaes_oaep", _oaep("sha1", "sha1", None)  # absent: RFC 4055 defaults
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].dotted != OID_MGF1:
        raise AlgorithmNotSupported(f"OAEP mask generation {mgf['algorithm'].dotted} not supported")
    label = params["p_source_algorithm"]["parameters"].native
    return "rsaes_oaep", _oaep(
        digest_name(params["hash_algorithm"]["algorithm"].dotted),
        digest_name(mgf["parameters"]["algorithm"].dotted),
        label,
    )


def unwrap_key(pad: PKCS1v15 | OAEP, private_key: rsa.RSAPrivateKey, encrypted_key: bytes) -> bytes:
    """Decrypt a content key; any failure is L{DecryptionFailed} without detail."""
    try:
        return private_key.decrypt(encrypted_key, pad)
    except ValueError:
        raise DecryptionFailed("cannot decrypt the envelope") from None


# -- DER/BER writing ---------------------------------------------------------------


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a single-byte tag."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def ber_indefinite(tag: int, *parts: bytes) -> bytes:
    """A constructed BER TLV with indefinite length (ends with end-of-contents)."""
    return bytes((tag | 0x20, 0x80)) + b"".join(parts) + b"\x00\x00"


def ber_octet_string(data: bytes, chunk_size: int = 1000, tag: int = 0x24) -> bytes:
    """A constructed, indefinite-length OCTET STRING of several primitive chunks."""
    chunks = [der_tlv(0x04, data[i : i + chunk_size]) for i in range(0, len(data), chunk_size)]
    return ber_indefinite(tag, *chunks)


@functools.lru_cache(maxsize=128)
def der_oid(dotted: str) -> bytes:
    """The DER of an OBJECT IDENTIFIER."""
    return asn1_core.ObjectIdentifier(dotted).dump()


def _algorithm_identifier(dotted: str) -> bytes:
    """AlgorithmIdentifier DER with NULL parameters (the conventional form)."""
    return der_tlv(0x30, der_oid(dotted) + _NULL)


_OID_DATA_DER = der_oid(OID_DATA)
_NULL = b"\x05\x00"
_STRING_TAGS = frozenset((4, 12, 18, 19, 20, 22, 26, 28, 30))


def ber_to_der(data: bytes) -> bytes:
    """Re-encode BER as DER: definite lengths, merged universal strings, sorted SETs."""
    try:
        out, end = _ber_to_der(data, 0, 0)
    except IndexError:
        raise CMSError("truncated BER") from None
    if end != len(data):
        raise CMSError("trailing data after BER value")
    return out


def _ber_to_der(data: bytes, pos: int, depth: int) -> tuple[bytes, int]:
    if depth > 64:
        raise CMSError("BER nesting too deep")
    start = pos
    first = data[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    tag = data[start:pos]
    length_byte = data[pos]
    pos += 1
    if length_byte == 0x80:
        if not first & 0x20:
            raise CMSError("indefinite length on a primitive value")
        end = None
    elif length_byte & 0x80:
        count = length_byte & 0x7F
        end = pos + count + int.from_bytes(data[pos : pos + count], "big")
        pos += count
        if end > len(data):
            raise CMSError("BER length beyond the data")
    else:
        end = pos + length_byte
        if end > len(data):
            raise CMSError("BER length beyond the data")
    if not first & 0x20:
        assert end is not None  # primitive values have a definite length (checked above)
        return tag + der_tlv(0, data[pos:end])[1:], end
    children = []
    while (end is None and data[pos : pos + 2] != b"\x00\x00") or (end is not None and pos < end):
        child, pos = _ber_to_der(data, pos, depth + 1)
        children.append(child)
    if end is None:
        end = pos + 2
    if len(tag) == 1 and first & 0x1F in _STRING_TAGS and first & 0xC0 == 0:
        merged = b"".join(_primitive_contents(c) for c in children)
        return der_tlv(first & 0xDF, merged), end
    if first == 0x31:
        children.sort()
    return tag + der_tlv(0, b"".join(children))[1:], end


# -- BER reading without building objects ---------------------------------------------
#
# asn1crypto builds a Python object for every value it reads, which costs more
# than the private-key operation of a request.  The request path reads its
# SignedData with these few helpers instead: each value stays the bytes it was
# received as.


class _TLV(NamedTuple):
    """One BER value as received: its class, method, tag, contents and whole encoding."""

    class_: int
    constructed: int
    tag: int
    contents: bytes
    encoded: bytes


def _values(data: bytes, limit: int = -1) -> list[_TLV]:
    """
    The values one after another in C{data}, up to its end or an
    end-of-contents; only the first C{limit} when that is not negative.
    """
    values: list[_TLV] = []
    pos, size = 0, len(data)
    while pos < size and limit != len(values):
        first = data[pos]
        length = data[pos + 1] if pos + 1 < size else 0x80
        if first == 0 and length == 0:
            break  # end-of-contents
        if first & 0x1F == 0x1F or length == 0x80 or length > 0x84:
            # A high tag number, an indefinite length (or a truncated header):
            # asn1crypto's parse(), without the copy of the rest of the data.
            (class_, constructed, tag, _, contents, _), end = asn1_parser._parse(data, size, pos)
            values.append(_TLV(class_, constructed, tag, contents, data[pos:end]))
        else:  # the common case, read here: a low tag number and a definite length
            start = pos + 2
            if length & 0x80:
                start += length & 0x7F
                length = int.from_bytes(data[pos + 2 : start], "big")
            end = start + length
            if end > size:
                raise CMSError("truncated value")
            values.append(_TLV(first >> 6, (first >> 5) & 1, first & 0x1F, data[start:end], data[pos:end]))
        pos = end
    return values


def _expect(value: _TLV, tag: int, what: str, class_: int = 0) -> _TLV:
    """C{value} if it has this tag (universal unless C{class_} says), else L{CMSError}."""
    if value.class_ != class_ or value.tag != tag:
        raise CMSError(f"malformed {what}")
    return value


def _octets(value: _TLV) -> bytes:
    """The octets of an OCTET STRING, primitive or BER constructed of chunks."""
    return _chunks(value.contents, 0) if value.constructed else value.contents


def _chunks(data: bytes, depth: int) -> bytes:
    if depth > 16:
        raise CMSError("constructed OCTET STRING nested too deep")
    return b"".join(_chunks(v.contents, depth + 1) if v.constructed else v.contents for v in _values(data))


@functools.lru_cache(maxsize=256)
def _dotted(encoded: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's encoding."""
    return str(asn1_core.ObjectIdentifier.load(encoded).dotted)


def _algorithm(value: _TLV, what: str) -> str:
    """The dotted algorithm OID of an AlgorithmIdentifier."""
    return _dotted(_expect(_values(_expect(value, 16, what).contents)[0], 6, what).encoded)


def _issuer_and_serial(cert_der: bytes) -> tuple[_TLV, _TLV]:
    """The issuer Name and the serial number INTEGER of a certificate, as encoded in it."""
    tbs = _values(_values(_values(cert_der, 1)[0].contents, 1)[0].contents, 4)
    if tbs[0].class_ == 2 and tbs[0].tag == 0:  # [0] version
        tbs = tbs[1:]
    return _expect(tbs[2], 16, "certificate"), _expect(tbs[0], 2, "certificate")


def _integer(value: _TLV) -> int:
    return int.from_bytes(value.contents, "big", signed=True)


def _primitive_contents(der: bytes) -> bytes:
    length_byte = der[1]
    if length_byte & 0x80:
        return der[2 + (length_byte & 0x7F) :]
    return der[2:]


# -- SignedData and EnvelopedData building -----------------------------------------


def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def issuer_and_serial_number(cert: x509.Certificate) -> bytes:
    """The IssuerAndSerialNumber DER of a certificate, its issuer bytes verbatim."""
    return _issuer_and_serial_number(_cert_der(cert))


@functools.lru_cache(maxsize=256)
def _issuer_and_serial_number(cert_der: bytes) -> bytes:
    issuer, serial = _issuer_and_serial(cert_der)
    return der_tlv(0x30, issuer.encoded + serial.encoded)


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
    return _signed_data(1, b"", None, [_cert_der(c) for c in certificates], list(crls), b"", False)


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
        sig_oid = _SIGNATURE_OIDS_BY_NAME[signature_algorithm]
    digest_alg = _algorithm_identifier(spec.oid)
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
        + _algorithm_identifier(sig_oid)
        + der_tlv(0x04, signature),
    )
    certs = [_cert_der(c) for c in certificates]
    return _signed_data(version, digest_alg, econtent, certs, (), signer_info, ber)


def envelope(
    content: bytes,
    recipient_certificate: x509.Certificate,
    *,
    cipher: str = "aes128",
    key_transport: str = "rsaes_pkcs1v15",
    oaep_digest: str = "sha1",
    ber: bool = False,
) -> bytes:
    """A ContentInfo(EnvelopedData) of id-data C{content} for one RSA recipient."""
    public_key = recipient_certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmNotSupported("the recipient certificate has no RSA key")
    key, content_alg, ciphertext = encrypt_content(cipher, content)
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
    for info in _values(_expect(fields[0], 17, "recipientInfos").contents):
        if info.class_ == 2 and 1 <= info.tag <= 4:  # kari, kekri, pwri, ori
            continue
        _, rid, algorithm, encrypted_key = _values(_expect(info, 16, "recipientInfo").contents)
        issuer = serial = ski = None
        if rid.class_ == 0 and rid.tag == 16:  # issuerAndSerialNumber
            name, serial_number = _values(rid.contents)
            issuer, serial = _expect(name, 16, "rid").encoded, _integer(_expect(serial_number, 2, "rid"))
        else:
            ski = _octets(_expect(rid, 0, "rid", class_=2))
        recipients.append(
            KeyTransRecipient(
                issuer, serial, ski, _expect(algorithm, 16, "keyEncryptionAlgorithm").encoded,
                _octets(_expect(encrypted_key, 4, "encryptedKey")),
            )
        )  # fmt: skip
    return recipients, _expect(fields[1], 16, "encryptedContentInfo").encoded


def read_encrypted_content(encrypted_content_info: bytes) -> tuple[CipherSpec, bytes, bytes]:
    """
    The cipher, IV and encryptedContent octets of an EncryptedContentInfo.
    The octets come primitive, or BER constructed of chunks: Go's pkcs7
    (micromdm's scepclient) sends a constructed [0] around one OCTET STRING.
    """
    _, algorithm, *rest = _values(_values(encrypted_content_info)[0].contents)
    spec, iv = content_cipher(asn1_algos.EncryptionAlgorithm.load(algorithm.encoded))
    ciphertext = b""
    for value in rest:
        if value.class_ == 2 and value.tag == 0:
            ciphertext = _octets(value)
            break
    return spec, iv, ciphertext


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
    content_type = info["content_type"].dotted
    if content_type != expected:
        name = asn1_cms.ContentType._map.get(content_type, content_type)
        want = asn1_cms.ContentType._map.get(expected, expected)
        raise CMSError(f"content type is {name}, not {want}")
    return info["content"]


def read_certificates(signed_data: Any) -> tuple[list[Any], list[bytes]]:
    """The asn1crypto certificates and the CRL DERs of a SignedData."""
    certs = [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]
    crls = [c.chosen.dump() for c in signed_data["crls"] or () if c.name == "crl"]
    return certs, crls


def _content(data: bytes, expected: str) -> list[_TLV]:
    """The fields of the content of a ContentInfo of type C{expected}, like L{load_content_info}."""
    info = _values(_expect(_values(data)[0], 16, "ContentInfo").contents)
    content_type = _dotted(_expect(info[0], 6, "ContentInfo").encoded)
    if content_type != expected:
        name = asn1_cms.ContentType._map.get(content_type, content_type)
        want = asn1_cms.ContentType._map.get(expected, expected)
        raise CMSError(f"content type is {name}, not {want}")
    content = _values(_expect(info[1], 0, "ContentInfo", class_=2).contents)[0]
    return _values(_expect(content, 16, "ContentInfo").contents)


def _find_signer(sid: _TLV, certs: list[bytes]) -> int:
    """The index of the certificate the sid of a signerInfo names."""
    if sid.class_ == 0 and sid.tag == 16:  # issuerAndSerialNumber
        issuer, serial_number = _values(sid.contents)
        serial = _integer(_expect(serial_number, 2, "sid"))
        for index, cert in enumerate(certs):
            cert_issuer, cert_serial = _issuer_and_serial(cert)
            if _integer(cert_serial) == serial and (
                cert_issuer.encoded == issuer.encoded
                or asn1_x509.Name.load(cert_issuer.encoded) == asn1_x509.Name.load(issuer.encoded)
            ):
                return index
    else:
        ski = _octets(_expect(sid, 0, "sid", class_=2))
        for index, cert in enumerate(certs):
            parsed = asn1_x509.Certificate.load(cert)
            if ski in (parsed.key_identifier, parsed.public_key.sha1):
                return index
    raise CMSError("signer certificate not found in the message")


def read_signed_data(data: bytes) -> SignedContent:
    """Read a ContentInfo(SignedData) with one signerInfo; does not verify it."""
    fields = _content(data, OID_SIGNED_DATA)
    encap = _values(_expect(fields[2], 16, "encapContentInfo").contents)
    econtent = None
    if len(encap) > 1:  # [0] EXPLICIT OCTET STRING
        explicit = _expect(encap[1], 0, "eContent", class_=2)
        econtent = _octets(_expect(_values(explicit.contents)[0], 4, "eContent"))
    certs = [
        c.encoded
        for field in fields[3:-1]
        if field.class_ == 2 and field.tag == 0  # [0] certificates, not [1] crls
        for c in _values(field.contents)
        if c.class_ == 0 and c.tag == 16  # a Certificate, not another CertificateChoices
    ]
    signer_infos = _values(_expect(fields[-1], 17, "signerInfos").contents)
    if not signer_infos:
        raise CMSError("no signerInfo")
    signer_info = _values(_expect(signer_infos[0], 16, "signerInfo").contents)
    signer = _find_signer(signer_info[1], certs)
    raw_attrs = signer_info[3]
    if raw_attrs.class_ != 2 or raw_attrs.tag != 0:
        raise CMSError("no signed attributes")
    signed_attrs = b"\x31" + raw_attrs.encoded[1:]
    attributes: dict[str, bytes] = {}
    for attr in _values(raw_attrs.contents):
        attr_type, values = _values(_expect(attr, 16, "signed attribute").contents)
        oid = _dotted(_expect(attr_type, 6, "signed attribute").encoded)
        first = _values(_expect(values, 17, "signed attribute").contents, 1)
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
        econtent_type=_dotted(_expect(encap[0], 6, "encapContentInfo").encoded),
        certificates=loaded,
        signer_certificate=loaded[signer],
        digest_algorithm=digest_name(_algorithm(signer_info[2], "digestAlgorithm")),
        signature_algorithm=signature_algorithm_name(_algorithm(signer_info[4], "signatureAlgorithm")),
        signed_attrs=signed_attrs,
        attributes=attributes,
        signature=_octets(_expect(signer_info[5], 4, "signature")),
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
    if signed.signature_algorithm not in _SIGNATURE_OIDS_BY_NAME:
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
