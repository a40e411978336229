"""
The PKIOperation protocol end to end: one real C{twistd -n scep} on a
loopback port, requests built with our codec's client side, Debian's
C{scepclient}, the real C{scepadm}, and C{openssl} checking CRLs and the
next-CA structure.

All tests share one server (starting it costs about two seconds).  Its
config is a copy of the shipped one with two more server configs: C{quick}
(initial certificates valid 30 days, so inside the renewal window at once)
and C{pending} (every request waits for an operator), served by the
endpoints C{/scep/quick} and C{/scep/pending}; the endpoint C{/scep/strong}
sets the reply's algorithms.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import product
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from twisted.trial.unittest import TestCase

from scep import algorithms, cms
from scep import clientmessage as cm
from scep import message as m
from scep.der import der_oid
from scep.message import FailInfo, MessageType, PKIStatus
from scep.store import certificate_identifier
from tests import certs
from tests.certs import Requester, der, poll_data
from tests.server import Server, add_server_configs, copy_config, need_binary, run, shared_server

REALM = "democa"
CHALLENGE = "SecretChallenge"

SERVERS = {
    "quick": {"challenge": {"value": CHALLENGE}, "initial_validity": "000030"},
    "pending": {"challenge": {"value": CHALLENGE}, "policy": {"allow_man_approv": 1, "approval_points": 2}},
    "reuse": {"challenge": {"value": CHALLENGE}, "renewal_period": "020000", "policy": {"allow_key_reuse": 1}},
}
"""Server configs beside C{generic}."""

ENDPOINTS = {
    "quick": {"servername": "quick"},
    "pending": {"servername": "pending"},
    "reuse": {"servername": "reuse"},
    "strong": {"servername": "generic", "encryption_algorithm": "aes256", "hash_algorithm": "sha512"},
}
"""Endpoints beside C{default}: the keys of their wrapper configs that differ."""


def _write_config(directory: str) -> str:
    config = copy_config(directory)
    add_server_configs(config, SERVERS, REALM)
    with open(os.path.join(config, "scep", "default.conf"), encoding="utf-8") as f:
        default = f.read()
    for endpoint, settings in ENDPOINTS.items():
        wrapper = default
        for key, value in settings.items():
            wrapper = re.sub(rf"^{key} =.*$", f"{key} = {value}", wrapper, count=1, flags=re.MULTILINE)
        with open(os.path.join(config, "scep", f"{endpoint}.conf"), "w", encoding="utf-8") as f:
            f.write(wrapper)
    return config


@cache
def server() -> Server:
    """The server of this module, with the config of L{SERVERS}."""
    directory = tempfile.mkdtemp(prefix="scep-protocol-config-")
    atexit.register(shutil.rmtree, directory, True)
    return shared_server("protocol", workers=2, config=_write_config(directory))


def ca_certificates() -> list[x509.Certificate]:
    """GetCACert now: the RA, the issuing CA, the root."""
    status, headers, body = server().get("?operation=GetCACert")
    assert status == 200 and headers["Content-Type"] == "application/x-x509-ca-ra-cert", (status, body)
    return m.parse_degenerate(body)[0]


def send(requester: Requester, message_type: int, data: bytes | None, *, endpoint: str = "",
         recipient: x509.Certificate | None = None, **options: Any) -> cm.CertRep:
    """POST one request to C{/scep[/endpoint]} and read the signed CertRep."""
    request = requester.message(message_type, data, recipient or ca_certificates()[0], **options)
    status, headers, body = server().post(request, "/scep" + (f"/{endpoint}" if endpoint else ""))
    assert status == 200 and headers["Content-Type"] == "application/x-pki-message", (status, body)
    return requester.read(body)


def write(directory: str, name: str, data: bytes | str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data.encode("ascii") if isinstance(data, str) else data)
    return path


def revoke(certificate: x509.Certificate) -> None:
    """scepadm certificate revoke; after C{--}, since an identifier may begin with a dash."""
    server().scepadm("certificate", "revoke", "--reason", "keyCompromise", "--",
                     certificate_identifier(der(certificate)))


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)


class ProtocolMixin:
    """Assertions on CertReps."""

    def assertSuccess(self, reply: cm.CertRep) -> None:
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)

    def assertFailure(self, reply: cm.CertRep, fail_info: FailInfo, text: str = "") -> None:
        """A signed FAILURE with this failInfo and a failInfoText containing C{text}."""
        self.assertEqual((reply.status, reply.fail_info), (PKIStatus.FAILURE, fail_info), reply.fail_info_text)
        self.assertIn(text, reply.fail_info_text or "")
        self.assertTrue(reply.fail_info_text)

    def certificates(self) -> list[str]:
        """The identifiers of every certificate in the server's store."""
        listed = server().scepadm("certificate", "list", "--limit", "100000").stdout
        return sorted(line.split()[0] for line in listed.splitlines() if line.strip() != "(none)")


