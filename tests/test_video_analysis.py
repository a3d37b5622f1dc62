"""Video scenes and pictures: cuts at known times found within one frame, black, faces, poster, sprite and
WebVTT thumbnails, on generated videos, the real fixtures, and a whole job."""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path
import re
from typing import Any

import cv2
import numpy as np
import pytest

from pipelines.config import Limits
from pipelines.media.confined import hardened_argv
from pipelines.media.probe import probe_file
from pipelines.video.analysis import (
    SceneAnalyzer,
    VideoAnalysis,
    VideoAnalysisSettings,
    analyse_video,
    build_analysis_decode_cmd,
)
from pipelines.video.package import MASTER_NAME, publication_order
from pipelines.video.scene_cuts import CutDetector, signature
from pipelines.video.thumbnails import (
    MAX_TILES,
    POSTER_NAME,
    SPRITE_NAME,
    VTT_NAME,
    SpriteLayout,
    build_thumbnails_vtt,
    sprite_interval,
)
from tests.conftest import FIXTURES, CliRunner, make_media

RATE = 25
FRAME_S = 1 / RATE
FACE_PHOTO = FIXTURES / "face_astronaut_nasa.jpg"  # Eileen Collins, NASA, public domain (see SOURCES.md)

# (source, seconds) in order; every boundary is a hard cut, at a time that is a whole number of frames.
SHOTS: list[tuple[str, float]] = [
    ("testsrc2", 2.0),   # moving pattern and a scrolling gradient: continuous motion
    ("smptebars", 1.6),  # colour bars, still
    ("mandelbrot", 2.4),  # a continuous zoom
    ("black", 1.0),
    ("face", 2.0),       # a real photograph of a face
    ("red", 1.2),        # one solid colour
    ("testsrc", 2.0),
]
CUT_TIMES = [sum(seconds for _, seconds in SHOTS[:i]) for i in range(1, len(SHOTS))]
DURATION = sum(seconds for _, seconds in SHOTS)


@dataclass(frozen=True)
class Analysed:
    result: VideoAnalysis
    out_dir: Path


def _lavfi(source: str, seconds: float) -> list[str]:
    size = f"size=640x360:rate={RATE}"
    graphs = {
        "testsrc2": f"testsrc2={size}:duration={seconds}",
        "smptebars": f"smptebars={size}:duration={seconds}",
        "mandelbrot": f"mandelbrot={size},trim=duration={seconds}",
        "black": f"color=black:{size}:duration={seconds}",
        "red": f"color=0xC02020:{size}:duration={seconds}",
        "testsrc": f"testsrc={size}:duration={seconds}",
    }
    if source == "face":
        return ["-loop", "1", "-framerate", str(RATE), "-t", str(seconds), "-i", str(FACE_PHOTO)]
    return ["-f", "lavfi", "-i", graphs[source]]


