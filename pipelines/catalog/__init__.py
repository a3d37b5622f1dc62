"""The catalog: one SQLAlchemy layer over SQLite (embedded default) and PostgreSQL (production).

Every write is an upsert or a replace inside one transaction, so a rerun of a job for the same asset replaces
its results instead of adding rows. Database failures surface as ``CatalogError``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
import fcntl
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
import uuid

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipelines.catalog import states
from pipelines.catalog.inserts import upsert
from pipelines.catalog.models import Asset, AssetMatch, FingerprintRow, Job, Rendition, utcnow
from pipelines.catalog.records import AssetRecord, FingerprintRecord, MatchRecord, RenditionRecord
from pipelines.catalog.states import JobStatus
from pipelines.errors import CatalogError
from pipelines.ids import validate_asset_id

if TYPE_CHECKING:
    from pipelines.document import JobDocument

__all__ = ["Asset", "AssetMatch", "AssetRecord", "Catalog", "FingerprintRecord", "FingerprintRow", "Job",
           "JobStatus", "MatchRecord", "Rendition", "RenditionRecord", "asset_prefix", "validate_asset_id"]

_MIGRATION_LOCK = 0x6D656469  # any constant; "medi"
_ASSET_LOCKS = 0x61737374  # "asst": the key space of the per-asset locks (the two-key form of advisory locks)
_MIGRATIONS = Path(__file__).with_name("migrations")


class Catalog:
    """Repository functions over one database. Open with :meth:`open`, which migrates the schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Connect to ``url`` (an SQLAlchemy URL) and bring its schema to the newest migration.

        Safe to call from many processes at once on a database that does not exist yet (see :meth:`migrate`).
        Raises ``CatalogError`` when the database cannot be reached, created or migrated."""
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, pool_pre_ping=True)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            catalog = cls(engine)
            catalog.migrate()
        except (SQLAlchemyError, OSError) as exc:
            raise CatalogError(f"cannot open the catalog: {exc}") from exc
        return catalog

    def migrate(self) -> None:
        """Bring the schema to the newest migration, one process at a time.

        Processes starting together on one database (workers, or several ``mediaworker`` commands on a fresh
        home) must not run the migrations side by side: each would find no table and create it, and all but
        one would fail with "table … already exists". PostgreSQL serialises them with an advisory lock held
        until the migration's transaction ends. SQLite runs DDL outside any transaction (Python's driver opens
        one only before a data change), so there a lock on a file beside the database serialises them; the
        second process then finds the schema current and does nothing.
        """
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._migration_file_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _migration_file_lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``<database>.migrate-lock`` for a file SQLite database; nothing otherwise
        (PostgreSQL locks inside its transaction, and an in-memory database has a single connection)."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; ``CatalogError`` on any database failure."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog write failed: {exc}") from exc

    # Jobs -----------------------------------------------------------------------------------------

    def create_job(self, *, asset_id: str, source_uri: str, job_id: str | None = None) -> str:
        """Create a ``queued`` job row (under ``job_id``, or a new uuid4) and return its id."""
        job_id = job_id or str(uuid.uuid4())
        with self.session() as session:
            session.add(Job(id=job_id, asset_id=asset_id, source_uri=source_uri, status=states.INITIAL.value,
                            percent=0.0))
        return job_id

    def start_job(self, job_id: str, *, holder: str | None = None) -> None:
        """Mark a job ``running`` without a lease: the caller runs it in this process (``mediaworker process``).

        ``holder`` names that process (``pipelines.catalog.holders.this_process()``): a job whose holder is
        gone without ending it is ended ``interrupted`` (``leases.end_interrupted_local_jobs``). A job started
        without one is never checked."""
        with self.session() as session:
            job = _get(session, Job, job_id)
            states.advance(job, JobStatus.RUNNING)
            job.started_at, job.attempts = utcnow(), job.attempts + 1
            job.claimed_by, job.lease_expires_at = holder, None

    def record_progress(self, job_id: str, *, stage: str, percent: float) -> None:
        with self.session() as session:
            job = _get(session, Job, job_id)
            job.stage, job.percent = stage, round(percent, 2)

    def fail_job(
        self, job_id: str, *, code: str, message: str, document: JobDocument, retrying: bool = False
    ) -> None:
        """Record a failure: final (``failed``), or ``retrying`` when the caller will run the job again.

        The one failure of a job (``states.fail``) with its ``document``. Raises ``JobStateError`` (a
        ``CatalogError``) when the job is already over, e.g. cancelled while it ran."""
        with self.session() as session:
            job = _get(session, Job, job_id)
            states.fail(job, code=code, message=message, retrying=retrying)
            job.document = document.to_json()

    def complete_job(
        self,
        job_id: str,
        *,
        asset: AssetRecord,
        renditions: Sequence[RenditionRecord],
        document: JobDocument,
        fingerprint: FingerprintRecord | None = None,
        matches: Sequence[MatchRecord] = (),
    ) -> str | None:
        """Record a successful job at once: upsert the asset, replace its renditions, fingerprint and matches,
        store the document (its JSON: the document column is where it leaves the process).

        Returns the prefix of the ladder this job replaces (the one the asset's previous job published; ``None``
        for a new asset): the caller removes it from the store, since nothing in the catalog points at it any
        more — the replaced job's document is withdrawn in the same transaction (:func:`_withdraw`). It is read
        under the asset's lock (:func:`_lock_asset`), so of jobs of one asset completing together each replaces
        exactly the ladder the one before it recorded, and no ladder is left that nobody points to."""
        with self.session() as session:
            job = _get(session, Job, job_id)
            asset_id = job.asset_id
            _lock_asset(session, asset_id)
            session.refresh(job)  # as it is now, under the lock: on SQLite the read above preceded the transaction
            previous = session.get(Asset, asset_id)
            replaced_job = session.get(Job, previous.latest_job_id) if previous and previous.latest_job_id else None
            replaced = _published(replaced_job.document) if replaced_job is not None else None
            if replaced_job is not None and replaced_job.id != job_id:
                replaced_job.document = _withdraw(replaced_job.document, f"replaced by job {job_id}")
            values = {**asdict(asset), "id": asset_id, "latest_job_id": job_id, "updated_at": utcnow()}
            upsert(session, Asset, values, key="id")
            session.execute(delete(Rendition).where(Rendition.asset_id == asset_id))
            session.add_all(Rendition(asset_id=asset_id, job_id=job_id, **asdict(row)) for row in renditions)
            session.execute(delete(FingerprintRow).where(FingerprintRow.asset_id == asset_id))
            if fingerprint is not None:
                session.add(FingerprintRow(asset_id=asset_id, job_id=job_id, **asdict(fingerprint)))
            session.execute(delete(AssetMatch).where(AssetMatch.asset_id == asset_id))
            session.add_all(AssetMatch(asset_id=asset_id, job_id=job_id, **asdict(row)) for row in matches)
            states.advance(job, JobStatus.SUCCEEDED)
            job.stage, job.percent, job.document = "done", 100.0, document.to_json()
            job.lease_expires_at = None  # the lease ends; claimed_by keeps who completed it
        return replaced

    # Reads ----------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as session:
            return session.get(Job, job_id)

    def latest_job_for_asset(self, asset_id: str) -> Job | None:
        with self.session() as session:
            query = select(Job).where(Job.asset_id == asset_id).order_by(Job.created_at.desc(), Job.id).limit(1)
            return session.scalars(query).first()

    def get_asset(self, asset_id: str) -> Asset | None:
        with self.session() as session:
            return session.get(Asset, asset_id)

    def fingerprints(self, *, only: Collection[str] | None = None) -> Iterator[tuple[str, bytes, bytes | None]]:
        """Every asset's fingerprint items and landmarks (raw little-endian uint32 bytes; landmarks may be
        ``None``), or ``only`` those assets', streamed in batches."""
        query = select(FingerprintRow.asset_id, FingerprintRow.items, FingerprintRow.landmarks).order_by(
            FingerprintRow.asset_id)
        wanted = sorted(only) if only is not None else [None]
        with self.session() as session:
            for at in range(0, len(wanted), 500):  # a bounded IN list per query
                batch = query if only is None else query.where(FingerprintRow.asset_id.in_(wanted[at : at + 500]))
                for row in session.execute(batch.execution_options(yield_per=500)):
                    yield row.asset_id, row.items, row.landmarks

    def fingerprint_stamps(self) -> dict[str, str]:
        """When each asset's fingerprint was last written, by asset: what an index in memory compares to know
        which fingerprints it lacks, holds stale, or holds for a deleted asset, without reading the items."""
        with self.session() as session:
            rows = session.execute(select(FingerprintRow.asset_id, FingerprintRow.updated_at))
            return {row.asset_id: str(row.updated_at) for row in rows}

    def fingerprints_version(self) -> tuple[int, str]:
        """Changes whenever a fingerprint is added, replaced or deleted: when a cached index is stale."""
        with self.session() as session:
            count, newest = session.execute(
                select(func.count(FingerprintRow.asset_id), func.max(FingerprintRow.updated_at))
            ).one()
            return int(count), str(newest)

    def delete_asset(self, asset_id: str) -> str | None:
        """Remove an asset with its renditions, fingerprint and matches; return its published ladder's prefix
        (``""`` when it has none), or ``None`` when there is no such asset.

        The asset's jobs stay, as its history, but their documents are withdrawn (:func:`_withdraw`): none
        points at the outputs the caller now removes. Every ladder of the asset lies under
        :func:`asset_prefix`, which the caller removes whole (a ladder of a job that died publishing is named
        by no document)."""
        with self.session() as session:
            _lock_asset(session, asset_id)
            asset = session.get(Asset, asset_id)
            if asset is None:
                return None
            job = session.get(Job, asset.latest_job_id) if asset.latest_job_id else None
            prefix = _published(job.document) if job is not None else None
            for past in session.scalars(select(Job).where(Job.asset_id == asset_id, Job.document.is_not(None))):
                if _published(past.document) is not None:
                    past.document = _withdraw(past.document, "the asset was deleted")
            session.execute(delete(AssetMatch).where(
                (AssetMatch.asset_id == asset_id) | (AssetMatch.matched_asset_id == asset_id)))
            for model in (Rendition, FingerprintRow):
                session.execute(delete(model).where(model.asset_id == asset_id))
            session.delete(asset)
            return prefix or ""

    def find_assets(
        self,
        *,
        tempo: tuple[float, float] | None = None,
        key: int | None = None,
        mode: int | None = None,
        content_class: str | None = None,
        isrc: str | None = None,
        artist: str | None = None,
        language: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Asset]:
        """Assets that match every given field, by asset id, at most ``limit``.

        ``tempo`` is an inclusive BPM range; ``artist`` matches any part of the artist, ignoring case; the other
        fields match exactly (``isrc`` as the 12-character code, ``language`` as an ISO 639-3 code).
        """
        query = select(Asset)
        if tempo is not None:
            query = query.where(Asset.tempo.between(min(tempo), max(tempo)))
        exact = ((Asset.key, key), (Asset.mode, mode), (Asset.content_class, content_class), (Asset.isrc, isrc),
                 (Asset.language, language), (Asset.kind, kind))
        for column, value in exact:
            if value is not None:
                query = query.where(column == value)
        if artist:
            query = query.where(func.lower(Asset.artist).contains(artist.lower(), autoescape=True))
        with self.session() as session:
            return list(session.scalars(query.order_by(Asset.id).limit(max(0, limit))))

    def renditions(self, asset_id: str) -> list[Rendition]:
        with self.session() as session:
            query = select(Rendition).where(Rendition.asset_id == asset_id).order_by(Rendition.bandwidth.desc())
            return list(session.scalars(query))


