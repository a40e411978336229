"""
A realm as a worker holds it in memory: its token generations (root,
issuing CA, RA) with their keys, its server configs and profiles.

Keys are loaded and checked once per worker.  The server configs and
profiles are read again when their files' mtime changes, the aliases only
when the store says they changed; which generation is current is
decided per request from the alias windows, so an upcoming root becomes
current when its notbefore passes, without a restart.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from twisted.logger import Logger

from scep.authority.configcheck import check_realm
from scep.authority.policy import ServerConfig
from scep.authority.profiles import Profile
from scep.authority.tokens import GROUPS, KeyStore, PrivateKey
from scep.config import ConfigError
from scep.store import AliasRecord, Store

log = Logger()


@dataclass(frozen=True)
class Token:
    """One alias with its certificate (and key, for groups that sign)."""

    alias: str
    group: str
    identifier: str
    certificate: x509.Certificate
    der: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime
    cert_not_before: datetime.datetime
    cert_not_after: datetime.datetime

    def valid_at(self, now: datetime.datetime) -> bool:
        return self.not_before <= now <= self.not_after


class Realm:
    """One realm's tokens and configs, cached in a worker."""

    def __init__(self, name: str, store: Store, keys: KeyStore, config_dir: str,
                 now: Callable[[], datetime.datetime]) -> None:
        self.name = name
        self.store = store
        self.keys = keys
        self.config_dir = config_dir
        self.now = now
        self.servers: dict[str, ServerConfig]
        self.profiles: dict[str, Profile]
        self._config_files = [os.path.join(config_dir, "realms", name, f) for f in ("scep.yaml", "profiles.yaml")]
        self._config_stamp = self._stamp()
        self.servers, self.profiles = check_realm(config_dir, name)
        self._tokens: dict[str, list[Token]] = {}
        self._private: dict[str, PrivateKey] = {}
        self._changed: Any = object()
        self.generation = 0
        """Counts the reloads of the aliases; cached answers compare it."""

    def _stamp(self) -> tuple[float | None, ...]:
        stamps: list[float | None] = []
        for path in self._config_files:
            try:
                stamps.append(os.stat(path).st_mtime)
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def reload_configs(self) -> None:
        """
        Read scep.yaml and profiles.yaml again when their mtime changed; a
        broken change is logged and the last good configs keep serving.
        """
        stamp = self._stamp()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            self.servers, self.profiles = check_realm(self.config_dir, self.name)
        except ConfigError as e:
            log.error("{error}; realm {realm} keeps its last good config", error=str(e), realm=self.name)
            return
        log.info("reloaded the server configs and profiles of realm {realm}", realm=self.name)

    def refresh(self) -> None:
        """Read the configs again if their files changed, the aliases if the store says they changed."""
        self.reload_configs()
        changed = self.store.aliases_changed_token(self.name)
        if changed == self._changed:
            return
        tokens: dict[str, list[Token]] = {group: [] for group in GROUPS}
        for alias in self.store.list_aliases(self.name):
            record = self.store.get_certificate(alias.identifier)
            if record is None:
                continue
            tokens.setdefault(alias.group, []).append(_token(alias, record.der))
        for group in tokens.values():
            group.sort(key=lambda t: t.not_before)
        self._tokens = tokens
        self._changed = changed
        self.generation += 1

    def tokens(self, group: str) -> list[Token]:
        return self._tokens.get(group, [])

    def current(self, group: str) -> Token | None:
        """The newest generation whose window contains now."""
        now = self.now()
        valid = [t for t in self.tokens(group) if t.valid_at(now)]
        return valid[-1] if valid else None

    def active(self, group: str) -> list[Token]:
        """Every generation whose window contains now, newest first."""
        now = self.now()
        return [t for t in reversed(self.tokens(group)) if t.valid_at(now)]

    def upcoming(self, group: str) -> Token | None:
        """The first generation whose notbefore lies in the future."""
        now = self.now()
        later = [t for t in self.tokens(group) if t.not_before > now]
        return later[0] if later else None

    def key(self, token: Token) -> PrivateKey:
        """The private key of a token, loaded and checked once."""
        key = self._private.get(token.identifier)
        if key is None:
            key = self.keys.load(token.identifier, token.certificate)
            self._private[token.identifier] = key
        return key

    def preload(self) -> None:
        """Load the keys of the signing tokens now, not on the first request."""
        for group in ("ca-signer", "scep"):
            for token in self.active(group):
                self.key(token)


def _token(alias: AliasRecord, der: bytes) -> Token:
    certificate = x509.load_der_x509_certificate(der)
    own_before = certificate.not_valid_before_utc
    own_after = certificate.not_valid_after_utc
    return Token(
        alias=alias.alias, group=alias.group, identifier=alias.identifier,
        certificate=certificate, der=der,
        not_before=alias.notbefore or own_before, not_after=alias.notafter or own_after,
        cert_not_before=own_before, cert_not_after=own_after,
    )
