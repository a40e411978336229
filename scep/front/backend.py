"""
The front's side of the AMP wire: a pool of authority connections.

L{WorkerPool} spawns authority workers as child processes (AMP on their file
descriptors 3 and 4, so that a stray print cannot corrupt the stream),
respawns one that dies, and spreads calls over the least busy.
L{RemoteBackend} keeps connections to a worker listening elsewhere
(C{--backend unix:/run/scep/worker.sock}).  Both offer C{call(command,
**arguments)}: every call has a timeout, and a call whose worker vanished
is sent once more to another one (PKIOperation is idempotent by realm,
transactionID and public key), so a client sees an answer or a 503, never a
hang.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from scep.commands import Ping, Unavailable

log = Logger()

CALL_TIMEOUT = 30.0
"""Seconds an authority worker has to answer one command."""

WAIT_FOR_WORKER = 5.0
"""Seconds a request waits for a worker to be ready (one respawning) before a 503."""

WORKER_FDS = {0: "w", 1: "r", 2: "r", 3: "w", 4: "r"}
"""The child reads AMP on fd 3 and writes it on fd 4; 1 and 2 are its log."""


class _Connection:
    """One AMP connection to a worker, with its count of calls in flight."""

    def __init__(self, protocol: amp.AMP, name: str) -> None:
        self.protocol = protocol
        self.name = name
        self.busy = 0


class _Balancer:
    """Calls over a changing set of connections, least busy first."""

    def __init__(self, reactor: Any, timeout: float = CALL_TIMEOUT) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.ready: list[_Connection] = []
        self._waiting: list[defer.Deferred[None]] = []

    def add(self, connection: _Connection) -> None:
        self.ready.append(connection)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def remove(self, connection: _Connection) -> None:
        if connection in self.ready:
            self.ready.remove(connection)

    async def _pick(self) -> _Connection:
        if not self.ready:
            d: defer.Deferred[None] = defer.Deferred()
            self._waiting.append(d)
            d.addTimeout(WAIT_FOR_WORKER, self.reactor)
            try:
                await d
            except defer.TimeoutError:
                raise Unavailable("no authority worker is available") from None
            finally:
                if d in self._waiting:
                    self._waiting.remove(d)
        return min(self.ready, key=lambda c: c.busy)

    async def call(self, command: type[amp.Command], **arguments: Any) -> dict[str, Any]:
        """
        Send C{command} to the least busy worker.

        @raise Unavailable: when no worker answers in time.
        """
        for attempt in (1, 2):
            connection = await self._pick()
            connection.busy += 1
            d = connection.protocol.callRemote(command, **arguments)
            d.addTimeout(self.timeout, self.reactor)
            try:
                return await d
            except defer.TimeoutError:
                log.error("worker {name} did not answer {command} in {timeout}s",
                          name=connection.name, command=command.__name__, timeout=self.timeout)
                raise Unavailable("the authority did not answer in time") from None
            except (error.ConnectionLost, error.ConnectionDone, amp.ProtocolSwitched):
                self.remove(connection)
                if attempt == 2:
                    raise Unavailable("the authority worker went away") from None
                log.warn("worker {name} went away during {command}; sending it to another",
                         name=connection.name, command=command.__name__)
            finally:
                connection.busy -= 1
        raise AssertionError("unreachable")


class _WorkerProtocol(ProcessProtocol):
    """The parent's end of one child worker: AMP on fds 3/4, log on 1/2."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.amp = amp.AMP()
        self.connection: _Connection | None = None
        self._partial = {1: b"", 2: b""}

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid
        self.amp.makeConnection(_ChildTransport(self.transport))
        self.connection = _Connection(self.amp, f"{self.index}/pid {self.pid}")
        self.pool._started(self)

    def signal(self, name: str) -> None:
        """Send the child a signal, unless it is gone already."""
        if self.transport is None:
            return
        try:
            self.transport.signalProcess(name)
        except error.ProcessExitedAlready:
            pass

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 4:
            self.amp.dataReceived(data)
            return
        lines = (self._partial[childFD] + data).split(b"\n")
        self._partial[childFD] = lines.pop()
        for line in lines:
            if line.strip():
                log.info("worker {pid}: {line}", pid=self.pid,
                         line=line.decode("utf-8", "replace").rstrip())

    def childConnectionLost(self, childFD: int) -> None:
        if childFD == 4:
            self.amp.connectionLost(Failure(error.ConnectionDone("worker closed AMP")))

    def processEnded(self, reason: Failure) -> None:
        self.pool._ended(self, reason)


