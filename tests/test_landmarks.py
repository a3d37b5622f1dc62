"""Spectral-peak landmarks on real music: the same landmarks however the audio streams in, stored and indexed
intact, and what places a clip whose Chromaprint items the noise has taken (pink noise louder than the music),
while music and speech that are not in the catalog still match nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.catalog import AssetRecord, Catalog, FingerprintRecord
from pipelines.clip_job import load_index
from pipelines.document import JobDocument
from pipelines.match.fingerprint import FingerprintSink, fingerprint_samples
from pipelines.match.index import FingerprintIndex
from pipelines.match.landmarks import FRAME_S, Landmarks, LandmarkSink, catalog_landmarks, clip_landmarks
from pipelines.match.search import MATCH_RATE, find_clip, suppress_noise
from tests.test_match_robust import CROSSROADS, DESERT, JUNGLE, SPEECH, _decode, _rms


def _as_job_does(master: Path) -> tuple[npt.NDArray[np.uint32], Landmarks]:
    sink = FingerprintSink(rate=44100, channels=2)
    stereo = _decode(master, rate=44100, channels=2)
    for at in range(0, len(stereo), 8192):
        sink.feed(stereo[at : at + 8192])
    fingerprint = sink.finish()
    assert fingerprint.landmarks is not None
    return fingerprint.items, fingerprint.landmarks


@pytest.fixture(scope="module")
def index() -> FingerprintIndex:
    entries = {asset_id: _as_job_does(master) for asset_id, master in (("desert", DESERT), ("crossroads", CROSSROADS))}
    return FingerprintIndex(((a, items) for a, (items, _) in entries.items()),
                            landmarks={a: landmarks for a, (_, landmarks) in entries.items()})


def _drowned(master: Path, start_s: float, snr_db: float) -> npt.NDArray[np.float32]:
    """10 s of ``master`` from ``start_s`` under pink noise ``snr_db`` below it (a fixed noise, seed 3)."""
    clip = _decode(master, pre=("-ss", str(start_s), "-t", "10"))
    noise = _decode("anoisesrc=color=pink:amplitude=0.1:seed=3:duration=10", pre=("-f", "lavfi"))[: len(clip)]
    return clip + noise * np.float32(_rms(clip) / 10 ** (snr_db / 20) / _rms(noise))


def test_the_landmarks_do_not_depend_on_how_the_audio_streams_in() -> None:
    """A minute and a half (past the sink's chunk of about 47 s) at 44.1 kHz stereo, as a job decodes it: blocks
    of any size give exactly the landmarks of one block, and nearly all those of the whole signal at the match
    rate (two resamplers: soxr in the sink, ffmpeg's for the mono decode)."""
    stereo = np.tile(_decode(DESERT, rate=44100, channels=2), (3, 1))
    streamed, whole = LandmarkSink(rate=44100, channels=2), LandmarkSink(rate=44100, channels=2)
    at, sizes = 0, (7919, 1000, 30011, 1)
    while at < len(stereo):
        size = sizes[at % len(sizes)]
        streamed.feed(stereo[at : at + size])
        at += size
    whole.feed(stereo)
    landmarks, reference = streamed.finish(), whole.finish()
    assert np.array_equal(landmarks.hashes, reference.hashes) and np.array_equal(landmarks.frames, reference.frames)
    assert 3.0 < len(landmarks) / (len(stereo) / 44100) < 12.0  # about 6.6 a second
    assert np.all(np.diff(landmarks.frames.astype(np.int64)) >= 0) and int(landmarks.hashes.max()) < 1 << 18
    mono = catalog_landmarks(np.tile(_decode(DESERT, rate=MATCH_RATE), 3))
    common = set(zip(landmarks.hashes.tolist(), landmarks.frames.tolist(), strict=True)) & set(
        zip(mono.hashes.tolist(), mono.frames.tolist(), strict=True))
    assert len(common) >= 0.9 * len(mono)


def test_landmarks_survive_their_catalog_bytes() -> None:
    landmarks = catalog_landmarks(_decode(CROSSROADS))
    again = Landmarks.from_bytes(landmarks.to_bytes())
    assert len(again) == len(landmarks) > 50
    assert np.array_equal(again.hashes, landmarks.hashes) and np.array_equal(again.frames, landmarks.frames)


@pytest.mark.parametrize(("asset_id", "master", "start_s", "snr_db"),
                         [("desert", DESERT, 16.0, -3.0), ("desert", DESERT, 16.0, -4.0)])
def test_landmarks_place_a_clip_whose_items_drowned(
    index: FingerprintIndex, asset_id: str, master: Path, start_s: float, snr_db: float
) -> None:
    """Under pink noise louder than the music, no Chromaprint search (within one bit, two bits, or with the noise
    floor taken out) finds the clip; its landmarks do, at the right place, and ``find_clip`` answers that."""
    noisy = _drowned(master, start_s, snr_db)
    items = fingerprint_samples(noisy, rate=MATCH_RATE)
    policy = index.policy
    chromaprint = [*index.search(items), *index.search(items, bit_errors=2),
                   *index.search(fingerprint_samples(suppress_noise(noisy), rate=MATCH_RATE), bit_errors=2)]
    assert not [m for m in chromaprint if m.score >= policy.accept_grid_score]
    (best, *_) = index.search_landmarks(clip_landmarks(noisy), items)
    assert best.asset_id == asset_id and best.score >= policy.accept_grid_score
    assert best.asset_offset_s - best.query_offset_s == pytest.approx(start_s, abs=0.5)
    (found, *others) = find_clip(noisy, index)
    assert (found.asset_id, found.score) == (asset_id, best.score) and not others


@pytest.mark.parametrize("snr_db", [None, 0.0], ids=["clean", "pink-0dB"])
@pytest.mark.parametrize("clip", [JUNGLE, SPEECH], ids=["music-not-in-catalog", "speech"])
def test_landmarks_of_what_is_not_in_the_catalog_match_nothing(
    index: FingerprintIndex, clip: Path, snr_db: float | None
) -> None:
    samples = _decode(clip) if snr_db is None else _drowned(clip, 0.0, snr_db)
    matches = index.search_landmarks(clip_landmarks(samples), fingerprint_samples(samples, rate=MATCH_RATE))
    assert not [m for m in matches if m.score >= index.policy.accept_grid_score]
    assert find_clip(samples, index) == []


def test_a_snapshot_keeps_the_landmark_index(index: FingerprintIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "snapshot")
    loaded = FingerprintIndex.load(tmp_path / "snapshot")
    noisy = _drowned(DESERT, 16.0, -3.0)
    items = fingerprint_samples(noisy, rate=MATCH_RATE)
    assert loaded.search_landmarks(clip_landmarks(noisy), items) == index.search_landmarks(clip_landmarks(noisy), items)
    assert isinstance(loaded.lm_postings, np.memmap) and loaded.nbytes == index.nbytes


def test_the_catalog_keeps_each_assets_landmarks_for_the_index(catalog: Catalog) -> None:
    """Landmarks go into the catalog with the fingerprint and come back into the index built from it; a row with
    none (written before landmarks existed) still gives its items."""
    for asset_id, master, with_landmarks in (("desert", DESERT, True), ("crossroads", CROSSROADS, False)):
        items, landmarks = _as_job_does(master)
        job_id = catalog.create_job(asset_id=asset_id, source_uri=f"s3://masters/{asset_id}.ogg")
        catalog.start_job(job_id)
        asset = AssetRecord(source_uri=f"s3://masters/{asset_id}.ogg", content_sha256="0" * 64, kind="audio",
                            duration_s=30.0, container="ogg", hls_master=f"{asset_id}/master.m3u8", probe={})
        fingerprint = FingerprintRecord(items=items.astype("<u4").tobytes(), duration_s=30.0, item_count=len(items),
                                        landmarks=landmarks.to_bytes() if with_landmarks else None)
        catalog.complete_job(job_id, asset=asset, renditions=[], fingerprint=fingerprint,
                             document=JobDocument(asset_id=asset_id, job_id=job_id, status="succeeded"))
    stored = {asset_id: landmarks for asset_id, _, landmarks in catalog.fingerprints()}
    assert stored["crossroads"] is None and stored["desert"] is not None
    index = load_index(catalog)
    spans = dict(zip(index.asset_ids, np.diff(index.lm_starts), strict=True))
    assert spans["crossroads"] == 0 and 25.0 / FRAME_S < spans["desert"] <= 30.0 / FRAME_S
    (found, *_) = find_clip(_drowned(DESERT, 16.0, -3.0), index)  # placed by its landmarks alone
    assert found.asset_id == "desert"
    assert found.asset_offset_s - found.query_offset_s == pytest.approx(16.0, abs=0.5)
