"""
The operator's keys, each observed through a real server: one C{twistd -n
scep} with many endpoints, each endpoint's wrapper config mapping to a
servername (and one to another realm) whose section sets the key under test.
A test here fails if its key is ignored.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac as hmac_module
import json
import os
import subprocess
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial.unittest import TestCase

from scep import clientmessage
from scep.client import Client, HTTPFailure, make_csr, transaction_id_for
from scep.message import FailInfo, MessageType, PKIStatus
from tests.server import SCEPADM, Server, add_server_configs, environment, merge_yaml, shared_server


def key(bits: int = 2048) -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


SERVERS: dict[str, Any] = {
    "hmac": {"hmac": "hmac-secret", "challenge": {"value": "not-this-one"}},
    "anon": {"policy": {"allow_anon_enroll": 1}},
    "manauthen": {"challenge": {"value": "right"}, "policy": {"allow_man_authen": 1}},
    "approv": {"challenge": {"value": "right"}, "policy": {"allow_man_approv": 1, "approval_points": 2}},
    "noteligible": {"challenge": {"value": "right"}, "policy": {"approval_points": 1},
                    "eligible": {"initial": {"value": 0}}},
    "maxactive": {"challenge": {"value": "right"}, "policy": {"max_active_certs": 1}},
    "autorevoke": {"challenge": {"value": "right"}, "policy": {"auto_revoke_existing_certs": 1}},
    "nowindow": {"challenge": {"value": "right"}},
    "replace": {"challenge": {"value": "right"}, "policy": {"allow_replace": 1}, "initial_validity": "0003"},
    "window": {"challenge": {"value": "right"}, "renewal_period": "02",
               "revoke_on_replace": {"reason_code": "superseded"}},
    "keyreuse": {"challenge": {"value": "right"}, "renewal_period": "02", "policy": {"allow_key_reuse": 1},
                 "revoke_on_replace": {"reason_code": "superseded"}},
    "onbehalf": {"challenge": {"value": "right"},
                 "authorized_signer": {"operators": {"subject": "^CN=ra-operator"}}},
    "profilemap": {"challenge": {"value": "right"},
                   "profile_map": {"IPSECIntermediateOffline": "tls_server", "server": "tls_server"}},
    "shortvalid": {"challenge": {"value": "right"}, "initial_validity": "000030"},
    "raonly": {"challenge": {"value": "right"}, "response": {"getcacert": "ra", "chain": "fullchain"}},
    "strict": {"challenge": {"value": "right"}, "profile": {"cert_profile": "strict"}},
}

PROFILES = {
    "strict": {"validity": "0006", "subject": "CN={CN},OU=Devices,O=scep tests",
               "key_usage": ["digital_signature"], "extended_key_usage": ["client_auth"],
               "san": ["dns", "uri"], "key_types": {"rsa": 3072}},
}

ENDPOINTS = {
    name: f"[global]\nrealm = democa\nservername = {name}\n" for name in SERVERS
}
ENDPOINTS.update({
    "hmac": "[global]\nrealm = democa\nservername = hmac\n[PKIOperation]\nparam = signature\n",
    "profilemap": "[global]\nrealm = democa\nservername = profilemap\n[PKIOperation]\nparam = profile\n",
    "vpn": "[global]\nrealm = vpnca\nservername = vpnserver\n",
    "lab": "[global]\nrealm = democa\nservername = generic\niprange = 10.0.0.0/8\n",
    "aes256": "[global]\nrealm = democa\nservername = generic\nencryption_algorithm = aes256\n"
              "hash_algorithm = sha512\n",
    "debug": "[global]\nrealm = democa\nservername = generic\n[logger]\nlog_level = DEBUG\n",
    "trace": "[global]\nrealm = democa\nservername = generic\nlog_level = TRACE\n",
})


def configure(server: Server) -> None:
    """Write the endpoints, server sections, profiles and a second realm."""
    add_server_configs(server.config, SERVERS)
    merge_yaml(os.path.join(server.config, "realms", "democa", "profiles.yaml"), PROFILES)
    for name, text in ENDPOINTS.items():
        with open(os.path.join(server.config, "scep", name + ".conf"), "w") as f:
            f.write(text)
    vpn = os.path.join(server.config, "realms", "vpnca")
    os.makedirs(vpn)
    with open(os.path.join(vpn, "scep.yaml"), "w") as f:
        f.write("vpnserver:\n  challenge:\n    value: vpn-secret\n")
    subprocess.run([*SCEPADM, "--config", server.config, "--state", server.state, "--realm", "vpnca", "init"],
                   env=environment(), check=True, capture_output=True, timeout=120)


class PolicyTests(TestCase):
    def setUp(self) -> None:
        self.server = shared_server("policy", workers=2, prepare=configure)

    def client(self, endpoint: str, **options: Any) -> Client:
        return Client(f"{self.server.url}/scep/{endpoint}", **options)

    def enroll(self, endpoint: str, cn: str, challenge: str | None = "right", **options: Any) -> tuple[Any, Any]:
        k = key()
        reply = self.client(endpoint).enroll(k, make_csr(k, cn, challenge=challenge), **options)
        return k, reply

    def assertFailure(self, reply: Any, fail_info: FailInfo, text: str) -> None:
        self.assertEqual(reply.status, PKIStatus.FAILURE)
        self.assertEqual(reply.fail_info, fail_info)
        self.assertIn(text, reply.fail_info_text or "")

    def certificate(self, identifier_or_cert: Any) -> dict[str, Any]:
        if isinstance(identifier_or_cert, x509.Certificate):
            from scep.store import certificate_identifier

            identifier_or_cert = certificate_identifier(identifier_or_cert.public_bytes(serialization.Encoding.DER))
        return json.loads(self.server.scepadm("--json", "certificate", "show", identifier_or_cert).stdout)

    # wrapper config

    def test_second_realm(self) -> None:
        """vpn.conf maps to realm vpnca and servername vpnserver: its CA and its challenge."""
        _, reply = self.enroll("vpn", "vpn-device", challenge="vpn-secret")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertIn("vpnca Issuing CA", reply.certificates[0].issuer.rfc4514_string())
        _, reply = self.enroll("vpn", "vpn-device", challenge="SecretChallenge")
        self.assertFailure(reply, FailInfo.badRequest, "challenge")

    def test_get_cert_stays_in_its_realm(self) -> None:
        """GetCert through an endpoint of another realm does not find the certificate."""
        k, reply = self.enroll("vpn", "vpn-only", challenge="vpn-secret")
        issued = reply.certificates[0]
        answer = self.client("vpn").get_cert(k, issued, issued)
        self.assertEqual(answer.status, PKIStatus.SUCCESS, answer.fail_info_text)
        self.assertEqual(answer.certificates[0], issued)
        answer = self.client("default").get_cert(k, issued, issued)
        self.assertFailure(answer, FailInfo.badCertId, "no certificate")

    def test_iprange(self) -> None:
        """A client outside iprange gets 403 text/plain with the reference's words."""
        with self.assertRaises(HTTPFailure) as e:
            self.client("lab").get_ca_caps()
        self.assertEqual(e.exception.status, 403)
        self.assertIn(b"Access to this service was denied by configuration.", e.exception.body)
        self.assertTrue(e.exception.content_type.startswith("text/plain"))

    def test_reply_algorithms(self) -> None:
        """encryption_algorithm and hash_algorithm set the reply's; without them it mirrors."""
        _, reply = self.enroll("aes256", "algo", challenge="SecretChallenge", cipher="3des", digest="sha1")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual((reply.cipher, reply.digest), ("aes256", "sha512"))
        _, reply = self.enroll("default", "algo", challenge="SecretChallenge", cipher="3des", digest="sha1")
        self.assertEqual((reply.cipher, reply.digest), ("3des", "sha1"))
        _, reply = self.enroll("default", "algo", challenge="SecretChallenge", cipher="des", digest="md5")
        self.assertNotIn(reply.cipher, ("des",))
        self.assertNotEqual(reply.digest, "md5")

    def test_log_levels(self) -> None:
        """INFO logs no request content; DEBUG adds the transactionID; TRACE dumps the message."""
        marks = {}
        for endpoint in ("default", "debug", "trace"):
            k = key()
            tid = f"LOG-{endpoint}-{transaction_id_for(k)}"
            reply = self.client(endpoint).enroll(k, make_csr(k, f"log-{endpoint}", challenge="SecretChallenge"),
                                                 transaction_id=tid)
            self.assertEqual(reply.status, PKIStatus.SUCCESS)
            marks[endpoint] = tid
        log = self.wait_for_log(marks["trace"])
        self.assertNotIn(marks["default"], log)
        self.assertIn(marks["debug"], log)
        self.assertIn("TRACE request", log)
        self.assertNotIn("SecretChallenge", log)

    def wait_for_log(self, text: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = self.server.logged()
            if text in log:
                return log
            time.sleep(0.1)
        return self.server.logged()

    def test_new_endpoint_without_restart(self) -> None:
        """A new .conf takes effect on the next request; an unknown endpoint uses default.conf."""
        self.assertIn("AES", self.client("later").get_ca_caps())
        path = os.path.join(self.server.config, "scep", "later.conf")
        with open(path, "w") as f:
            f.write("[global]\nrealm = democa\nservername = generic\niprange = 192.0.2.0/24\n")
        self.addCleanup(os.remove, path)
        with self.assertRaises(HTTPFailure) as e:
            self.client("later").get_ca_caps()
        self.assertEqual(e.exception.status, 403)

    # authentication

    def test_challenge(self) -> None:
        """challenge.value: right passes, wrong and missing fail with badRequest."""
        _, reply = self.enroll("nowindow", "challenged", challenge="right")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        for challenge in ("wrong", None):
            _, reply = self.enroll("nowindow", "challenged", challenge=challenge)
            self.assertFailure(reply, FailInfo.badRequest, "challenge")

    def test_hmac(self) -> None:
        """hmac: a url_signature over the PEM CSR authenticates without the challenge."""
        k = key()
        csr = make_csr(k, "hmac-device")
        pem = csr.public_bytes(serialization.Encoding.PEM)
        signature = hmac_module.new(b"hmac-secret", pem, hashlib.sha256).hexdigest()
        reply = self.client("hmac").enroll(k, csr, extra={"signature": signature})
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        k = key()
        reply = self.client("hmac").enroll(k, make_csr(k, "hmac-device"), extra={"signature": "00" * 32})
        self.assertFailure(reply, FailInfo.badRequest, "challenge")

    def test_anonymous(self) -> None:
        """allow_anon_enroll: no challenge needed."""
        _, reply = self.enroll("anon", "anonymous", challenge=None)
        self.assertEqual(reply.status, PKIStatus.SUCCESS)

    def test_manual_authentication(self) -> None:
        """allow_man_authen: a wrong challenge waits PENDING for the operator."""
        k, reply = self.enroll("manauthen", "unauthenticated", challenge="wrong")
        self.assertEqual(reply.status, PKIStatus.PENDING)
        shown = json.loads(self.server.scepadm("--json", "request", "show", transaction_id_for(k)).stdout)
        self.assertEqual(shown["status"], "pending")
        self.assertIn("manual authentication", shown["reason"])

    # approval

    def test_approval_points(self) -> None:
        """approval_points 2: PENDING; operator approval; the resend gets the certificate."""
        k = key()
        csr = make_csr(k, "needs-approval", challenge="right")
        client = self.client("approv")
        reply = client.enroll(k, csr)
        self.assertEqual(reply.status, PKIStatus.PENDING)
        listing = self.server.scepadm("request", "list", "--state", "pending").stdout
        self.assertIn(transaction_id_for(k), listing)
        self.server.scepadm("request", "approve", transaction_id_for(k))
        reply = client.enroll(k, csr)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].public_key(), k.public_key())

    def test_not_eligible(self) -> None:
        """eligible.initial 0 without allow_man_approv: FAILURE naming the approval."""
        _, reply = self.enroll("noteligible", "ineligible")
        self.assertFailure(reply, FailInfo.badRequest, "approval")

    def test_max_active_certs(self) -> None:
        """max_active_certs 1: a second certificate for the subject is refused."""
        _, reply = self.enroll("maxactive", "only-one")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        _, reply = self.enroll("maxactive", "only-one")
        self.assertFailure(reply, FailInfo.badRequest, "max_active_certs")

    def test_auto_revoke(self) -> None:
        """auto_revoke_existing_certs: a new initial enrollment revokes the subject's older certificate."""
        _, first = self.enroll("autorevoke", "rotating")
        _, second = self.enroll("autorevoke", "rotating")
        self.assertEqual(second.status, PKIStatus.SUCCESS)
        self.assertEqual(self.certificate(first.certificates[0])["status"], "revoked")
        self.assertEqual(self.certificate(second.certificates[0])["status"], "issued")

    # renewal

    def renew(self, endpoint: str, cn: str) -> tuple[Any, Any]:
        k, reply = self.enroll(endpoint, cn)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        old = reply.certificates[0]
        new_key = key()
        renewed = self.client(endpoint).enroll(new_key, make_csr(new_key, cn), signer=(k, old))
        return old, renewed

    def test_renewal_window(self) -> None:
        """renewal_period: outside the window a renewal fails; a wider window accepts it without a challenge."""
        _, renewed = self.renew("nowindow", "renew-early")
        self.assertFailure(renewed, FailInfo.badRequest, "renewal window")
        old, renewed = self.renew("window", "renew-ok")
        self.assertEqual(renewed.status, PKIStatus.SUCCESS, renewed.fail_info_text)
        self.assertEqual(self.certificate(old)["revocation_reason"], "superseded")

    def test_allow_key_reuse(self) -> None:
        """policy.allow_key_reuse: a renewal that keeps the old key is issued; without it, refused."""
        for endpoint in ("window", "keyreuse"):
            k, reply = self.enroll(endpoint, f"same-key-{endpoint}")
            old = reply.certificates[0]
            renewed = self.client(endpoint).enroll(k, make_csr(k, f"same-key-{endpoint}"), signer=(k, old),
                                                   transaction_id=f"RENEW-SAME-KEY-{endpoint}")
            if endpoint == "window":
                self.assertFailure(renewed, FailInfo.badRequest, "renewal must use a new key")
                self.assertEqual(self.certificate(old)["status"], "issued")
                continue
            self.assertEqual(renewed.status, PKIStatus.SUCCESS, renewed.fail_info_text)
            new = renewed.certificates[0]
            self.assertNotEqual(new.serial_number, old.serial_number)
            self.assertEqual(new.public_key(), k.public_key())
            self.assertEqual(self.certificate(old)["revocation_reason"], "superseded")
            self.assertIn(f"issued serial {new.serial_number:x} (renewal)", self.server.logged())

    def test_key_reuse_in_place_in_parallel(self) -> None:
        """
        The same renewal in place of its transaction (kept key, key-derived
        transactionID) sent 8 times at once to two workers: one new
        certificate, the same for all.
        """
        k, reply = self.enroll("keyreuse", "racing-renewal")
        old = reply.certificates[0]
        client = self.client("keyreuse")
        client.get_ca()
        data = clientmessage.build_pki_message(
            message_type=MessageType.RenewalReq,
            message_data=make_csr(k, "racing-renewal").public_bytes(serialization.Encoding.DER),
            recipient_certificate=client.ra, signer_certificate=old, signer_key=k,
            transaction_id=transaction_id_for(k))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            replies = [clientmessage.parse_cert_rep(r, recipient_key=k, recipient_certificate=old)
                       for r in pool.map(client.send, [data] * 8)]
        self.assertEqual({r.status for r in replies}, {PKIStatus.SUCCESS}, [r.fail_info_text for r in replies])
        serials = {r.certificates[0].serial_number for r in replies}
        self.assertEqual(len(serials), 1)
        self.assertNotIn(old.serial_number, serials)
        rows = json.loads(self.server.scepadm("--json", "certificate", "list", "--limit", "100000").stdout)
        self.assertEqual(len([r for r in rows if r["subject"] == "CN=racing-renewal"]), 2)

    def test_allow_replace(self) -> None:
        """allow_replace: a renewal outside the window is a replace, ending when the old certificate does."""
        old, renewed = self.renew("replace", "replaced")
        self.assertEqual(renewed.status, PKIStatus.SUCCESS, renewed.fail_info_text)
        self.assertEqual(renewed.certificates[0].not_valid_after_utc, old.not_valid_after_utc)
        lifetime = old.not_valid_after_utc - old.not_valid_before_utc
        self.assertLess(lifetime, datetime.timedelta(days=100), "not the profile's year")

    def test_onbehalf(self) -> None:
        """authorized_signer: an operator certificate enrolls another subject; others may not."""
        operator_key, reply = self.enroll("onbehalf", "ra-operator-1")
        operator = reply.certificates[0]
        k = key()
        reply = self.client("onbehalf").enroll(k, make_csr(k, "managed-device"), signer=(operator_key, operator))
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].subject.rfc4514_string(), "CN=managed-device")
        stranger_key, reply = self.enroll("onbehalf", "stranger")
        k = key()
        reply = self.client("onbehalf").enroll(k, make_csr(k, "other-device"), signer=(stranger_key, reply.certificates[0]))
        self.assertFailure(reply, FailInfo.badRequest, "authorized signer")

    # profiles

    def test_profile_map(self) -> None:
        """profile_map: url_profile and the Microsoft template extension pick tls_server."""
        k = key()
        reply = self.client("profilemap").enroll(k, make_csr(k, "by-url", challenge="right"),
                                                 extra={"profile": "server"})
        usages = reply.certificates[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, list(usages))
        template = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2"),
                                              b"\x1e\x30" + "IPSECIntermediateOffline".encode("utf-16-be"))
        k = key()
        reply = self.client("profilemap").enroll(k, make_csr(k, "by-template", challenge="right",
                                                             extensions=[template]))
        usages = reply.certificates[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, list(usages))
        _, reply = self.enroll("profilemap", "plain")
        usages = reply.certificates[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertNotIn(ExtendedKeyUsageOID.SERVER_AUTH, list(usages))

    def test_initial_validity(self) -> None:
        """initial_validity "000030": the certificate ends in 30 days."""
        _, reply = self.enroll("shortvalid", "short")
        lifetime = reply.certificates[0].not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        self.assertTrue(datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=30), lifetime)

    def test_getcacert_and_chain(self) -> None:
        """response.getcacert ra: one certificate; response.chain fullchain: three in the CertRep."""
        self.assertEqual(len(self.client("raonly").get_ca()), 1)
        self.assertEqual(len(self.client("default").get_ca()), 3)
        _, reply = self.enroll("raonly", "with-chain")
        self.assertEqual(len(reply.certificates), 3)
        _, reply = self.enroll("default", "without-chain", challenge="SecretChallenge")
        self.assertEqual(len(reply.certificates), 1)

    def test_strict_profile(self) -> None:
        """A profile's subject template, SAN types, validity and minimum key size."""
        k = key(3072)
        sans = [x509.DNSName("device.example"), x509.RFC822Name("user@example.com"),
                x509.UniformResourceIdentifier("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1")]
        reply = self.client("strict").enroll(k, make_csr(k, "strict-device", challenge="right", sans=sans))
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        certificate = reply.certificates[0]
        self.assertEqual(certificate.subject.rfc4514_string(), "CN=strict-device,OU=Devices,O=scep tests")
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual([n.value for n in names],
                         ["device.example", "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1"])
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        self.assertTrue(datetime.timedelta(days=170) < lifetime < datetime.timedelta(days=190))
        _, reply = self.enroll("strict", "small-key")
        self.assertFailure(reply, FailInfo.badRequest, "at least 3072")

    def test_realm_config_reloaded(self) -> None:
        """A changed scep.yaml takes effect without a restart; a broken one keeps the last good."""
        path = os.path.join(self.server.config, "realms", "democa", "scep.yaml")
        with open(path) as f:
            original = f.read()
        self.addCleanup(self.rewrite, path, original, 20)
        _, reply = self.enroll("anon", "before-change", challenge=None)
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        add_server_configs(self.server.config, {"anon": {"challenge": {"value": "now-needed"}}})
        self.rewrite(path, None, 5)
        _, reply = self.enroll("anon", "after-change", challenge=None)
        self.assertFailure(reply, FailInfo.badRequest, "challenge")
        _, reply = self.enroll("anon", "after-change", challenge="now-needed")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        with open(path) as f:
            changed = f.read()
        self.rewrite(path, changed + "\nbroken: [\n", 10)
        _, reply = self.enroll("anon", "while-broken", challenge="now-needed")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertIn("keeps its last good config", self.wait_for_log("keeps its last good config"))

    def rewrite(self, path: str, text: str | None, seconds: int) -> None:
        """Write C{text} (None: leave it) and move the mtime C{seconds} ahead, so that it surely changed."""
        if text is not None:
            with open(path, "w") as f:
                f.write(text)
        later = time.time() + seconds
        os.utime(path, (later, later))

    def test_audit(self) -> None:
        """Issuance and rejection land in the audit log with the client's address."""
        k, _ = self.enroll("nowindow", "audited")
        self.enroll("nowindow", "audited", challenge="wrong")
        rows = json.loads(self.server.scepadm("--json", "audit").stdout)
        issued = [r for r in rows if r["action"] == "issue" and r["transaction_id"] == transaction_id_for(k)]
        self.assertEqual(len(issued), 1)
        self.assertEqual(issued[0]["actor"], "client 127.0.0.1")
        self.assertIn("reject", [r["action"] for r in rows])


