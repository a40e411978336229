"""
The authority's side of the AMP wire, and how a worker process starts.

L{AuthorityProtocol} answers the commands of L{scep.commands} with an
L{Authority}.  L{open_authority} builds one from a config and a state
directory: it opens the store, creates the embedded default realm on the
first start (once, under a lock shared by all workers), and loads the keys
of every configured realm before the first request.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from twisted.logger import Logger
from twisted.protocols import amp

from scep import commands
from scep.authority.configcheck import realm_names
from scep.authority.service import Authority
from scep.authority.tokens import KeyStore, create_realm
from scep.commands import BadMessage, NotAvailable, Unavailable
from scep.config import database_url, load_system
from scep.store import Busy, Store, open_store

log = Logger()

DEFAULT_REALM = "democa"


class AuthorityProtocol(amp.AMP):
    """One AMP connection from a front to this worker's L{Authority}."""

    def __init__(self, authority: Authority) -> None:
        super().__init__()
        self.authority = authority

    def _guard(self, what: str, call: Any) -> Any:
        try:
            return call()
        except (BadMessage, NotAvailable, Unavailable):
            raise
        except Busy:
            raise Unavailable("the store is busy") from None
        except Exception:
            log.failure("{what} failed", what=what)
            raise Unavailable("internal error in the authority") from None

    @commands.Ping.responder
    def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    @commands.GetCACaps.responder
    def get_ca_caps(self, realm: str, servername: str) -> dict[str, Any]:
        caps = self._guard("GetCACaps", lambda: self.authority.capabilities(realm, servername))
        return {"capabilities": caps}

    @commands.GetCACert.responder
    def get_ca_cert(self, realm: str, servername: str) -> dict[str, Any]:
        content_type, body = self._guard("GetCACert", lambda: self.authority.ca_certificates(realm, servername))
        return {"content_type": content_type, "body": body}

    @commands.GetNextCACert.responder
    def get_next_ca_cert(self, realm: str, servername: str) -> dict[str, Any]:
        return {"body": self._guard("GetNextCACert", lambda: self.authority.next_ca(realm, servername))}

    @commands.PKIOperation.responder
    def pki_operation(self, realm: str, servername: str, endpoint: str, message: bytes,
                      params: list[dict[str, str]], client_address: str,
                      encryption_algorithm: str, hash_algorithm: str) -> dict[str, Any]:
        answer = self._guard("PKIOperation", lambda: self.authority.pki_operation(
            realm=realm, servername=servername, endpoint=endpoint, message=message,
            params={p["name"]: p["value"] for p in params}, client_address=client_address,
            encryption_algorithm=encryption_algorithm, hash_algorithm=hash_algorithm,
        ))
        return {"body": answer.body, "summary": answer.summary, "detail": answer.detail}


def ensure_default_realm(store: Store, keys: KeyStore, config_dir: str, state_dir: str) -> None:
    """
    Create the embedded default realm's tokens if the config has the realm
    and the store has no root for it yet; log their identifiers.
    """
    if not os.path.isdir(os.path.join(config_dir, "realms", DEFAULT_REALM)):
        return
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(state_dir, "init.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = create_realm(store, keys, DEFAULT_REALM, actor="init")
    for token in made:
        log.info("created {alias} of realm {realm}: {identifier} {subject}", alias=token.alias,
                 realm=DEFAULT_REALM, identifier=token.identifier,
                 subject=token.certificate.subject.rfc4514_string())


def open_authority(config_dir: str, state_dir: str) -> Authority:
    """
    The authority of a config and state directory, ready to answer.

    @raise ConfigError: for a broken config.
    @raise StoreError: when the store cannot be opened.
    """
    system = load_system(config_dir)
    store = open_store(database_url(system, state_dir))
    keys = KeyStore(state_dir)
    ensure_default_realm(store, keys, config_dir, state_dir)
    authority = Authority(config_dir, store, keys)
    for name in realm_names(config_dir):
        realm = authority.load_realm(name)
        realm.refresh()
        if realm.current("scep") is None or realm.current("ca-signer") is None:
            log.warn("realm {realm} has no current RA or issuing CA; `scepadm init --realm {realm}` makes them",
                     realm=name)
            continue
        realm.preload()
    return authority

