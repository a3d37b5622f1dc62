"""``mediaworker submit``: put a local master in the masters bucket and enqueue its job."""

from __future__ import annotations

from pathlib import Path
import re
import uuid

from celery import Celery

from pipelines.catalog import validate_asset_id
from pipelines.errors import ConfigError, InvalidRequest
from pipelines.storage import ObjectRef, sha256_of
from pipelines.storage.sources import check_source
from workers.enqueue import enqueue_process_asset
from workers.runtime import WorkerRuntime


def submit_job(app: Celery, runtime: WorkerRuntime, source: str, *, asset_id: str | None = None) -> str:
    """Enqueue ``mediaworker.process_asset`` for ``source``; upload it first if it is a local file.

    The job row is created here, queued, under the id the task will carry, so ``mediaworker status`` knows
    the job before a worker does. An ``s3://`` source must pass the workers' own rule
    (``pipelines.storage.sources``: a valid key in the masters bucket or ``MEDIAWORKER_SOURCE_BUCKETS``), checked
    before anything is created or sent. Raises ``ConfigError`` for a missing local file or a refused ``s3://``
    source, ``ValueError`` for an invalid asset id, ``StorageError`` when the upload fails.
    """
    settings = runtime.settings
    if asset_id is not None:
        validate_asset_id(asset_id)
    if source.startswith("s3://"):
        try:
            check_source(source, runtime.sources)
        except InvalidRequest as refused:
            raise ConfigError(f"cannot submit this source: {refused.message}") from None
        if asset_id is None:
            raise ConfigError("an s3:// source needs --asset-id (its content is not read here)")
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"no such file: {source}")
        digest = sha256_of(path)
        asset_id = asset_id or f"sha256-{digest[:16]}"
        ref = ObjectRef(settings.masters_bucket, f"uploads/{digest[:16]}/{_safe_name(path.name)}")
        runtime.storage.put_file(path, ref, content_type="application/octet-stream")
        source = ref.uri
    job_id = str(uuid.uuid4())
    runtime.catalog.create_job(asset_id=asset_id, source_uri=source, job_id=job_id)
    enqueue_process_asset(app, job_id=job_id, asset_id=asset_id, source=source)
    return job_id


def _safe_name(name: str) -> str:
    """A file name as one object-key segment: no separators or control characters, at most 200 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .") or "master"
    return cleaned[:200]
