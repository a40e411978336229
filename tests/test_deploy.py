"""
The deployments: the front with spawned workers (a dead worker respawned,
its request answered by another), the privilege-separated pair over a unix
socket, and the command lines of both plugins.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.trial.unittest import TestCase

from scep.client import Client, make_csr
from scep.message import PKIStatus
from tests.server import TWISTD, Server, copy_config, environment, free_port


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

    def test_privilege_separated(self) -> None:
        """twistd scep-worker on a unix socket (mode 0660), twistd scep --backend unix:..."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = copy_config(base)
        socket_path = os.path.join(base, "worker.sock")
        worker = subprocess.Popen(
            [*TWISTD, "-n", "--pidfile=", f"--logfile={base}/worker.log", "scep-worker",
             "--listen", f"unix:{socket_path}:mode=660", "--config", config, "--state", os.path.join(base, "var")],
            env=environment(), cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (worker.terminate(), worker.wait(15)))
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            self.assertIsNone(worker.poll(), "the worker exited")
            time.sleep(0.1)
        self.assertEqual(stat.S_IMODE(os.stat(socket_path).st_mode), 0o660)
        front = Server(os.path.join(base, "front"), config=config, state=os.path.join(base, "front-var"),
                       extra=["--backend", f"unix:{socket_path}"])
        self.addCleanup(front.stop)
        front.start()
        self.assertEqual(enroll(front.url + "/scep", "separated"), PKIStatus.SUCCESS)
        self.assertFalse(os.path.exists(os.path.join(base, "front-var", "keys")),
                         "the front made no keys of its own")

    def test_bad_options(self) -> None:
        """Both plugins refuse a bad option or a missing value with one line and a non-zero exit."""
        for arguments in (["scep", "--workers", "0"], ["scep", "--no-such-option"],
                          ["scep-worker"], ["scep-worker", "--bogus"]):
            result = subprocess.run([*TWISTD, "-n", "--pidfile=", *arguments], env=environment(),
                                    capture_output=True, text=True, timeout=60)
            self.assertNotEqual(result.returncode, 0, arguments)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
            self.assertNotIn("Traceback", result.stderr + result.stdout)

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
