"""The platform layer: what the services share and the engine library never imports.

settings (ALGOCOMP_* variables), logs (structured JSON logging), db (the Postgres models, a repository per
aggregate root, the unit of work), storage (S3), queue (the Celery application and task names), progress (run
events over Redis) and tracking (MLflow). Every module here needs the `server` extra; docs/architecture.md draws
the layers and tests/test_layers.py holds them.
"""
