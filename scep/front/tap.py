"""
C{twistd scep}: the untrusted HTTP front, and (without C{--backend}) the
authority workers it spawns::

    twistd -n scep [--listen ENDPOINT]... [--config DIR] [--state DIR]
                   [--workers N] [--backend ENDPOINT]

Before it listens, the front checks its own configs (C{system.yaml} and
every wrapper config) and, when it spawns its workers, runs one authority
check that opens the store and the keys and creates the embedded default
realm on the first start.  Anything wrong stops it with one line naming the
file, the key and the problem.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.logger import Logger

from scep.config import ConfigError, resolve_dirs
from scep.front.backend import RemoteBackend, WorkerPool
from scep.front.resource import SCEPResource, make_site
from scep.front.wrapper import WrapperConfigs
from scep.usage import Listening, OneLineErrors, client_endpoint, exit_with, server_endpoint

log = Logger()


class Options(OneLineErrors):
    command = "scep"
    synopsis = "[--listen ENDPOINT]... [--config DIR] [--state DIR] [--workers N] [--backend ENDPOINT]"
    optParameters = [
        ["config", "c", None, "Config directory (default: $SCEP_CONFIG_DIR or ./etc)"],
        ["state", "s", None, "State directory of the spawned workers (default: system.state or ./var)"],
        ["workers", "w", None, "Worker processes to spawn (default: system.workers or one per CPU)", int],
        ["backend", "b", None, "Use the authority at this client endpoint instead of spawning workers"],
    ]
    optFlags = [["check-config", None, "Check every config file and exit"]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """HTTP server endpoint, repeatable (default: tcp:8080)."""
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def postOptions(self) -> None:
        self["listen"] = self["listen"] or ["tcp:8080"]
        self.listeners = [(each, server_endpoint("--listen", each)) for each in self["listen"]]
        self.backend = client_endpoint("--backend", self["backend"]) if self["backend"] else None
        if self["workers"] is not None and self["workers"] < 1:
            exit_with("scep", "--workers must be at least 1")
        try:
            self["config"], self["state"], self.system = resolve_dirs(self["config"], self["state"])
            self.wrappers = WrapperConfigs(os.path.join(self["config"], "scep"))
            self.wrappers.check_all()
        except ConfigError as e:
            exit_with("scep", str(e))
        self.authority_lines: list[str] = []
        if not self["backend"] or self["check-config"]:
            self.authority_lines = _check_authority(self["config"], self["state"])
        if self["check-config"]:
            print(f"scep: {self['config']} is fine")
            raise SystemExit(0)


def worker_arguments(config: str, state: str) -> list[str]:
    return ["-m", "scep.authority.child", "--config", os.path.abspath(config), "--state", os.path.abspath(state)]


def _check_authority(config: str, state: str) -> list[str]:
    """
    Run one authority check in a child: it checks the realm configs, opens
    the store and the keys, and creates the default realm on the first
    start.  Exit with its one line on failure; else return what it logged.
    """
    result = subprocess.run(
        [sys.executable, *worker_arguments(config, state), "--check"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0:
        exit_with("scep", lines[-1].removeprefix("scep worker: ") if lines else "the authority did not start")
    return lines


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    for line in options.authority_lines:
        log.info("authority: {line}", line=line)
    service = MultiService()
    backend: Any
    if options.backend is not None:
        backend = RemoteBackend(reactor, options.backend)
    else:
        count = options["workers"] or options.system.workers or os.cpu_count() or 1
        backend = WorkerPool(reactor, count, worker_arguments(options["config"], options["state"]))
    backend.setServiceParent(service)
    if not options.system.enabled:
        log.warn("the SCEP service is disabled (system.server.service.scep.enabled: false in "
                 "{path}); every SCEP URL answers 404", path=os.path.join(options["config"], "system.yaml"))
    site = make_site(SCEPResource(options.wrappers, backend, enabled=options.system.enabled))
    for description, endpoint in options.listeners:
        Listening(description, endpoint, site).setServiceParent(service)
    return service