# -- the table: every message type x every content cipher x three digests ---------

TABLE_TYPES = (MessageType.PKCSReq, MessageType.RenewalReq, MessageType.CertPoll, MessageType.GetCert,
               MessageType.GetCRL)
TABLE_CIPHERS = tuple(algorithms.CIPHERS)
TABLE_DIGESTS = ("sha1", "sha256", "sha512")


@cache
def table_subjects() -> dict[str, Any]:
    """
    What the table's requests refer to: a certificate issued (valid 30 days,
    so renewable at once) to a device with a known transactionID.
    """
    device = Requester(certs.cached_key("table-device"), common_name="table-device")
    reply = send(device, MessageType.PKCSReq, device.csr(challenge=CHALLENGE), endpoint="quick",
                 transaction_id="table-initial")
    assert reply.status == PKIStatus.SUCCESS, reply.fail_info_text
    return {"device": device, "issued": reply.certificates[0], "ca": ca_certificates()}


def table_request(message_type: MessageType) -> tuple[Requester, bytes, dict[str, Any], Any]:
    """For one message type: who sends, the messageData, options, and what the SUCCESS must hold."""
    s = table_subjects()
    device, issued, issuing_ca = s["device"], s["issued"], s["ca"][1]
    if message_type == MessageType.PKCSReq:
        requester = Requester(certs.cached_key("table-new"), common_name="table-new")
        return requester, requester.csr(challenge=CHALLENGE), {}, requester.key.public_key()
    if message_type == MessageType.RenewalReq:
        new_key = certs.cached_key("table-renewed")
        return Requester(device.key, issued), device.csr(new_key), {}, new_key.public_key()
    if message_type == MessageType.CertPoll:
        return device, poll_data(issuing_ca, device.certificate.subject), {"transaction_id": "table-initial"}, issued
    if message_type == MessageType.GetCert:
        return device, m.issuer_and_serial(issued), {}, issued
    return device, m.issuer_and_serial(issued), {}, issuing_ca


