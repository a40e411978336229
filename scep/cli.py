"""
C{scepadm}: the operator's command line on the authority host.

It works on the store and the token files directly, never through the
front.  Every command takes C{--config}, C{--state} and C{--realm}; output
is for a person, or JSON with C{--json}.  Exit status: 0 ok, 1 refused
(the thing does not exist, a conflict, a broken config), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from scep.admin import (
    Context,
    Refused,
    cmd_alias,
    cmd_alias_add,
    cmd_alias_list,
    cmd_alias_remove,
    cmd_alias_update,
    cmd_audit,
    cmd_certificate_import,
    cmd_certificate_list,
    cmd_certificate_revoke,
    cmd_certificate_show,
    cmd_config_check,
    cmd_crl_issue,
    cmd_init,
    cmd_request_approve,
    cmd_request_list,
    cmd_request_reject,
    cmd_request_show,
    cmd_token_add,
)
from scep.authority.tokens import KEY_TYPES, TokenError
from scep.config import ConfigError
from scep.store import StoreError


def _common(defaults: bool, state: bool = True) -> argparse.ArgumentParser:
    """
    The options every command takes.  Below a subcommand their defaults are
    suppressed, so that C{scepadm --state DIR request list} keeps DIR.
    """
    common = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    common.add_argument("--config", default=default(None),
                        help="config directory (default: $SCEP_CONFIG_DIR or ./etc)")
    if state:
        common.add_argument("--state", default=default(None),
                            help="state directory (default: system.state or ./var)")
    common.add_argument("--realm", default=default(None), help="realm (default: democa)")
    common.add_argument("--json", action="store_true", default=default(False), help="print JSON for scripts")
    return common


IDENTIFIER_WITH_DASH = re.compile(r"^-[A-Za-z0-9_-]{26}$")
"""A certificate identifier (27 base64url characters) that argparse would take for an option."""


def _target(p: argparse.ArgumentParser, name: str, help: str) -> None:
    """
    The thing a command works on, positional or as C{--id}: identifiers are
    base64url, and one in 64 starts with C{-}.
    """
    p.add_argument(name, nargs="?", help=help)
    p.add_argument("--id", dest=f"{name}_option", metavar="ID", help=f"{help}, when it starts with '-'")


def _resolve_targets(top: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("identifier", "id"):
        if hasattr(args, f"{name}_option"):
            value = getattr(args, name) or getattr(args, f"{name}_option")
            if not value:
                top.error(f"the {name} is required")
            setattr(args, name, value)


def _dash_identifiers(argv: list[str]) -> list[str]:
    """
    C{argv} with each identifier that starts with C{-} made unambiguous for
    argparse: the value of C{--identifier}/C{--id} joined to it with C{=},
    a bare one given as C{--id=...}.  After C{--} everything is positional
    already and stays as it is.
    """
    end = argv.index("--") if "--" in argv else len(argv)
    result: list[str] = []
    for argument in argv[:end]:
        if IDENTIFIER_WITH_DASH.match(argument):
            if result and result[-1] in ("--identifier", "--id"):
                result[-1] += f"={argument}"
                continue
            argument = f"--id={argument}"
        result.append(argument)
    return result + argv[end:]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scepadm", description="The operator's command line of the scep server.",
                                  parents=[_common(True)])
    common = _common(False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, func: Callable[[Context], None], help: str,
                parents: list[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=parents or [common], help=help)
        p.set_defaults(func=func)
        return p

    def group(name: str, help: str) -> Any:
        return sub.add_parser(name, help=help).add_subparsers(dest="action", required=True, metavar="ACTION")

    command(sub, "init", cmd_init, "create a realm's root, issuing CA and RA")

    token = group("token", "token generations")
    p = command(token, "add", cmd_token_add, "make a new RA or issuing-CA generation")
    p.add_argument("--type", required=True, choices=["scep", "ca-signer"])
    p.add_argument("--notbefore", help="start of the alias window (default: the certificate's)")
    p.add_argument("--key-type", choices=sorted(KEY_TYPES),
                   help="key of the new token (default: rsa2048; an RA must be RSA)")

    cert = group("certificate", "certificates")
    p = command(cert, "import", cmd_certificate_import, "import certificates from a PEM or DER file")
    p.add_argument("--file", required=True)
    p = command(cert, "list", cmd_certificate_list, "list certificates")
    p.add_argument("--status", choices=["issued", "revoked"])
    p.add_argument("--limit", type=int, default=100)
    p = command(cert, "show", cmd_certificate_show, "show one certificate")
    _target(p, "identifier", "the certificate's identifier")
    p = command(cert, "revoke", cmd_certificate_revoke, "revoke a certificate")
    _target(p, "identifier", "the certificate's identifier")
    p.add_argument("--reason", default="unspecified")
    p.add_argument("--at", help="revocation time (default: now)")

    alias_options = argparse.ArgumentParser(add_help=False)
    for name in ("--identifier", "--file", "--alias", "--notbefore", "--notafter"):
        alias_options.add_argument(name)
    alias_options.add_argument("--token", "--group", dest="token", help="root | ca-signer | scep")
    p = sub.add_parser("alias", parents=[common, alias_options],
                       help="list aliases, or add one with --identifier or --file")
    p.set_defaults(func=cmd_alias)
    alias = p.add_subparsers(dest="action", metavar="ACTION")
    command(alias, "add", cmd_alias_add, "add an alias", [common, alias_options])
    command(alias, "list", cmd_alias_list, "list aliases", [common, alias_options])
    command(alias, "update", cmd_alias_update, "change an alias's notbefore/notafter", [common, alias_options])
    command(alias, "remove", cmd_alias_remove, "remove an alias", [common, alias_options])

    req = group("request", "SCEP transactions")
    p = command(req, "list", cmd_request_list, "list requests", [_common(False, state=False)])
    p.add_argument("--state", dest="state_filter",
                   choices=["pending", "approved", "issued", "rejected", "failed"],
                   help="only requests in this state (the state directory goes before the subcommand)")
    p.add_argument("--limit", type=int, default=100)
    for name, func, help in (("show", cmd_request_show, "show a request"),
                             ("approve", cmd_request_approve, "approve a pending request"),
                             ("reject", cmd_request_reject, "reject a pending request")):
        p = command(req, name, func, help)
        _target(p, "id", "the transactionID")
        if name == "reject":
            p.add_argument("--reason")

    crl = group("crl", "CRLs")
    command(crl, "issue", cmd_crl_issue, "sign a new CRL with each active issuing CA")

    p = command(sub, "audit", cmd_audit, "show the audit log")
    p.add_argument("--since", help="YYYY-MM-DD [HH:MM:SS] (UTC)")
    p.add_argument("--limit", type=int, default=1000)

    config = group("config", "configuration")
    command(config, "check", cmd_config_check, "check every config file")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = parser()
    args = top.parse_args(_dash_identifiers(argv))
    _resolve_targets(top, args)
    args.realm_given = args.realm
    args.realm = args.realm or "democa"
    for name, default in (("token", None), ("identifier", None), ("file", None),
                          ("alias", None), ("notbefore", None), ("notafter", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        args.func(ctx)
    except (Refused, ConfigError, StoreError, TokenError) as e:
        print(f"scepadm: {e}", file=sys.stderr)
        return 1
    finally:
        if ctx is not None:
            ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
