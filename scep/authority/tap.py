"""
C{twistd scep-worker}: one authority worker alone, listening on a Twisted
server endpoint, for a privilege-separated deployment::

    twistd scep-worker --listen unix:/run/scep/worker.sock:mode=660 \\
        --config /etc/scep --state /var/lib/scep

The front then runs with C{--backend unix:/run/scep/worker.sock}.

Across hosts, the worker speaks TLS and requires a client certificate
issued by the CA of C{--tls-client-ca}; the front connects with Twisted's
C{tls:} client endpoint, which checks the worker's name::

    twistd scep-worker --listen tcp:9443 --tls-certificate worker.pem \
        --tls-key worker.key --tls-client-ca fronts-ca.pem ...
    twistd scep --backend tls:ca.example:9443:trustRoots=/etc/scep/tls-ca:\
certificate=front.pem:privateKey=front.key
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import crypto
from twisted.application.service import IService, MultiService
from twisted.internet import ssl
from twisted.internet.protocol import Factory
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogFilterPredicate,
    LogLevel,
    PredicateResult,
    formatEvent,
    globalLogBeginner,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from zope.interface import implementer

from scep.config import ConfigError, resolve_dirs
from scep.store import StoreError
from scep.usage import Listening, OneLineErrors, exit_with, server_endpoint

if TYPE_CHECKING:
    from scep.authority.service import Authority


class Options(OneLineErrors):
    command = "scep-worker"
    synopsis = "--listen ENDPOINT [--config DIR] [--state DIR]"
    optParameters = [
        ["listen", "l", None, "Twisted server endpoint for AMP, e.g. unix:/run/scep/worker.sock:mode=660"],
        ["config", "c", None, "Config directory (default: $SCEP_CONFIG_DIR or ./etc)"],
        ["state", "s", None, "State directory: keys, passphrase, SQLite database (default: system.state or ./var)"],
        ["tls-certificate", None, None, "PEM certificate (and chain) of this worker: speak TLS"],
        ["tls-key", None, None, "PEM private key of --tls-certificate"],
        ["tls-client-ca", None, None, "PEM CA certificates a front's client certificate must chain to"],
    ]

    def postOptions(self) -> None:
        tls = [self["tls-certificate"], self["tls-key"], self["tls-client-ca"]]
        if any(tls) and not all(tls):
            raise usage.UsageError("TLS needs all of --tls-certificate, --tls-key and --tls-client-ca")
        # The spawned child (scep.authority.child) shares these options and has no --listen.
        self.endpoint = server_endpoint("--listen", self["listen"]) if self["listen"] else None
        try:
            self["config"], self["state"], _ = resolve_dirs(self["config"], self["state"])
        except ConfigError as e:
            exit_with(self.command, str(e))
    optFlags = [["check", None, "Open the config, store and keys (creating the default realm), then exit"]]


@implementer(ILogFilterPredicate)
class _NoAMPChatter:
    """
    Drop AMP's per-connection info lines (they show the repr of a pipe
    address); the front logs each worker's start and end itself.
    """

    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        if event.get("log_namespace") == "twisted.protocols.amp" and event.get("log_level") == LogLevel.info:
            return PredicateResult.no
        return PredicateResult.maybe


def start_logging(stream: IO[str]) -> None:
    """Log plain lines (no timestamps: the front adds its own) to C{stream}."""

    def line(event: dict[str, Any]) -> str:
        text = formatEvent(event)
        if event.get("log_failure") is not None:
            text += "\n" + event["log_failure"].getTraceback()
        return text + "\n"

    observer = FilteringLogObserver(FileLogObserver(stream, line), [_NoAMPChatter()])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def open_or_exit(options: Options, command: str) -> Authority:
    """
    Open the authority of C{options} (with C{--check}, after checking
    every config file), or exit with status 1 and one line on stderr.
    """
    from scep.authority.amp import open_authority
    from scep.authority.configcheck import check_config

    try:
        if options["check"]:
            check_config(options["config"])
        return open_authority(options["config"], options["state"])
    except (ConfigError, StoreError) as e:
        exit_with(command, str(e))


def makeService(options: Options) -> IService:
    from scep.authority.amp import AuthorityProtocol

    if options["check"]:
        open_or_exit(options, "scep-worker")
        print(f"scep-worker: {options['config']} is fine")
        raise SystemExit(0)
    if options.endpoint is None:
        exit_with("scep-worker", "--listen ENDPOINT is required", 2)
    authority = open_or_exit(options, "scep-worker")
    service = MultiService()
    factory: Any = Factory.forProtocol(lambda: AuthorityProtocol(authority))
    if options["tls-certificate"]:
        factory = TLSMemoryBIOFactory(tls_options(options), False, factory)
    Listening(options["listen"], options.endpoint, factory).setServiceParent(service)
    return service


def tls_options(options: Options) -> Any:
    """
    Server TLS that requires a client certificate from the fronts' CA.

    @raise SystemExit: with one line when a file is missing or unreadable.
    """
    try:
        with open(options["tls-certificate"], "rb") as f:
            chain = x509.load_pem_x509_certificates(f.read())
        with open(options["tls-key"], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        with open(options["tls-client-ca"], "rb") as f:
            authorities = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError, TypeError) as e:
        exit_with("scep-worker", f"TLS files: {e}")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        exit_with("scep-worker", f"{options['tls-key']}: not an RSA or EC key")
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key), certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain[1:]], verify=True,
        caCerts=[crypto.X509.from_cryptography(c) for c in authorities], requireCertificate=True,
    )
