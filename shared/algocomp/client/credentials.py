"""Where the API client and the `algocomp` command find their API token (stdlib only).

1. the ALGOCOMP_API_TOKEN environment variable;
2. else the credentials file, a JSON object {API base URL: token}: `$ALGOCOMP_CONFIG_DIR/credentials.json`, by
   default `$XDG_CONFIG_HOME/algocomp/credentials.json` (`~/.config/algocomp/` when XDG_CONFIG_HOME is unset).
   The local stack (`make dev`, `make demo`) writes its development user's token there for its API's URL.

The file is written readable by its owner only, and replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

TOKEN_ENV = "ALGOCOMP_API_TOKEN"
CONFIG_DIR_ENV = "ALGOCOMP_CONFIG_DIR"
CREDENTIALS_FILE = "credentials.json"


def config_dir() -> Path:
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "algocomp"


def credentials_path() -> Path:
    return config_dir() / CREDENTIALS_FILE


def _key(base_url: str) -> str:
    return base_url.rstrip("/")


def saved_tokens() -> dict[str, str]:
    """The credentials file's tokens by API URL ({} when there is no readable file)."""
    try:
        data = json.loads(credentials_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(url): str(token) for url, token in data.items()} if isinstance(data, dict) else {}


def find_token(base_url: str) -> str | None:
    """The token to send to the API at `base_url`: the environment's, else the credentials file's, else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    return saved_tokens().get(_key(base_url))


def save_token(base_url: str, token: str) -> Path:
    """Store `token` for the API at `base_url` in the credentials file (mode 0600); returns the file."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = saved_tokens()
    tokens[_key(base_url)] = token
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(tokens, stream, indent=2)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
