"""Per-team quota: how many of a team's runs may be queued or running at once (settings.team_active_runs_max).
A request that would go over it is refused with 429 and Retry-After, before anything is stored."""

from __future__ import annotations

from algocomp.platform.db.accounts import Principal
from algocomp.platform.settings import Settings
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.errors import ApiError


def check_active_runs(uow: UnitOfWork, caller: Principal, settings: Settings, new_runs: int) -> None:
    """429 if `new_runs` more would take the caller's team over its quota of queued + running runs. The count
    is taken under a per-team lock held until the request's transaction ends, so concurrent requests queue."""
    limit = settings.team_active_runs_max
    active = uow.runs.active_count(caller.team_id)
    if active + new_runs > limit:
        raise ApiError(
            429,
            "quota_exceeded",
            f"team {caller.team_name!r} has {active} runs queued or running and may have at most {limit}; this "
            f"request adds {new_runs}. Wait for some to finish or cancel some, then retry",
            headers={"Retry-After": str(settings.team_quota_retry_after_s)},
            active=active,
            limit=limit,
        )