class _ChildTransport:
    """Present a child process's fd 3 as the transport of an AMP protocol."""

    def __init__(self, process: Any) -> None:
        self._process = process

    def write(self, data: bytes) -> None:
        self._process.writeToChild(3, data)

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self._process.writeToChild(3, b"".join(data))

    def loseConnection(self) -> None:
        self._process.closeChildFD(3)

    def getPeer(self) -> Any:
        return ("worker", self._process.pid)

    def getHost(self) -> Any:
        return ("front", os.getpid())


class WorkerPool(Service):
    """
    Spawn C{count} authority workers as child processes; keep them running.

    @ivar arguments: the child's command line after the interpreter.
    """

    def __init__(self, reactor: Any, count: int, arguments: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.reactor = reactor
        self.count = count
        self.arguments = arguments
        self.env = env if env is not None else dict(os.environ)
        self.balancer = _Balancer(reactor)
        self.children: dict[int, _WorkerProtocol] = {}
        self._delay = {index: 0.5 for index in range(count)}
        self._respawns: dict[int, Any] = {}
        self._stopping: list[defer.Deferred[None]] = []

    def startService(self) -> None:
        super().startService()
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self._respawns.pop(index, None)
        protocol = _WorkerProtocol(self, index)
        self.reactor.spawnProcess(
            protocol, sys.executable, [sys.executable, *self.arguments],
            env=self.env, childFDs=WORKER_FDS,
        )
        self.children[index] = protocol

    def _started(self, protocol: _WorkerProtocol) -> None:
        d = protocol.amp.callRemote(Ping)
        d.addTimeout(120, self.reactor)

        def ready(result: dict[str, Any]) -> None:
            assert protocol.connection is not None
            self._delay[protocol.index] = 0.5
            log.info("authority worker {index} ready (pid {pid})",
                     index=protocol.index, pid=result["pid"])
            self.balancer.add(protocol.connection)

        def failed(reason: Failure) -> None:
            log.error("authority worker {index} did not start: {reason}",
                      index=protocol.index, reason=reason.getErrorMessage())
            protocol.signal("KILL")

        d.addCallbacks(ready, failed)

    def _ended(self, protocol: _WorkerProtocol, reason: Failure) -> None:
        if protocol.connection is not None:
            self.balancer.remove(protocol.connection)
        if self.children.get(protocol.index) is protocol:
            del self.children[protocol.index]
        if not self.running:
            if not self.children:
                stopping, self._stopping = self._stopping, []
                for d in stopping:
                    d.callback(None)
            return
        delay = self._delay[protocol.index]
        self._delay[protocol.index] = min(delay * 2, 30.0)
        log.warn("authority worker {index} ended ({reason}); respawning in {delay}s",
                 index=protocol.index, reason=reason.getErrorMessage(), delay=delay)
        self._respawns[protocol.index] = self.reactor.callLater(delay, self._spawn, protocol.index)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        for call in self._respawns.values():
            call.cancel()
        self._respawns.clear()
        if not self.children:
            return None
        d: defer.Deferred[None] = defer.Deferred()
        self._stopping.append(d)
        for protocol in list(self.children.values()):
            protocol.signal("TERM")
        return d

    async def call(self, command: type[amp.Command], **arguments: Any) -> dict[str, Any]:
        return await self.balancer.call(command, **arguments)


class RemoteBackend(MultiService):
    """
    C{connections} AMP connections to an authority at a Twisted client
    endpoint (C{unix:/run/scep/worker.sock}, C{tls:host:port:...}), each
    reconnecting with backoff.
    """

    def __init__(self, reactor: Any, endpoint: IStreamClientEndpoint, connections: int = 2) -> None:
        super().__init__()
        self.balancer = _Balancer(reactor)
        for index in range(connections):
            factory = Factory.forProtocol(partial(_RemoteAMP, self.balancer, index))
            ClientService(
                endpoint, factory,
                retryPolicy=backoffPolicy(maxDelay=10.0),
            ).setServiceParent(self)

    async def call(self, command: type[amp.Command], **arguments: Any) -> dict[str, Any]:
        return await self.balancer.call(command, **arguments)


class _RemoteAMP(amp.AMP):
    def __init__(self, balancer: _Balancer, index: int) -> None:
        super().__init__()
        self.balancer = balancer
        self.connection = _Connection(self, f"remote/{index}")

    def connectionMade(self) -> None:
        super().connectionMade()
        log.info("connected to authority ({name})", name=self.connection.name)
        self.balancer.add(self.connection)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.balancer.remove(self.connection)
        super().connectionLost(reason)
