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
from typing import Literal

from pipelines.errors import ConfigError

# Demuxers a master may be read with. Everything else — notably ``hls``, ``concat``, ``image2`` and the
# other demuxers that open further files or URLs — is refused by ffmpeg itself via ``-format_whitelist``.
ACCEPTED_DEMUXERS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi", "mpegts", "mpeg", "flv",
    "wav", "w64", "flac", "ogg", "mp3", "aac", "aiff", "caf",
)


CallKind = Literal["probe", "picture", "audio_decode", "video_decode", "transcode", "quality"]
"""What an ffmpeg or ffprobe run does, which chooses its time limit (:meth:`Limits.timeout_s`)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What a master may be before it is rejected, and how long and how large a subprocess may run.

    Each kind of ffmpeg/ffprobe run has a wall-clock limit of its own (:meth:`timeout_s`), in seconds: a
    constant for the runs whose work does not grow with the master, else a floor plus a factor times the
    master's duration. They stop a decoder stuck on a crafted file; set far above a normal run on a busy
    machine, they never end one.
    """

    max_duration_s: float = 6 * 3600.0
    max_width: int = 7680
    max_height: int = 4320
    max_streams: int = 16
    probe_timeout_s: float = 60.0
    """ffprobe describing a master: it reads the headers and a few packets, whatever the master's length."""
    picture_timeout_s: float = 60.0
    """One picture: the poster (a seek, at most one group of pictures decoded at full size, one JPEG written)
    or the embedded cover art copied out."""
    audio_decode_timeout_floor_s: float = 120.0
    audio_decode_timeout_factor: float = 0.5
    """The audio decode runs as fast as the analyses read its PCM: 40× real time or more on one core
    (``bench/features_bench.py``); 0.5 s a second of master leaves twenty times that for a loaded machine."""
    video_decode_timeout_floor_s: float = 300.0
    video_decode_timeout_factor: float = 10.0
    """The scene analysis decodes the whole picture at full size and looks at every frame (about 2 ms of CPU
    each): 0.6× real time for 1080p on a 2-core machine at load 15 (``bench/video_bench.py``). Half the
    transcode's, which makes the same decode and encodes every rung besides."""
    transcode_timeout_floor_s: float = 300.0
    transcode_timeout_factor: float = 20.0
    """The transcode: one decode and every rung encoded (x264 ``veryfast``), in one process."""
    quality_timeout_floor_s: float = 300.0
    quality_timeout_factor: float = 20.0
    """The VMAF pass decodes the master and every rung again and scores them: about half the encode's CPU time
    (``bench/vmaf_bench.py``), given the transcode's limit."""
    process_memory_mb: int = 8192
    """Address space one ffmpeg or ffprobe may map (RLIMIT_AS): a crafted file cannot exhaust the worker."""
    output_file_mb: int = 16384
    """Largest file a subprocess may write (RLIMIT_FSIZE): a runaway encode cannot fill the disk."""
    max_tasks: int = 4096
    """RLIMIT_NPROC: processes and threads the worker's user may have when a subprocess forks or starts a thread.
    Per user, not per process (every worker and ffmpeg thread of the uid counts) and ignored for root: a
    fork-bomb stop for a worker running as its own user (the Docker image does), set well above normal use."""
    sandbox: bool = True
    """Run decoders under Landlock (``MEDIAWORKER_SANDBOX``): only the job's files, no network."""

    def rlimits(self) -> dict[int, int]:
        """The resource limits every media subprocess runs under (the runner adds RLIMIT_CPU from its timeout)."""
        return {
            resource.RLIMIT_AS: self.process_memory_mb << 20,
            resource.RLIMIT_FSIZE: self.output_file_mb << 20,
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_NPROC: self.max_tasks,
        }

    @property
    def max_pixels(self) -> int:
        """Largest frame area (pixels) a decoder may allocate: ffmpeg's ``-max_pixels``."""
        return self.max_width * self.max_height

    def timeout_s(self, kind: CallKind, *, duration_s: float = 0.0) -> float:
        """The wall-clock limit (seconds) of one run of ``kind`` over a master of ``duration_s`` seconds."""
        if kind == "probe":
            return self.probe_timeout_s
        if kind == "picture":
            return self.picture_timeout_s
        floor, factor = {
            "audio_decode": (self.audio_decode_timeout_floor_s, self.audio_decode_timeout_factor),
            "video_decode": (self.video_decode_timeout_floor_s, self.video_decode_timeout_factor),
            "transcode": (self.transcode_timeout_floor_s, self.transcode_timeout_factor),
            "quality": (self.quality_timeout_floor_s, self.quality_timeout_factor),
        }[kind]
        return floor + factor * duration_s


