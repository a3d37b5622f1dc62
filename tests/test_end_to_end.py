"""The whole job through the real ``mediaworker`` command, its output checked with independent tools.

``m3u8`` parses every playlist, ffprobe reads every rendition back, and the files on disk are the reference for
the bit rates the master playlist declares.
"""

from __future__ import annotations

import os
from pathlib import Path
import sqlite3
import subprocess
from typing import Any

import m3u8
import pytest

from tests.conftest import FIXTURES, MEDIAWORKER, CliResult, CliRunner, ffprobe_json


def _process(home: Path, source: Path, *extra: str) -> CliResult:
    proc = subprocess.run(
        [MEDIAWORKER, "process", str(source), "--json", *extra],
        capture_output=True, text=True, env={**os.environ, "MEDIAWORKER_HOME": str(home)},
        stdin=subprocess.DEVNULL, timeout=600,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def video_job(masters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("video-home")
    result = _process(home, masters["video"], "--asset-id", "video-1")
    assert result.returncode == 0, result.stderr
    return home, result.document


def _segments(playlist_path: Path) -> list[Path]:
    playlist = m3u8.load(str(playlist_path))
    return [playlist_path.parent / segment.uri for segment in playlist.segments]


def _first_packet(init: Path, segment: Path, tmp: Path) -> dict[str, Any]:
    joined = tmp / f"{segment.parent.name}-{segment.name}.mp4"
    joined.write_bytes(init.read_bytes() + segment.read_bytes())
    packets = ffprobe_json(joined, "-select_streams", "v:0", "-show_packets", "-read_intervals", "%+#1")["packets"]
    return packets[0]  # type: ignore[no-any-return]


def test_video_job_document_and_master_playlist(video_job: tuple[Path, dict[str, Any]]) -> None:
    """The ladder never upscales, every rung is listed with exact codecs, and the playlists parse."""
    _, doc = video_job
    assert doc["status"] == "succeeded" and doc["error"] is None
    assert doc["probe"]["kind"] == "video" and abs(doc["probe"]["duration_s"] - 13) < 0.2
    master = m3u8.load(doc["hls"]["master"])
    assert master.is_variant
    resolutions = sorted((p.stream_info.resolution for p in master.playlists), reverse=True)
    assert resolutions == [(960, 540), (640, 360), (416, 234)]
    for variant in master.playlists:
        video_codec, audio_codec = variant.stream_info.codecs.split(",")
        assert video_codec.startswith(("avc1.64", "avc1.4d")), variant.stream_info.codecs
        assert audio_codec == "mp4a.40.2"
        assert variant.stream_info.frame_rate == pytest.approx(25, abs=0.01)
        assert variant.stream_info.average_bandwidth <= variant.stream_info.bandwidth
    [audio] = master.media
    assert audio.type == "AUDIO" and audio.group_id == "aac" and audio.channels == "2"
    assert all(p.stream_info.audio == "aac" for p in master.playlists)


def test_renditions_match_what_ffprobe_reads(video_job: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """Each rendition lasts as long as the master (± 0.5 s) and has the codec and size it declares."""
    _, doc = video_job
    for rendition in doc["hls"]["renditions"]:
        playlist = Path(rendition["playlist"])
        probed = ffprobe_json(playlist, "-show_streams", "-show_format", "-allowed_extensions", "ALL")
        assert abs(float(probed["format"]["duration"]) - doc["probe"]["duration_s"]) <= 0.5, rendition["name"]
        stream = probed["streams"][0]
        if rendition["kind"] == "video":
            assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
            assert f"{stream['width']}x{stream['height']}" == rendition["resolution"]
            assert stream["profile"] in ("High", "Main")
        else:
            assert stream["codec_name"] == "aac" and stream["channels"] == rendition["channels"]


def test_every_segment_starts_on_a_keyframe_at_the_same_time_in_every_rung(
    video_job: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, doc = video_job
    starts: dict[str, list[float]] = {}
    for rendition in (r for r in doc["hls"]["renditions"] if r["kind"] == "video"):
        playlist = Path(rendition["playlist"])
        init = playlist.parent / "init.mp4"
        firsts = [_first_packet(init, segment, tmp_path) for segment in _segments(playlist)]
        assert all(packet["flags"].startswith("K") for packet in firsts), rendition["name"]
        starts[rendition["name"]] = [round(float(packet["pts_time"]), 3) for packet in firsts]
    timelines = list(starts.values())
    assert len(timelines[0]) == 3  # 13 s at a 6 s target
    assert all(timeline == timelines[0] for timeline in timelines), starts


def test_declared_bandwidth_matches_the_bytes_on_disk(video_job: tuple[Path, dict[str, Any]]) -> None:
    """AVERAGE-BANDWIDTH is within 10 % of (bytes of the variant and its audio) / duration; BANDWIDTH ≥ it."""
    _, doc = video_job
    master = m3u8.load(doc["hls"]["master"])
    base = Path(doc["hls"]["master"]).parent
    audio_dir = base / Path(master.media[0].uri).parent

    def bytes_in(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".mp4", ".m4s"))

    for variant in master.playlists:
        folder = base / Path(variant.uri).parent
        duration = sum(s.duration for s in m3u8.load(str(base / variant.uri)).segments)
        on_disk_bps = (bytes_in(folder) + bytes_in(audio_dir)) * 8 / duration
        assert variant.stream_info.average_bandwidth == pytest.approx(on_disk_bps, rel=0.10), variant.uri
        assert variant.stream_info.bandwidth >= variant.stream_info.average_bandwidth


def test_catalog_records_the_job_and_a_rerun_replaces_it(masters: dict[str, Path], home: Path, cli: CliRunner) -> None:
    first = cli("process", str(masters["audio"]), "--json", "--asset-id", "song-1")
    second = cli("process", str(masters["audio"]), "--json", "--asset-id", "song-1")
    assert first.returncode == second.returncode == 0, second.stderr
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        renditions = db.execute("SELECT name, job_id FROM renditions WHERE asset_id = 'song-1'").fetchall()
        jobs = db.execute("SELECT status, percent FROM jobs WHERE asset_id = 'song-1'").fetchall()
        assets = db.execute("SELECT kind, hls_master, latest_job_id FROM assets WHERE id = 'song-1'").fetchall()
    new_job = second.document["job_id"]
    assert sorted(renditions) == [("audio-128k", new_job), ("audio-256k", new_job), ("audio-64k", new_job)]
    assert jobs == [("succeeded", 100.0), ("succeeded", 100.0)]
    assert assets == [("audio", second.document["hls"]["master"], new_job)]
    # The rerun published a ladder of its own, then removed the one it replaced: one ladder per asset.
    assert Path(second.document["hls"]["master"]).is_file()
    assert not Path(first.document["hls"]["master"]).parent.exists()
    published = [p.name for p in (home / "objects" / "media-out" / "hls" / "song-1").iterdir()]
    assert published == [second.document["hls"]["prefix"].rsplit("/", 1)[1]]


def test_status_shows_the_document_by_job_or_asset_id(video_job: tuple[Path, dict[str, Any]]) -> None:
    home, doc = video_job
    env = {**os.environ, "MEDIAWORKER_HOME": str(home)}
    for key in (doc["job_id"], "video-1"):
        proc = subprocess.run([MEDIAWORKER, "status", key, "--json"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert m3u8.loads(Path(__import__("json").loads(proc.stdout)["hls"]["master"]).read_text()).is_variant
    human = subprocess.run([MEDIAWORKER, "status", "video-1"], capture_output=True, text=True, env=env)
    assert "succeeded" in human.stdout and "540p" in human.stdout


def test_audio_master_gets_an_audio_only_ladder(masters: dict[str, Path], cli: CliRunner) -> None:
    result = cli("process", str(masters["audio"]), "--json")
    assert result.returncode == 0, result.stderr
    doc = result.document
    assert doc["probe"]["kind"] == "audio" and doc["probe"]["tags"]["title"] == "Test tone"
    master = m3u8.load(doc["hls"]["master"])
    assert [p.stream_info.codecs for p in master.playlists] == ["mp4a.40.2"] * 3
    assert [r["name"] for r in doc["hls"]["renditions"]] == ["audio-256k", "audio-128k", "audio-64k"]
    assert all(r["resolution"] is None and r["channels"] == 2 for r in doc["hls"]["renditions"])


@pytest.mark.parametrize(
    ("name", "kind", "rungs"),
    [
        ("city_cc0.mp4", "video", ["404p", "234p"]),  # 720x404 natural video, no audio track
        # 480x270 at 36 kbit/s in all, its AAC track silent: every rung is capped at the master's own bit rate.
        ("earth_nasa_8s.mp4", "video", ["270p", "audio-16k"]),
        ("music_hyperrogue_20s.ogg", "audio", ["audio-256k", "audio-128k", "audio-64k"]),
        ("speech_librivox_16k.flac", "audio", ["audio-96k", "audio-64k", "audio-32k"]),  # mono 16 kHz speech
    ],
)
def test_real_masters(name: str, kind: str, rungs: list[str], cli: CliRunner) -> None:
    result = cli("process", str(FIXTURES / name), "--json")
    assert result.returncode == 0, result.stderr
    doc = result.document
    assert doc["probe"]["kind"] == kind
    assert [r["name"] for r in doc["hls"]["renditions"]] == rungs
    assert m3u8.load(doc["hls"]["master"]).is_variant
    if name.startswith(("music", "speech")):
        # The one audio decode also fed the analyses: the class that picked the ladder, and the loudness triple.
        assert doc["features"]["content_class"] == name.split("_")[0]
        loudness = doc["quality"]["loudness"]
        assert -40 < loudness["integrated_lufs"] < 0 and loudness["true_peak_dbtp"] < 3 and loudness["lra_lu"] >= 0
        assert 0 <= doc["quality"]["score"] <= 100 and doc["fingerprint"]["items"] > 50


def test_progress_is_reported_on_stderr(masters: dict[str, Path], cli: CliRunner) -> None:
    """Without a terminal: a line per stage, and lines with the time left as the transcode advances."""
    result = cli("process", str(masters["video"]))
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    stages = [line.split("] ", 1)[1].split(",")[0] for line in lines]
    assert list(dict.fromkeys(stages)) == ["fetch", "probe", "analyse", "scenes", "transcode", "package", "quality",
                                           "report", "publish", "match", "catalog"]
    assert any(line.endswith(" left") for line in lines if "transcode" in line), lines
    assert "succeeded" in result.stdout


def test_s3_uri_sources_read_from_the_embedded_store(masters: dict[str, Path], home: Path, cli: CliRunner) -> None:
    """On the embedded default, ``s3://bucket/key`` names a file in the bucket's folder under the home."""
    bucket = home / "objects" / "masters" / "uploads"
    bucket.mkdir(parents=True)
    (bucket / "tone.flac").write_bytes(masters["audio"].read_bytes())
    result = cli("process", "s3://masters/uploads/tone.flac", "--json", "--asset-id", "tone")
    assert result.returncode == 0, result.stderr
    assert result.document["asset_id"] == "tone"
    missing = cli("process", "s3://masters/uploads/nope.flac", "--json", "--asset-id", "nope")
    assert missing.returncode == 2 and missing.document["error"]["code"] == "source_not_found"
    hostile = cli("process", "s3://masters/../../etc/passwd", "--json", "--asset-id", "hostile")
    assert hostile.returncode == 2 and hostile.document["error"]["code"] == "invalid_source"


def test_scratch_folders_of_dead_processes_are_swept(tmp_path: Path) -> None:
    from pipelines.job import sweep_workspaces

    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"job-{dead.pid}-abc").mkdir()
    (tmp_path / f"job-{dead.pid}-abc" / "master").write_bytes(b"x" * 100)
    (tmp_path / f"job-{os.getpid()}-def").mkdir()  # a live process's folder stays
    assert sweep_workspaces(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"job-{os.getpid()}-def"]
