"""
Tests for L{scep.authority}: the L{Authority} driven in-process, without a
network and without sleeps.

Each test has its own SQLite store (a copy of a demo realm made once per
module), the realm's server configs of a shared config directory, and an
injected clock, so that signing times, renewal windows, CRL next updates and
alias windows are tested by moving the clock instead of waiting.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID
from twisted.trial.unittest import TestCase

from scep import algorithms, cms
from scep import clientmessage as cm
from scep import message as m
from scep.authority.crl import issue_crl
from scep.authority.enroll import MS_TEMPLATE_NAME
from scep.authority.service import Answer, Authority
from scep.authority.tokens import KeyStore, TokenError, add_token, create_realm
from scep.commands import BadMessage, NotAvailable
from scep.der import der_oid
from scep.message import FailInfo, MessageType, PKIStatus
from scep.store import AliasRecord, certificate_record_from_der, open_store
from tests import certs
from tests.certs import Requester, der, poll_data
from tests.server import ETC, add_server_configs

REALM = "democa"
CHALLENGE = "SecretChallenge"

SERVERS = {
    "pending": {"challenge": {"value": CHALLENGE}, "policy": {"allow_man_approv": 1, "approval_points": 2}},
    "manual": {"challenge": {"value": CHALLENGE}, "policy": {"allow_man_authen": 1}},
    "replace": {"challenge": {"value": CHALLENGE}, "policy": {"allow_replace": 1},
                "revoke_on_replace": {"reason_code": "superseded"}},
    "pendingreplace": {"challenge": {"value": CHALLENGE},
                       "policy": {"allow_man_approv": 1, "approval_points": 2},
                       "revoke_on_replace": {"reason_code": "superseded"}},
    "keyreuse": {"challenge": {"value": CHALLENGE}, "policy": {"allow_key_reuse": 1},
                 "revoke_on_replace": {"reason_code": "superseded"}},
    "pendingreuse": {"challenge": {"value": CHALLENGE}, "policy": {"allow_key_reuse": 1,
                     "allow_man_approv": 1, "approval_points": 2}},
    "tolerant": {"challenge": {"value": CHALLENGE}, "signing_time_tolerance": "000003"},
    "signers": {"challenge": {"value": CHALLENGE},
                "authorized_signer": {"mdm": {"subject": "CN=mdm-agent"}}},
    "mapped": {"challenge": {"value": CHALLENGE}, "profile_map": {"IPSECIntermediateOffline": "tls_server"}},
}
"""Server configs beside the shipped C{generic} one."""


def _remove_later(directory: str) -> str:
    atexit.register(shutil.rmtree, directory, True)
    return directory


@cache
def config_dir() -> str:
    """The shipped config with the extra server configs of L{SERVERS}."""
    config = os.path.join(_remove_later(tempfile.mkdtemp(prefix="scep-authority-config-")), "etc")
    shutil.copytree(ETC, config)
    add_server_configs(config, SERVERS, REALM)
    return config


@cache
def template_state() -> str:
    """A state directory with the demo realm's tokens, made once per module."""
    state = _remove_later(tempfile.mkdtemp(prefix="scep-authority-state-"))
    store = open_store(os.path.join(state, "scep.db"))
    create_realm(store, KeyStore(state), REALM, actor="test")
    store.close()
    return state


_LOADED: dict[str, Any] = {}


class CachedKeys(KeyStore):
    """A key store that loads each key once per module: loading costs ~100 ms."""

    def load(self, identifier: str, certificate: x509.Certificate | None = None) -> Any:
        if identifier not in _LOADED:
            _LOADED[identifier] = super().load(identifier, certificate)
        return _LOADED[identifier]


class Clock:
    """The injected clock: now, moved by the tests."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def client(label: str = "client", common_name: str = "device-1") -> Requester:
    return Requester(certs.cached_key(label), common_name=common_name)


class AuthorityMixin:
    """An L{Authority} over a private store, and helpers to talk to it."""

    def setUp(self) -> None:
        state = os.path.abspath(self.mktemp())
        shutil.copytree(template_state(), state)
        self.store = open_store(os.path.join(state, "scep.db"))
        self.addCleanup(self.store.close)
        self.keys = CachedKeys(state)
        self.clock = Clock()
        self.authority = Authority(config_dir(), self.store, self.keys, now=self.clock)
        self.realm = self.authority.realm(REALM)

    def token(self, group: str) -> x509.Certificate:
        token = self.authority.realm(REALM).current(group)
        assert token is not None
        return token.certificate

    def answer(self, request: bytes, servername: str = "generic", **options: str) -> Answer:
        return self.authority.pki_operation(
            realm=REALM, servername=servername, endpoint="default", message=request, params={},
            client_address="127.0.0.1", **options)

    def ask(self, requester: Requester, message_type: int, data: bytes | None, *,
            servername: str = "generic", recipient: x509.Certificate | None = None,
            reply_options: dict[str, str] | None = None, **options: Any) -> cm.CertRep:
        """Send one request, signed at the clock's time unless told; read the CertRep."""
        options.setdefault("signing_time", self.clock.now)
        request = requester.message(message_type, data, recipient or self.token("scep"), **options)
        return requester.read(self.answer(request, servername, **(reply_options or {})).body)

    def enroll(self, requester: Requester, *, key: Any = None, challenge: str | None = CHALLENGE,
               message_type: int = MessageType.PKCSReq, **options: Any) -> cm.CertRep:
        return self.ask(requester, message_type, requester.csr(key, challenge), **options)

    def issued(self, requester: Requester, **options: Any) -> x509.Certificate:
        """The certificate a successful enrollment gives."""
        reply = self.enroll(requester, **options)
        self.assertEqual((reply.status, reply.fail_info_text), (PKIStatus.SUCCESS, None))
        return reply.certificates[0]

    def assertFailure(self, reply: cm.CertRep, fail_info: FailInfo, text: str = "") -> None:
        """A FAILURE with this failInfo and a failInfoText containing C{text}."""
        self.assertEqual((reply.status, reply.fail_info), (PKIStatus.FAILURE, fail_info), reply.fail_info_text)
        self.assertTrue(reply.fail_info_text)
        self.assertIn(text, reply.fail_info_text or "")
        self.assertEqual(reply.certificates, [])

    def contents(self) -> tuple[list[str], list[tuple[str, str]]]:
        """What a bad request must not change: certificates and transactions."""
        certificates = [c.identifier for c in self.store.list_certificates(limit=10000)]
        transactions = [(t.transaction_id, t.status) for t in self.store.list_transactions(limit=10000)]
        return certificates, transactions