@pytest.fixture(scope="module")
def cuts_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640x360 at 25 fps: the shots of ``SHOTS`` joined by hard cuts, H.264."""
    inputs = [arg for source, seconds in SHOTS for arg in _lavfi(source, seconds)]
    face = next(i for i, (source, _) in enumerate(SHOTS) if source == "face")
    labels = "".join(f"[f{i}]" if i == face else f"[{i}:v]" for i in range(len(SHOTS)))
    graph = (f"[{face}:v]scale=-2:360,pad=640:360:(ow-iw)/2:0,setsar=1[f{face}];"
             f"{labels}concat=n={len(SHOTS)}:v=1:a=0,format=yuv420p[v]")
    return make_media(tmp_path_factory.mktemp("scenes") / "cuts.mp4", *inputs, "-filter_complex", graph,
                      "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18")


def _analyse(source: Path, out_dir: Path) -> Analysed:
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = probe_file(source, ffprobe="ffprobe", limits=Limits())
    return Analysed(analyse_video(source, probe, out_dir, ffmpeg="ffmpeg", limits=Limits()), out_dir)


@pytest.fixture(scope="module")
def analysed(cuts_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    return _analyse(cuts_video, tmp_path_factory.mktemp("scenes-out"))


def test_every_cut_is_found_within_one_frame_and_no_other(analysed: Analysed) -> None:
    """Motion (testsrc2, the mandelbrot zoom) gives no false cut; each real cut is within one frame."""
    cuts = analysed.result.cuts
    assert len(cuts) == len(CUT_TIMES), [c.time_s for c in cuts]
    for cut, expected in zip(cuts, CUT_TIMES, strict=True):
        assert abs(cut.time_s - expected) <= FRAME_S + 1e-9, (cut, expected)
        assert 0.25 <= cut.score <= 1.0
    scenes = analysed.result.scenes
    assert [round(s.start_s, 3) for s in scenes] == [0.0, *(round(c.time_s, 3) for c in cuts)]
    assert scenes[0].score is None and [s.score for s in scenes[1:]] == [c.score for c in cuts]
    assert scenes[-1].end_s == pytest.approx(DURATION, abs=FRAME_S)


def test_the_black_gap_is_one_black_interval(analysed: Analysed) -> None:
    start = CUT_TIMES[2]
    [(black_start, black_end)] = analysed.result.black
    assert black_start == pytest.approx(start, abs=FRAME_S) and black_end == pytest.approx(start + 1.0, abs=FRAME_S)
    assert [s.black for s in analysed.result.scenes] == [source == "black" for source, _ in SHOTS]


def test_faces_are_seen_in_the_photograph_and_nowhere_else(analysed: Analysed) -> None:
    """The astronaut's portrait is flagged with one face; colour bars, patterns, the fractal and black are not."""
    by_source = dict(zip((source for source, _ in SHOTS), analysed.result.scenes, strict=True))
    assert by_source["face"].faces and by_source["face"].face_count == 1
    assert [name for name, scene in by_source.items() if scene.faces] == ["face"]
    assert not by_source["smptebars"].faces


def test_the_poster_is_a_well_exposed_frame_at_display_size(analysed: Analysed) -> None:
    result = analysed.result
    poster = cv2.imread(str(analysed.out_dir / POSTER_NAME))
    assert poster is not None and poster.shape[:2] == (360, 640)
    luma = cv2.cvtColor(poster, cv2.COLOR_BGR2GRAY)
    assert luma.mean() > 40 and np.count_nonzero(luma > 25) > 0.5 * luma.size
    assert not any(start <= result.poster_time_s < end for start, end in result.black)
    # The longest shot (the mandelbrot zoom) is where it comes from, not its first or last 0.3 s.
    scene = next(s for s in result.scenes if s.start_s <= result.poster_time_s < s.end_s)
    assert scene.end_s - scene.start_s == pytest.approx(max(seconds for _, seconds in SHOTS), abs=FRAME_S)
    assert scene.start_s + 0.3 <= result.poster_time_s <= scene.end_s - 0.3


