"""The quality report: known answers of the spectrogram sink, the page's content and escaping, the page published
beside the ladder by real jobs, a report failure that leaves the job whole, and a real Chromium rendering it.

The jobs run the installed ``mediaworker`` as a real process on the project's fixtures: a music master whose
tags were made hostile, and a video master without audio. The browser test (marked ``browser``) serves the
published ladder folder over HTTP and opens ``report.html`` in Debian's headless Chromium.
"""

from __future__ import annotations

from html.parser import HTMLParser
import json
import logging
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from pipelines.audio.delivery import Check, DeliveryReport, ProfileResult
from pipelines.audio.spectrogram import SpectrogramSink
from pipelines.catalog import Catalog
from pipelines.config import Settings
from pipelines.document import Quality
import pipelines.job
from pipelines.job import run_job
from pipelines.media.isobmff import TrackFormat
from pipelines.media.probe import Probe, Stream
from pipelines.report.page import REPORT_NAME, render_report, verdict_of
from pipelines.scoring import ScoreReason
from pipelines.storage import ObjectRef
from pipelines.storage.local import LocalStorage
from pipelines.video.package import MASTER_NAME, MeasuredRendition
from pipelines.video.quality import MetricStats, RenditionQuality, SegmentScore
from tests.conftest import FIXTURES, make_media

RATE = 44100
MEDIAWORKER = str(Path(sys.executable).with_name("mediaworker"))
HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_ARTIST = '"><img src=x onerror=alert(2)>'


class _Elements(HTMLParser):
    """Every start tag of a page with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(page: str) -> None:
    """No script, no event handler, nothing fetched but ``data:`` URLs and in-page anchors."""
    parser = _Elements()
    parser.feed(page)
    parser.close()
    assert parser.tags, "the page has no elements"
    for tag, attrs in parser.tags:
        assert tag not in {"script", "iframe", "object", "embed", "base", "form"}, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=…>"
            if name in {"src", "href", "xlink:href", "action", "srcset"}:
                assert (value or "").startswith(("data:", "#")), f"<{tag} {name}={value!r}>"


def process(master: Path, home: Path) -> dict[str, Any]:
    """``mediaworker process MASTER --json`` as a real process; the job must succeed."""
    proc = subprocess.run([MEDIAWORKER, "process", str(master), "--json"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MEDIAWORKER_HOME": str(home)}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"mediaworker exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    document: dict[str, Any] = json.loads(proc.stdout)
    assert document["status"] == "succeeded", document["error"]
    return document


@pytest.fixture(scope="module")
def audio_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The 20 s music fixture with a script for a title and a broken-out attribute for an artist."""
    folder = tmp_path_factory.mktemp("hostile")
    master = make_media(folder / "hostile.ogg", "-i", str(FIXTURES / "music_hyperrogue_20s.ogg"), "-c", "copy",
                        "-map_metadata", "-1", "-metadata", f"title={HOSTILE_TITLE}", "-metadata", f"artist={HOSTILE_ARTIST}")
    return process(master, folder / "home")