class MessageTypeTests(AuthorityMixin, TestCase):
    """PKCSReq, GetCert, GetCRL and CertPoll; anything else is refused."""

    def test_pkcsreq_issues(self) -> None:
        """A PKCSReq with the challenge gets a certificate for its key from the issuing CA."""
        requester = client()
        reply = self.enroll(requester, transaction_id="tid-issue")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        (certificate,) = reply.certificates
        self.assertEqual(certificate.public_key(), requester.key.public_key())
        certificate.verify_directly_issued_by(self.token("ca-signer"))
        transaction = self.store.get_transaction(REALM, "tid-issue")
        assert transaction is not None
        self.assertEqual((transaction.status, transaction.mode), ("issued", "initial"))
        self.assertEqual(transaction.certificate_identifier,
                         certificate_record_from_der(der(certificate), realm=REALM).identifier)

    def test_other_types_refused(self) -> None:
        """CertRep, UpdateReq and unknown messageTypes get a signed FAILURE badRequest naming them."""
        requester = client()
        before = self.contents()
        for message_type in (MessageType.CertRep, MessageType.UpdateReq, 99):
            reply = self.ask(requester, message_type, requester.csr(challenge=CHALLENGE))
            self.assertFailure(reply, FailInfo.badRequest, f"messageType {int(message_type)}")
        self.assertEqual(self.contents(), before)

    def test_missing_challenge(self) -> None:
        """Without manual authentication, a missing or wrong challenge is FAILURE badRequest."""
        before = self.contents()
        for challenge in (None, "NotTheSecret"):
            reply = self.enroll(client(), challenge=challenge)
            self.assertFailure(reply, FailInfo.badRequest, "challenge")
        self.assertEqual(self.contents(), before)

    def test_resend_issued(self) -> None:
        """Resending an issued PKCSReq answers the same certificate and issues no second one."""
        requester = client()
        first = self.issued(requester, transaction_id="tid-resend")
        before = self.contents()
        again = self.issued(requester, transaction_id="tid-resend")
        self.assertEqual(der(again), der(first))
        self.assertEqual(self.contents(), before)

    def test_get_cert(self) -> None:
        """GetCert by IssuerAndSerialNumber answers that certificate."""
        requester = client()
        certificate = self.issued(requester)
        reply = self.ask(client("other"), MessageType.GetCert, m.issuer_and_serial(certificate))
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        self.assertEqual([der(c) for c in reply.certificates], [der(certificate)])

    def test_get_cert_unknown(self) -> None:
        """GetCert for an unknown serial or issuer is FAILURE badCertId."""
        certificate = self.issued(client())
        stranger = certs.make_ca(certs.cached_key("stranger"), "Stranger CA")
        foreign = certs.make_certificate(certs.cached_key("other"), "x", stranger, certs.cached_key("stranger"))
        for unknown in (foreign, certs.make_self_signed(certs.cached_key("other"), "device-1")):
            reply = self.ask(client(), MessageType.GetCert, m.issuer_and_serial(unknown))
            self.assertFailure(reply, FailInfo.badCertId)
        self.assertNotEqual(certificate.serial_number, foreign.serial_number)

    def test_get_crl(self) -> None:
        """GetCRL answers the current CRL of the certificate's issuer, signed by it."""
        certificate = self.issued(client())
        reply = self.ask(client(), MessageType.GetCRL, m.issuer_and_serial(certificate))
        self.assertEqual((reply.status, reply.certificates), (PKIStatus.SUCCESS, []))
        (crl_der,) = reply.crls
        crl = x509.load_der_x509_crl(crl_der)
        self.assertTrue(crl.is_signature_valid(self.token("ca-signer").public_key()))
        self.assertEqual(crl.issuer, self.token("ca-signer").subject)
        self.assertEqual(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number, 1)

    def test_get_crl_unknown_issuer(self) -> None:
        """GetCRL for an issuer that is not ours is FAILURE badCertId."""
        stranger = certs.make_ca(certs.cached_key("stranger"), "Stranger CA")
        reply = self.ask(client(), MessageType.GetCRL, m.issuer_and_serial(stranger))
        self.assertFailure(reply, FailInfo.badCertId)

    def test_certpoll_unknown(self) -> None:
        """A CertPoll for an unknown transactionID is FAILURE badCertId."""
        requester = client()
        reply = self.ask(requester, MessageType.CertPoll,
                         poll_data(self.token("ca-signer"), requester.certificate.subject),
                         transaction_id="never-seen")
        self.assertFailure(reply, FailInfo.badCertId)

    def test_certpoll_issued(self) -> None:
        """A CertPoll for an issued transaction answers its certificate."""
        requester = client()
        certificate = self.issued(requester, transaction_id="tid-poll")
        reply = self.ask(requester, MessageType.CertPoll,
                         poll_data(self.token("ca-signer"), requester.certificate.subject),
                         transaction_id="tid-poll")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        self.assertEqual(der(reply.certificates[0]), der(certificate))


