"""
certmonger, Red Hat's certificate-tracking daemon, as a real SCEP client:
enrollment, renewal with a new key, manual approval, and refusal.  Its SCEP
helper verifies every CertRep with OpenSSL's PKCS#7 API, which refuses a
SignedData without content: FAILURE and PENDING carry an empty one.

The daemon runs per test on a private socket (C{certmonger -L}), with its
requests, CAs, local CA, preferences, lock and temporary files under the
test's directory: no D-Bus, no system state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from twisted.trial.unittest import TestCase

from tests.server import Server, add_server_configs, need_binary, terminate

CHALLENGE = "SecretChallenge"
SERVERS = {
    # A window wider than the profile's validity: a certificate just issued may be renewed.
    "rekey": {"challenge": {"value": CHALLENGE}, "renewal_period": "020000",
              "revoke_on_replace": {"reason_code": "superseded"}},
    # The same, but a renewal may keep its key, as certmonger's resubmit and automatic renewal do.
    "reuse": {"challenge": {"value": CHALLENGE}, "renewal_period": "020000", "policy": {"allow_key_reuse": 1},
              "revoke_on_replace": {"reason_code": "superseded"}},
    "approval": {"challenge": {"value": CHALLENGE}, "policy": {"allow_man_approv": 1, "approval_points": 2}},
}


class Certmonger:
    """One certmonger daemon on a private socket, and getcert talking to it."""

    def __init__(self, directory: str) -> None:
        self.binary = need_binary("certmonger")
        self.getcert_binary = need_binary("getcert")
        self.directory = directory
        for name in ("requests", "cas", "tmp", "local", "config"):
            os.makedirs(os.path.join(directory, name))
        # A unix socket path has at most 107 bytes; trial's directories can be longer.
        self.socket_dir = tempfile.mkdtemp(prefix="certmonger-")
        socket_path = os.path.join(self.socket_dir, "socket")
        self.env = {
            **os.environ,
            "CERTMONGER_REQUESTS_DIR": os.path.join(directory, "requests"),
            "CERTMONGER_CAS_DIR": os.path.join(directory, "cas"),
            "CERTMONGER_TMPDIR": os.path.join(directory, "tmp"),
            # Its built-in local CA, preferences and lock stay here too, not in /var/lib or /run.
            "CERTMONGER_LOCAL_CA_DIR": os.path.join(directory, "local"),
            "CERTMONGER_CONFIG_DIR": os.path.join(directory, "config"),
            "CERTMONGER_SYSTEM_LOCK_FILE": os.path.join(directory, "lock"),
            "CERTMONGER_PVT_ADDRESS": f"unix:path={socket_path}",
        }
        self.log = open(os.path.join(directory, "certmonger.log"), "wb")
        self.process = subprocess.Popen([self.binary, "-n", "-L", "-P", socket_path, "-d", "1"],
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(socket_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"certmonger did not start:\n{self.logged()}")
            time.sleep(0.05)

    def getcert(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.getcert_binary, *arguments], env=self.env, capture_output=True,
                                text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"getcert {' '.join(arguments)} exited {result.returncode}: "
                                 f"{result.stdout}{result.stderr}\n{self.logged()}")
        return result

    def status(self, request_id: str) -> dict[str, str]:
        """The fields of C{getcert list -i}: status, ca-error, subject, ..."""
        fields = {}
        for line in self.getcert("list", "-i", request_id).stdout.splitlines():
            name, colon, value = line.strip().partition(": ")
            if colon:
                fields[name] = value
        return fields

    def logged(self) -> str:
        with open(os.path.join(self.directory, "certmonger.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def public_key(path: str) -> bytes:
    with open(path, "rb") as f:
        return load_pem_private_key(f.read(), None).public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def certificate(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class CertmongerTests(TestCase):
    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        self.server = Server(os.path.join(base, "server"))
        add_server_configs(self.server.config, SERVERS)
        for name in SERVERS:
            with open(os.path.join(self.server.config, "scep", f"{name}.conf"), "w") as f:
                f.write(f"[global]\nrealm = democa\nservername = {name}\n")
        self.addCleanup(self.server.stop)
        self.server.start()
        self.certmonger = Certmonger(os.path.join(base, "certmonger"))
        self.addCleanup(self.certmonger.stop)
        self.files = os.path.join(base, "files")
        os.makedirs(self.files)

    def request(self, ca: str, endpoint: str, name: str, challenge: str) -> tuple[str, str]:
        """add-scep-ca and a waited-for request; the certificate and key paths."""
        self.certmonger.getcert("add-scep-ca", "-c", ca, "-u", f"{self.server.url}/scep/{endpoint}")
        cert, key = os.path.join(self.files, f"{name}.pem"), os.path.join(self.files, f"{name}.key")
        self.certmonger.getcert("request", "-c", ca, "-I", name, "-f", cert, "-k", key, "-L", challenge,
                                "-N", f"CN={name}", "-w")
        return cert, key

    def certificates(self) -> list[dict[str, object]]:
        return json.loads(self.server.scepadm("--json", "certificate", "list").stdout)

    def test_enroll_and_rekey(self) -> None:
        """certmonger enrolls with the challenge, then renews with a new key signed by the old one."""
        cert, key = self.request("rekey", "rekey", "tracked-device", CHALLENGE)
        self.assertEqual(self.certmonger.status("tracked-device")["status"], "MONITORING")
        old, old_key = certificate(cert), public_key(key)
        self.assertEqual(old.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo), old_key)
        self.assertEqual(old.issuer.rfc4514_string(), "CN=democa Issuing CA 1,OU=democa,O=scep")

        self.certmonger.getcert("rekey", "-i", "tracked-device", "-w")
        fields = self.certmonger.status("tracked-device")
        self.assertEqual(fields["status"], "MONITORING", fields)
        new = certificate(cert)
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertEqual(new.subject, old.subject)
        self.assertNotEqual(public_key(key), old_key, "a new key")
        self.assertEqual(new.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
                         public_key(key))
        self.assertIn(f"SUCCESS issued serial {new.serial_number:x} (renewal)", self.server.logged())
        rows = {row["serial"]: row for row in self.certificates()}
        self.assertEqual(rows[old.serial_number]["status"], "revoked")
        self.assertEqual(rows[old.serial_number]["revocation_reason"], "superseded")

    def test_resubmit_keeps_the_key(self) -> None:
        """
        getcert resubmit renews with the old key: refused by default, issued
        where policy.allow_key_reuse is set.
        """
        cert, _ = self.request("rekey", "rekey", "keeper", CHALLENGE)
        old = certificate(cert)
        self.certmonger.getcert("resubmit", "-i", "keeper", "-w", check=False)
        fields = self.certmonger.status("keeper")
        self.assertIn("not permitted", fields.get("ca-error", ""), fields)
        self.assertEqual(certificate(cert), old)
        self.assertIn("PKCSReq FAILURE badRequest: renewal must use a new key", self.server.logged())

        cert, key = self.request("reuse", "reuse", "reuser", CHALLENGE)
        old, old_key = certificate(cert), public_key(key)
        self.certmonger.getcert("resubmit", "-i", "reuser", "-w")
        fields = self.certmonger.status("reuser")
        self.assertEqual(fields["status"], "MONITORING", fields)
        new = certificate(cert)
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertEqual(public_key(key), old_key)
        self.assertIn(f"SUCCESS issued serial {new.serial_number:x} (renewal)", self.server.logged())

    def test_refused(self) -> None:
        """A wrong challenge: certmonger reads the signed FAILURE as a rejection; nothing is issued."""
        before = self.certificates()
        self.certmonger.getcert("add-scep-ca", "-c", "generic", "-u", f"{self.server.url}/scep")
        cert = os.path.join(self.files, "refused.pem")
        self.certmonger.getcert("request", "-c", "generic", "-I", "refused", "-f", cert,
                                "-k", os.path.join(self.files, "refused.key"), "-L", "Wrong", "-N", "CN=refused",
                                "-w", check=False)
        fields = self.certmonger.status("refused")
        self.assertEqual(fields["status"], "CA_REJECTED", fields)
        self.assertIn("not permitted", fields.get("ca-error", ""))
        self.assertNotIn("verify", fields.get("ca-error", ""))
        self.assertFalse(os.path.exists(cert))
        self.assertEqual(self.certificates(), before)
        self.assertIn("PKCSReq FAILURE badRequest: wrong or missing challenge password", self.server.logged())

    def test_pending_then_approved(self) -> None:
        """Manual approval: certmonger waits on PENDING, and gets the certificate once an operator approves."""
        self.certmonger.getcert("add-scep-ca", "-c", "approval", "-u", f"{self.server.url}/scep/approval")
        cert = os.path.join(self.files, "waiting.pem")
        self.certmonger.getcert("request", "-c", "approval", "-I", "waiting", "-f", cert,
                                "-k", os.path.join(self.files, "waiting.key"), "-L", CHALLENGE,
                                "-N", "CN=waiting-device")
        # certmonger takes PENDING as "the CA is working on it" and waits.
        deadline = time.monotonic() + 60
        while (fields := self.certmonger.status("waiting"))["status"] != "CA_WORKING":
            if time.monotonic() > deadline:
                self.fail(f"certmonger did not wait on PENDING: {fields}\n{self.server.logged()}")
            time.sleep(0.2)
        self.assertIn("PKCSReq PENDING", self.server.logged())
        pending = json.loads(self.server.scepadm("--json", "request", "list", "--state", "pending").stdout)
        self.assertEqual([row["subject"] for row in pending], ["CN=waiting-device"])
        self.assertFalse(os.path.exists(cert))

        self.server.scepadm("request", "approve", "--", pending[0]["transaction_id"])
        self.certmonger.getcert("resubmit", "-i", "waiting", "-w")
        fields = self.certmonger.status("waiting")
        self.assertEqual(fields["status"], "MONITORING", fields)
        self.assertEqual(certificate(cert).subject.rfc4514_string(), "CN=waiting-device")
