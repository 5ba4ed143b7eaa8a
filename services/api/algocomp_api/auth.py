"""Who is calling: every route but the health probes and the OpenAPI docs requires `Authorization: Bearer TOKEN`
(a token issued by `algocomp users create`, see algocomp.platform.db.accounts) and acts for the token's user and
team. Objects of another team are answered as absent (404), never as forbidden, so ids reveal nothing."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from algocomp.platform.db.accounts import Principal
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.deps import UnitOfWorkDep
from algocomp_api.errors import ApiError

# Documents the scheme in OpenAPI (and gives /docs its Authorize button); the checks and the 401 are ours.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="a token from `algocomp users create NAME --team TEAM`, sent as 'Authorization: Bearer TOKEN'",
)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="algocomp"'})


def authenticate(uow: UnitOfWork, token: str) -> Principal:
    """The principal of a live token; 401 otherwise (unknown, revoked or expired)."""
    principal = uow.accounts.authenticate(token)
    if principal is None:
        raise _unauthorized("the API token is unknown, revoked or expired; ask an operator for a new one")
    return principal


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The request's token as sent (not yet checked against the database); 401 when there is none."""
    if credentials is None or not credentials.credentials.strip():
        raise _unauthorized("this route needs an API token: send the header 'Authorization: Bearer TOKEN'")
    return credentials.credentials.strip()


BearerToken = Annotated[str, Depends(bearer_token)]


def current_principal(uow: UnitOfWorkDep, token: BearerToken) -> Principal:
    """The caller, from a live token; 401 otherwise (missing, malformed, unknown, revoked or expired)."""
    return authenticate(uow, token)


Caller = Annotated[Principal, Depends(current_principal)]


def forbid_unless_manager(principal: Principal, owner_id: uuid.UUID | None, what: str) -> None:
    """403 unless the caller launched `what` or is a team admin."""
    if not principal.may_manage(owner_id):
        raise ApiError(
            403,
            "forbidden",
            f"only the member who launched {what} or a team admin may cancel it",
        )
