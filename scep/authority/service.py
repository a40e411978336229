"""
The authority: one method per SCEP operation, no network.

L{Authority} answers what the front asks over AMP (see L{scep.authority.amp}).
For a PKIOperation it parses the pkiMessage, picks the RA key its
recipientInfo names, decrypts, verifies, applies the server policy, issues
or defers, persists, and builds the signed CertRep.  Every failure a client
can cause after the outer message was parsed is a signed CertRep FAILURE
with a failInfo and a failInfoText.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from scep import message as scep_message
from scep.algorithms import CIPHERS, DIGESTS
from scep.authority.enroll import Enrollment
from scep.authority.realm import Realm, Token
from scep.authority.tokens import KeyStore
from scep.commands import BadMessage, NotAvailable, Unavailable
from scep.config import ConfigError
from scep.message import FailInfo, MessageType, PKIMessage, PKIStatus, RequestError
from scep.store import Busy, Store

log = Logger()

CAPABILITIES = ("AES", "DES3", "POSTPKIOperation", "Renewal", "SHA-1", "SHA-256", "SHA-512", "SCEPStandard")

WEAK_CIPHERS = {"des": "3des"}
WEAK_DIGESTS = {"md5": "sha256"}
"""What a mirrored reply uses instead of single DES or MD5 (RFC 8894 §2.9)."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Answer:
    """A CertRep and how to log it: C{summary} holds no user input."""

    body: bytes
    summary: str
    detail: str


@dataclass
class Reply:
    """
    How to answer one parsed request: the request, the RA that signs, and
    the algorithms of the reply.
    """

    request: PKIMessage
    ra: Token
    ra_key: Any
    cipher: str
    digest: str

    def build(self, status: PKIStatus, *, fail_info: FailInfo | None = None, text: str | None = None,
              certificates: list[Any] | None = None, crls: list[bytes] | None = None) -> bytes:
        return scep_message.build_cert_rep(
            request=self.request, signer_certificate=self.ra.certificate, signer_key=self.ra_key,
            status=status, fail_info=fail_info, fail_info_text=text,
            certificates=certificates or [], crls=crls or [], cipher=self.cipher, digest=self.digest,
        )