class BadInputTests(AuthorityMixin, TestCase):
    """Malformed bodies get a signed FAILURE and change nothing."""

    def test_malformed_bodies(self) -> None:
        """Wrong inner types, truncation, failed proof of possession, a subject that does not match."""
        requester = client()
        certificate = self.issued(requester, transaction_id="tid-known")
        isn = m.issuer_and_serial(certificate)
        poll = poll_data(self.token("ca-signer"), requester.certificate.subject)
        csr = x509.load_der_x509_csr(requester.csr(challenge=CHALLENGE))
        cases = [
            (MessageType.PKCSReq, isn, FailInfo.badRequest, "PKCS#10"),
            (MessageType.RenewalReq, poll, FailInfo.badRequest, "PKCS#10"),
            (MessageType.PKCSReq, certs.broken_pop(csr), FailInfo.badMessageCheck, "proof of possession"),
            (MessageType.PKCSReq, None, FailInfo.badRequest, "pkcsPKIEnvelope"),
            (MessageType.GetCert, der(csr), FailInfo.badRequest, "IssuerAndSerialNumber"),
            (MessageType.GetCert, isn[:-3], FailInfo.badRequest, "IssuerAndSerialNumber"),
            (MessageType.GetCRL, isn[:20], FailInfo.badRequest, "IssuerAndSerialNumber"),
            (MessageType.GetCRL, poll, FailInfo.badRequest, "IssuerAndSerialNumber"),
            (MessageType.CertPoll, isn, FailInfo.badRequest, "IssuerAndSubject"),
            (MessageType.CertPoll, poll[:-2], FailInfo.badRequest, "IssuerAndSubject"),
            (MessageType.CertPoll, poll_data(self.token("ca-signer"), certs.name("someone-else")),
             FailInfo.badCertId, "subject"),
        ]
        before = self.contents()
        for message_type, data, fail_info, text in cases:
            reply = self.ask(requester, message_type, data, transaction_id="tid-known")
            self.assertFailure(reply, fail_info, text)
            reply = self.ask(requester, message_type, data)
            self.assertFailure(reply, fail_info if fail_info != FailInfo.badCertId else FailInfo.badCertId)
        self.assertEqual(self.contents(), before)

    def test_not_for_us(self) -> None:
        """A request encrypted to a certificate that is not our RA's is FAILURE badRequest."""
        stranger = certs.make_ca(certs.cached_key("stranger"), "Stranger CA")
        before = self.contents()
        reply = self.enroll(client(), recipient=stranger)
        self.assertFailure(reply, FailInfo.badRequest, "not encrypted to a certificate of this server")
        self.assertEqual(self.contents(), before)

    def test_mutations(self) -> None:
        """
        Random byte flips, cuts and insertions in a valid PKCSReq: each is
        refused as no pkiMessage, answered with a signed FAILURE, or (where
        the flip hit bytes nothing relies on, such as the self-signed
        certificate's own signature) answered as the intact request would be:
        with the one certificate for the requester's key.
        """
        requester = client()
        valid = requester.message(MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), self.token("scep"),
                                  signing_time=self.clock.now)
        before = self.contents()
        rng = random.Random(8894)
        for _ in range(150):
            data = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                position = rng.randrange(len(data))
                action = rng.choice(("flip", "cut", "insert"))
                if action == "flip":
                    data[position] ^= 1 << rng.randrange(8)
                elif action == "cut":
                    del data[position:position + rng.randint(1, 64)]
                else:
                    data[position:position] = os.urandom(rng.randint(1, 16))
            try:
                answer = self.answer(bytes(data))
            except BadMessage:
                continue
            reply = m.parse_pki_message(answer.body)
            self.assertIn(reply.pki_status, (PKIStatus.FAILURE, PKIStatus.SUCCESS))
            if reply.pki_status == PKIStatus.FAILURE:
                self.assertTrue(reply.fail_info_text)
            else:
                issued = requester.read(answer.body).certificates[0]
                self.assertEqual(issued.public_key(), requester.key.public_key())
        self.assertLessEqual(len(self.contents()[0]) - len(before[0]), 1, "at most the one certificate")


def _patch_last(data: bytes, old: bytes, new: bytes) -> bytes:
    at = data.rindex(old)
    return data[:at] + new + data[at + len(old):]



class FailInfoTests(AuthorityMixin, TestCase):
    """badMessageCheck, badTime and badAlg, each with a failInfoText."""

    def test_bad_signature(self) -> None:
        """A pkiMessage whose signature does not verify is badMessageCheck."""
        requester = client()
        forger = Requester(certs.cached_key("other"), requester.certificate)
        reply = self.answer(forger.message(MessageType.PKCSReq, requester.csr(challenge=CHALLENGE),
                                           self.token("scep")))
        self.assertFailure(requester.read(reply.body), FailInfo.badMessageCheck, "signature")

    def test_tampered_content(self) -> None:
        """A pkiMessage whose content was changed after signing is badMessageCheck."""
        requester = client()
        request = requester.message(MessageType.PKCSReq, requester.csr(challenge=CHALLENGE), self.token("scep"))
        envelope = m.parse_pki_message(request).enveloped_data
        assert envelope is not None
        tampered = request.replace(envelope[-8:], bytes(8))
        self.assertFailure(requester.read(self.answer(tampered).body), FailInfo.badMessageCheck, "messageDigest")

    def test_bad_time(self) -> None:
        """A signingTime further than a day from the clock is badTime; closer, or absent, is fine."""
        requester = client()
        before = self.contents()
        for offset in (timedelta(days=2), -timedelta(days=1, minutes=1)):
            reply = self.enroll(requester, signing_time=self.clock.now + offset)
            self.assertFailure(reply, FailInfo.badTime, "tolerance 86400s")
        self.assertEqual(self.contents(), before)
        self.issued(requester, signing_time=self.clock.now - timedelta(hours=23))
        self.issued(requester, signing_time="omit")

    def test_bad_time_clock(self) -> None:
        """The server's clock decides: moved two days ahead, a message signed now is badTime."""
        requester = client()
        signed = self.clock.now
        self.clock.advance(days=2)
        self.assertFailure(self.enroll(requester, signing_time=signed), FailInfo.badTime)

    def test_signing_time_tolerance(self) -> None:
        """signing_time_tolerance in the server config widens the window."""
        reply = self.enroll(client(), signing_time=self.clock.now - timedelta(days=2), servername="tolerant")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)
        reply = self.enroll(client(), signing_time=self.clock.now - timedelta(days=4), servername="tolerant")
        self.assertFailure(reply, FailInfo.badTime, "tolerance 259200s")

    def test_bad_alg(self) -> None:
        """A refused cipher, key transport, digest or signature algorithm is badAlg naming it."""
        requester = client()
        csr = requester.csr(challenge=CHALLENGE)
        ra = self.token("scep")
        des3, rc2 = der_oid(algorithms.CIPHERS["3des"].oid), der_oid("1.2.840.113549.3.2")
        rsa = der_oid(algorithms.OID_RSA_ENCRYPTION)
        sha256 = der_oid(algorithms.DIGESTS["sha256"].oid)
        pss = der_oid("1.2.840.113549.1.1.10")
        cases = [
            (requester.message(MessageType.PKCSReq, None, ra,
                               envelope=cms.envelope(csr, ra, cipher="3des").replace(des3, rc2)), "rc2"),
            (requester.message(MessageType.PKCSReq, None, ra,
                               envelope=cms.envelope(csr, ra).replace(rsa, rsa[:-1] + b"\x7f")),
             "key transport"),
            (requester.message(MessageType.PKCSReq, csr, ra).replace(sha256, sha256[:-1] + b"\x7f"),
             "2.16.840.1.101.3.4.2.127"),
            (_patch_last(requester.message(MessageType.PKCSReq, csr, ra), rsa, pss), "1.2.840.113549.1.1.10"),
        ]
        before = self.contents()
        for request, text in cases:
            reply = requester.read(self.answer(request).body)
            self.assertFailure(reply, FailInfo.badAlg, text)
            self.assertIn(reply.digest, algorithms.DIGESTS)
        self.assertEqual(self.contents(), before)


