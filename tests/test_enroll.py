"""
End to end: C{twistd -n scep} as a real process on a loopback port, Debian's
C{scepclient} enrolling against it, C{openssl} checking what it got.
"""

from __future__ import annotations

import base64
import json
import os
import socket

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.trial.unittest import TestCase

from scep import clientmessage
from scep.client import Client, make_csr, self_signed
from scep.message import MessageType, PKIStatus
from scep.store import certificate_identifier
from tests.server import need_binary, run, shared_server


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
        blocks = [c.public_bytes(Encoding.PEM).decode() for c in x509.load_pem_x509_certificates(
            printed.stdout.encode())]
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

    def test_get_pkioperation_dialects(self) -> None:
        """PKIOperation by GET as Cisco (HTTP/1.0, %0A every 64), macOS (raw + and /) and base64url send it."""
        client = Client(self.server.url + "/scep")
        client.get_ca()

        def cisco(data: bytes) -> bytes:
            encoded = base64.b64encode(data)
            lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
            return b"%0A".join(lines).replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")

        dialects = {
            "cisco": (b"/cgi-bin/pkiclient.exe", cisco, b"HTTP/1.0"),
            "macos": (b"/scep/default/pkiclient.exe", base64.b64encode, b"HTTP/1.1"),
            "base64url": (b"/scep", lambda d: base64.urlsafe_b64encode(d).rstrip(b"="), b"HTTP/1.1"),
        }
        for name, (path, encode, version) in dialects.items():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            csr = make_csr(key, f"get-{name}", challenge="SecretChallenge")
            signer = self_signed(key, csr.subject)
            data = clientmessage.build_pki_message(
                message_type=MessageType.PKCSReq, message_data=csr.public_bytes(Encoding.DER),
                recipient_certificate=client.ra, signer_certificate=signer, signer_key=key,
                transaction_id=f"GET-{name}-{os.getpid()}", cipher="3des", digest="sha1")
            target = path + b"?operation=PKIOperation&message=" + encode(data)
            host = b"Host: 127.0.0.1\r\n" if version == b"HTTP/1.1" else b""
            raw = self.raw_request(b"GET " + target + b" " + version + b"\r\n" + host + b"Connection: close\r\n\r\n")
            head, _, body = raw.partition(b"\r\n\r\n")
            self.assertIn(b" 200 ", head.split(b"\r\n")[0], name)
            self.assertIn(b"application/x-pki-message", head)
            reply = clientmessage.parse_cert_rep(body, recipient_key=key, recipient_certificate=signer)
            self.assertEqual(reply.status, PKIStatus.SUCCESS, f"{name}: {reply.fail_info_text}")

    def raw_request(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(request)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        return reply
