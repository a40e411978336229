"""
CPU per PKCSReq of the authority alone: L{Authority.pki_operation} in this
process, without HTTP, AMP or a second process competing for the CPU.

    python bench/authority.py [--requests 800] [--rounds 10] [--profile 40]
                              [--worker] [--pause MS]

C{--worker} sends the same requests to one spawned worker through the
front's own L{WorkerPool} (AMP over the child's fds 3 and 4, no HTTP) and
reads the worker's CPU from /proc: the difference to the in-process figure
is what AMP and a process of its own cost.  C{--pause MS} idles between
requests, as a server does between clients; on a virtual machine an idle
gap alone makes the next request cost more CPU (cold caches, a slower
core), which the in-process loop never sees.

The requests (RSA-2048, AES-128, SHA-256, challenge password, each with its
own subject and transactionID) are built before the clock starts.  Each
round times its share of them with time.process_time; the minimum over the
rounds is the number to compare (a shared machine only ever adds to it).
C{--profile N} then prints the N most expensive functions of one more
round under cProfile, which inflates Python code against C.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from enroll import cpu_seconds  # noqa: E402  (bench/ is this script's directory)

from scep import clientmessage, commands  # noqa: E402
from scep.authority.amp import open_authority  # noqa: E402
from scep.client import make_csr, self_signed  # noqa: E402
from scep.front.backend import WorkerPool  # noqa: E402
from scep.front.tap import worker_arguments  # noqa: E402
from scep.message import MessageType  # noqa: E402
from tests.server import ETC  # noqa: E402

CHALLENGE = "SecretChallenge"


ARGUMENTS = {"realm": "democa", "servername": "generic", "endpoint": "default", "client_address": "127.0.0.1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--worker", action="store_true", help="to a spawned worker over AMP, as the front sends")
    parser.add_argument("--pause", type=float, default=0.0, metavar="MS", help="idle this long between requests")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="scep-bench-")
    try:
        config, state = os.path.join(directory, "etc"), os.path.join(directory, "var")
        shutil.copytree(ETC, config)
        authority = open_authority(config, state)
        ra = authority.realm("democa").current("scep")
        assert ra is not None
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        requests = []
        for index in range(args.requests + 30 + 100 * bool(args.profile)):
            csr = make_csr(key, f"bench-{index}", challenge=CHALLENGE)
            requests.append(clientmessage.build_pki_message(
                message_type=MessageType.PKCSReq, message_data=csr.public_bytes(serialization.Encoding.DER),
                recipient_certificate=ra.certificate, signer_certificate=self_signed(key, csr.subject),
                signer_key=key, transaction_id=f"BENCH-{index}"))
        share = args.requests // args.rounds
        batches = [requests[30 + index * share : 30 + (index + 1) * share] for index in range(args.rounds)]
        where = "a spawned worker" if args.worker else "in-process"
        pause = f", {args.pause:g} ms idle between requests" if args.pause else ""

        def report(results: list[float]) -> None:
            print(f"{share * args.rounds} PKCSReq in {args.rounds} rounds, {where}{pause}, "
                  f"authority CPU ms/enroll: min {min(results):.3f} median {statistics.median(results):.3f}")

        if args.worker:
            over_amp(config, state, requests[:30], batches, args.pause / 1000, report)
            return

        def run(batch: list[bytes]) -> None:
            for request in batch:
                answer = authority.pki_operation(message=request, params={}, **ARGUMENTS)
                assert answer.summary.startswith("PKCSReq SUCCESS"), answer.summary
                if args.pause:
                    time.sleep(args.pause / 1000)

        run(requests[:30])  # warm up: first use of the keys and statements
        results = []
        for batch in batches:
            started = time.process_time()
            run(batch)
            results.append((time.process_time() - started) / len(batch) * 1000)
        report(results)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run, requests[-100:])
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def over_amp(config: str, state: str, warmup: list[bytes], batches: list[list[bytes]], pause: float,
             report: Any) -> None:
    """Each batch through one spawned worker; the worker's CPU per request from /proc."""
    from twisted.internet import defer, task

    async def send(pool: WorkerPool, reactor: Any, batch: list[bytes]) -> None:
        for request in batch:
            answer = await pool.call(commands.PKIOperation, message=request, params=[],
                                     encryption_algorithm="", hash_algorithm="", **ARGUMENTS)
            assert answer["summary"].startswith("PKCSReq SUCCESS"), answer["summary"]
            if pause:
                await task.deferLater(reactor, pause, lambda: None)

    async def run(reactor: Any) -> None:
        pool = WorkerPool(reactor, 1, worker_arguments(config, state))
        pool.startService()
        try:
            pid = (await pool.call(commands.Ping))["pid"]
            await send(pool, reactor, warmup)
            results = []
            for batch in batches:
                before = cpu_seconds(pid)
                await send(pool, reactor, batch)
                results.append((cpu_seconds(pid) - before) / len(batch) * 1000)
            report(results)
        finally:
            await pool.stopService()

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


if __name__ == "__main__":
    main()
