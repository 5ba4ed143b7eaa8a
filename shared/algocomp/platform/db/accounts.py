"""Teams, users and API tokens: who may call the API, and on whose behalf.

A token is 32 random bytes (URL-safe base64, prefixed `alc_` so it is recognisable in a leaked file), shown once
when issued and stored only as its SHA-256: it has the entropy of a key, so a fast unsalted hash is the
conventional store (as for GitHub or Stripe keys) and lookup stays one indexed query. A token may expire; revoking
a user revokes every token they hold, effective on the next request (every request reads the token's row).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from algocomp.platform.db.models import ApiToken, Team, User

TOKEN_PREFIX = "alc_"
# names of users and teams: what a shell and a URL carry without quoting
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class AccountError(ValueError):
    """An account request that cannot be done (a taken name, an unknown user, a malformed name)."""


@dataclass(frozen=True)
class Principal:
    """The caller of a request, from their token."""

    user_id: uuid.UUID
    user_name: str
    team_id: uuid.UUID
    team_name: str
    is_admin: bool

    def may_manage(self, owner_id: uuid.UUID | None) -> bool:
        """Whether the caller may cancel what `owner_id` launched (in the caller's team): its owner or an admin."""
        return self.is_admin or owner_id == self.user_id


@dataclass(frozen=True)
class UserInfo:
    name: str
    team: str
    is_admin: bool
    created_at: datetime
    active_tokens: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(kind: str, name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AccountError(
            f"{kind} name {name[:120]!r} is not allowed: 1-100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


# The query every request makes, built once: building a join like this cost more than running it (about 1 ms of
# the API's CPU per request); SQLAlchemy reuses its compiled form and psycopg its prepared statement.
LIVE_TOKEN_PRINCIPAL = (
    select(User.id, User.name, Team.id, Team.name, User.is_admin)
    .join(ApiToken, ApiToken.user_id == User.id)
    .join(Team, Team.id == User.team_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > func.now()),
    )
)


class AccountRepository:
    """Teams, users and tokens, within one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def team(self, name: str, *, create: bool = False) -> Team | None:
        team = self.session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()
        if team is None and create:
            team = Team(id=uuid.uuid4(), name=check_name("team", name))
            self.session.add(team)
            self.session.flush()
        return team

    def user(self, name: str) -> User | None:
        return self.session.execute(select(User).where(User.name == name)).scalar_one_or_none()

    def create_user(
        self, name: str, team: str, *, admin: bool = False, expires_at: datetime | None = None
    ) -> tuple[User, str]:
        """A new user in `team` (created if new) and their first token: (user, token). The token is not stored."""
        check_name("user", name)
        if self.user(name) is not None:
            raise AccountError(f"a user named {name!r} exists already; revoke or pick another name")
        team_row = self.team(team, create=True)
        assert team_row is not None
        user = User(id=uuid.uuid4(), name=name, team_id=team_row.id, is_admin=admin)
        self.session.add(user)
        self.session.flush()
        return user, self.issue_token(user, expires_at=expires_at)

    def issue_token(self, user: User, *, expires_at: datetime | None = None) -> str:
        """A new token for `user` (their earlier tokens stay valid)."""
        token = new_token()
        self.session.add(
            ApiToken(
                id=uuid.uuid4(),
                user_id=user.id,
                token_hash=hash_token(token),
                prefix=token[: len(TOKEN_PREFIX) + 4],
                expires_at=expires_at,
            )
        )
        self.session.flush()
        return token

    def revoke(self, name: str) -> int:
        """Revoke every live token of user `name`; returns how many. AccountError for an unknown user."""
        user = self.user(name)
        if user is None:
            raise AccountError(f"no user named {name!r}")
        revoked = self.session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiToken.id)
        )
        return len(revoked.all())

    def users(self) -> list[UserInfo]:
        live = (
            select(func.count())
            .where(
                ApiToken.user_id == User.id,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > func.now()),
            )
            .scalar_subquery()
        )
        rows = self.session.execute(
            select(User.name, Team.name, User.is_admin, User.created_at, live)
            .join(Team, Team.id == User.team_id)
            .order_by(Team.name, User.name)
        ).all()
        return [UserInfo(*row) for row in rows]

    def authenticate(self, token: str) -> Principal | None:
        """The principal a live token stands for, or None (unknown, revoked or expired)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        # on the session's connection, as a Core query: the ORM adds nothing to a row of plain columns but its cost
        row = self.session.connection().execute(LIVE_TOKEN_PRINCIPAL, {"token_hash": hash_token(token)}).one_or_none()
        return Principal(*row) if row is not None else None
