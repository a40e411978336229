"""
Certificate profiles: C{realms/<realm>/profiles.yaml}, and the making of a
certificate from a CSR under one.

A profile::

    tls_client:
      validity: "01"                 # relative date: one year
      key_usage: [digital_signature, key_encipherment]
      extended_key_usage: [client_auth]
      subject: "CN={CN},O=Example"   # optional; default: the CSR's subject
      san: [dns, ip, email, uri]     # SAN types copied from the CSR
      key_types: {rsa: 2048, ec: [secp256r1, secp384r1]}

A CSR that breaks the profile is refused with a text naming the rule.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scep.authority.policy import _Months, add_relative, relative_date
from scep.authority.tokens import authority_key_identifier
from scep.config import ConfigError, load_yaml

KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign")
EXTENDED_KEY_USAGES = {
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_ike": ExtendedKeyUsageOID.IPSEC_IKE,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "smartcard_logon": ExtendedKeyUsageOID.SMARTCARD_LOGON,
}
SAN_TYPES = {
    "dns": x509.DNSName,
    "ip": x509.IPAddress,
    "email": x509.RFC822Name,
    "uri": x509.UniformResourceIdentifier,
    "upn": x509.OtherName,
}
CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}
RDN_NAMES = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
    "DC": NameOID.DOMAIN_COMPONENT, "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER, "emailAddress": NameOID.EMAIL_ADDRESS,
    "UID": NameOID.USER_ID, "unstructuredName": x509.ObjectIdentifier("1.2.840.113549.1.9.2"),
}
TEMPLATE_FIELD = re.compile(r"\{(\w+)\}")


class ProfileViolation(Exception):
    """The CSR breaks a rule of the profile; C{str()} names the rule."""


@dataclass(frozen=True)
class Profile:
    name: str
    validity: datetime.timedelta | _Months
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    subject: str | None
    san: tuple[str, ...]
    rsa_min_bits: int | None
    ec_curves: tuple[str, ...]

    def check_key(self, key: Any) -> None:
        """
        @raise ProfileViolation: for a key type or size the profile refuses.
        """
        if isinstance(key, rsa.RSAPublicKey):
            if self.rsa_min_bits is None:
                raise ProfileViolation(f"profile {self.name}: RSA keys are not allowed")
            if key.key_size < self.rsa_min_bits:
                raise ProfileViolation(
                    f"profile {self.name}: RSA key of {key.key_size} bits, at least {self.rsa_min_bits} required")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in self.ec_curves:
                raise ProfileViolation(f"profile {self.name}: EC curve {key.curve.name} is not allowed")
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            raise ProfileViolation(f"profile {self.name}: EdDSA keys are not allowed")
        else:
            raise ProfileViolation(f"profile {self.name}: this key type is not allowed")

    def subject_for(self, csr_subject: x509.Name) -> x509.Name:
        """The subject of the certificate: the template over the CSR's RDNs."""
        if self.subject is None:
            return csr_subject
        values: dict[str, str] = {}
        for short, oid in RDN_NAMES.items():
            found = csr_subject.get_attributes_for_oid(oid)
            if found:
                values[short] = str(found[0].value)
        for needed in TEMPLATE_FIELD.findall(self.subject):
            if needed not in values:
                raise ProfileViolation(f"profile {self.name}: the subject template needs {needed} in the CSR")
        text = TEMPLATE_FIELD.sub(lambda m: _escape_rdn(values[m.group(1)]), self.subject)
        try:
            return x509.Name.from_rfc4514_string(text, {k: v for k, v in RDN_NAMES.items()})
        except ValueError as e:
            raise ProfileViolation(f"profile {self.name}: the subject template gives a bad name ({e})") from None

    def names_for(self, requested: list[x509.GeneralName]) -> list[x509.GeneralName]:
        """The SANs of the certificate: the CSR's, of the types the profile copies."""
        kinds = tuple(SAN_TYPES[k] for k in self.san)
        return [name for name in requested if isinstance(name, kinds)]


