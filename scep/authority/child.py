"""
The entry point of an authority worker spawned by C{twistd scep}.

It speaks AMP on file descriptors 3 (in) and 4 (out), logs plain lines to
stderr (the front relays them into its own log), and exits when the front
closes the AMP stream.  Run as C{python -m scep.authority.child --config DIR
--state DIR}.  With C{SCEP_WORKER_PROFILE=DIR} in its environment it runs
under cProfile and writes C{DIR/worker-<pid>.prof} when it stops.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO

    from scep.authority.amp import AuthorityProtocol
    from scep.authority.tap import Options, open_or_exit, start_logging

    options = Options()
    options.parseOptions(argv)  # a usage error exits with one line and status 2
    start_logging(sys.stderr)
    # The front stops its workers with SIGTERM; a Ctrl-C in the terminal
    # reaches the whole process group, and the front decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    authority = open_or_exit(options, "scep worker")
    if options["check"]:
        return 0

    class Worker(AuthorityProtocol):
        def connectionLost(self, reason):  # type: ignore[no-untyped-def]
            super().connectionLost(reason)
            if reactor.running:
                reactor.stop()

    # The typing stubs describe Windows' StandardIO, which has no fd arguments.
    StandardIO(Worker(authority), stdin=3, stdout=4, reactor=reactor)  # type: ignore[call-arg]
    profile_dir = os.environ.get("SCEP_WORKER_PROFILE")
    if profile_dir:
        # For bench/: the worker's own profile, written when it stops.
        import cProfile

        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor},
                        os.path.join(profile_dir, f"worker-{os.getpid()}.prof"))
    else:
        reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
