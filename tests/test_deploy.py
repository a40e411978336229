"""
The deployments: the front with spawned workers (a dead worker respawned,
its request answered by another), the privilege-separated pair over a unix
socket, and the command lines of both plugins.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from twisted.trial.unittest import TestCase

from scep import clientmessage
from scep.client import Client, make_csr, self_signed
from scep.message import MessageType, PKIStatus
from tests import certs
from tests.server import TWISTD, Server, copy_config, environment, free_port, terminate


def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def enroll(url: str, cn: str) -> PKIStatus:
    k = key()
    return Client(url).enroll(k, make_csr(k, cn, challenge="SecretChallenge")).status


class DeployTests(TestCase):
    def test_worker_respawned(self) -> None:
        """A killed worker is respawned; enrollments keep working meanwhile."""
        server = Server(self.mktemp(), workers=2)
        self.addCleanup(server.stop)
        server.start()
        assert server.process is not None
        workers = children(server.process.pid)
        self.assertEqual(len(workers), 2)
        os.kill(workers[0], signal.SIGKILL)
        self.assertEqual(enroll(server.url + "/scep", "during-respawn"), PKIStatus.SUCCESS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = children(server.process.pid)
            if len(now) == 2 and workers[0] not in now and "ready" in server.logged().split("respawning")[-1]:
                break
            time.sleep(0.1)
        self.assertEqual(len(children(server.process.pid)), 2)
        self.assertIn("respawning", server.logged())
        for index in range(4):
            self.assertEqual(enroll(server.url + "/scep", f"after-respawn-{index}"), PKIStatus.SUCCESS)

    def test_same_transaction_in_parallel(self) -> None:
        """One PKCSReq sent 12 times at once to two workers: one certificate, the same for all."""
        server = Server(self.mktemp(), workers=2)
        self.addCleanup(server.stop)
        server.start()
        k = key()
        client = Client(server.url + "/scep")
        client.get_ca()
        csr = make_csr(k, "racing", challenge="SecretChallenge")
        signer = self_signed(k, csr.subject)
        data = clientmessage.build_pki_message(
            message_type=MessageType.PKCSReq, message_data=csr.public_bytes(Encoding.DER),
            recipient_certificate=client.ra, signer_certificate=signer, signer_key=k, transaction_id="RACE-1")
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            replies = [clientmessage.parse_cert_rep(r, recipient_key=k, recipient_certificate=signer)
                       for r in pool.map(client.send, [data] * 12)]
        self.assertEqual({r.status for r in replies}, {PKIStatus.SUCCESS})
        self.assertEqual(len({r.certificates[0].serial_number for r in replies}), 1)
        rows = json.loads(server.scepadm("--json", "certificate", "list").stdout)
        self.assertEqual(len([r for r in rows if "racing" in r["subject"]]), 1)

    def test_privilege_separated(self) -> None:
        """twistd scep-worker on a unix socket (mode 0660), twistd scep --backend unix:..."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = copy_config(base)
        # A unix socket path has at most 107 bytes: trial's temp directory
        # under a deep checkout can be longer, so the socket lives in /tmp.
        socket_dir = tempfile.mkdtemp(prefix="scep-")
        self.addCleanup(shutil.rmtree, socket_dir, True)
        socket_path = os.path.join(socket_dir, "worker.sock")
        worker = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", f"--logfile={base}/worker.log", "scep-worker",
             "--listen", f"unix:{socket_path}:mode=660", "--config", config, "--state", os.path.join(base, "var")],
            env=environment(), cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(terminate, worker)
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            if worker.poll() is not None:
                with open(os.path.join(base, "worker.log")) as f:
                    self.fail(f"the worker exited:\n{f.read()}")
            time.sleep(0.1)
        self.assertEqual(stat.S_IMODE(os.stat(socket_path).st_mode), 0o660)
        front = Server(os.path.join(base, "front"), config=config, state=os.path.join(base, "front-var"),
                       extra=["--backend", f"unix:{socket_path}"])
        self.addCleanup(front.stop)
        front.start()
        self.assertEqual(enroll(front.url + "/scep", "separated"), PKIStatus.SUCCESS)
        self.assertFalse(os.path.exists(os.path.join(base, "front-var", "keys")),
                         "the front made no keys of its own")

    def test_tls_backend(self) -> None:
        """Across hosts: the worker speaks TLS and wants a front certificate from its CA."""
        base = os.path.abspath(self.mktemp())
        tls = os.path.join(base, "tls")
        os.makedirs(os.path.join(tls, "trust"))
        ca_key, rogue_key = certs.make_key(), certs.make_key()
        ca = certs.make_ca(ca_key, "backend CA")
        files = {}
        for label, sans in (("worker", [x509.DNSName("localhost")]), ("front", None)):
            k = certs.make_key()
            files[label] = self.pem_pair(tls, label, k, certs.make_certificate(k, label, ca, ca_key, sans=sans))
        files["rogue"] = self.pem_pair(tls, "rogue", rogue_key, certs.make_ca(rogue_key, "rogue"))
        with open(os.path.join(tls, "trust", "ca.pem"), "wb") as f:
            f.write(ca.public_bytes(Encoding.PEM))
        port = free_port()
        config = copy_config(base)
        worker = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", f"--logfile={base}/worker.log", "scep-worker",
             "--listen", f"tcp:{port}:interface=127.0.0.1", "--config", config, "--state", os.path.join(base, "var"),
             "--tls-certificate", files["worker"][0], "--tls-key", files["worker"][1],
             "--tls-client-ca", os.path.join(tls, "trust", "ca.pem")],
            env=environment(), cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(terminate, worker)
        front = Server(os.path.join(base, "front"), config=config, state=os.path.join(base, "front-var"),
                       extra=["--backend", f"tls:localhost:{port}:trustRoots={tls}/trust:"
                              f"certificate={files['front'][0]}:privateKey={files['front'][1]}"])
        self.addCleanup(front.stop)
        front.start()
        self.assertEqual(enroll(front.url + "/scep", "over-tls"), PKIStatus.SUCCESS)
        self.assertTrue(self.amp_answers(port, files["front"]), "the fronts' certificate is let in")
        for label in ("rogue", None):
            self.assertFalse(self.amp_answers(port, files.get(label)), f"client certificate {label}")

    def pem_pair(self, directory: str, label: str, k: rsa.RSAPrivateKey, cert: x509.Certificate) -> tuple[str, str]:
        paths = (os.path.join(directory, f"{label}.pem"), os.path.join(directory, f"{label}.key"))
        with open(paths[0], "wb") as f:
            f.write(cert.public_bytes(Encoding.PEM))
        with open(paths[1], "wb") as f:
            f.write(k.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return paths

    def amp_answers(self, port: int, pair: tuple[str, str] | None) -> bool:
        """Does the worker answer an AMP Ping over TLS with this client certificate?"""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if pair is not None:
            context.load_cert_chain(*pair)
        box = b"\x00\x04_ask\x00\x011\x00\x08_command\x00\x04Ping\x00\x00"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(box)
                    return b"pid" in tls.recv(4096)
        except (ssl.SSLError, ConnectionError, TimeoutError):
            return False

    def test_bad_options(self) -> None:
        """Both plugins refuse a bad option or a missing value with one line and a non-zero exit."""
        for arguments in (["scep", "--workers", "0"], ["scep", "--no-such-option"],
                          ["scep-worker"], ["scep-worker", "--bogus"],
                          ["scep-worker", "--listen", "tcp:1", "--tls-key", "x.key"],
                          ["scep", "--listen", "bogus:1"], ["scep", "--listen", "tcp:eighty"],
                          ["scep", "--backend", "bogus:1"],
                          ["scep", "--backend", "tls:localhost:1:certificate=/nonexistent/front.pem"],
                          ["scep-worker", "--listen", "unix"]):
            result = subprocess.run([*TWISTD, "-n", "--pidfile=", *arguments], env=environment(),
                                    capture_output=True, text=True, timeout=60)
            self.assertNotEqual(result.returncode, 0, arguments)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
            self.assertNotIn("Traceback", result.stderr + result.stdout)

    def test_cannot_listen(self) -> None:
        """
        A port in use, or a unix socket path longer than the kernel takes:
        one log line naming the endpoint, exit status 1, no traceback.
        """
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = copy_config(base)
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        too_long = "unix:" + os.path.join(base, "s" * 110)
        for arguments, reason in (
            (["scep", "--listen", f"tcp:{port}:interface=127.0.0.1"], "Address already in use"),
            (["scep-worker", "--listen", f"tcp:{port}:interface=127.0.0.1"], "Address already in use"),
            (["scep-worker", "--listen", too_long], "AF_UNIX path too long"),
        ):
            result = subprocess.run(
                [*TWISTD, "-n", "--pidfile=", *arguments, "--config", config, "--state", os.path.join(base, "var")],
                env=environment(), capture_output=True, text=True, timeout=120, cwd=base)
            output = result.stdout + result.stderr
            self.assertEqual(result.returncode, 1, output)
            self.assertNotIn("Traceback", output)
            lines = [line for line in output.splitlines() if "cannot listen" in line]
            self.assertEqual(len(lines), 1, output)
            self.assertIn(f"cannot listen on {arguments[-1]}: {reason}", lines[0])

    def test_worker_check(self) -> None:
        """twistd scep-worker --check opens config, store and keys, then exits 0 without listening."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = copy_config(base)
        result = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "scep-worker", "--check", "--config", config,
             "--state", os.path.join(base, "var")],
            env=environment(), capture_output=True, text=True, timeout=120, cwd=base)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"scep-worker: {config} is fine", result.stdout)
        self.assertTrue(os.path.exists(os.path.join(base, "var", "keys")))

    def test_broken_worker_config(self) -> None:
        """scep-worker with a broken realm config exits with the file and key."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = copy_config(base)
        path = os.path.join(config, "realms", "democa", "scep.yaml")
        with open(path, "a") as f:
            f.write("\nbroken:\n  renewal_period: 60\n")
        result = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "scep-worker", "--listen", f"tcp:{free_port()}:interface=127.0.0.1",
             "--config", config, "--state", os.path.join(base, "var")],
            env=environment(), capture_output=True, text=True, timeout=60, cwd=base)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{path}: broken.renewal_period", result.stderr)
