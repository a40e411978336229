"""
C{scepadm} on a real SQLite store and real token files: every command,
its exit status (0 ok, 1 refused, 2 usage), its text and its JSON.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import pwd
import shutil
import subprocess
from unittest import mock

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SkipTest, TestCase

from scep import cli
from scep.authority.tokens import KeyStore, make_token_certificate
from scep.store import TransactionRecord, open_store
from tests.server import ETC, SCEPADM, environment, need_binary

UTC = datetime.UTC


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


class ScepadmTests(TestCase):
    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        self.config = os.path.join(base, "etc")
        shutil.copytree(ETC, self.config)
        self.state = os.path.join(base, "var")
        out = self.scepadm("init")
        self.identifiers = dict(line.split()[:2] for line in out.splitlines())

    def call(self, *arguments: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = cli.main(["--config", self.config, "--state", self.state, *arguments])
            except SystemExit as e:
                status = int(e.code or 0)
        return status, stdout.getvalue(), stderr.getvalue()

    def scepadm(self, *arguments: str) -> str:
        status, out, err = self.call(*arguments)
        self.assertEqual(status, 0, err)
        return out

    def refused(self, *arguments: str) -> str:
        status, out, err = self.call(*arguments)
        self.assertEqual(status, 1, out + err)
        self.assertTrue(err.startswith("scepadm: "), err)
        self.assertEqual(err.count("\n"), 1)
        return err

    def store(self):  # type: ignore[no-untyped-def]
        store = open_store(os.path.join(self.state, "scep.db"))
        self.addCleanup(store.close)
        return store

    def new_root_pem(self) -> str:
        """A root certificate made outside the server, as an operator would import it."""
        from scep.authority.tokens import generate_key

        key = generate_key("rsa2048")
        certificate = make_token_certificate(group="root", realm="democa", generation=2, key=key,
                                             issuer_certificate=None, issuer_key=None, days=3650)
        path = os.path.join(self.mktemp() + ".pem")
        with open(path, "wb") as f:
            f.write(certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def test_init(self) -> None:
        """init makes root-1, ca-signer-1, scep-1; a second init is refused."""
        self.assertEqual(sorted(self.identifiers), ["ca-signer-1", "root-1", "scep-1"])
        self.assertIn("has a root already", self.refused("init"))
        self.assertEqual(os.stat(os.path.join(self.state, "passphrase")).st_mode & 0o777, 0o600)
        ra = self.store().get_certificate(self.identifiers["scep-1"])
        usage = x509.load_der_x509_certificate(ra.der).extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.digital_signature and usage.key_encipherment)
        with open(KeyStore(self.state).path(self.identifiers["scep-1"]), "rb") as f:
            self.assertIn(b"ENCRYPTED", f.read())

    def test_rollover_alias(self) -> None:
        """import + alias with a future notbefore: the upcoming root block, override date in brackets."""
        out = self.scepadm("certificate", "import", "--file", self.new_root_pem())
        identifier = out.split()[0]
        self.scepadm("alias", "--realm", "democa", "--token", "root", "--identifier", identifier,
                     "--notbefore", "2099-01-01 00:00:00")
        listing = self.scepadm("alias", "--realm", "democa")
        self.assertIn("=== root ca ===", listing)
        self.assertIn("current root ca:", listing)
        upcoming = listing.split("upcoming root ca:")[1]
        self.assertIn("Alias     : root-2", upcoming)
        self.assertIn(f"Identifier: {identifier}", upcoming)
        self.assertRegex(upcoming, r"NotBefore : 2099-01-01 00:00:00 \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)")
        rows = json.loads(self.scepadm("--json", "alias", "list"))
        self.assertEqual({r["alias"]: r["state"] for r in rows}["root-2"], "upcoming")
        roots = json.loads(self.scepadm("--json", "alias", "list", "--token", "root"))
        self.assertEqual(sorted(r["alias"] for r in roots), ["root-1", "root-2"])
        self.scepadm("alias", "update", "--alias", "root-2", "--notbefore", "2098-01-01 00:00:00")
        self.assertIn("2098-01-01 00:00:00", self.scepadm("alias", "list"))
        self.scepadm("alias", "remove", "--alias", "root-2")
        self.assertNotIn("upcoming root ca", self.scepadm("alias"))
        self.assertIn("no alias", self.refused("alias", "remove", "--alias", "root-2"))

    def test_import_finds_issuer(self) -> None:
        """An imported certificate is linked to the CA certificate that issued it; importing twice is fine."""
        path = os.path.join(self.mktemp() + ".pem")
        ra = self.store().get_certificate(self.identifiers["scep-1"])
        with open(path, "wb") as f:
            f.write(x509.load_der_x509_certificate(ra.der).public_bytes(serialization.Encoding.PEM))
        for _ in range(2):
            out = self.scepadm("--json", "certificate", "import", "--file", path)
            self.assertEqual(json.loads(out)[0]["issuer_identifier"], self.identifiers["ca-signer-1"])

    def test_token_add(self) -> None:
        """token add makes the next RA generation, signed by the current issuing CA."""
        out = self.scepadm("token", "add", "--type", "scep")
        self.assertTrue(out.startswith("scep-2 "))
        rows = json.loads(self.scepadm("--json", "alias", "list"))
        self.assertEqual({r["alias"] for r in rows if r["group"] == "scep"}, {"scep-1", "scep-2"})
        out = self.scepadm("token", "add", "--type", "ca-signer", "--notbefore", "2099-01-01")
        self.assertTrue(out.startswith("ca-signer-2 "))
        self.assertIn("upcoming issuing ca:", self.scepadm("alias"))

    def test_certificates(self) -> None:
        """list, show, revoke (reason checked), revoke twice refused, unknown refused."""
        listing = self.scepadm("certificate", "list")
        self.assertEqual(len(listing.splitlines()), 3)
        ra = self.identifiers["scep-1"]
        shown = self.scepadm("certificate", "show", ra)
        self.assertIn("BEGIN CERTIFICATE", shown)
        self.assertIn(f"Identifier : {ra}", shown)
        der = self.store().get_certificate(ra).der
        self.assertIn(f"SHA-256    : {hashlib.sha256(der).hexdigest().upper()}", shown)
        self.assertIn("not a CRL reason", self.refused("certificate", "revoke", ra, "--reason", "boredom"))
        self.scepadm("certificate", "revoke", ra, "--reason", "keyCompromise")
        self.assertEqual(json.loads(self.scepadm("--json", "certificate", "show", ra))["status"], "revoked")
        self.assertIn("revoked already", self.refused("certificate", "revoke", ra))
        self.assertIn("no certificate", self.refused("certificate", "revoke", "nosuch"))
        self.assertIn("no certificate", self.refused("certificate", "show", "nosuch"))

    def pending(self, transaction_id: str) -> None:
        self.store().create_transaction(TransactionRecord(
            realm="democa", transaction_id=transaction_id, public_key_hash="00" * 32, status="pending",
            message_type=19, servername="generic", csr=b"", subject="CN=device", mode="initial",
            created=now(), updated=now(), reason="approval (0 of 1 points)", client_address="192.0.2.1"))

    def test_requests(self) -> None:
        """list --state pending, show, approve, reject with a reason; deciding twice is refused."""
        self.pending("T-1")
        self.pending("T-2")
        listing = self.scepadm("request", "list", "--state", "pending")
        self.assertIn("T-1", listing)
        self.assertIn("T-2", listing)
        self.assertIn("Status       : pending", self.scepadm("request", "show", "T-1"))
        self.scepadm("request", "approve", "T-1")
        self.scepadm("request", "reject", "T-2", "--reason", "unknown device")
        self.assertEqual(self.scepadm("request", "list", "--state", "pending").strip(), "(none)")
        shown = json.loads(self.scepadm("--json", "request", "show", "T-2"))
        self.assertEqual((shown["status"], shown["reason"]), ("rejected", "unknown device"))
        self.assertIn("not pending", self.refused("request", "approve", "T-1"))
        self.assertIn("no request", self.refused("request", "show", "T-9"))
        actions = [r["action"] for r in json.loads(self.scepadm("--json", "audit"))]
        self.assertIn("approve", actions)
        self.assertIn("reject", actions)

    def test_identifier_with_dash(self) -> None:
        """An identifier starting with '-' (one in 64): bare, after --, as --id=, or after --identifier."""
        status, _, err = self.call("certificate", "show", "-" + "A" * 26)
        self.assertEqual(status, 1)
        self.assertIn("no certificate -AAAA", err)
        status, _, err = self.call("certificate", "revoke", "--reason", "superseded", "--", "-" + "B" * 26)
        self.assertEqual(status, 1)
        self.assertIn("no certificate -BBBB", err)
        status, _, err = self.call("alias", "--token", "root", "--identifier", "-" + "C" * 26)
        self.assertEqual(status, 1)
        self.assertIn("no certificate -CCCC", err)
        status, _, err = self.call("certificate", "revoke", "--id=-x", "--reason", "superseded")
        self.assertEqual(status, 1)
        self.assertIn("no certificate -x", err)
        status, _, err = self.call("certificate", "show")
        self.assertEqual(status, 2)

    def as_operator(self, name: str, *arguments: str) -> tuple[int, str, str]:
        """Run scepadm as root through sudo for C{name}: the only way one account acts as two operators."""
        if os.getuid() != 0:
            raise SkipTest("acting as two operators needs root (SUDO_USER counts only for root)")
        with mock.patch.dict(os.environ, {"SUDO_USER": name}):
            return self.call(*arguments)

    def test_operator_not_from_user(self) -> None:
        """The audited operator is the account running scepadm, not whatever $USER says."""
        with mock.patch.dict(os.environ, {"USER": "mallory"}):
            os.environ.pop("SUDO_USER", None)
            self.scepadm("crl", "issue")
        actors = {r["actor"] for r in json.loads(self.scepadm("--json", "audit")) if r["action"] == "crl issue"}
        self.assertEqual(actors, {f"operator {pwd.getpwuid(os.getuid()).pw_name}"})

    def test_four_eyes(self) -> None:
        """approval_points 3 without eligibility: two different operators must approve."""
        path = os.path.join(self.config, "realms", "democa", "scep.yaml")
        with open(path, "a") as f:
            f.write("\nfoureyes:\n  policy:\n    approval_points: 3\n    allow_man_approv: 1\n")
        self.store().create_transaction(TransactionRecord(
            realm="democa", transaction_id="T-4", public_key_hash="00" * 32, status="pending",
            message_type=19, servername="foureyes", csr=b"", subject="CN=device", mode="initial",
            created=now(), updated=now(), reason="approval (1 of 3 points)"))
        status, out, err = self.as_operator("alice", "request", "approve", "T-4")
        self.assertEqual(status, 0, err)
        self.assertIn("pending (approved by 1 of 2 operators)", out)
        status, _, err = self.as_operator("alice", "request", "approve", "T-4")
        self.assertEqual(status, 1)
        self.assertIn("another operator must approve", err)
        status, out, err = self.as_operator("bob", "request", "approve", "T-4")
        self.assertEqual(status, 0, err)
        self.assertIn("T-4: approved", out)

    def test_crl_issue(self) -> None:
        """crl issue signs a CRL that openssl verifies with the issuing CA, numbers counting up."""
        need_binary("openssl")
        ra = self.identifiers["scep-1"]
        self.scepadm("certificate", "revoke", ra, "--reason", "superseded")
        self.assertIn("CRL number 1", self.scepadm("crl", "issue"))
        self.assertIn("CRL number 2", self.scepadm("crl", "issue", "--realm", "democa"))
        store = self.store()
        crl = store.latest_crl("democa", self.identifiers["ca-signer-1"])
        ca = store.get_certificate(self.identifiers["ca-signer-1"])
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "crl.der"), "wb") as f:
            f.write(crl.der)
        with open(os.path.join(directory, "ca.pem"), "wb") as f:
            f.write(x509.load_der_x509_certificate(ca.der).public_bytes(serialization.Encoding.PEM))
        result = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem",
                                 "-noout", "-text"], cwd=directory, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("verify OK", result.stderr + result.stdout)
        self.assertIn("X509v3 CRL Number", result.stdout)
        self.assertIn("Superseded", result.stdout)

    def test_audit(self) -> None:
        """The audit log has the init's aliases and a revocation, filtered by --since."""
        self.scepadm("certificate", "revoke", self.identifiers["scep-1"])
        rows = json.loads(self.scepadm("--json", "audit"))
        self.assertEqual([r["action"] for r in rows].count("alias add"), 3)
        self.assertTrue(any("revoke" in r["action"] for r in rows))
        self.assertEqual(json.loads(self.scepadm("--json", "audit", "--since", "2099-01-01")), [])
        self.assertIn("alias add", self.scepadm("audit"))

    def test_config_check(self) -> None:
        """config check passes the shipped config and names file and key of a broken one."""
        self.assertIn("all fine", self.scepadm("config", "check"))
        path = os.path.join(self.config, "realms", "democa", "scep.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("cert_profile: tls_client", "cert_profile: nosuch"))
        err = self.refused("config", "check")
        self.assertIn(path, err)
        self.assertIn("generic.profile.cert_profile", err)

    def test_usage(self) -> None:
        """A usage error exits 2; the installed entry point runs."""
        status, _, err = self.call("certificate", "frobnicate")
        self.assertEqual(status, 2)
        self.assertIn("usage", err)
        result = subprocess.run([*SCEPADM, "--config", self.config, "--state", self.state, "alias"],
                                env=environment(), capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("current scep ra:", result.stdout)