class AlgorithmTests(AuthorityMixin, TestCase):
    """Every cipher, key transport, digest and signature algorithm; what the reply uses."""

    def test_every_algorithm(self) -> None:
        """Each cipher, digest and key transport is read; the reply mirrors it, but never DES or MD5."""
        requester = client()
        certificate = self.issued(requester)
        data = m.issuer_and_serial(certificate)
        for cipher in algorithms.CIPHERS:
            for digest in algorithms.DIGESTS:
                for key_transport in algorithms.KEY_TRANSPORTS:
                    reply = self.ask(requester, MessageType.GetCert, data, cipher=cipher, digest=digest,
                                     key_transport=key_transport, signature_algorithm="sha256WithRSAEncryption")
                    where = (cipher, digest, key_transport)
                    self.assertEqual(reply.status, PKIStatus.SUCCESS, (where, reply.fail_info_text))
                    self.assertEqual(reply.cipher, "3des" if cipher == "des" else cipher, where)
                    self.assertEqual(reply.digest, "sha256" if digest == "md5" else digest, where)

    def test_oaep_sha256(self) -> None:
        """RSAES-OAEP with SHA-256 parameters is read."""
        requester = client()
        reply = self.enroll(requester, key_transport="rsaes_oaep", oaep_digest="sha256")
        self.assertEqual(reply.status, PKIStatus.SUCCESS)

    def test_endpoint_algorithms(self) -> None:
        """The endpoint's encryption_algorithm and hash_algorithm win over the request's."""
        requester = client()
        reply = self.enroll(requester, cipher="des", digest="md5",
                            reply_options={"encryption_algorithm": "aes256", "hash_algorithm": "sha384"})
        self.assertEqual((reply.status, reply.cipher, reply.digest), (PKIStatus.SUCCESS, "aes256", "sha384"))


