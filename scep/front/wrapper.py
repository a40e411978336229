"""
The wrapper config of an endpoint: C{etc/scep/<endpoint>.conf}.

Plain ini, as OpenXPKI's SCEP wrapper reads it: C{[global]} names the realm,
the servername, the client address range and the reply algorithms;
C{[logger] log_level} and C{[PKIOperation] param} may also stand in
C{[global]}.  A request for C{/scep/<endpoint>} uses C{<endpoint>.conf},
or C{default.conf} when there is none.  A file whose mtime changed is read
again on the next request; a broken file keeps the last good version
serving and says so in the log.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from twisted.logger import Logger

from scep.config import ConfigError

log = Logger()

ENCRYPTION_ALGORITHMS = {
    "des": "des",
    "3des": "3des",
    "des3": "3des",
    "aes128": "aes128",
    "aes192": "aes192",
    "aes256": "aes256",
    "blowfish": "blowfish",
    "cast": "cast5",
}
"""The reply ciphers a wrapper config may name, and the codec's name of each."""

HASH_ALGORITHMS = {
    "md5": "md5",
    "sha1": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL")

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""An endpoint name as it may appear in a URL and a file name."""

ALL_IPV4 = ipaddress.ip_network("0.0.0.0/0")


@dataclass(frozen=True)
class WrapperConfig:
    """One endpoint's wrapper config, as the front uses it per request."""

    endpoint: str
    path: str
    realm: str
    servername: str
    iprange: ipaddress.IPv4Network | ipaddress.IPv6Network
    params: tuple[str, ...]
    encryption_algorithm: str
    hash_algorithm: str
    log_level: str

    def allows(self, address: str) -> bool:
        """Is a client at C{address} inside C{iprange}?"""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if self.iprange == ALL_IPV4:
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.version == self.iprange.version and ip in self.iprange

    @property
    def debug(self) -> bool:
        """May the log show user input (subject, transactionID, params)?"""
        return self.log_level in ("DEBUG", "TRACE")

    @property
    def trace(self) -> bool:
        """Does the log dump each request and response in full?"""
        return self.log_level == "TRACE"


def _value(parser: configparser.ConfigParser, key: str, *sections: str) -> str | None:
    for section in sections:
        if parser.has_option(section, key):
            return parser.get(section, key).strip()
    return None


def load_wrapper(path: str, endpoint: str) -> WrapperConfig:
    """
    Read and check one wrapper config file.

    @raise ConfigError: naming the file, the key and what is wrong.
    """
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise ConfigError(path, None, str(e).splitlines()[0]) from None

    realm = _value(parser, "realm", "global")
    if not realm:
        raise ConfigError(path, "global.realm", "is missing")
    if not ENDPOINT_NAME.match(realm):
        raise ConfigError(path, "global.realm", f"{realm!r} is not a realm name")

    servername = _value(parser, "servername", "global") or endpoint

    text = _value(parser, "iprange", "global") or "0.0.0.0/0"
    try:
        iprange = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(path, "global.iprange", f"{text!r} is not one IP network") from None

    params = tuple(
        name.strip()
        for name in (_value(parser, "param", "PKIOperation", "global") or "").split(",")
        if name.strip() and name.strip() not in ("operation", "message")
    )

    encryption = (_value(parser, "encryption_algorithm", "global") or "").lower()
    if encryption and encryption not in ENCRYPTION_ALGORITHMS:
        raise ConfigError(
            path,
            "global.encryption_algorithm",
            f"{encryption!r} is not one of {' | '.join(ENCRYPTION_ALGORITHMS)}",
        )
    digest = (_value(parser, "hash_algorithm", "global") or "").lower().replace("-", "")
    if digest and digest not in HASH_ALGORITHMS:
        raise ConfigError(
            path, "global.hash_algorithm", f"{digest!r} is not one of {' | '.join(HASH_ALGORITHMS)}"
        )

    level = (_value(parser, "log_level", "logger", "global") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(path, "logger.log_level", f"{level!r} is not one of {', '.join(LOG_LEVELS)}")

    return WrapperConfig(
        endpoint=endpoint,
        path=path,
        realm=realm,
        servername=servername,
        iprange=iprange,
        params=params,
        encryption_algorithm=ENCRYPTION_ALGORITHMS.get(encryption, ""),
        hash_algorithm=HASH_ALGORITHMS.get(digest, ""),
        log_level="WARN" if level == "WARNING" else level,
    )


class WrapperConfigs:
    """
    The wrapper configs of one config directory, read on first use and again
    when a file's mtime changes.
    """

    def __init__(self, directory: str, stat: Callable[[str], os.stat_result] = os.stat) -> None:
        self.directory = directory
        self._stat = stat
        self._cache: dict[str, tuple[float, WrapperConfig]] = {}

    def check_all(self) -> list[WrapperConfig]:
        """
        Read every C{*.conf} now, as the server does at start.

        @raise ConfigError: for the first broken file; also when there is no
            C{default.conf}.
        """
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as e:
            raise ConfigError(self.directory, None, e.strerror or str(e)) from None
        if "default.conf" not in names:
            raise ConfigError(os.path.join(self.directory, "default.conf"), None, "is missing")
        configs = []
        for name in names:
            if name.endswith(".conf"):
                endpoint = name[: -len(".conf")]
                path = os.path.join(self.directory, name)
                if not ENDPOINT_NAME.match(endpoint):
                    raise ConfigError(path, None, "the file name is not a valid endpoint name")
                configs.append(load_wrapper(path, endpoint))
        return configs

    def get(self, endpoint: str) -> WrapperConfig:
        """
        The config for a request to C{/scep/<endpoint>}.

        @raise ConfigError: when neither the endpoint's file nor
            C{default.conf} can be read.
        """
        if not ENDPOINT_NAME.match(endpoint):
            endpoint = "default"
        config = self._load(endpoint)
        if config is None and endpoint != "default":
            config = self._load("default")
        if config is None:
            raise ConfigError(os.path.join(self.directory, "default.conf"), None, "is missing")
        return config

    def _load(self, name: str) -> WrapperConfig | None:
        path = os.path.join(self.directory, name + ".conf")
        try:
            mtime = self._stat(path).st_mtime
        except OSError:
            self._cache.pop(name, None)
            return None
        cached = self._cache.get(name)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            config = load_wrapper(path, name)
        except ConfigError as e:
            if cached is None:
                raise
            log.error("{error}; still serving the last good version", error=str(e))
            self._cache[name] = (mtime, cached[1])
            return cached[1]
        if cached is not None:
            log.info("reloaded {path}", path=path)
        self._cache[name] = (mtime, config)
        return config
