"""Backends chosen from the settings: the embedded defaults, or the servers the environment names."""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.s3storage import S3Storage
from pipelines.storage import LocalStorage, Storage


def open_storage(settings: Settings) -> Storage:
    """The object store the settings describe: a folder under ``MEDIAWORKER_HOME`` unless S3 is configured."""
    if settings.s3 is not None:
        return S3Storage(settings.s3)
    return LocalStorage(settings.objects_dir)
