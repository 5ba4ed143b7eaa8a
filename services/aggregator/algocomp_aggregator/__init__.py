"""The aggregator: a Celery worker on its own queue ("aggregate") that receives every finished run and writes
its coordination indicators to Postgres, so a long aggregation never holds up a simulation.

Start it with `celery -A algocomp_aggregator.app:celery_app worker -Q aggregate` (see services/aggregator/README.md).
"""
