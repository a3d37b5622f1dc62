"""The Celery side and the command line: they move work and bytes; all logic lives in ``pipelines/``."""
