"""
What C{scepadm} does, one function per command, on the store and the token
files of the authority host; L{scep.cli} parses the command line.

Each command gets a L{Context}: the config and state directories, the
realm, the store (opened on first use), the keys, and the operator as the
audit log names them.  A command that cannot be done raises L{Refused}.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pwd
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scep.authority.configcheck import check_config
from scep.authority.crl import issue_crl, reason_flag
from scep.authority.policy import load_servers
from scep.authority.realm import Realm
from scep.authority.tokens import KeyStore, add_token, create_realm
from scep.config import database_url, resolve_dirs
from scep.store import (
    UNCHANGED,
    AliasRecord,
    AuditRecord,
    CertificateRecord,
    Conflict,
    NotFound,
    Store,
    certificate_identifier,
    certificate_record_from_der,
    open_store,
)

GROUP_TITLES = {"root": "root ca", "ca-signer": "issuing ca", "scep": "scep ra"}


class Refused(Exception):
    """The command cannot be done; exit status 1 with this one line."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def parse_when(text: str) -> datetime.datetime | None:
    """C{YYYY-MM-DD HH:MM:SS} (UTC), an epoch number, or C{0} for none."""
    text = text.strip()
    if text in ("0", ""):
        return None
    if text.isdigit():
        return datetime.datetime.fromtimestamp(int(text), datetime.UTC)
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, form).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    raise Refused(f"{text!r} is not a date (YYYY-MM-DD HH:MM:SS, UTC, or epoch seconds)")