@pytest.fixture(scope="module")
def video_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The 7.6 s video fixture (no audio): a two-rung ladder with VMAF per segment."""
    folder = tmp_path_factory.mktemp("video")
    return process(FIXTURES / "city_cc0.mp4", folder / "home")


def report_of(document: dict[str, Any]) -> tuple[Path, str]:
    path = Path(document["quality"]["report"])
    return path, path.read_text(encoding="utf-8")


# --- the spectrogram sink ------------------------------------------------------------------------------------


def tone(frequency: float, seconds: float, *, amplitude: float, start_s: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    signal = amplitude * np.sin(2 * np.pi * frequency * t) * (t >= start_s)
    return np.stack([signal, signal], axis=1).astype(np.float32)


def feed(sink: SpectrogramSink, samples: np.ndarray, block: int = 3000) -> None:
    for start in range(0, len(samples), block):
        sink.feed(samples[start:start + block])


def test_spectrogram_reads_a_tone_at_its_frequency_and_level() -> None:
    sink = SpectrogramSink(rate=RATE, channels=2)
    bin_hz = RATE / 1024
    feed(sink, tone(23 * bin_hz, 4.0, amplitude=0.5))  # on a bin centre: no scalloping loss
    levels = sink.finish().levels_db
    assert np.all(np.argmax(levels, axis=0) == 23)
    assert levels[23].mean() == pytest.approx(-6.02, abs=0.05)  # 20·log10(0.5)
    assert np.median(levels[100:]) < -100.0


def test_spectrogram_places_a_tone_in_time() -> None:
    sink = SpectrogramSink(rate=RATE, channels=2)
    feed(sink, tone(2000.0, 10.0, amplitude=0.5, start_s=5.0))
    spectrogram = sink.finish()
    band = spectrogram.levels_db[round(2000.0 / spectrogram.bin_hz)]
    before = band[: int(4.5 / spectrogram.column_s)]
    after = band[int(5.5 / spectrogram.column_s):]
    assert before.max() < -100.0 and after.min() > -10.0


def test_spectrogram_memory_is_bounded_and_covers_the_whole_master() -> None:
    sink = SpectrogramSink(rate=RATE, channels=2, max_columns=8)
    feed(sink, tone(1000.0, 10.0, amplitude=0.5), block=7919)
    spectrogram = sink.finish()
    assert 4 <= spectrogram.levels_db.shape[1] <= 8
    assert abs(spectrogram.duration_s - 10.0) <= spectrogram.column_s


def test_spectrogram_shows_a_low_pass_cutoff() -> None:
    """White noise low-passed at 11 kHz (a brick wall in the frequency domain): above it, nothing."""
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(RATE * 5)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(len(noise), 1 / RATE) > 11000.0] = 0
    filtered = (0.1 * np.fft.irfft(spectrum, n=len(noise))).astype(np.float32)
    sink = SpectrogramSink(rate=RATE, channels=1)
    feed(sink, filtered[:, None])
    spectrogram = sink.finish()
    mean = spectrogram.levels_db.mean(axis=1)
    below, above = mean[: int(10000 / spectrogram.bin_hz)], mean[int(12000 / spectrogram.bin_hz):]
    assert below.min() - above.max() > 40.0


# --- the page ------------------------------------------------------------------------------------------------


def test_verdict_thresholds() -> None:
    assert verdict_of(95, True) == ("pass", "Ready to ship")
    assert verdict_of(95, False)[0] == "warn"  # the primary profile failed: someone must look
    assert verdict_of(85, None)[0] == "pass"
    assert verdict_of(70, True)[0] == "warn"
    assert verdict_of(59, True)[0] == "fail"
    assert verdict_of(None, None)[0] == "unknown"


def _probe(kind: str, duration_s: float, *, container: str = "mov", streams: tuple[Stream, ...] = (),
           tags: dict[str, str] | None = None) -> Probe:
    return Probe(kind="video" if kind == "video" else "audio", duration_s=duration_s, container=container,
                 size_bytes=1000, bit_rate=None, streams=streams, tags=tags or {})


def _rung(name: str, vmaf: float, *, wasted: bool, segments: int = 3, score: int = 90,
          reasons: tuple[ScoreReason, ...] = ()) -> RenditionQuality:
    return RenditionQuality(
        name=name, stats={"vmaf": MetricStats(mean=vmaf, harmonic_mean=vmaf, p5=vmaf - 2, min=vmaf - 3)},
        segments=tuple(SegmentScore(index=i, start_s=6.0 * i, duration_s=6.0, vmaf=vmaf, psnr=None, ssim=None)
                       for i in range(segments)),
        frames_scored=3 * segments, subsample=60, bits_per_s=1_000_000, wasted_bits=wasted, score=score,
        reasons=reasons)


def test_every_string_from_the_document_is_escaped() -> None:
    evil = "</style><script>alert(3)</script><a href=javascript:alert(4) onclick=x>"
    rung = _rung(evil, 80.0, wasted=True, segments=1, score=70,
                 reasons=(ScoreReason(code="wasted_bits", penalty=10, detail=evil),))
    delivery = DeliveryReport(
        content_class=evil, score=40, reasons=(ScoreReason(code=evil, penalty=60, detail=evil),),
        profiles=(ProfileResult(name=evil, title=evil, primary=True, gain_db=1.0, peak_after_gain_db=0.5,
                                checks=(Check(name=evil, passed=False, measured=-3.0, required=evil),)),))
    probe = _probe("video", 6.0, container=evil,
                   streams=(Stream(index=0, codec_type="video", codec_name=evil, width=640, height=360),),
                   tags={"title": HOSTILE_TITLE, "artist": HOSTILE_ARTIST, evil: evil})
    rendition = MeasuredRendition(name=evil, kind="video", directory=Path("x"),
                                  format=TrackFormat(codecs=evil, width=640, height=360), duration_s=6.0,
                                  peak_bps=1_200_000, average_bps=1_000_000, segment_count=1, frame_rate=25.0,
                                  total_bytes=750_000)
    page = render_report(asset_id="a-1", job_id="j-1", probe=probe,
                         quality=Quality(delivery=delivery, renditions=(rung,)), renditions=[rendition],
                         spectrogram=None)
    assert_inert(page)
    assert HOSTILE_TITLE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(3)" not in page and "&lt;/style&gt;&lt;script&gt;alert(3)" in page
    assert 'id="chart-vmaf"' in page


def test_a_page_with_nothing_measured_still_renders() -> None:
    page = render_report(asset_id="a-2", job_id="j-2", probe=_probe("audio", 1.0), quality=None, renditions=[],
                         spectrogram=None)
    assert_inert(page)
    assert 'data-verdict="unknown"' in page and "An audio-only master: VMAF does not apply." in page
    assert "chart-" not in page


def test_wasted_rungs_are_marked_and_rungs_without_segments_are_tolerated() -> None:
    quality = Quality(renditions=(_rung("1080p", 95.5, wasted=True), _rung("720p", 95.0, wasted=False),
                                  _rung("360p", 70.0, wasted=False, segments=0)))
    page = render_report(asset_id="a-3", job_id="j-3", probe=_probe("video", 18.0), quality=quality, renditions=[],
                         spectrogram=None)
    assert_inert(page)
    assert 'id="chart-vmaf"' in page
    assert '<tr id="rendition-1080p" class="wasted">' in page and '<tr id="rendition-720p" class="">' in page
    assert "Video only: no audio to check" in page


# --- real jobs -----------------------------------------------------------------------------------------------


def test_audio_job_publishes_its_report_beside_the_ladder(audio_job: dict[str, Any]) -> None:
    path, page = report_of(audio_job)
    assert path.name == REPORT_NAME and path.parent == Path(audio_job["hls"]["master"]).parent
    assert_inert(page)
    quality = audio_job["quality"]
    assert f'<div class="score" id="score">{quality["score"]}<small>' in page
    for profile in quality["delivery"]["profiles"]:
        verdict = "pass" if profile["passed"] else "fail"
        assert f'id="profile-{profile["name"]}" data-verdict="{verdict}"' in page
    for element in ("chart-loudness", "chart-spectrogram", "audio-checks", "vmaf-missing"):
        assert f'id="{element}"' in page
    assert "chart-vmaf" not in page


def test_hostile_tags_reach_the_page_as_text(audio_job: dict[str, Any]) -> None:
    assert audio_job["probe"]["tags"]["title"] == HOSTILE_TITLE  # the job kept the tag as it was
    _, page = report_of(audio_job)
    assert HOSTILE_TITLE not in page and HOSTILE_ARTIST not in page
    assert '<h1 id="title">&lt;script&gt;alert(1)&lt;/script&gt;</h1>' in page


def test_video_job_report_has_vmaf_per_segment_for_every_rung(video_job: dict[str, Any]) -> None:
    _, page = report_of(video_job)
    assert_inert(page)
    rungs = [r for r in video_job["quality"]["renditions"] if r["kind"] == "video"]
    assert len(rungs) >= 2 and all(r["segments"] for r in rungs)
    assert 'id="chart-vmaf"' in page and "chart-loudness" not in page
    for rung in rungs:
        assert f'id="rendition-{rung["name"]}"' in page
        assert f'{rung["vmaf"]:.1f}' in page


class RecordingStorage(LocalStorage):
    """The local object store, remembering the order objects were written in and their content types."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[tuple[str, str]] = []

    def put_file(self, path: Path, ref: ObjectRef, *, content_type: str) -> None:
        super().put_file(path, ref, content_type=content_type)
        self.written.append((ref.key, content_type))