def asset_prefix(asset_id: str) -> str:
    """The folder of the output bucket under which every ladder of ``asset_id`` is published, one sub-folder a
    job (``<content>-<ladder>-<job>``): what deleting the asset removes."""
    return f"hls/{validate_asset_id(asset_id)}"


def _lock_asset(session: Session, asset_id: str) -> None:
    """Hold the asset's lock until the session's transaction ends: the first statement of a transaction that
    reads what an asset points at and then changes it, so that no other such transaction runs in between.

    PostgreSQL: a transaction-scoped advisory lock on a 32-bit hash of the asset id (a collision only makes two
    assets wait for each other). SQLite has one lock for the whole database, and Python's driver begins a
    transaction only before a data change, so the reads before it would run outside the transaction, each on a
    snapshot of its own: a second writer could commit between this transaction's read and its write. Making
    the first statement a write (an UPDATE that matches no row still is one) opens the transaction and takes
    the database's write lock at once, waiting for any other writer (``busy_timeout``), the way
    ``BEGIN IMMEDIATE`` would; every read after it sees the latest state, and no writer comes in between.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(asset_id.encode()).digest()[:4], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": _ASSET_LOCKS, "key": key})
    elif dialect == "sqlite":
        session.execute(update(Asset).where(Asset.id == asset_id).values(updated_at=Asset.updated_at),
                        execution_options={"synchronize_session": False})


def _published(document: dict[str, Any] | None) -> str | None:
    """The prefix of the outputs a stored job document points at; ``None`` when it points at none."""
    hls = (document or {}).get("hls")
    prefix = hls.get("prefix") if isinstance(hls, dict) else None
    return str(prefix) if prefix else None


def _withdraw(document: dict[str, Any] | None, reason: str) -> dict[str, Any] | None:
    """A stored job document whose outputs were removed from the store: ``hls`` null, every other URI of those
    outputs (the report, the cover art, the video's pictures…) null, and ``withdrawn`` saying why. The rest —
    the probe, the features, the fingerprint's summary — stays: it is what the job measured, still true."""
    prefix = _published(document)
    if document is None or prefix is None:
        return document
    marker = f"/{prefix}/"

    def without(value: Any) -> Any:
        if isinstance(value, str):
            return None if marker in value else value
        if isinstance(value, dict):
            return {key: without(item) for key, item in value.items()}
        if isinstance(value, list):
            return [without(item) for item in value]
        return value

    return {**without(document), "hls": None, "withdrawn": reason}


def _get(session: Session, model: type[Job], key: str) -> Job:
    row = session.get(model, key)
    if row is None:
        raise CatalogError(f"no {model.__tablename__} row {key!r}")
    return row


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL waits for the lock it needs too
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
