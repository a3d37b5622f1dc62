"""The hostile-input corpus: masters that are truncated, mislabelled, enormous or crafted, each with its outcome.

The files are generated here (``tests.hostile_media``). Every case runs the whole job in this test process — the
worker, as far as the case can tell — against one home, under tight limits (1.5 GiB per decoder), and asserts:

* the outcome: ``error.code`` (or success);
* that it ended within its limits: no ``*_timeout`` or ``resource_limit`` unless that is the expected code;
* that nothing was written outside the job's own output: the corpus folder and the canary's folder are
  unchanged, no scratch folder is left, and a failed job published nothing;
* that the canary — a file outside the input that the playlist and ``ffconcat`` cases point at — was never
  read: its secret appears in no output, no catalog row and no log line.

The last test runs a good master in the same process after the whole corpus and scans everything again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
import hashlib
import json
import logging
from pathlib import Path
import secrets
import sqlite3
import subprocess
from typing import Any

import pytest

from pipelines.catalog import Catalog
from pipelines.config import Settings
from pipelines.job import JobOutcome, run_job
from pipelines.media.probe import declared_wav_data_bytes, refused_frame_size
from pipelines.storage import SourceVersion
from pipelines.storage.events import NewMaster, parse_bucket_event
from pipelines.storage.local import LocalStorage
from pipelines.storage.s3 import S3Storage
from tests import hostile_media as hostile
from tests.conftest import files_under, make_media
from tests.test_events import _event

SECRET = f"canary-{secrets.token_hex(8)}"
MEMORY_MB = 1536


@dataclass(frozen=True)
class Case:
    make: Callable[[Path, Path, Path], str]
    """(case folder, canary file, home) → the job's source (a path or ``s3://`` address)."""
    code: str | None
    """The expected ``error.code``; ``None``: the job must succeed."""


def _tone(folder: Path, name: str = "tone.flac") -> Path:
    return make_media(folder / name, "-f", "lavfi", "-i", "sine=frequency=700:duration=2")


def _video_moov_at_end(folder: Path) -> Path:
    """Two seconds of 320x240 video and sound as ffmpeg writes MP4 by default: the index at the end."""
    path = make_media(folder / "moov-at-end.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
                      "-f", "lavfi", "-i", "sine=duration=2", "-c:v", "libx264", "-preset", "ultrafast",
                      "-c:a", "aac", "-shortest")
    assert hostile.moov_position(path) > 0.5
    return path


def _object(home: Path, key: str, source: Path) -> str:
    """Put ``source`` in the embedded store's masters bucket under ``key``; return its ``s3://`` address."""
    target = home / "objects" / "masters" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return f"s3://masters/{key}"


def _no_object(home: Path, key: str) -> str:
    """The address of an object that is not there, in a masters bucket that is."""
    (home / "objects" / "masters").mkdir(parents=True, exist_ok=True)
    return f"s3://masters/{key}"


LONG_KEY = "/".join(["k" * 200] * 5) + "/" + "t" * 14 + ".flac"  # exactly 1,024 bytes, in 200-byte segments
assert len(LONG_KEY.encode()) == 1024

