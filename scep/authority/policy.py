"""
The server config of a realm: C{realms/<realm>/scep.yaml}, one section per
servername, with the meaning of OpenXPKI's keys.

Relative dates are OpenXPKI's C{[+]YYMMDD[hhmmss]} strings (C{"000060"} is
sixty days); they must be quoted, since YAML would read C{000060} as 60.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Any

from scep.config import ConfigError, load_yaml

RELATIVE_DATE = re.compile(r"^\+?(\d\d){1,6}$")

CHAINS = ("none", "chain", "fullchain")
GETCACERT = ("ra", "ra+issuer", "ra+issuer+root")


def relative_date(value: Any, path: str, key: str) -> datetime.timedelta | _Months:
    """
    Read an OpenXPKI relative date: years, months, days, hours, minutes,
    seconds as two digits each, cut off from the right.
    """
    if not isinstance(value, str) or not RELATIVE_DATE.match(value):
        raise ConfigError(path, key, f"{value!r} is not a quoted relative date like \"000060\" (60 days)")
    digits = value.lstrip("+")
    parts = [int(digits[i : i + 2]) for i in range(0, len(digits), 2)] + [0] * 6
    years, months, days, hours, minutes, seconds = parts[:6]
    delta = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if years or months:
        return _Months(years * 12 + months, delta)
    return delta


@dataclass(frozen=True)
class _Months:
    """A relative date with calendar months in it (C{"01"} is one year)."""

    months: int
    rest: datetime.timedelta

    def __radd__(self, when: datetime.datetime) -> datetime.datetime:
        month = when.month - 1 + self.months
        year = when.year + month // 12
        month = month % 12 + 1
        day = min(when.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                             31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
        return when.replace(year=year, month=month, day=day) + self.rest


def add_relative(when: datetime.datetime, delta: datetime.timedelta | _Months) -> datetime.datetime:
    return when + delta  # type: ignore[operator]


def subtract_relative(when: datetime.datetime, delta: datetime.timedelta | _Months) -> datetime.datetime:
    if isinstance(delta, _Months):
        return when + _Months(-delta.months, -delta.rest)
    return when - delta


@dataclass(frozen=True)
class SignerRule:
    """One C{authorized_signer} rule; its keys are ANDed."""

    name: str
    subject: re.Pattern[str] | None = None
    profile: str | None = None
    identifier: str | None = None
    issuer_alias: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """One servername section of C{scep.yaml}."""

    realm: str
    servername: str
    path: str
    challenge: str | None = None
    hmac: str | None = None
    allow_anon_enroll: bool = False
    allow_man_authen: bool = False
    allow_man_approv: bool = False
    approval_points: int = 0
    max_active_certs: int = 0
    auto_revoke_existing_certs: bool = False
    allow_replace: bool = False
    allow_key_reuse: bool = False
    renewal_period: datetime.timedelta | _Months = datetime.timedelta(days=60)
    revoke_on_replace: tuple[str, datetime.timedelta | _Months | None] | None = None
    authorized_signer: tuple[SignerRule, ...] = ()
    cert_profile: str = "tls_client"
    profile_map: dict[str, str] = field(default_factory=dict)
    initial_validity: datetime.timedelta | _Months | None = None
    eligible: dict[str, bool] = field(default_factory=lambda: {"initial": True, "renewal": True, "onbehalf": True})
    getcacert: str = "ra+issuer+root"
    chain: str = "none"
    signing_time_tolerance: datetime.timedelta = datetime.timedelta(hours=24)

    def eligibility_points(self, mode: str) -> int:
        """The approval point a passed eligibility check gives a request in C{mode}: 1, or 0."""
        return 1 if self.eligible.get(mode, False) else 0


def _flag(section: dict[str, Any], path: str, key: str, default: bool) -> bool:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ConfigError(path, key, f"{value!r} must be 0 or 1")


def _int(section: dict[str, Any], path: str, key: str, default: int) -> int:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(path, key, f"{value!r} must be a whole number >= 0")
    return value


def _mapping(value: Any, path: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, key, "must be a mapping")
    return value


def parse_server(realm: str, servername: str, section: Any, path: str) -> ServerConfig:
    """Check one servername section and make it a L{ServerConfig}."""
    section = _mapping(section, path, servername)
    at = servername + "."
    challenge = _mapping(section.get("challenge"), path, at + "challenge").get("value")
    if challenge is not None and not isinstance(challenge, (str, int)):
        raise ConfigError(path, at + "challenge.value", "must be a string")
    hmac = section.get("hmac")
    if hmac is not None and not isinstance(hmac, str):
        raise ConfigError(path, at + "hmac", "must be a string")
    policy = _mapping(section.get("policy"), path, at + "policy")
    profile = _mapping(section.get("profile"), path, at + "profile")
    cert_profile = profile.get("cert_profile", "tls_client")
    if not isinstance(cert_profile, str) or not cert_profile:
        raise ConfigError(path, at + "profile.cert_profile", "must name a profile")
    profile_map = _mapping(section.get("profile_map"), path, at + "profile_map")
    for name, target in profile_map.items():
        if not isinstance(target, str):
            raise ConfigError(path, f"{at}profile_map.{name}", "must name a profile")

    revoke = section.get("revoke_on_replace")
    revoke_on_replace = None
    if revoke is not None:
        revoke = _mapping(revoke, path, at + "revoke_on_replace")
        reason = revoke.get("reason_code")
        if not isinstance(reason, str) or not reason:
            raise ConfigError(path, at + "revoke_on_replace.reason_code", "is required")
        delay = revoke.get("delay_revocation_time", revoke.get("invalidity_time"))
        revoke_on_replace = (
            reason,
            relative_date(delay, path, at + "revoke_on_replace.delay_revocation_time") if delay else None,
        )

    rules = []
    for name, rule in _mapping(section.get("authorized_signer"), path, at + "authorized_signer").items():
        rule = _mapping(rule, path, f"{at}authorized_signer.{name}")
        subject = rule.get("subject")
        try:
            pattern = re.compile(subject, re.IGNORECASE) if subject else None
        except re.error as e:
            raise ConfigError(path, f"{at}authorized_signer.{name}.subject", f"bad regex: {e}") from None
        rules.append(SignerRule(name=str(name), subject=pattern, profile=rule.get("profile"),
                                identifier=rule.get("identifier"), issuer_alias=rule.get("issuer_alias")))

    eligible = {}
    for mode in ("initial", "renewal", "onbehalf"):
        entry = _mapping(section.get("eligible"), path, at + "eligible").get(mode)
        if entry is None:
            eligible[mode] = "eligible" not in section
            continue
        value = _mapping(entry, path, f"{at}eligible.{mode}").get("value")
        eligible[mode] = str(value) == "1"

    response = _mapping(section.get("response"), path, at + "response")
    getcacert = response.get("getcacert", "ra+issuer+root")
    if getcacert not in GETCACERT:
        raise ConfigError(path, at + "response.getcacert", f"{getcacert!r} is not one of {', '.join(GETCACERT)}")
    chain = response.get("chain", "none")
    if chain not in CHAINS:
        raise ConfigError(path, at + "response.chain", f"{chain!r} is not one of {' | '.join(CHAINS)}")

    tolerance = section.get("signing_time_tolerance", "000001")
    return ServerConfig(
        realm=realm, servername=servername, path=path,
        challenge=str(challenge) if challenge is not None else None,
        hmac=hmac,
        allow_anon_enroll=_flag(policy, path, at + "policy.allow_anon_enroll", False),
        allow_man_authen=_flag(policy, path, at + "policy.allow_man_authen", False),
        allow_man_approv=_flag(policy, path, at + "policy.allow_man_approv", False),
        approval_points=_int(policy, path, at + "policy.approval_points", 0),
        max_active_certs=_int(policy, path, at + "policy.max_active_certs", 0),
        auto_revoke_existing_certs=_flag(policy, path, at + "policy.auto_revoke_existing_certs", False),
        allow_replace=_flag(policy, path, at + "policy.allow_replace", False),
        allow_key_reuse=_flag(policy, path, at + "policy.allow_key_reuse", False),
        renewal_period=relative_date(section.get("renewal_period", "000060"), path, at + "renewal_period"),
        revoke_on_replace=revoke_on_replace,
        authorized_signer=tuple(rules),
        cert_profile=cert_profile,
        profile_map=dict(profile_map),
        initial_validity=(relative_date(section["initial_validity"], path, at + "initial_validity")
                          if section.get("initial_validity") else None),
        eligible=eligible,
        getcacert=getcacert,
        chain=chain,
        signing_time_tolerance=_as_timedelta(relative_date(tolerance, path, at + "signing_time_tolerance"),
                                             path, at + "signing_time_tolerance"),
    )


def _as_timedelta(value: datetime.timedelta | _Months, path: str, key: str) -> datetime.timedelta:
    if isinstance(value, _Months):
        raise ConfigError(path, key, "must be days or less, not months or years")
    return value


def load_servers(config_dir: str, realm: str) -> dict[str, ServerConfig]:
    """
    Every servername section of a realm's C{scep.yaml}.

    @raise ConfigError: when the file is missing or a section is wrong.
    """
    path = os.path.join(config_dir, "realms", realm, "scep.yaml")
    tree = load_yaml(path)
    if tree is None:
        raise ConfigError(path, None, "is missing or empty")
    if not isinstance(tree, dict):
        raise ConfigError(path, None, "must be a mapping of servername to section")
    return {str(name): parse_server(realm, str(name), section, path) for name, section in tree.items()}
