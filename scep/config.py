"""
What both sides read from the config directory: C{system.yaml}, and the
error every config reader raises.

C{system.yaml}::

    system:
      server:
        service:
          scep:
            enabled: true       # false: every SCEP URL answers 404
      state: /var/lib/scep      # default: ./var (--state wins)
      database: sqlite:///var/lib/scep/scep.db   # default: <state>/scep.db
      workers: 2                # default: one per CPU
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml


class ConfigError(Exception):
    """A config file is wrong: which file, which key, and what is wrong."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        super().__init__(path, key, problem)
        self.path = path
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return f"{where}: {self.problem}"


def load_yaml(path: str) -> Any:
    """
    Read one YAML file; a missing file is C{None}.

    @raise ConfigError: when the file cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, None, str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(path, None, f"not valid YAML{where}: {getattr(e, 'problem', e)}") from None


def dig(tree: Any, path: str, keys: str) -> Any:
    """
    The value at dotted C{keys} in a mapping tree, or C{None}.

    @raise ConfigError: when a level on the way is not a mapping.
    """
    node = tree
    walked: list[str] = []
    for key in keys.split("."):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise ConfigError(path, ".".join(walked) or "(top)", "must be a mapping")
        node = node.get(key)
        walked.append(key)
    return node


@dataclass(frozen=True)
class SystemConfig:
    """The settings of C{system.yaml} that the processes use at start."""

    enabled: bool
    database: str | None
    workers: int | None
    state: str | None = None


def load_system(config_dir: str) -> SystemConfig:
    """
    Read C{<config_dir>/system.yaml}; a missing file means all defaults.

    @raise ConfigError: for a wrong value.
    """
    path = os.path.join(config_dir, "system.yaml")
    tree = load_yaml(path)
    enabled = dig(tree, path, "system.server.service.scep.enabled")
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise ConfigError(path, "system.server.service.scep.enabled", "must be true or false")
    database = dig(tree, path, "system.database")
    if database is not None and not isinstance(database, str):
        raise ConfigError(path, "system.database", "must be a path or a database URL")
    workers = dig(tree, path, "system.workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ConfigError(path, "system.workers", "must be a positive integer")
    state = dig(tree, path, "system.state")
    if state is not None and (not isinstance(state, str) or not state):
        raise ConfigError(path, "system.state", "must be a directory path")
    return SystemConfig(enabled=enabled, database=database, workers=workers, state=state)


def resolve_dirs(config: str | None, state: str | None) -> tuple[str, str, SystemConfig]:
    """
    The config directory (given, else C{$SCEP_CONFIG_DIR}, else C{./etc}),
    the state directory (given, else C{system.state}, else C{./var}) and the
    system config, as every command line reads them.

    @raise ConfigError: for a missing config directory or a wrong system.yaml.
    """
    config = config or os.environ.get("SCEP_CONFIG_DIR") or "./etc"
    if not os.path.isdir(config):
        raise ConfigError(config, None, "the config directory does not exist "
                          "(give --config DIR or set SCEP_CONFIG_DIR)")
    system = load_system(config)
    return config, state or system.state or "./var", system


def database_url(system: SystemConfig, state_dir: str) -> str:
    """Where the store is: C{system.database}, else C{<state>/scep.db}."""
    return system.database or os.path.join(state_dir, "scep.db")
