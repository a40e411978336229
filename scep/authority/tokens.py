"""
Tokens: the private keys of the CA and RA certificates, and the files that
hold them.

A key lives in C{<state>/keys/<identifier>.pem}, PKCS#8 encrypted with the
passphrase in C{<state>/passphrase} (mode 0600; later a PKCS#11 token).
Only the authority and C{scepadm} read these files.  This module also makes
new tokens: the demo realm's root, issuing CA and RA on first start, and a
new generation of an issuing CA or RA for C{scepadm token add}.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from scep.store import AliasRecord, AuditRecord, Store, certificate_identifier, certificate_record_from_der

PrivateKey = Any
"""An RSA or EC private key of C{cryptography}."""

GROUPS = ("root", "ca-signer", "scep")
"""The token groups of a realm: root CA, issuing CA, RA."""


class TokenError(Exception):
    """A key file is missing, unreadable, or does not match its certificate."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class KeyStore:
    """The encrypted key files of one state directory."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.directory = os.path.join(state_dir, "keys")
        self._passphrase: bytes | None = None

    @property
    def passphrase(self) -> bytes:
        """The passphrase, made on first use (mode 0600)."""
        if self._passphrase is None:
            path = os.path.join(self.state_dir, "passphrase")
            try:
                with open(path, "rb") as f:
                    self._passphrase = f.read().strip()
            except FileNotFoundError:
                os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
                value = secrets.token_urlsafe(32).encode("ascii")
                try:
                    _write_private(path, value + b"\n")
                except FileExistsError:
                    return self.passphrase
                self._passphrase = value
            if not self._passphrase:
                raise TokenError(f"{path} is empty")
        return self._passphrase

    def path(self, identifier: str) -> str:
        return os.path.join(self.directory, identifier + ".pem")

    def has(self, identifier: str) -> bool:
        return os.path.exists(self.path(identifier))

    def save(self, identifier: str, key: PrivateKey) -> None:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.passphrase),
        )
        _write_private(self.path(identifier), data)

    def load(self, identifier: str, certificate: x509.Certificate | None = None) -> PrivateKey:
        """
        Load and check one key; with C{certificate}, the key must match it.

        @raise TokenError: naming the file and the problem.
        """
        path = self.path(identifier)
        try:
            with open(path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), self.passphrase)
        except FileNotFoundError:
            raise TokenError(f"{path}: no key for token {identifier}") from None
        except (ValueError, TypeError) as e:
            raise TokenError(f"{path}: cannot load the key ({e})") from None
        if certificate is not None and key.public_key() != certificate.public_key():
            raise TokenError(f"{path}: the key does not match certificate {identifier}")
        return key


def _name(common_name: str, realm: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scep"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, realm),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI naming C{issuer}: its own subject key identifier where it has one."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _random_serial() -> int:
    """A positive serial of 127 random bits: unique across workers and hosts."""
    return secrets.randbits(127) | (1 << 63)


def make_token_certificate(
    *, group: str, realm: str, generation: int, key: PrivateKey,
    issuer_certificate: x509.Certificate | None, issuer_key: PrivateKey | None,
    days: int, now: datetime.datetime | None = None,
) -> x509.Certificate:
    """
    Make the certificate of a root (self-signed), issuing CA or RA token.

    The RA certificate has keyUsage digitalSignature and keyEncipherment, as
    RFC 8894 and Apple's and Windows' clients want of the certificate they
    encrypt to.
    """
    now = now or _utcnow()
    label = {"root": "Root CA", "ca-signer": "Issuing CA", "scep": "SCEP RA"}[group]
    subject = _name(f"{realm} {label} {generation}", realm)
    issuer = issuer_certificate.subject if issuer_certificate is not None else subject
    signer = issuer_key if issuer_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - datetime.timedelta(minutes=10))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_certificate is not None:
        builder = builder.add_extension(authority_key_identifier(issuer_certificate), critical=False)
    if group == "scep":
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        usage = dict(digital_signature=True, key_encipherment=True, key_cert_sign=False, crl_sign=False)
    else:
        path_length = None if group == "root" else 0
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        usage = dict(digital_signature=True, key_encipherment=False, key_cert_sign=True, crl_sign=True)
    builder = builder.add_extension(
        x509.KeyUsage(content_commitment=False, data_encipherment=False, key_agreement=False,
                      encipher_only=False, decipher_only=False, **usage),
        critical=True,
    )
    return builder.sign(signer, hashes.SHA256())


KEY_TYPES = {
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "rsa4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
    "ec256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
}
"""
The key types of a token.  An EC issuing CA signs a certificate in a tenth
of the time of RSA-2048; the RA must be RSA, since clients encrypt their
requests to it with RSA key transport.
"""


def generate_key(key_type: str = "rsa2048") -> PrivateKey:
    """A new token key of one of L{KEY_TYPES}."""
    make = KEY_TYPES.get(key_type)
    if make is None:
        raise TokenError(f"unknown key type {key_type!r}: one of {', '.join(KEY_TYPES)}")
    return make()


@dataclass(frozen=True)
class NewToken:
    """What L{add_token} made."""

    alias: str
    identifier: str
    certificate: x509.Certificate


TOKEN_DAYS = {"root": 3650, "ca-signer": 1825, "scep": 730}
TOKEN_KEYS = {"root": "rsa3072", "ca-signer": "rsa2048", "scep": "rsa2048"}


def add_token(store: Store, keys: KeyStore, realm: str, group: str, *,
              issuer: tuple[x509.Certificate, PrivateKey] | None, actor: str,
              notbefore: datetime.datetime | None = None,
              key_type: str | None = None, days: int | None = None) -> NewToken:
    """
    Make a new generation of a token group: key, certificate, alias.

    C{issuer} is the certificate and key that sign it (C{None} for a root).
    """
    key_type = key_type or TOKEN_KEYS[group]
    if group == "scep" and not key_type.startswith("rsa"):
        raise TokenError("an RA key must be RSA: clients encrypt their requests to it with RSA key transport")
    alias = store.next_alias_name(realm, group)
    generation = int(alias.rsplit("-", 1)[1])
    key = generate_key(key_type)
    issuer_cert, issuer_key = issuer if issuer is not None else (None, None)
    certificate = make_token_certificate(
        group=group, realm=realm, generation=generation, key=key,
        issuer_certificate=issuer_cert, issuer_key=issuer_key, days=days or TOKEN_DAYS[group],
    )
    issuer_der = (issuer_cert or certificate).public_bytes(serialization.Encoding.DER)
    record = certificate_record_from_der(
        certificate.public_bytes(serialization.Encoding.DER), realm=realm,
        issuer_identifier=certificate_identifier(issuer_der))
    keys.save(record.identifier, key)
    store.add_certificate(record)
    store.add_alias(
        AliasRecord(realm=realm, group=group, alias=alias, identifier=record.identifier,
                    notbefore=notbefore, notafter=None),
        audit=AuditRecord(id=None, time=_utcnow(), realm=realm, actor=actor, action="alias add",
                          transaction_id=None, identifier=record.identifier,
                          detail=f"{alias} ({group}) {certificate.subject.rfc4514_string()}"),
    )
    return NewToken(alias=alias, identifier=record.identifier, certificate=certificate)


def create_realm(store: Store, keys: KeyStore, realm: str, actor: str) -> list[NewToken]:
    """
    Make a realm's three tokens: root-1, ca-signer-1 signed by it, scep-1
    signed by the issuing CA.  A realm that has a root already is left alone.
    """
    if store.list_aliases(realm, "root"):
        return []
    root = add_token(store, keys, realm, "root", issuer=None, actor=actor)
    root_key = keys.load(root.identifier, root.certificate)
    signer = add_token(store, keys, realm, "ca-signer", issuer=(root.certificate, root_key), actor=actor)
    signer_key = keys.load(signer.identifier, signer.certificate)
    ra = add_token(store, keys, realm, "scep", issuer=(signer.certificate, signer_key), actor=actor)
    return [root, signer, ra]
