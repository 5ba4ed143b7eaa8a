"""What the `algocomp` command needs to know about the API before it talks to it (no HTTP library needed)."""

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
