"""Frozen settings, loaded once from the environment and passed in.

Nothing in ``pipelines/`` reads the environment except :func:`Settings.from_env`; stages receive the
sub-config they need (``Limits``, ``LadderPolicy``…) as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path
import resource

from pipelines.errors import ConfigError

# Demuxers a master may be read with. Everything else — notably ``hls``, ``concat``, ``image2`` and the
# other demuxers that open further files or URLs — is refused by ffmpeg itself via ``-format_whitelist``.
ACCEPTED_DEMUXERS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi", "mpegts", "mpeg", "flv",
    "wav", "w64", "flac", "ogg", "mp3", "aac", "aiff", "caf",
)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What a master may be before it is rejected, and how long a subprocess may run."""

    max_duration_s: float = 6 * 3600.0
    max_width: int = 7680
    max_height: int = 4320
    max_streams: int = 16
    probe_timeout_s: float = 60.0
    # A wall-clock limit for a transcode, as a multiple of the master's duration plus a floor.
    transcode_timeout_factor: float = 20.0
    transcode_timeout_floor_s: float = 300.0
    process_memory_mb: int = 8192
    """Address space one ffmpeg or ffprobe may map (RLIMIT_AS): a crafted file cannot exhaust the worker."""
    output_file_mb: int = 16384
    """Largest file a subprocess may write (RLIMIT_FSIZE): a runaway encode cannot fill the disk."""

    def rlimits(self) -> dict[int, int]:
        """The resource limits every media subprocess runs under."""
        return {
            resource.RLIMIT_AS: self.process_memory_mb << 20,
            resource.RLIMIT_FSIZE: self.output_file_mb << 20,
            resource.RLIMIT_CORE: 0,
        }

    @property
    def max_pixels(self) -> int:
        """Largest frame area (pixels) a decoder may allocate: ffmpeg's ``-max_pixels``."""
        return self.max_width * self.max_height

    def transcode_timeout_s(self, duration_s: float) -> float:
        return self.transcode_timeout_floor_s + self.transcode_timeout_factor * duration_s


@dataclass(frozen=True, kw_only=True)
class EncoderSettings:
    """Encoder knobs shared by every rung; the rungs themselves come from the ladder policy."""

    x264_preset: str = "veryfast"
    segment_s: float = 6.0
    max_frame_rate: float = 60.0
    threads: int = 0  # 0: let ffmpeg choose


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How Celery workers hold jobs. Times in seconds.

    The broker must not redeliver a message while its task may still be running: Redis's
    ``visibility_timeout`` is set above ``task_time_limit_s``, and RabbitMQ's ``consumer_timeout`` must be too
    (a server setting: see ``docker/rabbitmq.conf``).
    """

    result_backend: str | None = None
    lease_s: float = 60.0
    max_lost_runs: int = 3
    max_retries: int = 5
    retry_base_s: float = 5.0
    retry_cap_s: float = 300.0
    task_time_limit_s: float = 3 * 3600.0
    task_soft_time_limit_s: float = 3 * 3600.0 - 120.0

    @property
    def visibility_timeout_s(self) -> float:
        return self.task_time_limit_s + 600.0


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """Connection to an S3 API server (MinIO in production). Secrets never leave this object."""

    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str | None = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    home: Path
    catalog_url: str
    broker_url: str
    output_bucket: str = "media-out"
    masters_bucket: str = "masters"
    s3: S3Settings | None = None
    limits: Limits = Limits()
    encoder: EncoderSettings = EncoderSettings()
    worker: WorkerSettings = WorkerSettings()
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    @property
    def objects_dir(self) -> Path:
        """Root of the embedded object store: one sub-folder per bucket."""
        return self.home / "objects"

    @property
    def work_dir(self) -> Path:
        """Where jobs keep their per-job scratch folders."""
        return self.home / "work"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``MEDIAWORKER_*`` variables; every one is optional for the embedded default.

        Raises ``ConfigError`` for a value that cannot be used (a half-configured S3 endpoint, a limit
        that is not a number).
        """
        env = os.environ if env is None else env
        home = Path(env.get("MEDIAWORKER_HOME", "./mediaworker-data")).expanduser().resolve()
        endpoint = env.get("MEDIAWORKER_S3_ENDPOINT")
        s3 = None
        if endpoint:
            access, secret = env.get("MEDIAWORKER_S3_ACCESS_KEY"), env.get("MEDIAWORKER_S3_SECRET_KEY")
            if not access or not secret:
                raise ConfigError("MEDIAWORKER_S3_ENDPOINT is set but the access or secret key is missing")
            s3 = S3Settings(
                endpoint=endpoint,
                access_key=access,
                secret_key=secret,
                secure=_flag(env.get("MEDIAWORKER_S3_SECURE", "true"), "MEDIAWORKER_S3_SECURE"),
                region=env.get("MEDIAWORKER_S3_REGION") or None,
            )
        limits = Limits(
            process_memory_mb=int(_number(env, "MEDIAWORKER_PROCESS_MEMORY_MB", Limits.process_memory_mb)),
            max_duration_s=_number(env, "MEDIAWORKER_MAX_DURATION_S", Limits.max_duration_s),
            max_width=int(_number(env, "MEDIAWORKER_MAX_WIDTH", Limits.max_width)),
            max_height=int(_number(env, "MEDIAWORKER_MAX_HEIGHT", Limits.max_height)),
        )
        encoder = EncoderSettings(
            x264_preset=env.get("MEDIAWORKER_X264_PRESET", EncoderSettings.x264_preset),
            segment_s=_number(env, "MEDIAWORKER_SEGMENT_S", EncoderSettings.segment_s),
        )
        hard_limit = _number(env, "MEDIAWORKER_TASK_TIME_LIMIT_S", WorkerSettings.task_time_limit_s)
        worker = WorkerSettings(
            result_backend=env.get("MEDIAWORKER_RESULT_BACKEND") or None,
            lease_s=_number(env, "MEDIAWORKER_LEASE_S", WorkerSettings.lease_s),
            max_lost_runs=int(_number(env, "MEDIAWORKER_MAX_LOST_RUNS", WorkerSettings.max_lost_runs)),
            max_retries=int(_number(env, "MEDIAWORKER_MAX_RETRIES", WorkerSettings.max_retries)),
            retry_base_s=_number(env, "MEDIAWORKER_RETRY_BASE_S", WorkerSettings.retry_base_s),
            retry_cap_s=_number(env, "MEDIAWORKER_RETRY_CAP_S", WorkerSettings.retry_cap_s),
            task_time_limit_s=hard_limit,
            task_soft_time_limit_s=max(1.0, hard_limit - min(120.0, hard_limit / 10)),
        )
        return cls(
            home=home,
            catalog_url=env.get("MEDIAWORKER_CATALOG_URL") or f"sqlite:///{home / 'catalog.sqlite3'}",
            broker_url=env.get("MEDIAWORKER_BROKER_URL", "redis://127.0.0.1:6379/0"),
            output_bucket=env.get("MEDIAWORKER_OUTPUT_BUCKET", "media-out"),
            masters_bucket=env.get("MEDIAWORKER_MASTERS_BUCKET", "masters"),
            s3=s3,
            limits=limits,
            encoder=encoder,
            worker=worker,
            ffmpeg=env.get("MEDIAWORKER_FFMPEG", "ffmpeg"),
            ffprobe=env.get("MEDIAWORKER_FFPROBE", "ffprobe"),
        )


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return value
