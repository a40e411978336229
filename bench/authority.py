"""
CPU per PKCSReq of the authority alone: L{Authority.pki_operation} in this
process, without HTTP, AMP or a second process competing for the CPU.

    python bench/authority.py [--requests 800] [--rounds 10] [--profile 40]

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

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from scep import clientmessage  # noqa: E402
from scep.authority.amp import open_authority  # noqa: E402
from scep.client import make_csr, self_signed  # noqa: E402
from scep.message import MessageType  # noqa: E402
from tests.server import ETC  # noqa: E402

CHALLENGE = "SecretChallenge"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="scep-bench-")
    try:
        shutil.copytree(ETC, os.path.join(directory, "etc"))
        authority = open_authority(os.path.join(directory, "etc"), os.path.join(directory, "var"))
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

        def run(batch: list[bytes]) -> None:
            for request in batch:
                answer = authority.pki_operation(realm="democa", servername="generic", endpoint="default",
                                                 message=request, params={}, client_address="127.0.0.1")
                assert answer.summary.startswith("PKCSReq SUCCESS"), answer.summary

        run(requests[:30])  # warm up: first use of the keys and statements
        share = args.requests // args.rounds
        results = []
        for index in range(args.rounds):
            batch = requests[30 + index * share : 30 + (index + 1) * share]
            started = time.process_time()
            run(batch)
            results.append((time.process_time() - started) / len(batch) * 1000)
        print(f"{share * args.rounds} PKCSReq in {args.rounds} rounds, authority CPU ms/enroll: "
              f"min {min(results):.3f} median {statistics.median(results):.3f}")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run, requests[-100:])
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
