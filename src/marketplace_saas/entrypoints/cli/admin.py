"""`admin hash-password`: the password hash for an ADMIN_OPERATORS entry (docs/admin.md).

Reads the password twice without echo (or once from stdin with `--stdin`), and prints the hash,
or the whole `name:role:hash` entry with `--name`. The password itself is never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from marketplace_saas.adapters.operators import NAME, ROLES, hash_password
from marketplace_saas.entrypoints.cli._common import EXIT_CONFIG, CliError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("admin", help="the operator console's operators")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    hashing = commands.add_parser(
        "hash-password", help="hash a password for ADMIN_OPERATORS (scrypt, salted)"
    )
    hashing.add_argument("--name", help="print the whole entry name:role:hash")
    hashing.add_argument("--role", choices=ROLES, default="operator")
    hashing.add_argument(
        "--stdin", action="store_true", help="read the password from stdin (one line, no prompt)"
    )
    hashing.set_defaults(run=run_hash_password)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the two passwords differ", EXIT_CONFIG)
    return first


def run_hash_password(args: argparse.Namespace) -> int:
    if args.name is not None and not NAME.match(args.name):
        raise CliError(
            f"bad operator name {args.name!r} (letters, digits, . _ @ -; at most 64)", EXIT_CONFIG
        )
    password = _read_password(args.stdin)
    if len(password) < 8:
        raise CliError("the password must have at least 8 characters", EXIT_CONFIG)
    hashed = hash_password(password)
    print(f"{args.name}:{args.role}:{hashed}" if args.name else hashed)
    return 0
