"""
Real processes for the integration tests: C{twistd -n scep} on a free
loopback port with its own config and state directories, C{scepadm}, and
the client binaries the tests drive (Debian's C{scepclient}, C{openssl}).

With C{SCEP_REQUIRE_CLIENTS=1} (as CI sets it) a missing client binary fails
the test; otherwise the test is skipped with the reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml
from twisted.trial.unittest import SkipTest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
ETC = os.path.join(TOP, "etc")

STARTUP_LIMIT = 60.0
"""Seconds a server may take to answer its first GetCACaps (key generation)."""


def need_binary(name: str) -> str:
    """The path of a client binary; skip (or fail in CI) without it."""
    # certmonger lives in /usr/sbin, which a non-root PATH may leave out.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install scep openssl certmonger)"
        if os.environ.get("SCEP_REQUIRE_CLIENTS") == "1":
            raise AssertionError(reason + "; SCEP_REQUIRE_CLIENTS=1 makes this a failure")
        raise SkipTest(reason)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = TOP + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SCEP_CONFIG_DIR", None)
    return env


TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
SCEPADM = [sys.executable, "-m", "scep.cli"]


def copy_config(directory: str) -> str:
    """A private copy of the shipped C{etc/} in C{directory}, to change at will."""
    config = os.path.join(directory, "etc")
    shutil.copytree(ETC, config)
    return config


def merge_yaml(path: str, sections: dict[str, Any]) -> None:
    """Add (or replace) top-level sections of a YAML config file."""
    with open(path, encoding="utf-8") as f:
        tree = yaml.safe_load(f) or {}
    tree.update(sections)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(tree, f)


def add_server_configs(config: str, sections: dict[str, Any], realm: str = "democa") -> None:
    """More servername sections in a realm's C{scep.yaml}."""
    merge_yaml(os.path.join(config, "realms", realm, "scep.yaml"), sections)


def terminate(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, up to 15 s to exit, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """
    One C{twistd -n scep} process with its files under C{directory}; the
    caller stops it (C{addCleanup(server.stop)} or in C{tearDownClass}).
    """

    def __init__(self, directory: str, config: str | None = None, state: str | None = None,
                 workers: int = 1, extra: list[str] | None = None) -> None:
        self.directory = directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        self.config = config or copy_config(directory)
        self.state = state or os.path.join(directory, "var")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(directory, "twistd.log")
        self.arguments = [
            *TWISTD, "-n", "--pidfile=", f"--logfile={self.log}", "scep",
            "--listen", f"tcp:{self.port}:interface=127.0.0.1",
            "--config", self.config, "--state", self.state, "--workers", str(workers), *(extra or []),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, expect: int = 200, env: dict[str, str] | None = None) -> Server:
        """Start, and wait until GetCACaps answers with C{expect}."""
        self.process = subprocess.Popen(self.arguments, env={**environment(), **(env or {})},
                                        cwd=os.path.dirname(self.state),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_LIMIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode("utf-8", "replace") if self.process.stdout else ""
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{output}\n{self.logged()}")
            try:
                status, _, _ = self.get("?operation=GetCACaps", timeout=2)
                if status == expect:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not answer within {STARTUP_LIMIT}s:\n{self.logged()}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def remove(self) -> None:
        """Stop, and remove the server's files."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def logged(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def request(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; the status, headers and body, also for 4xx/5xx."""
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def get(self, path: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        return self.request("/scep" + path if path.startswith("?") else path, timeout=timeout)

    def post(self, message: bytes, path: str = "/scep") -> tuple[int, dict[str, str], bytes]:
        return self.request(path + "?operation=PKIOperation", data=message,
                            headers={"Content-Type": "application/x-pki-message"})

    def scepadm(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*SCEPADM, "--config", self.config, "--state", self.state, *arguments],
                                env=environment(), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"scepadm {' '.join(arguments)} exited {result.returncode}: {result.stderr}")
        return result


_shared: dict[str, Server] = {}


def shared_server(name: str, prepare: Callable[[Server], None] | None = None, **options: Any) -> Server:
    """
    A server started on first use and shared by the tests that ask for the
    same C{name}; stopped (and its files removed) when the test run ends.
    C{prepare} changes its config and state before it starts.
    """
    server = _shared.get(name)
    if server is None or server.process is None or server.process.poll() is not None:
        server = Server(tempfile.mkdtemp(prefix=f"scep-{name}-"), **options)
        atexit.register(server.remove)
        if prepare is not None:
            prepare(server)
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        _shared[name] = server
    return server


def run(arguments: list[str], cwd: str | None = None, timeout: float = 120,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a client binary to completion, capturing its output as text."""
    return subprocess.run(arguments, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
