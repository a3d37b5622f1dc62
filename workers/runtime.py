"""Backends chosen from the settings: the embedded defaults, or the servers the environment names."""

from __future__ import annotations

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.storage import LocalStorage, Storage


def open_storage(settings: Settings) -> Storage:
    """The object store the settings describe: a folder under ``MEDIAWORKER_HOME`` unless S3 is configured."""
    if settings.s3 is not None:
        raise ConfigError("S3 storage (MEDIAWORKER_S3_ENDPOINT) is not available in this build yet")
    return LocalStorage(settings.objects_dir)
