"""Health: liveness (/healthz) and readiness (/readyz: Postgres, Redis and S3 reachable, Celery beat alive)."""
