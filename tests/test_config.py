"""
The realm configs without a server: relative dates, C{scep.yaml} sections,
profiles and the cross-checks of a whole config directory.
"""

from __future__ import annotations

import datetime
import os
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from scep.authority.configcheck import check_config
from scep.authority.policy import add_relative, parse_server, relative_date, subtract_relative
from scep.authority.profiles import ProfileViolation, build_certificate, parse_profile
from scep.authority.tokens import generate_key, make_token_certificate
from scep.config import ConfigError
from tests.server import ETC

UTC = datetime.UTC


class RelativeDateTests(SynchronousTestCase):
    def test_days(self) -> None:
        """"000060" is sixty days; "+0000010000" is one hour."""
        self.assertEqual(relative_date("000060", "f", "k"), datetime.timedelta(days=60))
        self.assertEqual(relative_date("+0000000100", "f", "k"), datetime.timedelta(hours=1))

    def test_months_and_years(self) -> None:
        """Years and months are calendar months, clamped to the month's end."""
        start = datetime.datetime(2024, 1, 31, tzinfo=UTC)
        self.assertEqual(add_relative(start, relative_date("0001", "f", "k")), datetime.datetime(2024, 2, 29, tzinfo=UTC))
        self.assertEqual(add_relative(start, relative_date("01", "f", "k")), datetime.datetime(2025, 1, 31, tzinfo=UTC))
        self.assertEqual(add_relative(start, relative_date("000102", "f", "k")),
                         datetime.datetime(2024, 3, 2, tzinfo=UTC))
        self.assertEqual(subtract_relative(datetime.datetime(2024, 3, 31, tzinfo=UTC), relative_date("0001", "f", "k")),
                         datetime.datetime(2024, 2, 29, tzinfo=UTC))
        self.assertEqual(subtract_relative(start, relative_date("000060", "f", "k")),
                         datetime.datetime(2023, 12, 2, tzinfo=UTC))

    def test_unquoted(self) -> None:
        """A number (what YAML makes of 000060) or junk is refused with a hint."""
        for value in (60, "60d", "", "+1", None):
            with self.assertRaises(ConfigError) as e:
                relative_date(value, "scep.yaml", "generic.renewal_period")
            self.assertIn("quoted relative date", str(e.exception))


class ServerConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """An empty section: no challenge, 60-day renewal, tls_client, full GetCACert, no chain."""
        server = parse_server("r", "s", {}, "f")
        self.assertEqual((server.challenge, server.renewal_period, server.cert_profile, server.getcacert,
                          server.chain), (None, datetime.timedelta(days=60), "tls_client", "ra+issuer+root", "none"))
        self.assertEqual(server.eligible, {"initial": True, "renewal": True, "onbehalf": True})

    def test_errors(self) -> None:
        """Each wrong key is named with its servername."""
        for section, key in (({"policy": {"allow_replace": "yes"}}, "s.policy.allow_replace"),
                             ({"policy": {"allow_key_reuse": 2}}, "s.policy.allow_key_reuse"),
                             ({"policy": {"max_active_certs": -1}}, "s.policy.max_active_certs"),
                             ({"authorized_signer": {"a": {"subject": "("}}}, "s.authorized_signer.a.subject"),
                             ({"response": {"chain": "all"}}, "s.response.chain"),
                             ({"response": {"getcacert": "root"}}, "s.response.getcacert"),
                             ({"revoke_on_replace": {}}, "s.revoke_on_replace.reason_code"),
                             ({"signing_time_tolerance": "0001"}, "s.signing_time_tolerance"),
                             ({"challenge": {"value": ["a"]}}, "s.challenge.value")):
            with self.assertRaises(ConfigError) as e:
                parse_server("r", "s", section, "scep.yaml")
            self.assertEqual(e.exception.key, key)

    def test_eligibility(self) -> None:
        """eligible.<mode>.value 1 passes; a mode left out of an eligible section does not."""
        server = parse_server("r", "s", {"eligible": {"initial": {"value": 1}, "renewal": {"value": 0}}}, "f")
        self.assertEqual(server.eligible, {"initial": True, "renewal": False, "onbehalf": False})


def csr(key, subject: x509.Name, sans=()):  # type: ignore[no-untyped-def]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())


class ProfileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca_key = generate_key("rsa2048")
        self.ca = make_token_certificate(group="ca-signer", realm="r", generation=1, key=self.ca_key,
                                         issuer_certificate=None, issuer_key=None, days=3650)
        self.now = datetime.datetime.now(UTC)

    def issue(self, profile, request):  # type: ignore[no-untyped-def]
        return build_certificate(request, profile, issuer_certificate=self.ca, issuer_key=self.ca_key, now=self.now)

    def test_key_types(self) -> None:
        """RSA below the minimum, a curve not listed and EdDSA are refused; P-256 and P-384 pass."""
        profile = parse_profile("p", {}, "f")
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k")])
        for curve in (ec.SECP256R1(), ec.SECP384R1()):
            self.issue(profile, csr(ec.generate_private_key(curve), name))
        for key, text in ((rsa.generate_private_key(public_exponent=65537, key_size=1024), "at least 2048"),
                          (ec.generate_private_key(ec.SECP521R1()), "secp521r1 is not allowed"),
                          (ed25519.Ed25519PrivateKey.generate(), "EdDSA")):
            with self.assertRaises(ProfileViolation) as e:
                self.issue(profile, csr(key, name))
            self.assertIn(text, str(e.exception))

    def test_subject_template(self) -> None:
        """The template takes the CSR's RDNs, escaped; a missing one is named."""
        profile = parse_profile("p", {"subject": "CN={CN},O={O},OU=Fixed"}, "f")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a,b"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org")])
        certificate = self.issue(profile, csr(key, subject))
        self.assertEqual(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "a,b")
        self.assertEqual(certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value, "Fixed")
        with self.assertRaises(ProfileViolation) as e:
            self.issue(profile, csr(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])))
        self.assertIn("needs O", str(e.exception))

    def test_sans_and_usages(self) -> None:
        """Only the profile's SAN types are copied; key usage and EKU come from the profile."""
        profile = parse_profile("p", {"san": ["uri"], "key_usage": ["digital_signature"],
                                      "extended_key_usage": ["server_auth"], "validity": "000010"}, "f")
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.issue(profile, csr(key, x509.Name([]), [
            x509.DNSName("dropped.example"), x509.UniformResourceIdentifier("tag:microsoft.com,2022-09-14:sid:S-1")]))
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertTrue(names.critical, "a SAN-only certificate marks the SAN critical")
        self.assertEqual([n.value for n in names.value], ["tag:microsoft.com,2022-09-14:sid:S-1"])
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.digital_signature)
        self.assertFalse(usage.key_encipherment)
        self.assertLessEqual(certificate.not_valid_after_utc - self.now, datetime.timedelta(days=10))

    def test_no_name_at_all(self) -> None:
        """A certificate without subject and SAN is refused."""
        profile = parse_profile("p", {"san": []}, "f")
        with self.assertRaises(ProfileViolation):
            self.issue(profile, csr(ec.generate_private_key(ec.SECP256R1()), x509.Name([])))

    def test_profile_errors(self) -> None:
        """Unknown usages, SAN types and curves are named."""
        for section, key in (({"key_usage": ["fly"]}, "p.key_usage"),
                             ({"extended_key_usage": ["fly"]}, "p.extended_key_usage"),
                             ({"san": ["fax"]}, "p.san"),
                             ({"key_types": {"ec": ["p999"]}}, "p.key_types.ec"),
                             ({"key_types": {"rsa": 512}}, "p.key_types.rsa"),
                             ({"validity": 1}, "p.validity")):
            with self.assertRaises(ConfigError) as e:
                parse_profile("p", section, "profiles.yaml")
            self.assertEqual(e.exception.key, key)


class CheckConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.config = os.path.join(self.mktemp(), "etc")
        shutil.copytree(ETC, self.config)

    def test_shipped(self) -> None:
        """The shipped config passes: one endpoint, one realm."""
        checked = check_config(self.config)
        self.assertEqual(([e.endpoint for e in checked.endpoints], sorted(checked.realms)), (["default"], ["democa"]))

    def test_unknown_realm(self) -> None:
        """An endpoint naming a realm without a directory is refused."""
        with open(os.path.join(self.config, "scep", "vpn.conf"), "w") as f:
            f.write("[global]\nrealm = vpnca\n")
        with self.assertRaises(ConfigError) as e:
            check_config(self.config)
        self.assertEqual(e.exception.key, "global.realm")

    def test_unknown_servername(self) -> None:
        """An endpoint whose servername is no section of the realm's scep.yaml is refused."""
        with open(os.path.join(self.config, "scep", "vpn.conf"), "w") as f:
            f.write("[global]\nrealm = democa\n")
        with self.assertRaises(ConfigError) as e:
            check_config(self.config)
        self.assertIn("'vpn' is not a section", str(e.exception))
