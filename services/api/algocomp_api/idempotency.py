"""The `Idempotency-Key` header of POST /runs and POST /sweeps (after the IETF draft "The Idempotency-Key HTTP
Header Field"): a client that did not see the answer to a POST (a dropped connection, a killed API, a 5xx)
repeats it with the same key and gets the first answer, and nothing is created twice.

- A key is 1-200 characters of letters, digits and `._:~+/=-` (a UUID is the usual choice), sent bare or as a
  quoted string (the draft's form, `"..."`); anything else is 422 `invalid_idempotency_key` naming the header.
- Keys belong to the user of the token (two members of a team, or two users, never share one), and live for
  the setting idempotency_ttl_s (24 h); after that a key is new again.
- The key is claimed before any work, in the request's unit of work; the answer (status, JSON body, Location)
  is stored in that transaction (algocomp.platform.db.idempotency), so a crash before the commit leaves neither
  the run nor the record, and a crash after it leaves both and the retry gets the stored answer.
- A retry with the key and the same request (method, path and body, compared as canonical JSON) gets the
  stored answer, with `Idempotent-Replayed: true`; nothing is created and no task is sent.
- The key with a different request is 422 `idempotency_key_reused` (the draft's status for a reused key: the
  request is well-formed but cannot be processed as the retry it claims to be).
- A request whose key another request still holds waits for that one to end (the primary key makes it wait)
  and then replays its answer, or, if it failed, does the work itself; after idempotency_wait_s (10 s) it gets
  409 `idempotency_key_in_use` with Retry-After (the draft's status for a retry while the first is in progress).
- Only a success is stored: a refused request (422, 429, ...) created nothing and a retry is judged afresh.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from algocomp.platform.db.accounts import Principal
from algocomp.platform.db.idempotency import KeyInUse
from algocomp.platform.settings import Settings
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.errors import ApiError

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 200
KEY_CHARS = r"[A-Za-z0-9._:~+/=-]"
_KEY = re.compile(rf"{KEY_CHARS}{{1,{MAX_KEY_CHARS}}}")
# as documented in OpenAPI: the key bare or as a quoted string
KEY_PATTERN = rf'^(?:{KEY_CHARS}{{1,{MAX_KEY_CHARS}}}|"{KEY_CHARS}{{1,{MAX_KEY_CHARS}}}")$'
RETRY_AFTER_S = 1

KEY_DESCRIPTION = (
    "A key of the client's choosing (a fresh UUID per request) that makes the request safe to retry: a repeat with "
    "the same key and body returns the first answer (status, body, Location; header Idempotent-Replayed: true) "
    "and creates nothing. 1-200 characters of letters, digits and ._:~+/=- (bare or as a quoted string); kept "
    "per user for 24 h (setting idempotency_ttl_s). The same key with another body is 422 "
    "idempotency_key_reused; while a request with the key is still being handled, 409 idempotency_key_in_use."
)
IDEMPOTENCY_RESPONSES = {
    409: {
        "description": "a request with the same Idempotency-Key is still being handled (error.code "
        "idempotency_key_in_use); retry after Retry-After"
    },
}
IDEMPOTENCY_422 = (
    "; a malformed Idempotency-Key, or one used before for a different request (error.field Idempotency-Key)"
)


@dataclass(frozen=True)
class IdempotentRequest:
    """A POST made with a key: the key and the fingerprint of what was asked."""

    key: str
    method: str
    path: str
    fingerprint: str


def parse_key(raw: str) -> str:
    """The key of the header's value (bare or quoted); 422 naming the header if it is malformed."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not _KEY.fullmatch(text):
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"the {KEY_HEADER} header must be 1-{MAX_KEY_CHARS} characters of letters, digits and ._:~+/=- "
            '(bare or as a quoted string, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324")',
            field=KEY_HEADER,
        )
    return text


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path and the body, the body as canonical JSON (so the order of its members and
    its spacing do not matter); a body that is not JSON counts as its bytes."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
        ).encode("utf-8")
    except (ValueError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8"), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def idempotent_request(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            description=KEY_DESCRIPTION,
            examples=["8e03978e-40d5-43e8-bc93-6894a57f9324"],
            json_schema_extra={"maxLength": MAX_KEY_CHARS + 2, "pattern": KEY_PATTERN},
        ),
    ] = None,
) -> IdempotentRequest | None:
    """The request's key and fingerprint, or None when it has no Idempotency-Key."""
    if key is None:
        return None
    parsed = parse_key(key)
    return IdempotentRequest(
        parsed, request.method, request.url.path, fingerprint(request.method, request.url.path, await request.body())
    )


IdempotencyKey = Annotated[IdempotentRequest | None, Depends(idempotent_request)]


def claim_or_replay(
    uow: UnitOfWork, caller: Principal, settings: Settings, request: IdempotentRequest | None
) -> JSONResponse | None:
    """Before a keyed POST does anything: claim its key for this transaction (None: go on, and `remember` the
    answer), or the stored answer to replay. 422 for a key used for another request, 409 when the request that
    holds the key is still running after settings.idempotency_wait_s."""
    if request is None:
        return None
    try:
        stored = uow.idempotency.claim(
            caller.user_id,
            request.key,
            method=request.method,
            path=request.path,
            fingerprint=request.fingerprint,
            ttl_s=settings.idempotency_ttl_s,
            wait_s=settings.idempotency_wait_s,
        )
    except KeyInUse as error:
        raise _in_use(request.key) from error
    if stored is None:
        return None
    if stored.fingerprint != request.fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"the {KEY_HEADER} {request.key!r} was used for a different request (another body or route); a retry "
            "must repeat its request exactly, and a new request needs a new key",
            field=KEY_HEADER,
        )
    if stored.status_code is None:  # never committed so; only if the record was written by hand
        raise _in_use(request.key)
    headers = {REPLAYED_HEADER: "true"}
    if stored.location:
        headers["Location"] = stored.location
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


def remember(
    uow: UnitOfWork,
    caller: Principal,
    settings: Settings,
    request: IdempotentRequest | None,
    status_code: int,
    body: BaseModel,
    location: str | None,
) -> None:
    """Store the answer of a keyed POST that claimed its key, in its transaction (nothing without a key): the
    route's last database statement, once the answer is built."""
    if request is None:
        return
    uow.idempotency.record(
        caller.user_id,
        request.key,
        status_code=status_code,
        body=jsonable_encoder(body),
        location=location,
        ttl_s=settings.idempotency_ttl_s,
    )


def _in_use(key: str) -> ApiError:
    return ApiError(
        409,
        "idempotency_key_in_use",
        f"a request with the {KEY_HEADER} {key!r} is still being handled; retry after a moment to get its answer",
        field=KEY_HEADER,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
