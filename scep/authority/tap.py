"""
C{twistd scep-worker}: one authority worker alone, listening on a Twisted
server endpoint, for a privilege-separated deployment::

    twistd scep-worker --listen unix:/run/scep/worker.sock:mode=660 \\
        --config /etc/scep --state /var/lib/scep

The front then runs with C{--backend unix:/run/scep/worker.sock}.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.protocol import Factory
from twisted.logger import FileLogObserver, formatEvent, globalLogBeginner

from scep.config import ConfigError
from scep.store import StoreError
from scep.usage import OneLineErrors


class Options(OneLineErrors):
    command = "scep-worker"
    synopsis = "--listen ENDPOINT [--config DIR] [--state DIR]"
    optParameters = [
        ["listen", "l", None, "Twisted server endpoint for AMP, e.g. unix:/run/scep/worker.sock:mode=660"],
        ["config", "c", "./etc", "Config directory"],
        ["state", "s", "./var", "State directory (keys, passphrase, SQLite database)"],
    ]
    optFlags = [["check", None, "Open the config, store and keys (creating the default realm), then exit"]]


def start_logging(stream: IO[str]) -> None:
    """Log plain lines (no timestamps: the front adds its own) to C{stream}."""

    def line(event: dict[str, Any]) -> str:
        text = formatEvent(event)
        if event.get("log_failure") is not None:
            text += "\n" + event["log_failure"].getTraceback()
        return text + "\n"

    globalLogBeginner.beginLoggingTo([FileLogObserver(stream, line)], redirectStandardIO=False)


def makeService(options: Options) -> IService:
    from scep.authority.amp import AuthorityProtocol, open_authority

    if not options["listen"]:
        print("scep-worker: --listen ENDPOINT is required", file=sys.stderr)
        raise SystemExit(2)
    try:
        authority = open_authority(options["config"], options["state"])
    except (ConfigError, StoreError) as e:
        print(f"scep-worker: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    service = MultiService()
    factory = Factory.forProtocol(lambda: AuthorityProtocol(authority))
    strports.service(options["listen"], factory).setServiceParent(service)
    return service