class TableTests(ProtocolMixin, TestCase):
    """
    Each message type with each content cipher and SHA-1, SHA-256, SHA-512,
    alternating PKCS#1 v1.5 and OAEP key transport and the two ways of
    naming the signature algorithm.  Methods are made from the table below.
    """

    def check(self, message_type: MessageType, cipher: str, digest: str, index: int) -> None:
        requester, data, options, expected = table_request(message_type)
        options.update(cipher=cipher, digest=digest, key_transport=algorithms.KEY_TRANSPORTS[index % 2],
                       signature_algorithm=("rsaEncryption", "xWithRSAEncryption")[index // 2 % 2])
        reply = send(requester, message_type, data, **options)
        self.assertSuccess(reply)
        self.assertEqual((reply.cipher, reply.digest), ("3des" if cipher == "des" else cipher, digest))
        if message_type == MessageType.GetCRL:
            (crl,) = [x509.load_der_x509_crl(c) for c in reply.crls]
            self.assertTrue(crl.is_signature_valid(expected.public_key()))
        elif isinstance(expected, x509.Certificate):
            self.assertEqual([der(c) for c in reply.certificates], [der(expected)])
        else:
            self.assertEqual(reply.certificates[0].public_key(), expected)


def _table_test(message_type: MessageType, cipher: str, digest: str, index: int) -> Any:
    def test(self: TableTests) -> None:
        self.check(message_type, cipher, digest, index)

    test.__doc__ = f"{message_type.name} with {cipher} and {digest} is answered SUCCESS in kind."
    return test


for _index, (_type, _cipher, _digest) in enumerate(product(TABLE_TYPES, TABLE_CIPHERS, TABLE_DIGESTS)):
    setattr(TableTests, f"test_{_type.name}_{_cipher}_{_digest}", _table_test(_type, _cipher, _digest, _index))


class RefusalTests(ProtocolMixin, TestCase):
    """Over HTTP too, what the server refuses is a signed FAILURE and changes nothing."""

    def test_refusals(self) -> None:
        """Other message types, bad bodies, a wrong challenge, a stale signingTime."""
        device = Requester(certs.cached_key("refused"), common_name="refused")
        issued = table_subjects()["issued"]
        before = self.certificates()
        cases = [
            (MessageType.UpdateReq, device.csr(challenge=CHALLENGE), {}, FailInfo.badRequest, "messageType 18"),
            (MessageType.CertRep, device.csr(challenge=CHALLENGE), {}, FailInfo.badRequest, "messageType 3"),
            (MessageType.PKCSReq, device.csr(challenge="wrong"), {}, FailInfo.badRequest, "challenge"),
            (MessageType.PKCSReq, device.csr(challenge=CHALLENGE),
             {"signing_time": datetime.now(UTC) - timedelta(days=2)}, FailInfo.badTime, "signingTime"),
            (MessageType.GetCert, m.issuer_and_serial(issued)[:-2], {}, FailInfo.badRequest,
             "IssuerAndSerialNumber"),
            (MessageType.CertPoll, poll_data(issued, device.certificate.subject), {}, FailInfo.badCertId,
             "transactionID"),
        ]
        for message_type, data, options, fail_info, text in cases:
            self.assertFailure(send(device, message_type, data, **options), fail_info, text)
        self.assertEqual(self.certificates(), before)


class AlgorithmTests(ProtocolMixin, TestCase):
    """What the reply uses: the endpoint's algorithms, else the request's, never DES or MD5."""

    def test_old_cisco(self) -> None:
        """A des/md5 request (old Cisco IOS) is answered with 3des and SHA-256."""
        requester = Requester(certs.cached_key("cisco"), common_name="cisco-router")
        reply = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), cipher="des",
                     digest="md5", signature_algorithm="xWithRSAEncryption")
        self.assertSuccess(reply)
        self.assertEqual((reply.cipher, reply.digest), ("3des", "sha256"))

    def test_endpoint_algorithms(self) -> None:
        """encryption_algorithm and hash_algorithm of the endpoint's wrapper config win."""
        requester = Requester(certs.cached_key("cisco"), common_name="cisco-router")
        for digest in ("md5", "sha224", "sha384"):
            reply = send(requester, MessageType.GetCert, m.issuer_and_serial(table_subjects()["issued"]),
                         endpoint="strong", cipher="blowfish", digest=digest)
            self.assertSuccess(reply)
            self.assertEqual((reply.cipher, reply.digest), ("aes256", "sha512"))

    def test_refused_cipher(self) -> None:
        """A content cipher we do not support is a signed FAILURE badAlg naming it."""
        requester = Requester(certs.cached_key("cisco"), common_name="cisco-router")
        ra = ca_certificates()[0]
        des3, rc2 = der_oid(algorithms.CIPHERS["3des"].oid), der_oid("1.2.840.113549.3.2")
        envelope = cms.envelope(requester.csr(challenge=CHALLENGE), ra, cipher="3des").replace(des3, rc2)
        self.assertFailure(send(requester, MessageType.PKCSReq, None, envelope=envelope), FailInfo.badAlg, "rc2")


