"""
Enrollment throughput and server CPU per enrollment: scep against a peer
(micromdm's scepserver from Debian's C{scep} package) in the same run, on
this machine, with the same pre-built requests.

    python bench/enroll.py [--requests 400] [--concurrency 8] [--workers 2]

Every request is a PKCSReq (RSA-2048, AES-128, SHA-256, challenge
password) with its own subject and transactionID, built before the clock
starts so that the client's own RSA work is not measured.  Server CPU is
read from /proc for the server process and all its children.  The client
runs on the same two cores, so throughput is a floor; CPU per enrollment is
the number to compare.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from scep import clientmessage, message  # noqa: E402
from scep.client import Client, make_csr, self_signed  # noqa: E402
from scep.message import MessageType, PKIStatus  # noqa: E402
from tests.server import ETC, SCEPADM, TWISTD, environment, free_port  # noqa: E402

CHALLENGE = "SecretChallenge"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants, living or reaped."""
    own, children = cpu_split(pid)
    return own + children


def cpu_split(pid: int) -> tuple[float, float]:
    """
    User + system CPU of a process itself (for scep: the front) and of its
    descendants, living or reaped (the authority workers).
    """
    own = descendants = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime (fields 14-17; index 11-14 after the name)
        own = sum(int(x) for x in fields[11:13]) / TICKS
        descendants = sum(int(x) for x in fields[13:15]) / TICKS
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return own, descendants
    return own, descendants + sum(cpu_seconds(child) for child in children)


def wait_http(url: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "?operation=GetCACaps", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_scep(directory: str, workers: int, ca_key_type: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = os.path.join(directory, "etc")
    shutil.copytree(ETC, config)
    if ca_key_type:
        scepadm = [*SCEPADM, "--config", config, "--state", os.path.join(directory, "var")]
        subprocess.run([*scepadm, "init"], env=environment(), check=True, capture_output=True)
        subprocess.run([*scepadm, "token", "add", "--type", "ca-signer", "--key-type", ca_key_type],
                       env=environment(), check=True, capture_output=True)
    process = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", f"--logfile={directory}/twistd.log", "scep",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--config", config,
         "--state", os.path.join(directory, "var"), "--workers", str(workers)],
        env=environment(), cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/scep"
    wait_http(url)
    return process, url


def start_micromdm(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    scepserver = shutil.which("scepserver")
    if scepserver is None:
        raise SystemExit("scepserver not found: apt-get install scep")
    depot = os.path.join(directory, "depot")
    subprocess.run([scepserver, "ca", "-init", "-depot", depot, "-keySize", "2048"], check=True,
                   capture_output=True)
    port = free_port()
    process = subprocess.Popen([scepserver, "-depot", depot, "-port", str(port), "-challenge", CHALLENGE,
                                "-allowrenew", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/scep"
    wait_http(url)
    return process, url


def build_requests(url: str, count: int, key: rsa.RSAPrivateKey, tag: str) -> tuple[list[bytes], Client]:
    client = Client(url)
    client.get_ca()
    requests = []
    for index in range(count):
        csr = make_csr(key, f"bench-{tag}-{index}", challenge=CHALLENGE)
        signer = self_signed(key, csr.subject)
        requests.append(clientmessage.build_pki_message(
            message_type=MessageType.PKCSReq, message_data=csr.public_bytes(serialization.Encoding.DER),
            recipient_certificate=client.ra, signer_certificate=signer, signer_key=key,
            transaction_id=f"BENCH-{tag}-{index}-{os.getpid()}", cipher="aes128", digest="sha256"))
    return requests, client


def run_load(client: Client, requests: list[bytes], concurrency: int) -> tuple[float, list[bytes]]:
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(client.send, requests))
    return time.monotonic() - started, replies


def measure(name: str, process: subprocess.Popen[bytes], url: str, key: rsa.RSAPrivateKey,
            count: int, concurrency: int) -> dict[str, float]:
    warmup, client = build_requests(url, 20, key, name + "-warm")
    run_load(client, warmup, concurrency)
    requests, client = build_requests(url, count, key, name)
    own_before, children_before = cpu_split(process.pid)
    elapsed, replies = run_load(client, requests, concurrency)
    own_after, children_after = cpu_split(process.pid)
    own, children = own_after - own_before, children_after - children_before
    cpu = own + children
    ok = 0
    for reply in replies:
        parsed = message.parse_pki_message(reply)
        ok += parsed.pki_status == PKIStatus.SUCCESS
    return {"enrollments": ok, "seconds": elapsed, "per_second": count / elapsed,
            "cpu_ms_per_enrollment": cpu / count * 1000,
            "own_ms": own / count * 1000, "children_ms": children / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ca-key-type", choices=["ec256", "ec384", "rsa3072"],
                        help="make the issuing CA this kind of key (default: the demo realm's RSA-2048)")
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directory = tempfile.mkdtemp(prefix="scep-bench-")
    results = {}
    try:
        for name, start in (("scep", lambda: start_scep(directory, args.workers, args.ca_key_type)),
                            ("micromdm", lambda: start_micromdm(directory))):
            process, url = start()
            try:
                results[name] = measure(name, process, url, key, args.requests, args.concurrency)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.requests} PKCSReq, RSA-2048, AES-128/SHA-256, concurrency {args.concurrency}, "
          f"scep workers {args.workers}, {os.cpu_count()} CPUs")
    print(f"{'server':<10} {'ok':>5} {'enroll/s':>9} {'server CPU ms/enroll':>21}  (process itself + children)")
    for name, r in results.items():
        print(f"{name:<10} {r['enrollments']:>5.0f} {r['per_second']:>9.1f} {r['cpu_ms_per_enrollment']:>21.2f}"
              f"  ({r['own_ms']:.2f} + {r['children_ms']:.2f})")


if __name__ == "__main__":
    main()