CASES: dict[str, Case] = {
    "zero-byte file": Case(lambda d, c, h: str(hostile.write(d / "empty.mp4", b"")), "empty_file"),
    "text named .mp4": Case(lambda d, c, h: str(hostile.write(d / "notes.mp4", b"not a video, honest\n" * 100)),
                            "not_media"),
    "random bytes named .wav": Case(lambda d, c, h: str(hostile.write(d / "noise.wav", secrets.token_bytes(65536))),
                                    "not_media"),
    "truncated MP4 without moov": Case(
        lambda d, c, h: str(hostile.truncated_mp4(d / "truncated.mp4", _video_moov_at_end(d))), "not_media"),
    "valid MP4 with moov at the end": Case(lambda d, c, h: str(_video_moov_at_end(d)), None),
    # The WAV demuxer trusts the file's size over the header's (~6 ms of sound); the probe compares the two.
    "WAV claiming 2 GB with 1 KB of data": Case(lambda d, c, h: str(hostile.lying_wav(d / "liar.wav")),
                                                "truncated_master"),
    "HLS playlist disguised as media": Case(lambda d, c, h: str(hostile.hls_playlist(d / "clip.mp4", c)), "not_media"),
    "ffconcat script disguised as media": Case(lambda d, c, h: str(hostile.ffconcat_script(d / "clip.wav", c)),
                                               "not_media"),
    "16000x16000 frame, declared": Case(lambda d, c, h: str(hostile.image_bomb_avi(
        d / "bomb16k.avi", width=16000, height=16000, container_too=True)), "resolution_too_large"),
    "16000x16000 frame in a 320x240 stream": Case(lambda d, c, h: str(hostile.image_bomb_avi(
        d / "bomb16k-hidden.avi", width=16000, height=16000, container_too=False)), "resolution_too_large"),
    "100000x100000 frame, declared": Case(lambda d, c, h: str(hostile.image_bomb_avi(
        d / "bomb100k.avi", width=100000, height=100000, container_too=True)), "resolution_too_large"),
    "100000x100000 frame in a 320x240 stream": Case(lambda d, c, h: str(hostile.image_bomb_avi(
        d / "bomb100k-hidden.avi", width=100000, height=100000, container_too=False)), "resolution_too_large"),
    # Past the 6-hour default (MEDIAWORKER_MAX_DURATION_S): rejected by the probe before any decode.
    "10-hour silent FLAC": Case(lambda d, c, h: str(hostile.silent_flac(d / "ten-hours.flac", seconds=36000)),
                                "duration_too_long"),
    "64 audio streams": Case(lambda d, c, h: str(hostile.many_audio_streams(d / "streams.mkv", count=64)),
                             "too_many_streams"),
    "non-UTF-8, NUL-laden and megabyte-long tags": Case(
        lambda d, c, h: str(hostile.flac_with_hostile_tags(d / "tags.flac")), None),
    "object key with ../": Case(lambda d, c, h: "s3://masters/uploads/../../etc/passwd", "invalid_source"),
    "object key with NUL": Case(lambda d, c, h: "s3://masters/a\x00b.wav", "invalid_source"),
    "object key with a newline": Case(lambda d, c, h: "s3://masters/a\nb.wav", "invalid_source"),
    "object key of 1,025 bytes": Case(lambda d, c, h: "s3://masters/" + "k" * 1025, "invalid_source"),
    # The embedded store keeps objects as files: a 1,024-byte single segment cannot exist there.
    "object key of 1,024 bytes in one segment": Case(lambda d, c, h: _no_object(h, "k" * 1024), "source_not_found"),
    "object key of 1,024 bytes": Case(lambda d, c, h: _object(h, LONG_KEY, _tone(d, "long-key.flac")),
                                      None),
}


@dataclass
class Worker:
    """One home and one catalog shared by every case, as one worker process has."""

    settings: Settings
    catalog: Catalog
    storage: LocalStorage
    corpus: Path
    canary: Path
    log: Path

    def run(self, source: str, asset_id: str) -> JobOutcome:
        return run_job(self.settings, source=source, catalog=self.catalog, storage=self.storage, asset_id=asset_id)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "corpus").mkdir()
    (root / "outside").mkdir()
    canary = _canary(root / "outside")
    settings = Settings.from_env({"MEDIAWORKER_HOME": str(root / "home"),
                                  "MEDIAWORKER_PROCESS_MEMORY_MB": str(MEMORY_MB)})
    settings = replace(settings, limits=replace(settings.limits, probe_timeout_s=60.0))
    catalog = Catalog.open(settings.catalog_url)
    handler = logging.FileHandler(root / "worker.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield Worker(settings, catalog, LocalStorage(settings.objects_dir), root / "corpus", canary,
                     root / "worker.log")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
        catalog.dispose()


def _canary(folder: Path) -> Path:
    """A WAV outside the corpus that plays the secret: its bytes (in the samples and a tag) are what a decoder
    tricked into reading it would copy into an output."""
    text = SECRET.encode()
    path = make_media(folder / "canary.wav", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1",
                      "-metadata", f"title={SECRET}")
    data = path.read_bytes()
    return hostile.write(path, data[:-len(text) * 4] + text * 4)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(folder)}