class ProfileTests(AuthorityMixin, TestCase):
    """The profile of a request: the server's, or the one its template name maps to."""

    def test_template_name(self) -> None:
        """Microsoft's certificateTemplateName extension picks the mapped profile."""
        requester = client()
        template = x509.UnrecognizedExtension(MS_TEMPLATE_NAME, core.BMPString("IPSECIntermediateOffline").dump())
        csr = (x509.CertificateSigningRequestBuilder().subject_name(requester.certificate.subject)
               .add_extension(template, critical=False)
               .add_attribute(AttributeOID.CHALLENGE_PASSWORD, CHALLENGE.encode("ascii"))
               .sign(requester.key, hashes.SHA256()))
        for servername, usages in (("mapped", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                                   ("generic", [ExtendedKeyUsageOID.CLIENT_AUTH])):
            reply = self.ask(requester, MessageType.PKCSReq, der(csr), servername=servername)
            self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
            usage = reply.certificates[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            self.assertEqual(list(usage), usages)


class RenewalTests(AuthorityMixin, TestCase):
    """RenewalReq, and a PKCSReq signed by a certificate we issued."""

    def setUp(self) -> None:
        super().setUp()
        self.device = client()
        self.old = self.issued(self.device)
        self.signer = Requester(self.device.key, self.old)
        self.new_key = certs.cached_key("renewed")

    def in_window(self) -> None:
        """Move the clock to 30 days before the old certificate expires."""
        self.clock.now = self.old.not_valid_after_utc - timedelta(days=30)

    def renew(self, signer: Requester | None = None, *, key: Any = None, servername: str = "generic",
              message_type: int = MessageType.RenewalReq, **options: Any) -> cm.CertRep:
        return self.enroll(signer or self.signer, key=key or self.new_key, challenge=None,
                           message_type=message_type, servername=servername, **options)

    def test_renewal(self) -> None:
        """Inside the renewal window a RenewalReq with a new key needs no challenge."""
        self.in_window()
        reply = self.renew(transaction_id="tid-renew")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].public_key(), self.new_key.public_key())
        self.assertEqual(reply.certificates[0].subject, self.old.subject)
        transaction = self.store.get_transaction(REALM, "tid-renew")
        assert transaction is not None
        self.assertEqual(transaction.mode, "renewal")

    def test_pkcsreq_signed_by_ours(self) -> None:
        """A PKCSReq signed with a certificate we issued is a renewal too."""
        self.in_window()
        reply = self.renew(message_type=MessageType.PKCSReq)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)

    def test_outside_window(self) -> None:
        """Before the renewal window opens the renewal is refused, unless allow_replace."""
        before = self.contents()
        for message_type in (MessageType.RenewalReq, MessageType.PKCSReq):
            self.assertFailure(self.renew(message_type=message_type), FailInfo.badRequest, "renewal window")
        self.assertEqual(self.contents(), before)
        reply = self.renew(servername="replace")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        record = self.store.get_certificate(certificate_record_from_der(der(self.old), realm=REALM).identifier)
        assert record is not None
        self.assertEqual((record.status, record.revocation_reason), ("revoked", "superseded"))

    def test_same_key(self) -> None:
        """Renewing with the old key is FAILURE badRequest saying a new key is needed."""
        self.in_window()
        before = self.contents()
        for message_type in (MessageType.RenewalReq, MessageType.PKCSReq):
            reply = self.renew(key=self.device.key, message_type=message_type)
            self.assertFailure(reply, FailInfo.badRequest, "new key")
        self.assertEqual(self.contents(), before)

    def test_same_key_same_transaction(self) -> None:
        """A renewal with the old key and the initial transactionID is refused, not answered as a resend."""
        self.in_window()
        device = client("scepclient")
        old = self.issued(device, transaction_id="tid-key-derived")
        before = self.contents()
        for message_type in (MessageType.RenewalReq, MessageType.PKCSReq):
            reply = self.enroll(Requester(device.key, old), challenge=None, message_type=message_type,
                                transaction_id="tid-key-derived")
            self.assertFailure(reply, FailInfo.badRequest, "new key")
        self.assertEqual(self.contents(), before)

    def test_key_reuse(self) -> None:
        """policy.allow_key_reuse: a renewal that keeps the key, under a new transactionID, is issued."""
        self.in_window()
        reply = self.renew(key=self.device.key, servername="keyreuse", transaction_id="tid-reuse-new")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].public_key(), self.device.key.public_key())
        self.assertNotEqual(reply.certificates[0].serial_number, self.old.serial_number)
        old = self.store.get_certificate(certificate_record_from_der(der(self.old), realm=REALM).identifier)
        assert old is not None
        self.assertEqual(old.revocation_reason, "superseded")

    def test_key_reuse_same_transaction(self) -> None:
        """
        A renewal that keeps the key under the transactionID that issued its
        signer (a key-derived transactionID) is a new request in place of the
        old one, not a resend; a resend of it answers from the new row.
        """
        device = client("keeper")
        old = self.issued(device, transaction_id="tid-keeper", servername="keyreuse")
        self.clock.now = old.not_valid_after_utc - timedelta(days=30)
        first = self.store.get_transaction(REALM, "tid-keeper")
        assert first is not None
        signer = Requester(device.key, old)
        renewal = signer.message(MessageType.PKCSReq, signer.csr(), self.token("scep"),
                                 transaction_id="tid-keeper", signing_time=self.clock.now)
        reply = signer.read(self.answer(renewal, servername="keyreuse").body)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        new = reply.certificates[0]
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertEqual(new.public_key(), device.key.public_key())
        row = self.store.get_transaction(REALM, "tid-keeper")
        assert row is not None
        self.assertEqual((row.mode, row.status), ("renewal", "issued"))
        self.assertEqual(row.certificate_identifier, certificate_record_from_der(der(new), realm=REALM).identifier)
        self.assertEqual(row.created, self.clock.now)
        self.assertGreater(row.created, first.created)
        old_record = self.store.get_certificate(certificate_record_from_der(der(old), realm=REALM).identifier)
        assert old_record is not None
        self.assertEqual((old_record.transaction_id, old_record.revocation_reason), ("tid-keeper", "superseded"))
        before = self.contents()
        again = signer.read(self.answer(renewal, servername="keyreuse").body)
        self.assertEqual(again.certificates[0].serial_number, new.serial_number)
        self.assertEqual(self.contents()[0], before[0], "no third certificate")
        # Without allow_key_reuse the same renewal is refused and nothing changes.
        device = client("keeper-refused")
        old = self.issued(device, transaction_id="tid-keeper-refused")
        signer = Requester(device.key, old)
        before = self.contents()
        renewal = signer.message(MessageType.PKCSReq, signer.csr(), self.token("scep"),
                                 transaction_id="tid-keeper-refused", signing_time=self.clock.now)
        self.assertFailure(signer.read(self.answer(renewal).body), FailInfo.badRequest, "new key")
        self.assertEqual(self.contents(), before)

    def test_new_key_same_transaction(self) -> None:
        """A renewal with a new key under the initial request's transactionID is refused, not issued."""
        device = client("keeper-new-key")
        old = self.issued(device, transaction_id="tid-keeper-new-key")
        self.clock.now = old.not_valid_after_utc - timedelta(days=30)
        before = self.contents()
        reply = self.enroll(Requester(device.key, old), key=self.new_key, challenge=None,
                            message_type=MessageType.RenewalReq, transaction_id="tid-keeper-new-key")
        self.assertFailure(reply, FailInfo.badRequest, "another public key")
        self.assertEqual(self.contents(), before)

    def test_revoked_signer(self) -> None:
        """A renewal signed by a revoked certificate is refused."""
        self.in_window()
        identifier = certificate_record_from_der(der(self.old), realm=REALM).identifier
        self.store.revoke_certificate(identifier, "keyCompromise", self.clock.now - timedelta(hours=1), "test")
        before = self.contents()
        self.assertFailure(self.renew(), FailInfo.badRequest, "revoked")
        self.assertFailure(self.renew(key=self.device.key), FailInfo.badRequest, "revoked")
        self.assertEqual(self.contents(), before)

    def test_expired_signer(self) -> None:
        """A renewal signed by an expired certificate is refused."""
        self.clock.now = self.old.not_valid_after_utc + timedelta(days=1)
        self.assertFailure(self.renew(), FailInfo.badRequest, "expired")

    def test_foreign_signer(self) -> None:
        """A RenewalReq signed by a certificate of another CA is refused; a PKCSReq needs the challenge."""
        stranger_key = certs.cached_key("stranger")
        stranger = certs.make_ca(stranger_key, "Stranger CA")
        foreign = Requester(self.device.key, certs.make_certificate(self.device.key, "device-1", stranger,
                                                                    stranger_key))
        self.in_window()
        before = self.contents()
        self.assertFailure(self.renew(foreign), FailInfo.badRequest, "issued")
        self.assertFailure(self.renew(foreign, message_type=MessageType.PKCSReq), FailInfo.badRequest,
                           "challenge")
        self.assertEqual(self.contents(), before)

    def test_other_subject(self) -> None:
        """A renewal keeps the subject: another subject is refused, or an initial enrollment."""
        self.in_window()
        other = Requester(self.device.key, self.old, common_name="device-2")
        csr = certs.der(certs.make_csr(self.new_key, "device-2"))
        reply = self.ask(other, MessageType.RenewalReq, csr)
        self.assertFailure(reply, FailInfo.badRequest, "subject")
        reply = self.ask(other, MessageType.PKCSReq, csr)
        self.assertFailure(reply, FailInfo.badRequest, "challenge")
        reply = self.ask(other, MessageType.PKCSReq, certs.der(certs.make_csr(self.new_key, "device-2",
                                                                              CHALLENGE)))
        self.assertEqual(reply.status, PKIStatus.SUCCESS)

    def test_proof_of_possession(self) -> None:
        """The CSR of a renewal must prove possession of its key."""
        self.in_window()
        csr = x509.load_der_x509_csr(self.signer.csr(self.new_key))
        reply = self.ask(self.signer, MessageType.RenewalReq, certs.broken_pop(csr))
        self.assertFailure(reply, FailInfo.badMessageCheck, "proof of possession")

    def test_on_behalf(self) -> None:
        """An authorized signer enrolls for another subject without a challenge."""
        agent_key = certs.cached_key("other")
        agent = Requester(agent_key, self.issued(Requester(agent_key, common_name="mdm-agent")))
        csr = certs.der(certs.make_csr(self.new_key, "device-7"))
        reply = self.ask(agent, MessageType.PKCSReq, csr, servername="signers", transaction_id="tid-behalf")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        transaction = self.store.get_transaction(REALM, "tid-behalf")
        assert transaction is not None
        self.assertEqual(transaction.mode, "onbehalf")
        reply = self.ask(self.signer, MessageType.PKCSReq, csr, servername="signers")
        self.assertFailure(reply, FailInfo.badRequest, "authorized signer")