@dataclass(frozen=True, kw_only=True)
class EncoderSettings:
    """Encoder knobs shared by every rung; the rungs themselves come from the ladder policy."""

    x264_preset: str = "veryfast"
    segment_s: float = 6.0
    threads: int = 0  # 0: let ffmpeg choose


def bundled_ffmpeg() -> str:
    """The ffmpeg shipped in the ``imageio-ffmpeg`` wheel (unlike Debian's, built with libvmaf), or ``ffmpeg``
    on ``PATH`` where the wheel holds none.

    Found by its name, not run: ``imageio_ffmpeg.get_ffmpeg_exe()`` would start it unconfined to check it, and
    every ffmpeg runs through :mod:`pipelines.media.confined`. A build without libvmaf is named as such by the
    quality pass.
    """
    from importlib.resources import files  # here, not at import time: only the quality pass needs it

    folder = Path(str(files("imageio_ffmpeg.binaries")))
    found = sorted(folder.glob("ffmpeg-*"))
    return str(found[0]) if found else "ffmpeg"


@dataclass(frozen=True, kw_only=True)
class QualitySettings:
    """The video quality pass (VMAF, PSNR, SSIM of every video rung against the master).

    ``subsample`` scores every n-th frame (libvmaf's ``n_subsample``; its motion feature still sees every
    frame); ``threads`` is libvmaf's ``n_threads``. Its time limit is :class:`Limits`' (``quality``).
    """

    ffmpeg: str = field(default_factory=bundled_ffmpeg)
    subsample: int = 60
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How Celery workers hold jobs. Times in seconds.

    The broker must not redeliver a message while its task may still be running: Redis's
    ``visibility_timeout`` is set above ``task_time_limit_s``, and RabbitMQ's ``consumer_timeout`` must be too
    (a server setting: see ``docker/rabbitmq.conf``).
    """

    result_backend: str | None = field(default=None, repr=False)
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
    ca_bundle: str | None = None
    """PEM file of the certificate authorities to trust for the S3 server (TLS); ``None``: the system's."""
    sse: str | None = None
    """Server-side encryption of every object written: ``AES256`` (SSE-S3) or ``aws:kms`` (SSE-KMS)."""
    sse_kms_key_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class BrokerTls:
    """TLS files for an ``amqps://`` or ``rediss://`` broker (and result backend); all optional."""

    ca_file: str | None = None
    """PEM file of the certificate authorities to trust; ``None``: the system's. The server is always verified."""
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    home: Path
    catalog_url: str = field(repr=False)  # URLs may carry passwords: a logged Settings shows neither
    broker_url: str = field(repr=False)
    output_bucket: str = "media-out"
    masters_bucket: str = "masters"
    more_source_buckets: tuple[str, ...] = ()
    """Buckets besides the masters bucket that a task may name as its source (``MEDIAWORKER_SOURCE_BUCKETS``;
    the rule is ``pipelines.storage.sources.SourceRule``)."""
    s3: S3Settings | None = None
    broker_tls: BrokerTls = BrokerTls()
    identity_key: bytes | None = field(default=None, repr=False)
    """Key of the uploader pseudonyms (``MEDIAWORKER_IDENTITY_KEY``); ``None``: identities are dropped."""
    limits: Limits = Limits()
    encoder: EncoderSettings = EncoderSettings()
    quality: QualitySettings = field(default_factory=QualitySettings)
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
                **_s3_security_from_env(env),
            )
        limits = Limits(
            process_memory_mb=int(_number(env, "MEDIAWORKER_PROCESS_MEMORY_MB", Limits.process_memory_mb)),
            max_duration_s=_number(env, "MEDIAWORKER_MAX_DURATION_S", Limits.max_duration_s),
            max_width=int(_number(env, "MEDIAWORKER_MAX_WIDTH", Limits.max_width)),
            max_height=int(_number(env, "MEDIAWORKER_MAX_HEIGHT", Limits.max_height)),
            max_tasks=int(_number(env, "MEDIAWORKER_PROCESS_MAX_TASKS", Limits.max_tasks)),
            sandbox=_flag(env.get("MEDIAWORKER_SANDBOX", "true"), "MEDIAWORKER_SANDBOX"),
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
            more_source_buckets=_source_buckets(env),
            s3=s3,
            broker_tls=BrokerTls(
                ca_file=env.get("MEDIAWORKER_BROKER_TLS_CA") or None,
                cert_file=env.get("MEDIAWORKER_BROKER_TLS_CERT") or None,
                key_file=env.get("MEDIAWORKER_BROKER_TLS_KEY") or None,
            ),
            identity_key=env["MEDIAWORKER_IDENTITY_KEY"].encode() if env.get("MEDIAWORKER_IDENTITY_KEY") else None,
            limits=limits,
            encoder=encoder,
            quality=QualitySettings(
                ffmpeg=env.get("MEDIAWORKER_VMAF_FFMPEG") or bundled_ffmpeg(),
                subsample=int(_number(env, "MEDIAWORKER_VMAF_SUBSAMPLE", QualitySettings.subsample)),
                threads=int(_number(env, "MEDIAWORKER_VMAF_THREADS", len(os.sched_getaffinity(0)))),
            ),
            worker=worker,
            ffmpeg=env.get("MEDIAWORKER_FFMPEG", "ffmpeg"),
            ffprobe=env.get("MEDIAWORKER_FFPROBE", "ffprobe"),
        )