class StartTests(TestCase):
    """What the server does at start with its system config."""

    def test_service_disabled(self) -> None:
        """enabled: false: every SCEP URL answers 404, and the log says why."""
        server = Server(self.mktemp())
        with open(os.path.join(server.config, "system.yaml"), "w") as f:
            f.write("system:\n  server:\n    service:\n      scep:\n        enabled: false\n")
        self.addCleanup(server.stop)
        server.start(expect=404)
        status, headers, _ = server.get("?operation=GetCACert")
        self.assertEqual(status, 404)
        self.assertIn("disabled", server.logged())

    def test_broken_config_refuses_start(self) -> None:
        """A wrong key stops the server with one line naming the file and the key."""
        server = Server(self.mktemp())
        path = os.path.join(server.config, "scep", "default.conf")
        with open(path, "w") as f:
            f.write("[global]\nrealm = democa\nencryption_algorithm = rot13\n")
        result = subprocess.run(server.arguments, env=environment(), capture_output=True, text=True, timeout=120)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{path}: global.encryption_algorithm", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)

    def test_state_dir_from_system_yaml(self) -> None:
        """Without --state the server and scepadm use system.state."""
        server = Server(self.mktemp())
        state = os.path.abspath(self.mktemp())
        with open(os.path.join(server.config, "system.yaml"), "w") as f:
            f.write(f"system:\n  state: {state}\n")
        index = server.arguments.index("--state")
        del server.arguments[index : index + 2]
        self.addCleanup(server.stop)
        server.start()
        self.assertTrue(os.path.exists(os.path.join(state, "scep.db")))
        result = subprocess.run([*SCEPADM, "--config", server.config, "alias"], env=environment(),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("current scep ra:", result.stdout)

    def test_config_dir_from_environment(self) -> None:
        """Without --config the server reads $SCEP_CONFIG_DIR."""
        server = Server(self.mktemp())
        with open(os.path.join(server.config, "scep", "default.conf"), "w") as f:
            f.write("[global]\nrealm = democa\nservername = generic\niprange = 192.0.2.0/24\n")
        index = server.arguments.index("--config")
        del server.arguments[index : index + 2]
        self.addCleanup(server.stop)
        server.start(expect=403, env={"SCEP_CONFIG_DIR": server.config})
