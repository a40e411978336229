"""
The front's worker pool without forking: a fake reactor records
C{spawnProcess}, each "child" is an in-memory AMP responder wired to the
pool's fds 3 and 4, and a L{Clock} drives timeouts and respawn delays.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, error
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from scep import commands
from scep.front.backend import WORKER_FDS, WorkerPool


class StubWorker(amp.AMP):
    """What a worker answers: its pid, and which worker took a PKIOperation."""

    def __init__(self, pid: int, starting: bool = False) -> None:
        super().__init__()
        self.pid = pid
        self.held: list[defer.Deferred[dict[str, Any]]] = []
        self.hold = False
        self.starting = starting

    @commands.Ping.responder
    def ping(self) -> Any:
        if self.starting:  # still loading its keys: no answer yet
            return defer.Deferred()
        return {"pid": self.pid}

    @commands.PKIOperation.responder
    def pki_operation(self, **arguments: Any) -> Any:
        if self.hold:
            d: defer.Deferred[dict[str, Any]] = defer.Deferred()
            self.held.append(d)
            return d
        return {"body": b"from %d" % self.pid, "summary": "ok", "detail": ""}


class ChildTransport:
    """
    The parent's view of one child process; AMP bytes go to the stub and
    back, each hop on the next turn of the clock, as over a pipe.
    """

    def __init__(self, reactor: Any, protocol: Any, pid: int) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.pid = pid
        self.signals: list[str] = []
        self.worker = StubWorker(pid, starting=reactor.starting)
        self.worker.makeConnection(_WorkerSide(self))

    def writeToChild(self, fd: int, data: bytes) -> None:
        assert fd == 3
        self.reactor.callLater(0, self.worker.dataReceived, data)

    def closeChildFD(self, fd: int) -> None:
        pass

    def signalProcess(self, name: str) -> None:
        if self.pid is None:
            raise error.ProcessExitedAlready()
        self.signals.append(name)

    def die(self) -> None:
        """The child is gone: its pipes close, then the process ends."""
        self.protocol.childConnectionLost(4)
        self.pid = None
        self.protocol.processEnded(Failure(error.ProcessTerminated(signal=9)))


class _WorkerSide:
    def __init__(self, child: ChildTransport) -> None:
        self.child = child

    def write(self, data: bytes) -> None:
        if self.child.pid is not None:
            self.child.reactor.callLater(0, self.child.protocol.childDataReceived, 4, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        pass

    def getPeer(self) -> Any:
        return None

    def getHost(self) -> Any:
        return None


class ProcessReactor(MemoryReactorClock):
    """A memory reactor that records spawnProcess and starts stub children."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[list[str], dict[int, str]]] = []
        self.children: list[ChildTransport] = []
        self.starting = False
        """Whether new children take their time before answering Ping."""

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], env: Any = None,
                     path: Any = None, uid: Any = None, gid: Any = None, usePTY: Any = False,
                     childFDs: Any = None) -> ChildTransport:
        self.spawned.append((args, childFDs))
        child = ChildTransport(self, protocol, 1000 + len(self.children))
        self.children.append(child)
        protocol.makeConnection(child)
        return child


def result_of(d: defer.Deferred[Any], reactor: Any = None) -> Any:
    """The result of a call once the clock has turned enough for its messages to pass."""
    if reactor is not None:
        reactor.advance(0)
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the call has not finished"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


class WorkerPoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = ProcessReactor()
        self.pool = WorkerPool(self.reactor, 2, ["-m", "scep.authority.child", "--config", "c", "--state", "s"],
                               env={})
        self.pool.startService()
        self.reactor.advance(0)

    def call(self) -> defer.Deferred[dict[str, Any]]:
        return defer.Deferred.fromCoroutine(self.pool.call(
            commands.PKIOperation, realm="r", servername="s", endpoint="e", message=b"m", params=[],
            client_address="127.0.0.1", encryption_algorithm="", hash_algorithm=""))

    def test_spawns_with_amp_on_fds_3_and_4(self) -> None:
        """One child per worker, the child module's command line, AMP on fds 3 and 4."""
        self.assertEqual(len(self.reactor.spawned), 2)
        args, fds = self.reactor.spawned[0]
        self.assertEqual(args[1:3], ["-m", "scep.authority.child"])
        self.assertEqual(fds, WORKER_FDS)
        self.assertEqual(len(self.pool.balancer.ready), 2, "both answered their Ping")

    def test_least_busy(self) -> None:
        """A call goes to the worker with the fewest calls in flight."""
        first = self.reactor.children[0].worker
        first.hold = True
        held = self.call()
        self.reactor.advance(0)
        self.assertEqual(result_of(self.call(), self.reactor)["body"], b"from 1001")
        first.held[0].callback({"body": b"late", "summary": "", "detail": ""})
        self.assertEqual(result_of(held, self.reactor)["body"], b"late")

    def test_resent_when_worker_dies(self) -> None:
        """A call whose worker vanished is sent to another worker."""
        self.reactor.children[0].worker.hold = True
        d = self.call()
        self.reactor.advance(0)
        self.reactor.children[0].die()
        self.assertEqual(result_of(d, self.reactor)["body"], b"from 1001")

    def test_respawn_with_backoff(self) -> None:
        """A dead worker is spawned again; the delay doubles while it dies before it is ready."""
        self.reactor.starting = True
        self.reactor.children[0].die()
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(0.5)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.reactor.children[2].die()  # before it answered its first Ping
        self.reactor.advance(0.5)
        self.assertEqual(len(self.reactor.spawned), 3, "the second delay is longer")
        self.reactor.starting = False
        self.reactor.advance(0.5)
        self.assertEqual(len(self.reactor.spawned), 4)
        self.reactor.advance(0)
        self.assertEqual(len(self.pool.balancer.ready), 2, "the new worker is in use")

    def test_unavailable_without_workers(self) -> None:
        """With every worker gone, a call fails with Unavailable within seconds: no hang."""
        self.reactor.starting = True
        for child in list(self.reactor.children):
            child.die()
        d = self.call()
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.reactor.advance(0.2)
        with self.assertRaises(commands.Unavailable):
            result_of(d, self.reactor)

    def test_timeout(self) -> None:
        """A worker that does not answer in time gives Unavailable."""
        for child in self.reactor.children:
            child.worker.hold = True
        d = self.call()
        self.reactor.advance(30)
        with self.assertRaises(commands.Unavailable):
            result_of(d, self.reactor)

    def test_stop(self) -> None:
        """Stopping sends TERM to every worker and waits until they ended; no respawn."""
        d = self.pool.stopService()
        assert d is not None
        self.assertEqual([c.signals for c in self.reactor.children], [["TERM"], ["TERM"]])
        self.assertNoResult(d)
        for child in list(self.reactor.children):
            child.die()
        self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)
