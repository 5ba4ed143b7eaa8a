"""Optional parts of algocomp and the pip extras that provide them.

`pip install algocomp` installs what the engine, the local `algocomp` commands and their outputs need. The API's
client (and the `algocomp` commands that talk to the API) needs the `client` extra; the services and their
plumbing (algocomp.platform.settings, db, queue, storage, progress, tracking) need the `server` extra. A module
that needs an extra turns the ImportError of a missing package into MissingExtra, which says what to install.
"""

from __future__ import annotations

from typing import NoReturn

# The top-level modules each extra provides (a missing one of these means the extra is not installed).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "client": frozenset({"httpx"}),
    "server": frozenset(
        {
            "fastapi",
            "uvicorn",
            "sse_starlette",
            "sqlalchemy",
            "psycopg",
            "alembic",
            "celery",
            "kombu",
            "redis",
            "boto3",
            "botocore",
            "mlflow",
            "flower",
            "pydantic_settings",
            "httpx",
        }
    ),
}


class MissingExtra(ModuleNotFoundError):
    """A part of algocomp was used whose optional dependencies are not installed."""

    def __init__(self, extra: str, feature: str, module: str | None) -> None:
        self.extra = extra
        self.feature = feature
        missing = f" ({module} is not installed)" if module else ""
        super().__init__(
            f"{feature} needs algocomp's '{extra}' extra{missing}: pip install 'algocomp[{extra}]'", name=module
        )


def raise_missing_extra(error: ImportError, extra: str, feature: str) -> NoReturn:
    """Re-raise `error` as MissingExtra when the module it could not find belongs to `extra`; otherwise (a bug, or
    a package broken in another way) re-raise it unchanged."""
    name = getattr(error, "name", None) or ""
    if isinstance(error, ModuleNotFoundError) and name.split(".", 1)[0] in EXTRA_MODULES[extra]:
        raise MissingExtra(extra, feature, name) from error
    raise error