class PendingTests(ProtocolMixin, TestCase):
    """Manual approval with the real scepadm: PENDING, approve or reject, poll."""

    def pending(self, label: str) -> tuple[Requester, str]:
        requester = Requester(certs.cached_key(label), common_name=label)
        transaction_id = f"{label}-{os.urandom(4).hex()}"
        reply = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), endpoint="pending",
                     transaction_id=transaction_id)
        self.assertEqual(reply.status, PKIStatus.PENDING, reply.fail_info_text)
        listed = server().scepadm("request", "list", "--state", "pending").stdout
        self.assertIn(transaction_id, listed)
        self.assertEqual(self.poll(requester, transaction_id).status, PKIStatus.PENDING)
        return requester, transaction_id

    def poll(self, requester: Requester, transaction_id: str) -> cm.CertRep:
        data = poll_data(ca_certificates()[1], requester.certificate.subject)
        return send(requester, MessageType.CertPoll, data, endpoint="pending", transaction_id=transaction_id)

    def test_approve(self) -> None:
        """pending, scepadm request approve, then CertPoll and a resend get the certificate."""
        requester, transaction_id = self.pending("approved-device")
        shown = server().scepadm("request", "show", transaction_id).stdout
        self.assertRegex(shown, r"Status\s+: pending")
        server().scepadm("request", "approve", transaction_id)
        reply = self.poll(requester, transaction_id)
        self.assertSuccess(reply)
        self.assertEqual(reply.certificates[0].public_key(), requester.key.public_key())
        resent = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), endpoint="pending",
                      transaction_id=transaction_id)
        self.assertEqual(der(resent.certificates[0]), der(reply.certificates[0]))
        self.assertIn(transaction_id, server().scepadm("request", "list", "--state", "issued").stdout)
        self.assertNotIn(transaction_id, server().scepadm("request", "list", "--state", "pending").stdout)

    def test_reject(self) -> None:
        """pending, scepadm request reject --reason, then CertPoll and a resend get FAILURE with the reason."""
        requester, transaction_id = self.pending("rejected-device")
        before = self.certificates()
        server().scepadm("request", "reject", transaction_id, "--reason", "not in the inventory")
        self.assertFailure(self.poll(requester, transaction_id), FailInfo.badRequest, "not in the inventory")
        resent = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), endpoint="pending",
                      transaction_id=transaction_id)
        self.assertFailure(resent, FailInfo.badRequest, "rejected")
        self.assertRegex(server().scepadm("request", "show", transaction_id).stdout, r"Status\s+: rejected")
        self.assertEqual(self.certificates(), before)

    def test_other_key(self) -> None:
        """A transactionID reused with another key gets no certificate, before or after approval."""
        requester, transaction_id = self.pending("bound-device")
        intruder = Requester(certs.cached_key("intruder"), common_name="bound-device")
        server().scepadm("request", "approve", transaction_id)
        for attempt in (self.poll(intruder, transaction_id),
                        send(intruder, MessageType.PKCSReq, intruder.csr(challenge=CHALLENGE), endpoint="pending",
                             transaction_id=transaction_id)):
            self.assertFailure(attempt, FailInfo.badRequest, "another public key")
        self.assertSuccess(self.poll(requester, transaction_id))