def test_report_is_published_before_the_master_playlist(tmp_path: Path) -> None:
    master = make_media(tmp_path / "tone.flac", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4")
    settings = Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path / "home")})
    storage = RecordingStorage(settings.objects_dir)
    outcome = run_job(settings, source=str(master), catalog=Catalog.open(settings.catalog_url), storage=storage)
    document = outcome.document.to_json()
    assert outcome.succeeded, document["error"]
    names = [key.rsplit("/", 1)[1] for key, _ in storage.written]
    assert names[-1] == MASTER_NAME and names.count(REPORT_NAME) == 1
    assert dict(storage.written)[f"{document['hls']['prefix']}/{REPORT_NAME}"] == "text/html; charset=utf-8"
    assert document["quality"]["report"] == str(Path(document["hls"]["master"]).parent / REPORT_NAME)


def test_a_report_that_cannot_be_made_leaves_the_job_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injected into the page renderer only: everything else is the real job on a real master."""

    def broken(**_: Any) -> str:
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(pipelines.job, "render_report", broken)
    master = make_media(tmp_path / "tone.flac", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4")
    settings = Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path / "home")})
    with caplog.at_level(logging.ERROR, logger="pipelines.job"):
        outcome = run_job(settings, source=str(master), catalog=Catalog.open(settings.catalog_url),
                          storage=LocalStorage(settings.objects_dir))
    document = outcome.document.to_json()
    assert outcome.succeeded, document["error"]
    assert document["quality"]["report"] is None
    assert "the renderer broke" in document["quality"]["report_error"]
    ladder = Path(document["hls"]["master"]).parent
    assert (ladder / MASTER_NAME).is_file() and not (ladder / REPORT_NAME).exists()
    assert any("quality report could not be made" in r.getMessage() for r in caplog.records)


# --- a real browser ------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_report_renders_in_chromium_without_requests_or_errors(
    audio_job: dict[str, Any], video_job: dict[str, Any]
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_browser_playback import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            open_report(browser, audio_job, charts=("chart-loudness", "chart-spectrogram"))
            open_report(browser, video_job, charts=("chart-vmaf",))
        finally:
            browser.close()


def open_report(browser: Any, document: dict[str, Any], *, charts: tuple[str, ...]) -> None:
    """Serve the published ladder folder, open its report and check what a person would see."""
    from tests.test_browser_playback import serve

    path, _ = report_of(document)
    with serve(path.parent) as base:
        page = browser.new_page()
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.extend([m.text] if m.type in ("error", "warning") else []))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
        url = f"{base}/{REPORT_NAME}"
        try:
            response = page.goto(url, wait_until="load")
            assert response is not None and response.ok
            assert response.headers["content-type"].startswith("text/html")
            for chart in charts:
                box = page.locator(f"#{chart} svg").bounding_box()
                assert box is not None and box["width"] > 400 and box["height"] > 100, chart
            assert page.locator("#headline").inner_text().strip()
            for profile in (document["quality"].get("delivery") or {}).get("profiles") or []:
                verdict = "pass" if profile["passed"] else "fail"
                card = page.locator(f"#profile-{profile['name']}")
                assert card.get_attribute("data-verdict") == verdict
                assert card.locator(".badge").inner_text().lower() == verdict
            if document["quality"].get("score") is not None:
                assert page.locator("#score").inner_text().startswith(str(document["quality"]["score"]))
            title = document["probe"]["tags"].get("title")
            if title is not None:
                assert page.locator("#title").inner_text() == title
        finally:
            page.close()
    assert [u for u in requests if not u.startswith("data:")] == [url]
    assert not problems, problems