def when(value: datetime.datetime | None) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def operator() -> str:
    """
    Who runs this command: the account of the real user id, or the login
    behind C{sudo} when root runs it through sudo.  Never C{$USER}: anyone
    can set that, and four-eyes approval counts distinct operators.
    """
    uid = os.getuid()
    if uid == 0 and os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Context:
    """What a command works on: config, state, store, keys, and the actor."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config_dir, self.state_dir, self.system = resolve_dirs(args.config, args.state)
        self.realm_name = args.realm
        self.actor = f"operator {operator()}"
        self._store: Store | None = None
        self.keys = KeyStore(self.state_dir)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(database_url(self.system, self.state_dir))
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def realm(self) -> Realm:
        realm = Realm(self.realm_name, self.store, self.keys, self.config_dir, utcnow)
        realm.refresh()
        return realm

    def audit(self, action: str, detail: str, identifier: str | None = None,
              transaction_id: str | None = None) -> AuditRecord:
        return AuditRecord(time=utcnow(), realm=self.realm_name, actor=self.actor, action=action,
                           transaction_id=transaction_id, identifier=identifier, detail=detail)

    def out(self, data: Any, text: Callable[[], str]) -> None:
        if self.args.json:
            print(json.dumps(_jsonable(data), indent=2, sort_keys=True))
        else:
            print(text())


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = {k: v for k, v in asdict(value).items() if k not in ("der", "csr")}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return when(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


# init and tokens

def cmd_init(ctx: Context) -> None:
    made = create_realm(ctx.store, ctx.keys, ctx.realm_name, actor=ctx.actor)
    if not made:
        raise Refused(f"realm {ctx.realm_name} has a root already")
    ctx.out([{"alias": t.alias, "identifier": t.identifier, "subject": t.certificate.subject.rfc4514_string()}
             for t in made],
            lambda: "\n".join(f"{t.alias:<14} {t.identifier}  {t.certificate.subject.rfc4514_string()}"
                              for t in made))


def cmd_token_add(ctx: Context) -> None:
    group = ctx.args.type
    realm = ctx.realm()
    issuer_group = "root" if group == "ca-signer" else "ca-signer"
    issuer = realm.current(issuer_group)
    if issuer is None:
        raise Refused(f"realm {ctx.realm_name} has no current {issuer_group} to sign a new {group}")
    notbefore = parse_when(ctx.args.notbefore) if ctx.args.notbefore else None
    token = add_token(ctx.store, ctx.keys, ctx.realm_name, group, issuer=(issuer.certificate, realm.key(issuer)),
                      actor=ctx.actor, notbefore=notbefore, key_type=ctx.args.key_type)
    ctx.out({"alias": token.alias, "identifier": token.identifier},
            lambda: f"{token.alias} {token.identifier} {token.certificate.subject.rfc4514_string()}")


# certificates

def _load_certificates(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise Refused(f"{path}: not a certificate ({e})") from None


def import_certificate(ctx: Context, certificate: x509.Certificate, realm: str | None) -> CertificateRecord:
    """
    Store a certificate (once; importing it again is no error), its issuer
    found among the CA certificates the store knows.
    """
    der = certificate.public_bytes(serialization.Encoding.DER)
    identifier = certificate_identifier(der)
    if certificate.issuer == certificate.subject:
        issuer_identifier: str | None = identifier
    else:
        issuers = ctx.store.find_ca_certificates(certificate.issuer.rfc4514_string())
        issuer_identifier = issuers[0].identifier if issuers else None
    record = certificate_record_from_der(der, realm=realm, issuer_identifier=issuer_identifier)
    try:
        ctx.store.add_certificate(record, audit=ctx.audit("certificate import", record.subject, identifier))
    except Conflict:
        existing = ctx.store.get_certificate(identifier)
        if existing is None:
            raise Refused(f"{identifier}: serial already taken for that issuer") from None
        return existing
    return record


def cmd_certificate_import(ctx: Context) -> None:
    imported = [import_certificate(ctx, c, ctx.args.realm_given) for c in _load_certificates(ctx.args.file)]
    ctx.out(imported, lambda: "\n".join(f"{r.identifier}  {r.subject}" for r in imported))


def _certificate_line(r: Any) -> str:
    return f"{r.identifier}  {r.status:<7}  {r.serial:x}  {when(r.not_after)}  {r.subject}"


def cmd_certificate_list(ctx: Context) -> None:
    rows = ctx.store.list_certificates(realm=ctx.args.realm_given, status=ctx.args.status, limit=ctx.args.limit)
    ctx.out(rows, lambda: "\n".join(_certificate_line(r) for r in rows) or "(none)")


def _certificate(ctx: Context, identifier: str) -> Any:
    record = ctx.store.get_certificate(identifier)
    if record is None:
        raise Refused(f"no certificate {identifier}")
    return record


def cmd_certificate_show(ctx: Context) -> None:
    r = _certificate(ctx, ctx.args.identifier)
    pem = x509.load_der_x509_certificate(r.der).public_bytes(serialization.Encoding.PEM).decode()
    # What MDM profiles and scepclient -ca-fingerprint ask for.
    sha256 = hashlib.sha256(r.der).hexdigest().upper()
    ctx.out({**_jsonable(r), "pem": pem, "sha256_fingerprint": sha256}, lambda: "\n".join([
        f"Identifier : {r.identifier}", f"SHA-256    : {sha256}",
        f"Subject    : {r.subject}", f"Issuer     : {r.issuer}",
        f"Serial     : {r.serial:x}", f"NotBefore  : {when(r.not_before)}", f"NotAfter   : {when(r.not_after)}",
        f"Status     : {r.status}" + (f" ({r.revocation_reason}, {when(r.revoked_at)})" if r.revoked_at else ""),
        f"Realm      : {r.realm or '-'}", f"Profile    : {r.profile or '-'}",
        f"Transaction: {r.transaction_id or '-'}", pem.rstrip()]))


def cmd_certificate_revoke(ctx: Context) -> None:
    reason = ctx.args.reason
    if reason_flag(reason) is None:
        raise Refused(f"{reason!r} is not a CRL reason (e.g. keyCompromise, superseded, cessationOfOperation)")
    at = (parse_when(ctx.args.at) if ctx.args.at else None) or utcnow()
    try:
        r = ctx.store.revoke_certificate(ctx.args.identifier, reason, at, ctx.actor)
    except NotFound:
        raise Refused(f"no certificate {ctx.args.identifier}") from None
    except Conflict:
        raise Refused(f"certificate {ctx.args.identifier} is revoked already") from None
    ctx.out(r, lambda: f"revoked {r.identifier} ({reason}) {r.subject}")


# aliases

def cmd_alias(ctx: Context) -> None:
    args = ctx.args
    if args.identifier or args.file:
        return cmd_alias_add(ctx)
    return cmd_alias_list(ctx)


def cmd_alias_add(ctx: Context) -> None:
    args = ctx.args
    group = args.token
    if not group:
        raise Refused("name the group with --token root|ca-signer|scep (or --group)")
    if args.file:
        record = import_certificate(ctx, _load_certificates(args.file)[0], ctx.realm_name)
    else:
        record = _certificate(ctx, args.identifier)
    identifier = record.identifier
    alias = args.alias or ctx.store.next_alias_name(ctx.realm_name, group)
    notbefore = parse_when(args.notbefore) if args.notbefore else None
    notafter = parse_when(args.notafter) if args.notafter else None
    try:
        ctx.store.add_alias(
            AliasRecord(realm=ctx.realm_name, group=group, alias=alias, identifier=identifier,
                        notbefore=notbefore, notafter=notafter),
            audit=ctx.audit("alias add", f"{alias} ({group}) notbefore {when(notbefore)}", identifier))
    except Conflict:
        raise Refused(f"alias {alias} exists in realm {ctx.realm_name}") from None
    ctx.out({"alias": alias, "identifier": identifier, "group": group},
            lambda: f"added {alias} ({group}) -> {identifier} {record.subject}")


def cmd_alias_update(ctx: Context) -> None:
    args = ctx.args
    notbefore: Any = UNCHANGED if args.notbefore is None else parse_when(args.notbefore)
    notafter: Any = UNCHANGED if args.notafter is None else parse_when(args.notafter)
    try:
        ctx.store.update_alias(ctx.realm_name, args.alias, notbefore=notbefore, notafter=notafter,
                               audit=ctx.audit("alias update", f"{args.alias} notbefore {args.notbefore} "
                                               f"notafter {args.notafter}"))
    except NotFound:
        raise Refused(f"no alias {args.alias} in realm {ctx.realm_name}") from None
    ctx.out({"alias": args.alias}, lambda: f"updated {args.alias}")


def cmd_alias_remove(ctx: Context) -> None:
    try:
        ctx.store.remove_alias(ctx.realm_name, ctx.args.alias, audit=ctx.audit("alias remove", ctx.args.alias))
    except NotFound:
        raise Refused(f"no alias {ctx.args.alias} in realm {ctx.realm_name}") from None
    ctx.out({"alias": ctx.args.alias}, lambda: f"removed {ctx.args.alias}")


def cmd_alias_list(ctx: Context) -> None:
    aliases = ctx.store.list_aliases(ctx.realm_name, ctx.args.token)
    now = utcnow()
    groups: dict[str, list[AliasRecord]] = {}
    for alias in aliases:
        groups.setdefault(alias.group, []).append(alias)

    def block(title: str, alias: AliasRecord) -> list[str]:
        def date(override: datetime.datetime | None, own: datetime.datetime | None) -> str:
            if override is not None and override != own:
                return f"{when(override)} ({when(own)})"
            return when(own)
        return [f"{title}:", f"  Alias     : {alias.alias}", f"  Identifier: {alias.identifier}",
                f"  NotBefore : {date(alias.notbefore, alias.cert_not_before)}",
                f"  NotAfter  : {date(alias.notafter, alias.cert_not_after)}", ""]

    lines: list[str] = []
    result = []
    order = [g for g in GROUP_TITLES if g in groups] + sorted(g for g in groups if g not in GROUP_TITLES)
    for group in order:
        members = groups[group]
        name = GROUP_TITLES.get(group, group)
        lines.append(f"=== {name} ===")
        valid = [a for a in members if a.valid_at(now)]
        current = valid[-1] if valid else None
        upcoming = [a for a in members if (a.effective_not_before or now) > now]
        if current is not None:
            lines += block(f"current {name}", current)
        for alias in upcoming[:1]:
            lines += block(f"upcoming {name}", alias)
        for alias in members:
            if alias is not current and alias not in upcoming[:1]:
                lines += block(f"other {name}" if alias.valid_at(now) else f"expired {name}", alias)
        for alias in members:
            state = ("current" if alias is current else "upcoming" if alias in upcoming else
                     "active" if alias.valid_at(now) else "expired")
            result.append({**_jsonable(alias), "state": state,
                           "effective_not_before": when(alias.effective_not_before),
                           "effective_not_after": when(alias.effective_not_after)})
    ctx.out(result, lambda: "\n".join(lines).rstrip() or f"no aliases in realm {ctx.realm_name}")


# requests

def _transaction(ctx: Context) -> Any:
    record = ctx.store.get_transaction(ctx.realm_name, ctx.args.id)
    if record is None:
        raise Refused(f"no request {ctx.args.id} in realm {ctx.realm_name}")
    return record


def cmd_request_list(ctx: Context) -> None:
    rows = ctx.store.list_transactions(realm=ctx.realm_name, status=ctx.args.state_filter, limit=ctx.args.limit)
    ctx.out(rows, lambda: "\n".join(
        f"{r.transaction_id}  {r.status:<8}  {r.mode:<8}  {when(r.created)}  {r.subject}"
        + (f"  ({r.reason})" if r.reason else "") for r in rows) or "(none)")


def cmd_request_show(ctx: Context) -> None:
    r = _transaction(ctx)
    ctx.out(r, lambda: "\n".join([
        f"TransactionID: {r.transaction_id}", f"Status       : {r.status}", f"Mode         : {r.mode}",
        f"Subject      : {r.subject}", f"Server       : {r.servername}", f"Client       : {r.client_address or '-'}",
        f"Created      : {when(r.created)}", f"Updated      : {when(r.updated)}",
        f"Reason       : {r.reason or '-'}", f"Certificate  : {r.certificate_identifier or '-'}"]))


def _pending(ctx: Context) -> Any:
    r = _transaction(ctx)
    if r.status != "pending":
        raise Refused(f"request {r.transaction_id} is {r.status}, not pending")
    return r


def _decide(ctx: Context, r: Any, status: str, action: str, reason: str) -> None:
    try:
        ctx.store.update_transaction(ctx.realm_name, r.transaction_id, status=status, reason=reason,
                                     expected_status="pending",
                                     audit=ctx.audit(action, reason, transaction_id=r.transaction_id))
    except Conflict:
        raise Refused(f"request {r.transaction_id} changed meanwhile; look again") from None
    ctx.out({"transaction_id": r.transaction_id, "status": status, "reason": reason},
            lambda: f"{r.transaction_id}: {status} ({reason})")


def approvals_needed(ctx: Context, r: Any) -> int:
    """
    Operator approvals the request needs: its server's approval_points less
    the point a passed eligibility check gives, and at least one.
    """
    servers = load_servers(ctx.config_dir, ctx.realm_name)
    server = servers.get(r.servername)
    if server is None:
        return 1
    return max(1, server.approval_points - server.eligibility_points(r.mode))


def cmd_request_approve(ctx: Context) -> None:
    """
    One operator's approval.  Each approval is a point; a request that needs
    more points (four eyes: approval_points 2 without eligibility, or 3)
    stays pending until that many different operators approved it.
    """
    r = _pending(ctx)
    approvers = {row.actor for row in ctx.store.list_audit(realm=ctx.realm_name, since=r.created, limit=100000)
                 if row.transaction_id == r.transaction_id and row.action in ("approve", "approve (partial)")}
    if ctx.actor in approvers:
        raise Refused(f"{ctx.actor} approved request {r.transaction_id} already; another operator must approve")
    needed = approvals_needed(ctx, r)
    given = len(approvers) + 1
    if given < needed:
        _decide(ctx, r, "pending", "approve (partial)", f"approved by {given} of {needed} operators")
    else:
        _decide(ctx, r, "approved", "approve", f"approved by {ctx.actor}")


def cmd_request_reject(ctx: Context) -> None:
    r = _pending(ctx)
    _decide(ctx, r, "rejected", "reject", ctx.args.reason or "rejected by the operator")


# CRL and audit

def cmd_crl_issue(ctx: Context) -> None:
    realm = ctx.realm()
    issued = [(token, issue_crl(ctx.store, ctx.realm_name, token, realm.key(token), utcnow(), actor=ctx.actor))
              for token in realm.active("ca-signer")]
    if not issued:
        raise Refused(f"realm {ctx.realm_name} has no active issuing CA")
    ctx.out([{"alias": t.alias, "number": r.number, "next_update": when(r.next_update)} for t, r in issued],
            lambda: "\n".join(f"{t.alias}: CRL number {r.number}, next update {when(r.next_update)}"
                              for t, r in issued))


def cmd_audit(ctx: Context) -> None:
    since = parse_when(ctx.args.since) if ctx.args.since else None
    rows = ctx.store.list_audit(realm=ctx.args.realm_given, since=since, limit=ctx.args.limit)
    ctx.out(rows, lambda: "\n".join(
        f"{when(r.time)}  {r.realm or '-':<8}  {r.action:<18}  {r.actor:<24}  {r.transaction_id or '-'}  {r.detail}"
        for r in rows) or "(none)")


def cmd_config_check(ctx: Context) -> None:
    checked = check_config(ctx.config_dir)
    ctx.out({"ok": True, "endpoints": [e.endpoint for e in checked.endpoints], "realms": sorted(checked.realms)},
            lambda: f"{ctx.config_dir}: {len(checked.endpoints)} endpoints, {len(checked.realms)} realms, all fine")