class PendingTests(AuthorityMixin, TestCase):
    """Manual approval and authentication: PENDING, then polling or resending."""

    def poll(self, requester: Requester, transaction_id: str, servername: str = "pending",
             subject: x509.Name | None = None) -> cm.CertRep:
        data = poll_data(self.token("ca-signer"), subject or requester.certificate.subject)
        return self.ask(requester, MessageType.CertPoll, data, transaction_id=transaction_id,
                        servername=servername)

    def decide(self, transaction_id: str, status: str, reason: str) -> None:
        """What C{scepadm request approve|reject} does."""
        self.store.update_transaction(REALM, transaction_id, status=status, reason=reason,
                                      expected_status="pending")

    def pending(self, requester: Requester, transaction_id: str, **options: Any) -> None:
        options.setdefault("servername", "pending")
        reply = self.enroll(requester, transaction_id=transaction_id, **options)
        self.assertEqual(reply.status, PKIStatus.PENDING, reply.fail_info_text)
        transaction = self.store.get_transaction(REALM, transaction_id)
        assert transaction is not None
        self.assertEqual(transaction.status, "pending")

    def test_approve(self) -> None:
        """PENDING until approved; then a CertPoll gets the certificate, once."""
        requester = client()
        self.pending(requester, "tid-approve")
        self.assertEqual(self.poll(requester, "tid-approve").status, PKIStatus.PENDING)
        self.assertEqual(self.enroll(requester, transaction_id="tid-approve", servername="pending").status,
                         PKIStatus.PENDING)
        before = self.contents()
        self.decide("tid-approve", "approved", "approved by test")
        reply = self.poll(requester, "tid-approve")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].public_key(), requester.key.public_key())
        self.assertEqual(len(self.contents()[0]), len(before[0]) + 1)
        again = self.enroll(requester, transaction_id="tid-approve", servername="pending")
        self.assertEqual(der(again.certificates[0]), der(reply.certificates[0]))
        self.assertEqual(len(self.contents()[0]), len(before[0]) + 1)

    def test_approve_resend(self) -> None:
        """Resending the PKCSReq after approval issues the certificate as a poll does."""
        requester = client()
        self.pending(requester, "tid-resend")
        self.decide("tid-resend", "approved", "approved by test")
        reply = self.enroll(requester, transaction_id="tid-resend", servername="pending")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        transaction = self.store.get_transaction(REALM, "tid-resend")
        assert transaction is not None
        self.assertEqual((transaction.status, transaction.updated), ("issued", self.clock.now))

    def test_reject(self) -> None:
        """A rejected request answers FAILURE badRequest with the reason, to polls and resends."""
        requester = client()
        self.pending(requester, "tid-reject")
        self.decide("tid-reject", "rejected", "not on the inventory")
        before = self.contents()
        self.assertFailure(self.poll(requester, "tid-reject"), FailInfo.badRequest, "not on the inventory")
        reply = self.enroll(requester, transaction_id="tid-reject", servername="pending")
        self.assertFailure(reply, FailInfo.badRequest, "rejected")
        self.assertEqual(self.contents(), before)

    def test_manual_authentication(self) -> None:
        """With allow_man_authen a request without the right challenge waits; with it, it is issued."""
        for challenge in (None, "NotTheSecret"):
            self.pending(client(), f"tid-manual-{challenge}", challenge=challenge, servername="manual")
        self.assertEqual(self.enroll(client(), servername="manual").status, PKIStatus.SUCCESS)

    def test_bound_to_key(self) -> None:
        """Another key reusing the transactionID never reaches the first request's certificate."""
        requester, intruder = client(), client("other")
        self.pending(requester, "tid-bound")
        self.assertFailure(self.enroll(intruder, transaction_id="tid-bound", servername="pending"),
                           FailInfo.badRequest, "another public key")
        self.decide("tid-bound", "approved", "approved by test")
        before = self.contents()
        self.assertFailure(self.poll(intruder, "tid-bound"), FailInfo.badRequest, "another public key")
        self.assertFailure(self.enroll(intruder, transaction_id="tid-bound", servername="pending"),
                           FailInfo.badRequest, "another public key")
        self.assertEqual(self.contents(), before)
        self.assertEqual(self.poll(requester, "tid-bound").status, PKIStatus.SUCCESS)

    def test_resend_by_another_signer(self) -> None:
        """A captured CSR resent under another signer's key does not pick up the transaction."""
        device, replayer = client(), client("other")
        self.issued(device, transaction_id="tid-replay")
        before = self.contents()
        reply = self.enroll(replayer, key=device.key, transaction_id="tid-replay")
        self.assertFailure(reply, FailInfo.badRequest, "another signer")
        self.assertEqual(self.contents(), before)
        again = self.enroll(device, transaction_id="tid-replay")
        self.assertEqual(again.status, PKIStatus.SUCCESS, again.fail_info_text)

    def test_bound_to_key_issued(self) -> None:
        """After issuance too, a transactionID reused with another key gets no certificate."""
        self.issued(client(), transaction_id="tid-taken")
        before = self.contents()
        self.assertFailure(self.enroll(client("other"), transaction_id="tid-taken"),
                           FailInfo.badRequest, "another public key")
        self.assertEqual(self.contents(), before)

    def test_poll_subject_mismatch(self) -> None:
        """A CertPoll whose subject is not the request's is FAILURE badCertId and issues nothing."""
        requester = client()
        self.pending(requester, "tid-subject")
        self.decide("tid-subject", "approved", "approved by test")
        before = self.contents()
        reply = self.poll(requester, "tid-subject", subject=certs.name("device-2"))
        self.assertFailure(reply, FailInfo.badCertId, "subject")
        self.assertEqual(self.contents(), before)

    def test_pending_renewal_poll(self) -> None:
        """A pending renewal is polled with the certificate that signed it."""
        device = client()
        old = self.issued(device)
        signer = Requester(device.key, old)
        self.clock.now = old.not_valid_after_utc - timedelta(days=30)
        new_key = certs.cached_key("renewed")
        reply = self.enroll(signer, key=new_key, challenge=None, message_type=MessageType.RenewalReq,
                            transaction_id="tid-renew-poll", servername="pending")
        self.assertEqual(reply.status, PKIStatus.PENDING, reply.fail_info_text)
        self.decide("tid-renew-poll", "approved", "approved by test")
        reply = self.poll(signer, "tid-renew-poll")
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertEqual(reply.certificates[0].public_key(), new_key.public_key())
        stranger = Requester(certs.cached_key("other"), common_name="device-1")
        self.assertFailure(self.poll(stranger, "tid-renew-poll"), FailInfo.badRequest)


    def test_key_reuse_same_transaction_pending(self) -> None:
        """A renewal in place of its issued transaction can wait for approval like any request."""
        device = client("keeper-pending")
        self.pending(device, "tid-keeper-pending", servername="pendingreuse")
        self.decide("tid-keeper-pending", "approved", "approved by test")
        old = self.poll(device, "tid-keeper-pending", servername="pendingreuse").certificates[0]
        self.clock.now = old.not_valid_after_utc - timedelta(days=30)
        signer = Requester(device.key, old)
        renewal = signer.message(MessageType.RenewalReq, signer.csr(), self.token("scep"),
                                 transaction_id="tid-keeper-pending", signing_time=self.clock.now)
        reply = signer.read(self.answer(renewal, servername="pendingreuse").body)
        self.assertEqual(reply.status, PKIStatus.PENDING, reply.fail_info_text)
        self.decide("tid-keeper-pending", "approved", "approved by test")
        reply = self.poll(signer, "tid-keeper-pending", servername="pendingreuse", subject=old.subject)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        self.assertNotEqual(reply.certificates[0].serial_number, old.serial_number)

    def test_approved_renewal_polled_with_new_key(self) -> None:
        """An approved renewal polled with the new key's own certificate still revokes what it replaces."""
        device = client()
        old = self.issued(device)
        self.clock.now = old.not_valid_after_utc - timedelta(days=30)
        new_key = certs.cached_key("renewed")
        reply = self.enroll(Requester(device.key, old), key=new_key, challenge=None,
                            message_type=MessageType.RenewalReq, transaction_id="tid-renew-new",
                            servername="pendingreplace")
        self.assertEqual(reply.status, PKIStatus.PENDING, reply.fail_info_text)
        self.decide("tid-renew-new", "approved", "approved by test")
        reply = self.poll(Requester(new_key, common_name="device-1"), "tid-renew-new", servername="pendingreplace",
                          subject=old.subject)
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        record = self.store.get_certificate(certificate_record_from_der(der(old), realm=REALM).identifier)
        assert record is not None
        self.assertEqual((record.status, record.revocation_reason), ("revoked", "superseded"))