def _contains_secret(path: Path) -> bool:
    data = path.read_bytes()
    return SECRET.encode() in data or SECRET.encode("utf-16-le") in data


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_master(name: str, worker: Worker) -> None:
    case = CASES[name]
    folder = worker.corpus / hashlib.sha1(name.encode()).hexdigest()[:10]
    folder.mkdir()
    home = worker.settings.home
    source = case.make(folder, worker.canary, home)
    corpus_before, outside_before = _snapshot(worker.corpus), _snapshot(worker.canary.parent)
    published_before = set(files_under(home / "objects" / worker.settings.output_bucket))
    asset_id = f"case-{hashlib.sha1(name.encode()).hexdigest()[:12]}"

    outcome = worker.run(source, asset_id)

    document = outcome.document.to_json()  # what the uploader sees
    error = document["error"]
    if case.code is None:
        assert document["status"] == "succeeded", error
        assert document["hls"]["renditions"]
    else:
        assert document["status"] == "failed" and error["code"] == case.code, error
        assert error["message"] and not outcome.transient
        assert str(home) not in error["message"]  # no worker paths in what the uploader sees
        assert set(files_under(home / "objects" / worker.settings.output_bucket)) == published_before
    assert error is None or error["code"] == case.code
    assert error is None or not error["code"].endswith("_timeout") and error["code"] != "resource_limit"
    assert _snapshot(worker.corpus) == corpus_before
    assert _snapshot(worker.canary.parent) == outside_before
    assert list((home / "work").iterdir()) == []
    json.dumps(document, allow_nan=False)  # the document is plain JSON, whatever the tags held
    assert SECRET not in json.dumps(document)
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        status, code = db.execute("SELECT status, error_code FROM jobs WHERE id = ?", (outcome.job_id,)).fetchone()
    assert (status, code) == (document["status"], case.code)


def test_hostile_tags_come_out_as_bounded_text(worker: Worker) -> None:
    """The tags of the hostile-tag master: printable text of bounded length, whatever the bytes were."""
    folder = worker.corpus / "tags-again"
    folder.mkdir()
    outcome = worker.run(str(hostile.flac_with_hostile_tags(folder / "tags.flac")), "tags-again")
    probe = outcome.document.to_json()["probe"]
    tags: dict[str, Any] = probe["tags"]
    assert tags, probe
    for key, value in tags.items():
        assert isinstance(value, str) and len(value) <= 100_000 and "\x00" not in key + value, (key, value[:80])
    assert len(json.dumps(tags)) < 200_000  # the megabyte comment did not travel whole into the catalog


def test_after_the_corpus_the_same_process_still_succeeds_and_the_canary_never_leaked(worker: Worker) -> None:
    """The corpus ran in this very process (the tests above, in file order): a good master still succeeds,
    and the canary's secret is nowhere — not in the published ladders, the catalog, the scratch space or the
    log (DEBUG, with every ffmpeg command line)."""
    folder = worker.corpus / "after"
    folder.mkdir()
    outcome = worker.run(str(_tone(folder)), "good-after-corpus")
    assert outcome.succeeded, outcome.document.error
    home = worker.settings.home
    leaked = [p for p in [*files_under(home), worker.log] if _contains_secret(p)]
    assert leaked == []
    assert SECRET.encode() in worker.canary.read_bytes()  # the check would have seen it


# --- a master that changes between its upload notification and the job's download -----------------------------


@dataclass
class S3Worker:
    settings: Settings
    catalog: Catalog
    storage: S3Storage
    client: Any

    def announce(self, key: str) -> NewMaster:
        """The new master that MinIO's notification of the object now at ``key`` announces."""
        stat = self.client.stat_object("masters", key)
        event = _event(s3__object__key=key, s3__object__eTag=stat.etag, s3__object__size=stat.size)
        (master,), _ = parse_bucket_event(json.dumps(event), masters_bucket="masters")
        return master

    def run(self, master: NewMaster) -> JobOutcome:
        return run_job(self.settings, source=master.ref.uri, catalog=self.catalog, storage=self.storage,
                       asset_id=master.asset_id, source_version=SourceVersion(master.version_id, master.etag))


@pytest.fixture
def s3_worker(s3_server: Any, tmp_path: Path) -> Iterator[S3Worker]:
    settings = Settings.from_env({**s3_server.env, "MEDIAWORKER_HOME": str(tmp_path / "home")})
    catalog = Catalog.open(settings.catalog_url)
    assert settings.s3 is not None
    try:
        yield S3Worker(settings, catalog, S3Storage(settings.s3), s3_server.client())
    finally:
        catalog.dispose()