def _cues(vtt: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    assert vtt.startswith("WEBVTT\n")
    found = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(\S+)", vtt)
    return [(seconds(a), seconds(b), text) for a, b, text in found]


def test_sprite_and_thumbnail_track_agree(analysed: Analysed) -> None:
    """Cues cover the whole video without gaps, and each points at a tile inside the sprite image."""
    result = analysed.result
    sprite = cv2.imread(str(analysed.out_dir / SPRITE_NAME))
    assert sprite is not None
    height, width = sprite.shape[:2]
    layout = result.sprite
    assert (width, height) == (layout.columns * layout.tile_width, layout.rows * layout.tile_height)
    assert layout.count == math.ceil(DURATION / layout.interval_s)
    cues = _cues((analysed.out_dir / VTT_NAME).read_text())
    assert len(cues) == layout.count
    assert cues[0][0] == 0.0 and cues[-1][1] == pytest.approx(DURATION, abs=0.001)
    boxes = set()
    for (start, end, text), following in zip(cues, [*cues[1:], None], strict=True):
        assert end > start and (following is None or following[0] == end)
        name, _, fragment = text.partition("#xywh=")
        assert name == SPRITE_NAME  # relative: the track and the sheet are published side by side
        x, y, w, h = (int(v) for v in fragment.split(","))
        assert min(x, y) >= 0 and x + w <= width and y + h <= height
        boxes.add((x, y))
    assert len(boxes) == len(cues)
    # The tile of the black second is black, the one of the red shot is red.
    black_tile = sprite[0 : layout.tile_height, 6 * layout.tile_width : 7 * layout.tile_width]
    assert black_tile.max() < 30
    red_box = layout.tile_box(9)
    b, g, r = sprite[red_box[1] + 40, red_box[0] + 80]
    assert r > 150 and g < 80 and b < 80


def test_a_fast_pan_is_not_a_cut(tmp_path: Path) -> None:
    """A pan of 8 pixels a frame over a pattern changes every frame a lot, and is still one shot."""
    pan = make_media(tmp_path / "pan.mp4", "-f", "lavfi", "-i", f"testsrc2=size=1280x360:rate={RATE}:duration=3",
                     "-vf", "crop=640:360:x='min(n*8\\,640)':y=0,format=yuv420p",
                     "-c:v", "libx264", "-preset", "ultrafast")
    result = _analyse(pan, tmp_path / "out").result
    assert result.cuts == () and len(result.scenes) == 1 and result.black == ()


@pytest.mark.parametrize(("name", "cut_times"), [("city_cc0.mp4", [4.64]), ("earth_nasa_8s.mp4", [])])
def test_real_footage(name: str, cut_times: list[float], tmp_path: Path) -> None:
    """The city clip has one hard cut at 4.64 s (SOURCES.md); the slowly turning Earth has none. Neither is
    black, though the Earth at night is mostly dark."""
    result = _analyse(FIXTURES / name, tmp_path).result
    assert [c.time_s for c in result.cuts] == pytest.approx(cut_times, abs=1 / result.frame_rate)
    assert result.black == ()
    assert not any(scene.faces for scene in result.scenes)


def _scdet_frames(source: Path, tmp_path: Path) -> list[int]:
    """The frames ffmpeg's own scene detector (``scdet``, threshold 10) marks as scene changes."""
    report = tmp_path / "scdet.txt"
    make_media(Path("-"), "-i", str(source), "-vf",
               f"scdet=threshold=10,metadata=mode=print:key=lavfi.scd.time:file={report}", "-f", "null")
    return [int(m) for m in re.findall(r"^frame:(\d+)", report.read_text(), flags=re.MULTILINE)]


def test_cuts_agree_with_ffmpeg_scdet(analysed: Analysed, cuts_video: Path, tmp_path: Path) -> None:
    """A cross-check with an independent measure: ffmpeg's scdet finds the same frames, on the generated shots
    and on the real city clip."""
    assert [c.frame for c in analysed.result.cuts] == _scdet_frames(cuts_video, tmp_path)
    city = _analyse(FIXTURES / "city_cc0.mp4", tmp_path / "city").result
    assert [c.frame for c in city.cuts] == _scdet_frames(FIXTURES / "city_cc0.mp4", tmp_path) == [116]


def test_a_long_shot_keeps_a_bounded_number_of_frames() -> None:
    """Two minutes of one shot: the analyzer holds a dozen frames of it at most, spread over the whole shot."""
    rate, seconds = 25.0, 120
    analyzer = SceneAnalyzer(width=64, height=36, frame_rate=rate, duration_s=seconds)
    base = np.random.default_rng(2).integers(40, 200, (36, 64, 3), dtype=np.uint8)
    most = 0
    for n in range(int(rate * seconds)):
        analyzer.feed(np.roll(base, n % 64, axis=1))  # a slow endless pan: one shot
        most = max(most, len(analyzer._open.kept))
    assert most <= 2 * VideoAnalysisSettings().frames_kept_per_scene
    kept = [index for index, _ in analyzer._open.kept]
    assert kept[0] == 0 and kept[-1] > 0.75 * rate * seconds
    scenes, cuts, black, tiles, layout = analyzer.finish()
    assert len(scenes) == 1 and cuts == [] and black == []
    assert len(tiles) == layout.count == seconds // int(layout.interval_s)


def test_flash_is_not_a_cut() -> None:
    """One white frame in a still shot changes the picture twice, and comes back: no cut."""
    rng = np.random.default_rng(1)
    still = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    other = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) // 2
    white = np.full_like(still, 255)
    detector = CutDetector(frame_rate=RATE)
    frames = [still] * 30 + [white] + [still] * 30 + [other] * 30
    for frame in frames:
        detector.push(signature(frame))
    detector.finish()
    assert [c.frame for c in detector.cuts] == [61]