class ScepclientTests(ProtocolMixin, TestCase):
    """
    Renewal with Debian's scepclient (micromdm 2.1.0).  Given an existing
    -certificate it sends a RenewalReq signed with that certificate, but
    always with the key of -private-key and the transactionID derived from
    that key: with the old key it reuses the key (refused: a new key is
    required, unless policy.allow_key_reuse); with a new key its signature
    does not match the old certificate (badMessageCheck).
    """

    def scepclient(self, directory: str, *options: str, endpoint: str = "") -> Any:
        need_binary("scepclient")
        os.makedirs(directory, exist_ok=True)
        url = server().url + "/scep" + (f"/{endpoint}" if endpoint else "")
        return run(["scepclient", "-server-url", url, *options], cwd=directory, timeout=60)

    def enroll(self, cn: str, endpoint: str = "") -> tuple[str, x509.Certificate]:
        directory = self.mktemp()
        result = self.scepclient(directory, "-challenge", CHALLENGE, "-private-key", "device.key",
                                 "-certificate", "device.pem", "-cn", cn, endpoint=endpoint)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return directory, self.certificate(directory)

    def certificate(self, directory: str) -> x509.Certificate:
        with open(os.path.join(directory, "device.pem"), "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def renew(self, directory: str, key: str = "device.key", certificate: str = "device.pem",
              endpoint: str = "") -> Any:
        return self.scepclient(directory, "-private-key", key, "-certificate", certificate, "-cn", "ignored",
                               endpoint=endpoint)

    def assertRefused(self, result: Any, fail_info: str, logged: str) -> None:
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(f"RenewalReq (17) request failed, failInfo: {fail_info}", result.stdout + result.stderr)
        self.assertIn(f"RenewalReq FAILURE {fail_info}: {logged}", server().logged())

    def test_renewal_reuses_key(self) -> None:
        """scepclient renews with its old key: FAILURE badRequest, the old certificate kept, none issued."""
        directory, old = self.enroll("renewing-device")
        before = self.certificates()
        self.assertRefused(self.renew(directory), "badRequest", "renewal must use a new key")
        with open(os.path.join(directory, "device.pem"), "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()), old)
        self.assertEqual(self.certificates(), before)

    def test_renewal_keeps_key_where_allowed(self) -> None:
        """
        With policy.allow_key_reuse scepclient renews: its RenewalReq keeps
        the key and the key-derived transactionID of its first request, and
        gets a new certificate instead of the old one back.
        """
        directory, old = self.enroll("key-keeping-device", endpoint="reuse")
        result = self.renew(directory, endpoint="reuse")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        new = self.certificate(directory)
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertEqual(new.public_key(), old.public_key())
        self.assertIn(f"RenewalReq SUCCESS issued serial {new.serial_number:x} (renewal)", server().logged())

    def test_renewal_new_key(self) -> None:
        """scepclient given a new key signs with it under the old certificate: badMessageCheck."""
        directory, _ = self.enroll("rekeying-device")
        os.makedirs(os.path.join(directory, "new"))
        before = self.certificates()
        self.assertRefused(self.renew(directory, key="new/device.key"), "badMessageCheck",
                           "signature does not verify")
        self.assertEqual(self.certificates(), before)

    def test_revoked(self) -> None:
        """A renewal signed by a revoked certificate is refused as such."""
        directory, old = self.enroll("revoked-device")
        revoke(old)
        before = self.certificates()
        self.assertRefused(self.renew(directory), "badRequest", "the signer certificate is revoked")
        self.assertEqual(self.certificates(), before)

    def test_foreign(self) -> None:
        """A renewal signed by a certificate of another CA is refused."""
        directory = self.mktemp()
        key = certs.make_key()
        stranger_key = certs.cached_key("stranger")
        stranger = certs.make_ca(stranger_key, "Stranger CA")
        write(directory, "device.pem", pem(certs.make_certificate(key, "foreign-device", stranger, stranger_key)))
        write(directory, "device.key", key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL,
                                                         NoEncryption()))
        before = self.certificates()
        self.assertRefused(self.renew(directory), "badRequest",
                           "a RenewalReq must be signed by a certificate this CA issued")
        self.assertEqual(self.certificates(), before)


class CRLTests(ProtocolMixin, TestCase):
    """Revocation and CRLs with scepadm, fetched by GetCRL, verified by openssl."""

    def test_revoke_and_get_crl(self) -> None:
        """scepadm revokes and issues a CRL; GetCRL returns it; openssl crl -verify accepts it."""
        need_binary("openssl")
        requester = Requester(certs.cached_key("crl-device"), common_name="crl-device")
        reply = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE))
        self.assertSuccess(reply)
        issued = reply.certificates[0]
        revoke(issued)
        issued_crl = server().scepadm("crl", "issue", "--realm", REALM).stdout
        number = int(re.search(r"ca-signer-\d+: CRL number (\d+), next update", issued_crl).group(1))

        reply = send(requester, MessageType.GetCRL, m.issuer_and_serial(issued))
        self.assertSuccess(reply)
        self.assertEqual(len(reply.crls), 1)
        crl = x509.load_der_x509_crl(reply.crls[0])
        self.assertEqual(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number, number)
        self.assertIsNotNone(crl.get_revoked_certificate_by_serial_number(issued.serial_number))
        self.assertIsNotNone(crl.next_update_utc)

        directory = self.mktemp()
        ra, issuing, root = ca_certificates()[:3]
        crl_file = write(directory, "crl.der", reply.crls[0])
        chain = write(directory, "chain.pem", pem(issuing, root))
        verified = run(["openssl", "crl", "-inform", "DER", "-in", crl_file, "-CAfile", chain, "-verify",
                        "-noout", "-text"])
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assertIn("verify OK", verified.stderr + verified.stdout)
        self.assertIn(f"{issued.serial_number:X}", verified.stdout.replace(":", "").upper())


