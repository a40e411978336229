"""
End to end: C{twistd -n scep} as a real process on a loopback port, Debian's
C{scepclient} enrolling against it, C{openssl} checking what it got.
"""

from __future__ import annotations

import json
import os
import socket

from cryptography.hazmat.primitives.serialization import Encoding
from twisted.trial.unittest import TestCase

from scep.client import Client
from scep.store import certificate_identifier
from tests.server import need_binary, run, shared_server


def split_pem(text: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + marker + "\n" for block in text.split(marker) if "BEGIN CERTIFICATE" in block]


class EnrollTests(TestCase):
    """One server for the whole class: starting it costs a second or two."""

    def setUp(self) -> None:
        self.server = shared_server("enroll", workers=2)

    def chain(self) -> tuple[str, str]:
        """The GetCACert chain as PEM files: (root only, issuing CA + RA)."""
        status, headers, body = self.server.get("?operation=GetCACert")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/x-x509-ca-ra-cert")
        directory = self.mktemp()
        os.makedirs(directory)
        der = os.path.join(directory, "ca.p7b")
        with open(der, "wb") as f:
            f.write(body)
        printed = run(["openssl", "pkcs7", "-inform", "DER", "-in", der, "-print_certs"])
        self.assertEqual(printed.returncode, 0, printed.stderr)
        blocks = split_pem(printed.stdout)
        self.assertEqual(len(blocks), 3, "RA, issuing CA and root")
        root = os.path.join(directory, "root.pem")
        others = os.path.join(directory, "untrusted.pem")
        with open(root, "w") as f:
            f.write(blocks[2])
        with open(others, "w") as f:
            f.write("".join(blocks[:2]))
        return root, others

    def certificates(self) -> list[dict[str, object]]:
        result = self.server.scepadm("--json", "certificate", "list", "--limit", "1000")
        return [c for c in json.loads(result.stdout) if not c["is_ca"]]

    def scepclient(self, directory: str, challenge: str, cn: str) -> object:
        need_binary("scepclient")
        os.makedirs(directory, exist_ok=True)
        return run(["scepclient", "-server-url", self.server.url + "/scep", "-challenge", challenge,
                    "-private-key", "device.key", "-certificate", "device.pem", "-cn", cn,
                    "-organization", "scep tests"], cwd=directory, timeout=120)

    def test_scepclient_enrolls(self) -> None:
        """scepclient (DES, SHA-1, PKCS#1 key) gets a certificate that chains to the root."""
        need_binary("openssl")
        directory = self.mktemp()
        result = self.scepclient(directory, "SecretChallenge", "device-1")
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        certificate = os.path.join(directory, "device.pem")
        self.assertTrue(os.path.exists(certificate), result.stderr)
        root, untrusted = self.chain()
        verified = run(["openssl", "verify", "-CAfile", root, "-untrusted", untrusted, certificate])
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
        subject = run(["openssl", "x509", "-in", certificate, "-noout", "-subject"]).stdout
        self.assertIn("device-1", subject)
        self.assertIn("device-1", json.dumps(self.certificates()))

    def test_wrong_challenge(self) -> None:
        """A wrong challenge password gets no certificate and stores none."""
        before = self.certificates()
        directory = self.mktemp()
        result = self.scepclient(directory, "NotTheSecret", "intruder")
        self.assertNotEqual(result.returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(directory, "device.pem")))
        self.assertIn("badRequest", result.stderr + result.stdout)
        self.assertEqual(self.certificates(), before)

    def test_garbage_survives(self) -> None:
        """Garbage, truncation, unknown operations and oversized GETs: text 4xx, store unchanged."""
        before = self.certificates()
        for body in (b"", b"garbage", b"\x30\x82\xff\xff\x06\x09", os.urandom(4096)):
            status, headers, answer = self.server.post(body)
            self.assertIn(status, (400, 413), answer)
            self.assertTrue(headers["Content-Type"].startswith("text/plain"))
            self.assertEqual(answer.count(b"\n"), 1)
        status, headers, answer = self.server.get("?operation=Frobnicate")
        self.assertEqual(status, 400)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(b"GET /scep?operation=PKIOperation&message=" + b"A" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        self.assertRegex(reply, rb"^HTTP/1.1 4\d\d ")
        self.assertIn(b"text/plain", reply)
        status, _, _ = self.server.get("?operation=GetCACaps")
        self.assertEqual(status, 200)
        self.assertEqual(self.certificates(), before)
        self.assertNotIn("Traceback", self.server.logged())

    def test_getcacaps(self) -> None:
        """GetCACaps lists the RFC 8894 keywords, one per line, as text/plain."""
        status, headers, body = self.server.get("?operation=GetCACaps")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        keywords = body.decode().split("\n")
        for keyword in ("AES", "DES3", "POSTPKIOperation", "Renewal", "SHA-1", "SHA-256", "SHA-512", "SCEPStandard"):
            self.assertIn(keyword, keywords)
        self.assertNotIn("GetNextCACert", keywords)

    def test_identifiers_logged(self) -> None:
        """The first start logs the identifiers of root-1, ca-signer-1 and scep-1."""
        log = self.server.logged()
        for alias in ("root-1", "ca-signer-1", "scep-1"):
            self.assertIn(f"created {alias} of realm democa: ", log)
        client = Client(self.server.url + "/scep")
        client.get_ca()
        assert client.ra is not None
        identifier = certificate_identifier(client.ra.public_bytes(Encoding.DER))
        self.assertIn(f"created scep-1 of realm democa: {identifier}", log)