def _published(worker: S3Worker, asset_id: str) -> list[str]:
    if not worker.client.bucket_exists("media-out"):
        return []
    return [o.object_name for o in worker.client.list_objects("media-out", prefix=f"hls/{asset_id}/", recursive=True)]


def test_a_master_deleted_between_its_notification_and_the_download(s3_worker: S3Worker, tmp_path: Path) -> None:
    key = f"gone/{secrets.token_hex(4)}/tone.flac"
    s3_worker.client.fput_object("masters", key, str(_tone(tmp_path)))
    master = s3_worker.announce(key)
    s3_worker.client.remove_object("masters", key)
    outcome = s3_worker.run(master)
    assert outcome.document.error is not None and outcome.document.error.code == "source_not_found"
    assert not outcome.transient
    assert _published(s3_worker, master.asset_id) == []


def test_a_master_replaced_between_its_notification_and_the_download(s3_worker: S3Worker, tmp_path: Path) -> None:
    """The first upload's job finds the object replaced (its ETag is not the announced one) and fails with
    ``source_replaced`` without publishing; the second upload's job processes the second upload — its
    catalog entry's checksum is the second file's, whole."""
    key = f"replaced/{secrets.token_hex(4)}/master.flac"
    first = _tone(tmp_path, "first.flac")
    second = make_media(tmp_path / "second.flac", "-f", "lavfi", "-i", "sine=frequency=330:duration=3")
    s3_worker.client.fput_object("masters", key, str(first))
    announced_first = s3_worker.announce(key)
    s3_worker.client.fput_object("masters", key, str(second))
    announced_second = s3_worker.announce(key)
    assert announced_first.job_id != announced_second.job_id  # two uploads, two jobs

    stale = s3_worker.run(announced_first)
    assert stale.document.status == "failed" and not stale.transient
    assert stale.document.error is not None and stale.document.error.code == "source_replaced", stale.document.error
    assert _published(s3_worker, announced_first.asset_id) == []

    current = s3_worker.run(announced_second)
    assert current.succeeded, current.document.error
    asset = s3_worker.catalog.get_asset(announced_second.asset_id)
    assert asset is not None and asset.content_sha256 == hashlib.sha256(second.read_bytes()).hexdigest()
    assert current.document.probe is not None and current.document.probe.duration_s == pytest.approx(3.0, abs=0.1)


# --- the parsers behind two of the cases ---------------------------------------------------------------------


def test_the_size_a_wav_header_announces(tmp_path: Path) -> None:
    """A WAV ffmpeg wrote to a file announces its real data size; one written to a pipe announces 0xFFFFFFFF
    (unknown), which is never taken for truncation; anything but RIFF/WAVE announces nothing."""
    whole = make_media(tmp_path / "one-second.wav", "-f", "lavfi", "-i", "sine=duration=1:sample_rate=8000")
    assert declared_wav_data_bytes(whole.read_bytes()[:4096]) == 8000 * 2
    piped = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-f", "wav", "-"],
                           capture_output=True, check=True).stdout
    assert declared_wav_data_bytes(piped[:4096]) is None
    assert declared_wav_data_bytes(hostile.lying_wav(tmp_path / "liar.wav").read_bytes()) == 0x7FFF_FFC0
    assert declared_wav_data_bytes(b"RIFF\0\0\0\0AVI LIST") is None and declared_wav_data_bytes(b"") is None


def test_a_refused_frame_size_is_read_from_the_decoder_log() -> None:
    """ffprobe's own lines (captured from the image-bomb cases) for a frame past ``-max_pixels`` and past
    ffmpeg's absolute bound; other errors name no size."""
    past_limit = ("[png @ 0x55dedcebea80] [IMGUTILS @ 0x7ffe09fa0670] Picture size 16000x16000 exceeds specified "
                  "max pixel count 33177600, see the documentation if you wish to increase it")
    invalid = "[png @ 0x560c11b28a80] [IMGUTILS @ 0x7fffcacd01b0] Picture size 100000x100000 is invalid"
    assert refused_frame_size(past_limit) == (16000, 16000)
    assert refused_frame_size(f"other line\n{invalid}\n[png @ 0x1] Invalid image size") == (100000, 100000)
    assert refused_frame_size("[mov,mp4 @ 0x1] moov atom not found") is None
