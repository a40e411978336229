"""Command-line options shared by the twistd plugins and scepadm."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage

log = Logger()


def exit_with(command: str, text: str, status: int = 1) -> NoReturn:
    """Stop a command line with one line on stderr, C{command: text}, and C{status}."""
    print(f"{command}: {text}", file=sys.stderr)
    raise SystemExit(status)


class OneLineErrors(usage.Options):
    """Options whose usage errors are one line on stderr and exit status 2."""

    command = "scep"

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            exit_with(self.command, str(e), 2)


def server_endpoint(option: str, description: str) -> IStreamServerEndpoint:
    """
    Parse a Twisted server endpoint description given to C{option}.

    @raise usage.UsageError: one line naming the option, for an unknown
        endpoint type or a malformed argument.
    """
    from twisted.internet import reactor

    try:
        return serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(f"{option} {description}: {e}") from None


def client_endpoint(option: str, description: str) -> IStreamClientEndpoint:
    """
    Parse a Twisted client endpoint description given to C{option}.

    A C{tls:} endpoint reads its certificate files now, so a missing or
    unreadable file is a usage error too, not a traceback at start.

    @raise usage.UsageError: one line naming the option.
    """
    from twisted.internet import reactor

    try:
        return clientFromString(reactor, description)
    except Exception as e:  # the parsers raise whatever their arguments provoke
        raise usage.UsageError(f"{option} {description}: {e}") from None


class Listening(StreamServerEndpointService):
    """
    Listen on a parsed endpoint at start (before twistd drops privileges);
    a port in use or an unusable socket path is one log line and exit
    status 1 instead of a traceback.
    """

    def __init__(self, description: str, endpoint: IStreamServerEndpoint, factory: IProtocolFactory) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or e.socketError
            log.critical("cannot listen on {endpoint}: {reason}", endpoint=self.description, reason=reason)
            raise SystemExit(1) from None