def test_thumbnail_track_text() -> None:
    layout = SpriteLayout(interval_s=2.0, count=3, columns=2, tile_width=160, tile_height=90)
    assert build_thumbnails_vtt(layout, duration_s=5.5) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,160,90\n\n"
        "00:00:02.000 --> 00:00:04.000\nsprite.jpg#xywh=160,0,160,90\n\n"
        "00:00:04.000 --> 00:00:05.500\nsprite.jpg#xywh=0,90,160,90\n"
    )
    assert layout.rows == 2


@pytest.mark.parametrize("duration_s", [0.5, 7.6, 100.0, 1800.0, 3 * 3600.0, 6 * 3600.0])
def test_the_sprite_stays_bounded(duration_s: float) -> None:
    interval = sprite_interval(duration_s)
    assert math.ceil(duration_s / interval) <= MAX_TILES
    assert interval == 1.0 or math.ceil(duration_s / (interval / 2)) > MAX_TILES / 2


def test_analysis_decode_argv(tmp_path: Path) -> None:
    call = build_analysis_decode_cmd(tmp_path / "master", 0, width=320, height=180, frame_rate=25.0,
                                     duration_s=13.0, ffmpeg="ffmpeg")
    cmd = hardened_argv(call, Limits())
    assert cmd[cmd.index("-vf") + 1] == "fps=25,scale=320:180:flags=area,format=rgb24"
    assert cmd[-3:] == ["-f", "rawvideo", "pipe:1"] and cmd[cmd.index("-map") + 1] == "0:0"
    assert cmd[cmd.index("-i") - 6:cmd.index("-i") - 4] == ["-protocol_whitelist", "file"]
    assert (call.kind, call.duration_s, call.writes) == ("video_decode", 13.0, ())


def test_pictures_are_published_before_the_master_playlist(tmp_path: Path) -> None:
    extras = [(tmp_path / name, name, "image/jpeg") for name in (POSTER_NAME, SPRITE_NAME)]
    order = publication_order(tmp_path, [], extras=extras)
    assert [key for _, key, _ in order] == [POSTER_NAME, SPRITE_NAME, MASTER_NAME]


def _published(home: Path, uri: str) -> Path:
    path = Path(uri)
    assert path.is_file() and home in path.parents, uri
    return path


def test_a_video_job_publishes_poster_sprite_and_track(cli: CliRunner, home: Path, tmp_path: Path) -> None:
    result = cli("process", str(FIXTURES / "city_cc0.mp4"), "--asset-id", "city", "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = result.document
    video = document["video"]
    assert [round(c["time_s"], 2) for c in video["cuts"]] == [4.64]
    assert [s["index"] for s in video["scenes"]] == [0, 1] and video["black"] == []
    assert all(set(s) >= {"start_s", "end_s", "score", "faces", "face_count"} for s in video["scenes"])
    master = _published(home, document["hls"]["master"])
    poster = _published(home, video["poster"]["uri"])
    sprite = _published(home, video["sprite"]["uri"])
    track = _published(home, video["thumbnails_vtt"])
    assert poster.parent == sprite.parent == track.parent == master.parent
    image = cv2.imread(str(poster))
    assert image is not None and image.shape[:2] == (404, 720)
    cues = _cues(track.read_text())
    assert cues[-1][1] == pytest.approx(document["probe"]["duration_s"], abs=0.05)
    assert {text.split("#")[0] for _, _, text in cues} == {sprite.name}
    assert "scenes" in document["timings_s"]


def test_an_audio_job_has_no_video_record(cli: CliRunner, tmp_path: Path) -> None:
    tone = make_media(tmp_path / "tone.flac", "-f", "lavfi", "-i", "sine=frequency=440:duration=4")
    result = cli("process", str(tone), "--json")
    assert result.returncode == 0, result.stderr
    assert result.document["video"] is None and "scenes" not in result.document["timings_s"]
