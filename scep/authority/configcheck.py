"""
Check a whole config directory at once, as C{twistd scep --check-config}
and C{scepadm config check} do: C{system.yaml}, every wrapper config, every
realm's C{scep.yaml} and C{profiles.yaml}, and that each endpoint names a
realm and a servername that exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from scep.authority.policy import ServerConfig, load_servers
from scep.authority.profiles import Profile, load_profiles
from scep.config import ConfigError, load_system
from scep.front.wrapper import WrapperConfig, WrapperConfigs


@dataclass(frozen=True)
class CheckedConfig:
    endpoints: list[WrapperConfig]
    realms: dict[str, dict[str, ServerConfig]]


def realm_names(config_dir: str) -> list[str]:
    """The realms that have a directory under C{realms/}."""
    directory = os.path.join(config_dir, "realms")
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name)))


def check_realm(config_dir: str, realm: str) -> tuple[dict[str, ServerConfig], dict[str, Profile]]:
    """
    One realm's server configs and profiles; every profile a server config
    names exists.

    @raise ConfigError: naming the file, the key and the problem.
    """
    servers = load_servers(config_dir, realm)
    profiles = load_profiles(config_dir, realm)
    for server in servers.values():
        wanted = [("profile.cert_profile", server.cert_profile)]
        wanted += [(f"profile_map.{name}", target) for name, target in server.profile_map.items()]
        for key, profile in wanted:
            if profile not in profiles:
                raise ConfigError(server.path, f"{server.servername}.{key}",
                                  f"names profile {profile!r}, which profiles.yaml does not define")
    return servers, profiles


def check_config(config_dir: str) -> CheckedConfig:
    """
    Everything under C{config_dir}, cross-checked.

    @raise ConfigError: for the first problem found.
    """
    load_system(config_dir)
    endpoints = WrapperConfigs(os.path.join(config_dir, "scep")).check_all()
    realms = {name: check_realm(config_dir, name)[0] for name in realm_names(config_dir)}
    for endpoint in endpoints:
        if endpoint.realm not in realms:
            raise ConfigError(endpoint.path, "global.realm",
                              f"realm {endpoint.realm!r} has no directory realms/{endpoint.realm}")
        if endpoint.servername not in realms[endpoint.realm]:
            raise ConfigError(endpoint.path, "global.servername",
                              f"{endpoint.servername!r} is not a section of realms/{endpoint.realm}/scep.yaml")
    return CheckedConfig(endpoints=endpoints, realms=realms)