class CRLTests(AuthorityMixin, TestCase):
    """CRLs: revocations appear in the next CRL; a due CRL is reissued on demand."""

    def crl(self, certificate: x509.Certificate) -> x509.CertificateRevocationList:
        reply = self.ask(client(), MessageType.GetCRL, m.issuer_and_serial(certificate))
        self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
        return x509.load_der_x509_crl(reply.crls[0])

    def number(self, crl: x509.CertificateRevocationList) -> int:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    def test_revocation(self) -> None:
        """A revoked certificate is in the next CRL, which keeps being served until it is due."""
        certificate = self.issued(client())
        first = self.crl(certificate)
        self.assertIsNone(first.get_revoked_certificate_by_serial_number(certificate.serial_number))
        identifier = certificate_record_from_der(der(certificate), realm=REALM).identifier
        self.store.revoke_certificate(identifier, "keyCompromise", self.clock.now, "test")
        self.assertEqual(self.number(self.crl(certificate)), self.number(first))
        signer = self.realm.current("ca-signer")
        assert signer is not None
        issue_crl(self.store, REALM, signer, self.realm.key(signer), self.clock.now, actor="test")
        second = self.crl(certificate)
        self.assertEqual(self.number(second), self.number(first) + 1)
        entry = second.get_revoked_certificate_by_serial_number(certificate.serial_number)
        assert entry is not None
        self.assertEqual(entry.extensions.get_extension_for_class(x509.CRLReason).value.reason,
                         x509.ReasonFlags.key_compromise)

    def test_reissued_when_due(self) -> None:
        """Past its next update the CRL is reissued with a new number and next update."""
        certificate = self.issued(client())
        first = self.crl(certificate)
        assert first.next_update_utc is not None
        self.clock.now = first.next_update_utc + timedelta(seconds=1)
        second = self.crl(certificate)
        self.assertEqual(self.number(second), self.number(first) + 1)
        assert second.next_update_utc is not None
        self.assertGreater(second.next_update_utc, self.clock.now)