def _escape_rdn(value: str) -> str:
    out = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def _list(value: Any, path: str, key: str, allowed: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, key, "must be a list of names")
    for item in value:
        if item not in allowed:
            raise ConfigError(path, key, f"{item!r} is not one of {', '.join(allowed)}")
    return tuple(value)


def parse_profile(name: str, section: Any, path: str) -> Profile:
    if not isinstance(section, dict):
        raise ConfigError(path, name, "must be a mapping")
    validity = relative_date(section.get("validity", "01"), path, f"{name}.validity")
    subject = section.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise ConfigError(path, f"{name}.subject", "must be a template string")
    key_types = section.get("key_types", {"rsa": 2048, "ec": ["secp256r1", "secp384r1"]})
    if not isinstance(key_types, dict):
        raise ConfigError(path, f"{name}.key_types", "must be a mapping")
    rsa_min = key_types.get("rsa")
    if rsa_min is not None and (not isinstance(rsa_min, int) or rsa_min < 1024):
        raise ConfigError(path, f"{name}.key_types.rsa", "must be a minimum size in bits (>= 1024)")
    return Profile(
        name=name,
        validity=validity,
        key_usage=_list(section.get("key_usage", ["digital_signature", "key_encipherment"]),
                        path, f"{name}.key_usage", KEY_USAGES),
        extended_key_usage=_list(section.get("extended_key_usage", ["client_auth"]),
                                 path, f"{name}.extended_key_usage", EXTENDED_KEY_USAGES),
        subject=subject,
        san=_list(section.get("san", ["dns", "ip", "email", "uri"]), path, f"{name}.san", SAN_TYPES),
        rsa_min_bits=rsa_min,
        ec_curves=_list(key_types.get("ec", []), path, f"{name}.key_types.ec", CURVES),
    )


DEFAULT_PROFILES = {"tls_client": parse_profile("tls_client", {}, "(built in)")}


def load_profiles(config_dir: str, realm: str) -> dict[str, Profile]:
    """The profiles of a realm; the built-in C{tls_client} when there is no file."""
    path = os.path.join(config_dir, "realms", realm, "profiles.yaml")
    tree = load_yaml(path)
    if tree is None:
        return dict(DEFAULT_PROFILES)
    if not isinstance(tree, dict):
        raise ConfigError(path, None, "must be a mapping of profile name to profile")
    return {str(name): parse_profile(str(name), section, path) for name, section in tree.items()}


def build_certificate(
    csr: x509.CertificateSigningRequest, profile: Profile, *,
    issuer_certificate: x509.Certificate, issuer_key: Any, now: datetime.datetime,
    not_after: datetime.datetime | None = None,
) -> x509.Certificate:
    """
    Make and sign the certificate for C{csr} under C{profile}.

    @raise ProfileViolation: when the CSR breaks the profile.
    """
    public_key = csr.public_key()
    profile.check_key(public_key)
    subject = profile.subject_for(csr.subject)
    try:
        requested = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        requested = []
    except ValueError as e:
        raise ProfileViolation(f"the CSR's extensions cannot be read ({e})") from None
    names = profile.names_for(requested)
    if not len(subject) and not names:
        raise ProfileViolation(f"profile {profile.name}: the certificate would have neither subject nor SAN")
    end = not_after or add_relative(now, profile.validity)
    end = min(end, issuer_certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(public_key)
        .serial_number(secrets.randbits(127) | (1 << 63))
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(issuer_certificate), critical=False)
    )
    if profile.key_usage:
        usage = {name: name in profile.key_usage for name in KEY_USAGES}
        builder = builder.add_extension(
            x509.KeyUsage(**usage, encipher_only=False, decipher_only=False), critical=True)
    if profile.extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([EXTENDED_KEY_USAGES[n] for n in profile.extended_key_usage]),
            critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=not len(subject))
    return builder.sign(issuer_key, hashes.SHA256())