class RolloverTests(ProtocolMixin, TestCase):
    """Root rollover with scepadm and GetNextCACert; RA rollover with scepadm token add."""

    def next_root(self, notbefore: datetime, common_name: str) -> tuple[x509.Certificate, str]:
        """Import a new root and make it the upcoming one; the alias is removed at cleanup."""
        root = certs.make_ca(certs.make_key(), common_name)
        directory = self.mktemp()
        imported = server().scepadm("certificate", "import", "--file",
                                    write(directory, "new-root.pem", pem(root))).stdout
        identifier = imported.split()[0]
        self.assertEqual(identifier, certificate_identifier(der(root)))
        added = server().scepadm("alias", "--realm", REALM, "--token", "root", f"--identifier={identifier}",
                                 "--notbefore", notbefore.strftime("%Y-%m-%d %H:%M:%S")).stdout
        alias = re.search(r"added (root-\d+) ", added).group(1)
        self.addCleanup(server().scepadm, "alias", "remove", "--realm", REALM, "--alias", alias)
        return root, identifier

    def capabilities(self) -> list[str]:
        status, _, body = server().get("?operation=GetCACaps")
        self.assertEqual(status, 200)
        return body.decode("ascii").split()

    def test_next_ca(self) -> None:
        """Without an upcoming root: 404; with one: GetCACaps says so and openssl verifies the SignedData."""
        need_binary("openssl")
        status, headers, _ = server().get("?operation=GetNextCACert")
        self.assertEqual(status, 404)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertNotIn("GetNextCACert", self.capabilities())

        root, identifier = self.next_root(datetime.now(UTC) + timedelta(days=30), "democa Root CA next")
        listed = server().scepadm("alias", "--realm", REALM).stdout
        for block in ("=== root ca ===", "current root ca:", "upcoming root ca:"):
            self.assertIn(block, listed)
        self.assertIn(identifier, listed.split("upcoming root ca:")[1])
        self.assertIn("GetNextCACert", self.capabilities())
        status, headers, body = server().get("?operation=GetNextCACert")
        self.assertEqual((status, headers["Content-Type"]), (200, "application/x-x509-next-ca-cert"))

        directory = self.mktemp()
        signed = write(directory, "next.der", body)
        content, signer = os.path.join(directory, "content.der"), os.path.join(directory, "signer.pem")
        verified = run(["openssl", "smime", "-verify", "-inform", "DER", "-in", signed, "-noverify",
                        "-out", content, "-signer", signer])
        self.assertEqual(verified.returncode, 0, verified.stderr)
        with open(signer, "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()), ca_certificates()[0])
        printed = run(["openssl", "pkcs7", "-inform", "DER", "-in", content, "-print_certs", "-noout"])
        self.assertEqual(printed.returncode, 0, printed.stderr)
        self.assertIn("democa Root CA next", printed.stdout)
        with open(content, "rb") as f:
            self.assertEqual(m.parse_degenerate(f.read())[0], [root])

    def test_root_becomes_current(self) -> None:
        """When its notbefore passes the new root is served by GetCACert, without a restart."""
        notbefore = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        root, _ = self.next_root(notbefore, "democa Root CA soon")
        self.assertIn("GetNextCACert", self.capabilities())
        deadline = time.monotonic() + 30
        while ca_certificates()[-1] != root and time.monotonic() < deadline:
            time.sleep(0.25)
        self.assertEqual(ca_certificates()[-1], root)
        self.assertNotIn("GetNextCACert", self.capabilities())

    def test_ra_rollover(self) -> None:
        """After scepadm token add --type scep, GetCACert serves the new RA and the old one still decrypts."""
        old_ra = ca_certificates()[0]
        added = server().scepadm("token", "add", "--realm", REALM, "--type", "scep").stdout
        new_ra = ca_certificates()[0]
        self.assertNotEqual(new_ra, old_ra)
        self.assertIn(certificate_identifier(der(new_ra)), added)
        requester = Requester(certs.cached_key("ra-rollover"), common_name="ra-rollover")
        for ra in (old_ra, new_ra):
            reply = send(requester, MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), recipient=ra)
            self.assertSuccess(reply)
            self.assertEqual(reply.signer_certificate, ra)
