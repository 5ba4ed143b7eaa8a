"""`algocomp users`: the operator's account commands, run against the database directly (not through the API,
which they make usable): create a user (and their team) and print the new token, list users, revoke a user's
tokens, issue another token.

The `algocomp` command finds this module through the `algocomp.commands` entry point (pyproject.toml), so the
engine library never imports the platform. Database modules are imported when a command runs: listing the
commands costs nothing, and without the `server` extra the command says what to install.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
MAX_EXPIRY_DAYS = 3650


def install(register: Callable[[Any], Any], subcommand_type: Callable[..., Any]) -> None:
    """Register `users` with the `algocomp` tool."""
    register(
        subcommand_type(
            name="users",
            help="operator: create, list and revoke API users (against the database, with the server extra)",
            description="Accounts of the API: users in teams, each with API tokens. Works on the database named "
            "by ALGOCOMP_DATABASE_URL (or --database-url); a new token is printed once, as the last line.",
            configure=_configure,
            run=_run,
        )
    )


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL of the database (default: ALGOCOMP_DATABASE_URL)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a user (and the team if new); prints the token last")
    create.add_argument("name", help="the user's name: letters, digits, '.', '_', '-'")
    create.add_argument("--team", required=True, help="the user's team (created if it does not exist)")
    create.add_argument("--admin", action="store_true", help="a team admin may cancel any of the team's runs")
    create.add_argument("--expires-in-days", help="the token expires after this many days", type=_days)
    token = actions.add_parser("token", help="issue another token to an existing user; prints it last")
    token.add_argument("name")
    token.add_argument("--expires-in-days", help="the token expires after this many days", type=_days)
    listing = actions.add_parser("list", help="list users: team, admin, live tokens")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    revoke = actions.add_parser("revoke", help="revoke every token of a user, effective at once")
    revoke.add_argument("name")


def _days(text: str) -> float:
    """argparse type of --expires-in-days: a number of days in (0, MAX_EXPIRY_DAYS]."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days <= MAX_EXPIRY_DAYS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_EXPIRY_DAYS} days (got {text})")
    return days


def _expiry(days: float | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


def _run(args: argparse.Namespace) -> int:
    from algocomp.platform.db import get_engine, session_scope
    from algocomp.platform.db.accounts import AccountError, AccountRepository

    engine = get_engine(args.database_url) if args.database_url else get_engine()
    try:
        with session_scope(engine) as session:
            accounts = AccountRepository(session)
            if args.action == "create":
                expires = _expiry(args.expires_in_days)
                user, secret = accounts.create_user(args.name, args.team, admin=args.admin, expires_at=expires)
                role = "admin of" if user.is_admin else "member of"
                print(f"created user {user.name}, {role} team {args.team}")
                print("their API token (shown only now; send it as 'Authorization: Bearer TOKEN'):")
                print(secret)
            elif args.action == "token":
                found = accounts.user(args.name)
                if found is None:
                    raise AccountError(f"no user named {args.name!r}")
                secret = accounts.issue_token(found, expires_at=_expiry(args.expires_in_days))
                print(f"a new API token for {found.name} (shown only now):")
                print(secret)
            elif args.action == "list":
                users = accounts.users()
                if args.json:
                    rows = [
                        {
                            "name": u.name,
                            "team": u.team,
                            "admin": u.is_admin,
                            "active_tokens": u.active_tokens,
                            "created_at": u.created_at.isoformat(),
                        }
                        for u in users
                    ]
                    print(json.dumps(rows, indent=2))
                else:
                    print(f"{'user':<24} {'team':<24} {'admin':<6} live tokens")
                    for u in users:
                        print(f"{u.name:<24} {u.team:<24} {'yes' if u.is_admin else 'no':<6} {u.active_tokens}")
            elif args.action == "revoke":
                count = accounts.revoke(args.name)
                print(f"revoked {count} token(s) of {args.name}")
    except AccountError as error:
        print(f"algocomp: error: users {args.action}: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if args.database_url:
            engine.dispose()
    return EXIT_OK
