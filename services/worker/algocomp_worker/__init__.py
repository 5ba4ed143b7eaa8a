"""The Celery worker that runs simulations: claims a run, runs the engine, publishes progress, uploads the run's
files to S3, stores its summary in Postgres and hands the finished run to the aggregator.

Start it with `celery -A algocomp_worker.app:celery_app worker -Q sweep,plots,runs,artifacts` (see
services/worker/README.md).
"""