class Authority:
    """
    The SCEP service of one config and state directory, for every realm the
    wrapper configs name.
    """

    def __init__(self, config_dir: str, store: Store, keys: KeyStore,
                 now: Callable[[], datetime.datetime] = utcnow) -> None:
        self.config_dir = config_dir
        self.store = store
        self.keys = keys
        self.now = now
        self._realms: dict[str, Realm] = {}
        self._getcacert: dict[tuple[str, str], tuple[tuple[Any, ...], bytes]] = {}

    def load_realm(self, name: str) -> Realm:
        """
        The realm, its configs read on first use.

        @raise ConfigError: when its scep.yaml or profiles.yaml is wrong.
        """
        realm = self._realms.get(name)
        if realm is None:
            realm = Realm(name, self.store, self.keys, self.config_dir, self.now)
            self._realms[name] = realm
        return realm

    def realm(self, name: str) -> Realm:
        """
        The realm for a request, refreshed when its aliases changed.

        @raise NotAvailable: for a realm without config or tokens.
        """
        try:
            realm = self.load_realm(name)
        except ConfigError as e:
            log.error("{error}", error=str(e))
            raise NotAvailable(f"realm {name} is not configured") from None
        try:
            realm.refresh()
        except Busy:
            raise Unavailable("the store is busy") from None
        if realm.current("scep") is None or realm.current("ca-signer") is None:
            raise NotAvailable(f"realm {name} has no current RA or issuing CA")
        return realm

    def server(self, realm: Realm, servername: str) -> Any:
        server = realm.servers.get(servername)
        if server is None:
            raise NotAvailable(f"no server config {servername} in realm {realm.name}")
        return server

    # GetCACaps, GetCACert, GetNextCACert

    def capabilities(self, realm_name: str, servername: str) -> list[str]:
        realm = self.realm(realm_name)
        self.server(realm, servername)
        caps = list(CAPABILITIES)
        if realm.upcoming("root") is not None:
            caps.insert(1, "GetNextCACert")
        return caps

    def ca_certificates(self, realm_name: str, servername: str) -> tuple[str, bytes]:
        """
        The RA and CA certificates per the server config's C{getcacert}, built
        once per alias generation.
        """
        realm = self.realm(realm_name)
        server = self.server(realm, servername)
        key = (realm_name, servername)
        ra = realm.current("scep")
        assert ra is not None
        # Which generations are current can change with the clock alone.
        version = (realm.generation, server.getcacert, *(t.identifier if t else "" for t in
                                                         (ra, realm.current("ca-signer"), realm.current("root"))))
        cached = self._getcacert.get(key)
        if cached is not None and cached[0] == version:
            return "application/x-x509-ca-ra-cert", cached[1]
        certificates = [ra.certificate]
        parts = server.getcacert.split("+")
        if "issuer" in parts:
            certificates += self.chain(realm, "ca-signer")
        if "root" in parts:
            certificates += [c for c in self.chain(realm, "root") if c not in certificates]
        body = scep_message.build_degenerate(certificates)
        self._getcacert[key] = (version, body)
        return "application/x-x509-ca-ra-cert", body

    def chain(self, realm: Realm, group: str) -> list[Any]:
        token = realm.current(group)
        return [token.certificate] if token is not None else []

    def next_ca(self, realm_name: str, servername: str) -> bytes:
        """
        The upcoming root (and next issuing CA and RA, where their aliases
        exist) as a certs-only structure signed by the current RA.

        @raise NotAvailable: when no upcoming root exists.
        """
        realm = self.realm(realm_name)
        self.server(realm, servername)
        root = realm.upcoming("root")
        if root is None:
            raise NotAvailable("NextCA not set")
        certificates = [root.certificate]
        for group in ("ca-signer", "scep"):
            upcoming = realm.upcoming(group)
            if upcoming is not None:
                certificates.append(upcoming.certificate)
        ra = realm.current("scep")
        assert ra is not None
        return scep_message.build_signed_data(
            scep_message.build_degenerate(certificates),
            signer_certificate=ra.certificate, signer_key=realm.key(ra), digest="sha256",
        )

    # PKIOperation

    def pki_operation(self, *, realm: str, servername: str, endpoint: str, message: bytes,
                      params: dict[str, str], client_address: str, encryption_algorithm: str = "",
                      hash_algorithm: str = "") -> Answer:
        """
        Answer one pkiMessage with a CertRep.

        @raise BadMessage: when the bytes are no pkiMessage (no CertRep can
            be built).
        """
        realm_ = self.realm(realm)
        server = self.server(realm_, servername)
        try:
            request = scep_message.parse_pki_message(message)
        except scep_message.MessageError as e:
            raise BadMessage(str(e)) from None
        try:
            type_name = MessageType(request.message_type).name
        except ValueError:
            type_name = f"messageType {request.message_type}"
        detail = f"transactionID={request.transaction_id!r}"

        decrypted: scep_message.Decrypted | None = None
        ra_used: list[Token] = []

        def find_key(recipient: scep_message.RecipientId) -> tuple[Any, Any] | None:
            for token in realm_.active("scep"):
                if recipient.matches(token.certificate):
                    ra_used.append(token)
                    return token.certificate, realm_.key(token)
            return None

        reply = self._reply(realm_, request, None, encryption_algorithm, hash_algorithm)
        try:
            scep_message.verify_pki_message(request)
            self._check_time(server, request)
            if request.enveloped_data is not None and request.message_type in _ENVELOPED:
                decrypted = scep_message.decrypt_message_data(request, find_key)
                reply = self._reply(realm_, request, decrypted, encryption_algorithm, hash_algorithm,
                                    ra_used[-1] if ra_used else None)
            enrollment = Enrollment(self, realm_, server, request, decrypted, reply,
                                    params=params, client_address=client_address, endpoint=endpoint)
            outcome = enrollment.run()
        except RequestError as e:
            body = reply.build(PKIStatus.FAILURE, fail_info=e.fail_info, text=e.text)
            return Answer(body, f"{type_name} FAILURE {e.fail_info.name}: {e.text}", detail)
        except Busy:
            raise Unavailable("the store is busy") from None
        return Answer(outcome.body, f"{type_name} {outcome.summary}", f"{detail} {outcome.detail}".strip())

    def _check_time(self, server: Any, request: PKIMessage) -> None:
        if request.signing_time is None:
            return
        skew = abs(self.now() - request.signing_time)
        if skew > server.signing_time_tolerance:
            raise RequestError(FailInfo.badTime, f"signingTime is {int(skew.total_seconds())}s away "
                               f"from the server's clock (tolerance {int(server.signing_time_tolerance.total_seconds())}s)")

    def _reply(self, realm: Realm, request: PKIMessage, decrypted: scep_message.Decrypted | None,
               encryption_algorithm: str, hash_algorithm: str, ra: Token | None = None) -> Reply:
        if ra is None or not ra.valid_at(self.now()):
            ra = realm.current("scep")
        assert ra is not None
        cipher = _endpoint_choice(encryption_algorithm, CIPHERS, "encryption_algorithm") or _mirror(
            decrypted.cipher if decrypted else None, CIPHERS, WEAK_CIPHERS, "aes128")
        digest = _endpoint_choice(hash_algorithm, DIGESTS, "hash_algorithm") or _mirror(
            request.digest_algorithm, DIGESTS, WEAK_DIGESTS, "sha256")
        return Reply(request=request, ra=ra, ra_key=realm.key(ra), cipher=cipher, digest=digest)


def _endpoint_choice(name: str, known: Mapping[str, Any], key: str) -> str:
    """The endpoint's algorithm for replies; empty (mirror the request) when none or unknown."""
    if name and name not in known:
        log.warn("ignoring unknown {key} {name!r} from the front", key=key, name=name)
        return ""
    return name


def _mirror(name: str | None, known: Mapping[str, Any], weak: Mapping[str, str], default: str) -> str:
    """The request's algorithm for the reply: never a weak one, the default for one we do not know."""
    if name is None or name not in known:
        return default
    return weak.get(name, name)


_ENVELOPED = (MessageType.PKCSReq, MessageType.RenewalReq, MessageType.CertPoll, MessageType.GetCert,
              MessageType.GetCRL)
"""The messageTypes this server answers: each carries a pkcsPKIEnvelope."""