class RolloverTests(AuthorityMixin, TestCase):
    """GetNextCACert and root rollover; RA rollover."""

    def add_root(self, notbefore: datetime) -> x509.Certificate:
        root = certs.make_ca(certs.cached_key("stranger"), "democa Root CA 2")
        record = certificate_record_from_der(der(root), realm=None, issuer_identifier=None)
        self.store.add_certificate(record)
        self.store.add_alias(AliasRecord(realm=REALM, group="root", alias="root-2",
                                         identifier=record.identifier, notbefore=notbefore))
        return root

    def getcacert(self) -> list[x509.Certificate]:
        content_type, body = self.authority.ca_certificates(REALM, "generic")
        self.assertEqual(content_type, "application/x-x509-ca-ra-cert")
        return m.parse_degenerate(body)[0]

    def test_no_next_ca(self) -> None:
        """Without an upcoming root there is no GetNextCACert, and GetCACaps does not offer it."""
        self.assertRaises(NotAvailable, self.authority.next_ca, REALM, "generic")
        self.assertNotIn("GetNextCACert", self.authority.capabilities(REALM, "generic"))

    def test_next_ca(self) -> None:
        """An upcoming root is offered, signed by the current RA, and becomes current at its notbefore."""
        old_root = self.token("root")
        notbefore = self.clock.now + timedelta(days=1)
        root = self.add_root(notbefore)
        self.assertIn("GetNextCACert", self.authority.capabilities(REALM, "generic"))
        content, signer = cm.verify_signed_data(self.authority.next_ca(REALM, "generic"))
        self.assertEqual(der(signer), der(self.token("scep")))
        self.assertEqual([der(c) for c in m.parse_degenerate(content)[0]], [der(root)])
        self.assertEqual(der(self.getcacert()[-1]), der(old_root))

        self.clock.now = notbefore + timedelta(seconds=1)
        self.assertEqual(der(self.token("root")), der(root))
        self.assertEqual(der(self.getcacert()[-1]), der(root))
        self.assertNotIn("GetNextCACert", self.authority.capabilities(REALM, "generic"))
        self.assertRaises(NotAvailable, self.authority.next_ca, REALM, "generic")

    def test_next_ca_with_signers(self) -> None:
        """The next issuing CA and RA go with the next root when their aliases exist."""
        notbefore = self.clock.now + timedelta(days=1)
        root = self.add_root(notbefore)
        issuer = (self.token("ca-signer"), self.realm.key(self.realm.current("ca-signer")))
        made = [add_token(self.store, self.keys, REALM, group, issuer=issuer, actor="test", notbefore=notbefore)
                for group in ("ca-signer", "scep")]
        content, _ = cm.verify_signed_data(self.authority.next_ca(REALM, "generic"))
        self.assertEqual([der(c) for c in m.parse_degenerate(content)[0]],
                         [der(root)] + [der(t.certificate) for t in made])

    def test_ra_rollover(self) -> None:
        """With two RA generations, each request is decrypted and answered by the one it names."""
        old_ra = self.token("scep")
        issuer = (self.token("ca-signer"), self.realm.key(self.realm.current("ca-signer")))
        new_ra = add_token(self.store, self.keys, REALM, "scep", issuer=issuer, actor="test").certificate
        self.assertEqual(der(self.token("scep")), der(new_ra))
        self.assertEqual(der(self.getcacert()[0]), der(new_ra))
        for ra in (old_ra, new_ra):
            reply = self.enroll(client(), recipient=ra)
            self.assertEqual(reply.status, PKIStatus.SUCCESS, reply.fail_info_text)
            self.assertEqual(der(reply.signer_certificate), der(ra))

    def test_ec_issuing_ca(self) -> None:
        """An EC issuing-CA generation signs certificates with ECDSA; an EC RA is refused."""
        root = self.realm.current("root")
        assert root is not None
        ca = add_token(self.store, self.keys, REALM, "ca-signer", issuer=(root.certificate, self.realm.key(root)),
                       actor="test", key_type="ec256").certificate
        issued = self.issued(client())
        self.assertEqual(issued.issuer, ca.subject)
        self.assertEqual(issued.signature_algorithm_oid, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256)
        issued.verify_directly_issued_by(ca)
        with self.assertRaises(TokenError):
            add_token(self.store, self.keys, REALM, "scep", issuer=(ca, self.realm.key(self.realm.current("ca-signer"))),
                      actor="test", key_type="ec256")

    def test_expired_ra(self) -> None:
        """A request to an RA generation whose window has ended is not decrypted."""
        old_ra = self.token("scep")
        identifier = certificate_record_from_der(der(old_ra), realm=REALM).identifier
        issuer = (self.token("ca-signer"), self.realm.key(self.realm.current("ca-signer")))
        add_token(self.store, self.keys, REALM, "scep", issuer=issuer, actor="test")
        self.store.update_alias(REALM, "scep-1", notafter=self.clock.now - timedelta(seconds=1))
        self.assertNotEqual(certificate_record_from_der(der(self.token("scep")), realm=REALM).identifier,
                            identifier)
        reply = self.enroll(client(), recipient=old_ra)
        self.assertFailure(reply, FailInfo.badRequest, "not encrypted to a certificate of this server")

