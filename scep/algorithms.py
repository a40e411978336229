"""
The algorithms of the CMS codec: what SCEP clients encrypt, digest and sign
with, and the primitives behind them.

The tables (L{CIPHERS}, L{DIGESTS}, L{SIGNATURE_ALGORITHMS}) name every
algorithm once, by the name config, logs and L{scep.cms} use; the lookups
turn OIDs into those names.  Content encryption is CBC with strict PKCS#7
padding, key transport RSA PKCS#1 v1.5 or OAEP; every primitive comes from
C{cryptography}.  asn1crypto's OID tables are extended here (never replaced)
with Blowfish and CAST5.

Dangerous choices are kept because old clients need them and are named as such:
single DES ('des', 56-bit key, brute-forceable) and MD5 ('md5', collisions) must
never be chosen for replies; RFC 8894 section 2.9 says MUST NOT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from cryptography.hazmat.decrepit.ciphers import algorithms as decrepit
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP, PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from scep.der import CMSError, algorithm_identifier, der_oid, der_tlv, octets, values

OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_MGF1 = "1.2.840.113549.1.1.8"


class AlgorithmNotSupported(CMSError):
    """An algorithm is unknown or not supported; str() names it."""


class DecryptionFailed(CMSError):
    """Decryption failed; deliberately says nothing about why (padding oracle)."""


# -- ASN.1 registrations (extend asn1crypto's tables, never replace them) -----


class CAST5CBCParameters(asn1_core.Sequence):
    """RFC 2144 / RFC 2984: SEQUENCE { iv OCTET STRING DEFAULT 0, keyLength INTEGER }."""

    _fields = [
        ("iv", asn1_core.OctetString, {"optional": True}),
        ("key_length", asn1_core.Integer),
    ]


def register_oid(cls: Any, dotted: str, name: str) -> None:
    """Add C{dotted} as C{name} to the OID table of asn1crypto class C{cls}, unless it is there."""
    cls._map.setdefault(dotted, name)
    if cls._reverse_map is not None:
        cls._reverse_map.setdefault(cls._map[dotted], dotted)


register_oid(asn1_algos.EncryptionAlgorithmId, "1.3.6.1.4.1.3029.1.2", "blowfish_cbc")
register_oid(asn1_algos.EncryptionAlgorithmId, "1.2.840.113533.7.66.10", "cast5_cbc")
asn1_algos.EncryptionAlgorithm._oid_specs.setdefault("blowfish_cbc", asn1_core.OctetString)
# Either form of Cast5Parameters: read by read_cast5_parameters, not by asn1crypto.
asn1_algos.EncryptionAlgorithm._oid_specs.setdefault("cast5_cbc", asn1_core.Any)


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

Cast5Parameters = Literal["iv", "rfc2984"]
"""
The two encodings of CAST5-CBC parameters.  'iv' is a plain OCTET STRING
IV, the form OpenSSL reads and writes (and so sscep, certmonger and
OpenXPKI's tooling); 'rfc2984' is RFC 2984's CAST5CBCParameters, which
OpenSSL refuses ("ASN1_TYPE_get_octetstring: data is wrong").
"""


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
SIGNATURE_OIDS_BY_NAME = {name: oid for oid, (name, _) in SIGNATURE_ALGORITHMS.items()}
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


# -- content encryption --------------------------------------------------------------


def encrypt_content(
    cipher: str, data: bytes, *, cast5_parameters: Cast5Parameters = "iv"
) -> tuple[bytes, bytes, bytes]:
    """
    Encrypt C{data} under a fresh key: (key, AlgorithmIdentifier DER, ciphertext).
    The parameters are the IV; for CAST5, in the form C{cast5_parameters} says.
    """
    spec = CIPHERS[cipher]
    key, iv = os.urandom(spec.key_size), os.urandom(spec.iv_size)
    padder = padding.PKCS7(spec.block_size * 8).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    params = der_tlv(0x04, iv)
    if spec.name == "cast5" and cast5_parameters == "rfc2984":  # { iv, keyLength in bits }
        params = der_tlv(0x30, params + der_tlv(0x02, (spec.key_size * 8).to_bytes(2, "big")))
    return key, der_tlv(0x30, der_oid(spec.oid) + params), ciphertext


def content_cipher(alg: asn1_algos.EncryptionAlgorithm) -> tuple[CipherSpec, bytes]:
    """The cipher and IV of a content-encryption algorithm identifier."""
    spec = cipher_for_oid(alg["algorithm"].dotted)
    if spec.name == "cast5":
        iv, _ = read_cast5_parameters(alg)
    else:
        iv = alg["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != spec.iv_size:
        raise CMSError(f"bad IV for {spec.name}")
    return spec, iv


def read_cast5_parameters(alg: asn1_algos.EncryptionAlgorithm) -> tuple[bytes, Cast5Parameters]:
    """
    The IV of the CAST5-CBC parameters of C{alg} in either form, and which
    form they have; L{CMSError} for anything else.
    """
    fields = values(values(alg.dump())[0].contents)
    if len(fields) != 2:
        raise CMSError("bad parameters for cast5")
    params = fields[1]
    if params.class_ == 0 and params.tag == 4:  # OCTET STRING: OpenSSL's form
        return octets(params), "iv"
    if params.class_ != 0 or params.tag != 16:
        raise CMSError("bad parameters for cast5")
    try:
        sequence = CAST5CBCParameters.load(params.encoded, strict=True)
        iv, key_length = sequence["iv"].native, sequence["key_length"].native
    except ValueError:
        raise CMSError("bad parameters for cast5") from None
    if not isinstance(key_length, int):
        raise CMSError("bad parameters for cast5")
    return bytes(8) if iv is None else iv, "rfc2984"


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


# -- key transport ---------------------------------------------------------------------


def _oaep(hash_name: str, mgf_hash_name: str, label: bytes | None) -> OAEP:
    return OAEP(MGF1(digest_spec(mgf_hash_name).hash()), digest_spec(hash_name).hash(), label or None)


def wrap_key(
    key_transport: str, public_key: rsa.RSAPublicKey, key: bytes, *, oaep_digest: str = "sha1"
) -> tuple[bytes, bytes]:
    """Encrypt a content key to an RSA key: (AlgorithmIdentifier DER, encrypted key)."""
    if key_transport == "rsaes_pkcs1v15":
        return algorithm_identifier(OID_RSA_ENCRYPTION), public_key.encrypt(key, PKCS1v15())
    if key_transport != "rsaes_oaep":
        raise AlgorithmNotSupported(f"key transport {key_transport} not supported")
    params = b""  # RSAES-OAEP-params with all defaults (SHA-1, MGF1-SHA-1)
    if oaep_digest != "sha1":
        digest = algorithm_identifier(DIGESTS[oaep_digest].oid)
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