def _s3_security_from_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """``ca_bundle``, ``sse`` and ``sse_kms_key_id`` of :class:`S3Settings`; raises ``ConfigError``."""
    sse = env.get("MEDIAWORKER_S3_SSE") or None
    kms_key = env.get("MEDIAWORKER_S3_SSE_KMS_KEY_ID") or None
    if sse not in (None, "AES256", "aws:kms"):
        raise ConfigError(f"MEDIAWORKER_S3_SSE must be AES256 or aws:kms, not {sse!r}")
    if sse == "aws:kms" and not kms_key:
        raise ConfigError("MEDIAWORKER_S3_SSE=aws:kms needs MEDIAWORKER_S3_SSE_KMS_KEY_ID")
    if sse == "aws:kms" and not _flag(env.get("MEDIAWORKER_S3_SECURE", "true"), "MEDIAWORKER_S3_SECURE"):
        raise ConfigError("MEDIAWORKER_S3_SSE=aws:kms needs TLS (MEDIAWORKER_S3_SECURE=true)")
    return {"ca_bundle": env.get("MEDIAWORKER_S3_CA_BUNDLE") or None, "sse": sse, "sse_kms_key_id": kms_key}


def _source_buckets(env: Mapping[str, str]) -> tuple[str, ...]:
    """``MEDIAWORKER_SOURCE_BUCKETS``, comma-separated. Raises ``ConfigError`` when it lists the output bucket: a
    task could then name any published ladder, or its own output, as a master. (The names themselves are
    checked where the rule is made, ``SourceRule``.)"""
    names = tuple(name.strip() for name in env.get("MEDIAWORKER_SOURCE_BUCKETS", "").split(",") if name.strip())
    output = env.get("MEDIAWORKER_OUTPUT_BUCKET", "media-out")
    if output in names:
        raise ConfigError(f"MEDIAWORKER_SOURCE_BUCKETS may not list the output bucket ({output!r:.80})")
    return names


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
