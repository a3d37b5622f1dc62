"""Backends chosen from the settings: the embedded defaults, or the servers the environment names."""

from __future__ import annotations

import os
import socket

from pipelines.catalog import Catalog, holders
from pipelines.clip_job import CatalogIndex
from pipelines.config import Settings
from pipelines.match.index import LayeredIndex
from pipelines.storage import Storage
from pipelines.storage.local import LocalStorage
from pipelines.storage.s3 import S3Storage
from pipelines.storage.sources import SourceRule


def open_storage(settings: Settings) -> Storage:
    """The object store the settings describe: a folder under ``MEDIAWORKER_HOME`` unless S3 is configured."""
    if settings.s3 is not None:
        return S3Storage(settings.s3)
    return LocalStorage(settings.objects_dir)


class WorkerRuntime:
    """What one worker process holds: the settings, and a catalog and a store opened on first use.

    Opened lazily so that nothing is connected when Celery forks its pool; :meth:`after_fork` drops any
    connection a pool process inherited, so no two processes ever share one.
    """

    def __init__(self, settings: Settings) -> None:
        """Raises ``ConfigError`` for an invalid bucket in ``MEDIAWORKER_SOURCE_BUCKETS``."""
        self.settings = settings
        self.sources = SourceRule.of(settings)
        """What a task may name as its source (checked before anything is read)."""
        self._catalog: Catalog | None = None
        self._storage: Storage | None = None
        self._index: CatalogIndex | None = None

    def match_index(self) -> LayeredIndex:
        """The catalog's fingerprint index, brought up to date with the fingerprints added, replaced or deleted
        since its last use (``CatalogIndex``): built whole once, then only what changed is read. The whole index
        is a snapshot under ``MEDIAWORKER_HOME/match-index`` that the worker's processes map and share."""
        if self._index is None:
            self._index = CatalogIndex(self.catalog, snapshots=self.settings.home / "match-index")
        return self._index.current()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.open(self.settings.catalog_url)
        return self._catalog

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    @property
    def worker_id(self) -> str:
        """``host:pid`` of this process: the holder named in the job leases it takes."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def after_fork(self) -> None:
        if self._catalog is not None:
            self._catalog.engine.dispose(close=False)
        self._storage = None


def holder_is_alive(holder: str) -> bool:
    """True when a lease holder (``host:pid``) is a process of this host that still runs (``holders``' rule,
    the one local jobs are held by too)."""
    return holders.holder_is_alive(holder)


def holder_is_dead(holder: str) -> bool:
    """True when a lease holder (``host:pid``) is a process of this host that no longer runs."""
    return holders.holder_is_gone(holder)
