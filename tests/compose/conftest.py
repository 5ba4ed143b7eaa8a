"""tests/compose holds `make test-compose` (compose_e2e.py, a script run on its own: it brings up Docker
containers). Nothing here is collected by `make test`."""

collect_ignore_glob = ["*.py"]
