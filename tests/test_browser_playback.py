"""The worker's HLS output plays in a real player: hls.js on Media Source Extensions in headless Chromium.

Each test makes its own ~30 s master with ffmpeg's lavfi sources, runs ``mediaworker process --json`` as a
real process, serves the published ladder over HTTP on 127.0.0.1 and plays it with the pinned hls.js of
``tests/browser/package.json`` (install it with ``npm ci --prefix tests/browser``). Chromium is Debian's
``/usr/bin/chromium`` (or ``$CHROMIUM``), driven through playwright's sync API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from playwright.sync_api import Browser, Page, Response, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
import pytest

pytestmark = pytest.mark.browser

HLS_JS = Path(__file__).resolve().parent / "browser" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
MEDIAWORKER = Path(sys.executable).with_name("mediaworker")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]
DURATION_S = 30  # five 6 s segments
PLAYBACK_RATE = 4.0
PLAYED_PAST_S = 20.0  # more than three 6 s segments
# A wait fails when the player has shown no progress (no new event, the playhead still) for STALL_S, and in any
# case after WAIT_CAP_S: a busy machine slows the player down but does not stop it, so no fixed total is right.
STALL_S = 60.0
WAIT_CAP_S = 600.0
POLL_MS = 5_000  # how often a wait looks at the player's progress


class Player(Protocol):
    """The ``player`` fixture: ``with player(document) as page`` (see there)."""

    def __call__(self, document: dict[str, Any], *, media_delay_s: float = 0.0) -> AbstractContextManager[Page]: ...


# The player page. ``start(src)`` attaches hls.js to a muted <video> and plays at PLAYBACK_RATE; every event a
# test looks at lands in ``window.__events``. A small forward buffer makes hls.js load the stream fragment by
# fragment, so that a forced level switch loads (and plays) fragments of the new level.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>hls.js playback</title></head>
<body><video id="video" muted playsinline></video>
<script src="hls.min.js"></script>
<script>
window.__events = [];
const log = (type, data) => window.__events.push({type, ...data});
window.start = (src, rate) => {
  const video = document.getElementById("video");
  const hls = new Hls({maxBufferLength: 8, maxMaxBufferLength: 12, capLevelToPlayerSize: false});
  window.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
    log("manifest_parsed", {levels: d.levels.length, audioTracks: d.audioTracks.length});
    video.playbackRate = rate;
    video.play().catch((e) => log("play_rejected", {message: String(e)}));
  });
  hls.on(Hls.Events.BUFFER_APPENDED, (_, d) => {
    for (const [track, ranges] of Object.entries(d.timeRanges || {})) {
      if (ranges && ranges.length) log("buffered", {track, start: ranges.start(0)});
    }
  });
  hls.on(Hls.Events.FRAG_LOADED, (_, d) => log("frag_loaded", {level: d.frag.level, sn: d.frag.sn, kind: d.frag.type}));
  hls.on(Hls.Events.ERROR, (_, d) => log("error", {
    fatal: d.fatal, kind: d.type, details: d.details, reason: String(d.reason || d.error || d.err || ""),
  }));
  video.addEventListener("error", () => log("media_error", {code: video.error?.code, message: video.error?.message}));
  hls.loadSource(src);
  hls.attachMedia(video);
};
</script></body></html>
"""


class _Handler(SimpleHTTPRequestHandler):
    """Static files with HLS content types, and no request log on stderr.

    ``media_delay_s`` holds back every init segment and media segment by that many seconds before answering: a
    slow server (or a busy machine) made deterministic.
    """

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/mp4", ".mp4": "video/mp4"}

    def __init__(self, *args: Any, media_delay_s: float = 0.0, **kwargs: Any) -> None:
        self.media_delay_s = media_delay_s  # set first: the base class answers the request inside __init__
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.media_delay_s and self.path.endswith((".mp4", ".m4s")):
            time.sleep(self.media_delay_s)  # the simulated latency of a slow server, not a wait on a condition
        # The player may give up on a load: hls.js aborts the loads of a level it switches away from.
        with suppress(BrokenPipeError, ConnectionResetError):
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve(root: Path, *, media_delay_s: float = 0.0) -> Iterator[str]:
    """Serve ``root`` on a free port of 127.0.0.1 and yield its base URL; shut the server down afterwards.

    ``media_delay_s``: seconds every segment response is held back (see ``_Handler``).
    """
    handler = functools.partial(_Handler, directory=str(root), media_delay_s=media_delay_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="hls-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _ffmpeg(path: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(path)], check=True, timeout=120)
    return path


def _process(master: Path, home: Path) -> dict[str, Any]:
    """Run ``mediaworker process MASTER --json`` as a real process; the job must succeed."""
    proc = subprocess.run(
        [str(MEDIAWORKER), "process", str(master), "--json"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "MEDIAWORKER_HOME": str(home)}, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"mediaworker exited {proc.returncode}:\n{proc.stderr[-3000:]}\n{proc.stdout[-3000:]}"
    document: dict[str, Any] = json.loads(proc.stdout)
    assert document["status"] == "succeeded", document["error"]
    return document


@pytest.fixture(scope="module")
def hls_js() -> Path:
    """The pinned hls.js build; missing it is a failure of the checkout, not a reason to skip."""
    if not HLS_JS.is_file():
        pytest.fail(f"hls.js is not installed ({HLS_JS} is missing): run `npm ci --prefix tests/browser`")
    return HLS_JS


@pytest.fixture(scope="module")
def video_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 960x540 25 fps master with stereo sound → 540p/360p/234p H.264 rungs and one AAC rendition."""
    folder = tmp_path_factory.mktemp("video-master")
    master = _ffmpeg(
        folder / "video.mp4",
        "-f", "lavfi", "-i", f"testsrc2=size=960x540:rate=25:duration={DURATION_S}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={DURATION_S}",
        "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
    )
    return _process(master, folder / "home")


@pytest.fixture(scope="module")
def audio_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A stereo FLAC master → a ladder of AAC renditions, each a variant of the master playlist."""
    folder = tmp_path_factory.mktemp("audio-master")
    master = _ffmpeg(
        folder / "tone.flac",
        "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate=44100:duration={DURATION_S}", "-ac", "2",
    )
    return _process(master, folder / "home")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (playwright's own browsers are not installed), closed after the module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def player(browser: Browser, hls_js: Path, tmp_path: Path) -> Player:
    """``with player(document) as page``: the job's ladder, hls.js and the player page served and opened.

    ``player(document, media_delay_s=2.0)`` serves every segment that many seconds late. Leaving the block asserts
    that every HTTP request the page made succeeded (no playlist names a missing file).
    """

    @contextmanager
    def open_(document: dict[str, Any], *, media_delay_s: float = 0.0) -> Iterator[Page]:
        site = tmp_path / "site"
        shutil.copytree(Path(document["hls"]["master"]).parent, site / "hls")
        shutil.copy(hls_js, site / "hls.min.js")
        (site / "index.html").write_text(PAGE)
        with serve(site, media_delay_s=media_delay_s) as base:
            page = browser.new_page()
            failed: list[str] = []

            def check(response: Response) -> None:
                failed.extend([] if response.ok else [f"{response.status} {response.url}"])

            page.on("response", check)
            page.on("console", lambda message: print(f"console.{message.type}: {message.text}"))
            try:
                page.goto(f"{base}/index.html")
                yield page
                assert not failed, f"HTTP requests failed: {failed}"
            finally:
                page.close()

    return open_


def events(page: Page, kind: str) -> list[dict[str, Any]]:
    """The player events of one type, in the order they happened."""
    found: list[dict[str, Any]] = page.evaluate("(k) => window.__events.filter((e) => e.type === k)", kind)
    return found


def wait(page: Page, expression: str, arg: Any = None, *, what: str) -> None:
    """Wait until ``expression`` (a JS function of ``arg``) is truthy, for as long as the player makes progress.

    Progress is a new player event or a moving playhead. Fails, with the player's log, after ``STALL_S`` seconds
    without progress or ``WAIT_CAP_S`` seconds in all, or at once if the page crashes.
    """
    started = last_progress = time.monotonic()
    progress = None
    while True:
        try:
            page.wait_for_function(expression, arg=arg, timeout=POLL_MS, polling=100)
            return
        except PlaywrightTimeoutError as exc:
            now, seen = time.monotonic(), progress
            progress = page.evaluate("() => [window.__events.length, document.getElementById('video').currentTime]")
            if progress != seen:
                last_progress = now
            if now - last_progress < STALL_S and now - started < WAIT_CAP_S:
                continue
            failure: Exception = exc
        except Exception as exc:  # the page crashed or closed: no point waiting on
            failure = exc
        log = page.evaluate("() => window.__events.filter((e) => e.type !== 'frag_loaded')")
        state = page.evaluate("() => { const v = document.getElementById('video');"
                              " return {t: v.currentTime, ready: v.readyState, paused: v.paused}; }")
        pytest.fail(f"gave up waiting for {what} after {time.monotonic() - started:.0f} s"
                    f" ({time.monotonic() - last_progress:.0f} s without progress): {failure.__class__.__name__};"
                    f" video {state}; events {log}")


def play_every_level(page: Page, document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Play the master, force each level in turn, then let it play on; return the rendition entries checked.

    Asserts MSE support for every rendition's codecs, the number of levels, that each forced level loads
    fragments and plays on from them (for video: frames decoded at that level's height), that playback
    passes ``PLAYED_PAST_S`` and that hls.js reported no fatal error. Holds however slow the machine or the
    server: no step depends on how far the playhead got while the test was looking elsewhere.
    """
    renditions = [r for r in document["hls"]["renditions"] if r["kind"] == kind]
    assert renditions, f"the job document lists no {kind} rendition"
    for rendition in document["hls"]["renditions"]:
        mime = f'{rendition["kind"]}/mp4; codecs="{rendition["codecs"]}"'
        assert page.evaluate("(m) => MediaSource.isTypeSupported(m)", mime), f"MSE cannot play {mime}"

    page.evaluate("([src, rate]) => window.start(src, rate)", ["hls/master.m3u8", PLAYBACK_RATE])
    wait(page, "() => window.__events.some((e) => e.type === 'manifest_parsed' || e.fatal)", what="MANIFEST_PARSED")
    assert not [e for e in events(page, "error") if e["fatal"]], events(page, "error")
    (parsed,) = events(page, "manifest_parsed")
    assert parsed["levels"] == len(renditions), f"hls.js found {parsed['levels']} levels, not {len(renditions)}"

    # Let playback start at the level hls.js picked before forcing one. hls.js 1.7.4 stalls for good when a forced
    # switch lands while the start level's init segment is still loading: the aborted init load's error handler
    # aborts the fragment loader, which by then is loading the new level's first fragment, and before any
    # fragment has been parsed (no transmuxer yet) nothing resets the stream controller from FRAG_LOADING. A busy
    # machine or a slow server widens that window (three `networkError aborted`, then nothing).
    wait(page, "() => window.hls.media.currentTime > 0 || window.__events.some((e) => e.fatal)",
         what="playback to start")
    for level in range(parsed["levels"]):
        # Each level plays from the top, so the stream's end cannot come before the level has played a second,
        # however far the playhead ran while this process waited for the CPU. Only fragments loaded after the
        # switch count.
        since = page.evaluate("(i) => { window.hls.currentLevel = i; window.hls.media.currentTime = 0;"
                              " return window.__events.length; }", level)
        wait(page, """([i, since, video]) => {
                 const v = window.hls.media, h = window.hls.levels[i].height;
                 return window.__events.slice(since).some(
                     (e) => e.type === 'frag_loaded' && e.level === i && e.kind === 'main')
                   && v.currentTime > 1 && (!video || v.videoHeight === h);
             }""", [level, since, kind == "video"], what=f"level {level} to load and play")

    wait(page, f"() => window.hls.media.currentTime > {PLAYED_PAST_S} || window.hls.media.ended",
         what=f"playback past {PLAYED_PAST_S} s")
    assert page.evaluate("() => window.hls.media.currentTime") > PLAYED_PAST_S
    fatal = [e for e in events(page, "error") if e["fatal"]] + events(page, "media_error")
    assert not fatal, f"hls.js reported fatal errors: {fatal}"
    loaded = {e["level"] for e in events(page, "frag_loaded") if e["kind"] == "main"}
    assert loaded == set(range(len(renditions))), f"fragments loaded from levels {sorted(loaded)}"
    return renditions


def test_video_ladder_plays_every_rung_in_hls_js(video_job: dict[str, Any], player: Player) -> None:
    """The video ladder plays in hls.js: one level per video rendition, each rung loads and decodes at its own
    size, the AAC rendition is the audio track, and playback runs past several segments with no fatal error."""
    with player(video_job) as page:
        renditions = play_every_level(page, video_job, "video")
        assert [r["resolution"] for r in renditions] == ["960x540", "640x360", "416x234"]
        audio = [r for r in video_job["hls"]["renditions"] if r["kind"] == "audio"]
        assert events(page, "manifest_parsed")[0]["audioTracks"] == len(audio) == 1
        assert {e["level"] for e in events(page, "frag_loaded") if e["kind"] == "audio"}, "no audio fragment loaded"
        # Lip sync: the first picture and the first sound are presented together (EBU R37 allows 40 ms).
        first: dict[str, float] = {}
        for entry in events(page, "buffered"):
            first.setdefault(entry["track"], entry["start"])
        assert abs(first["video"] - first["audio"]) <= 0.040, f"video and audio start apart: {first}"


def test_audio_ladder_plays_every_rendition_in_hls_js(audio_job: dict[str, Any], player: Player) -> None:
    """An audio-only ladder plays in hls.js: one level per AAC rendition, each loads and plays, and playback
    runs past several segments with no fatal error."""
    with player(audio_job) as page:
        renditions = play_every_level(page, audio_job, "audio")
        assert len(renditions) >= 2, "a stereo music master should get more than one AAC rendition"


def test_audio_ladder_plays_every_rendition_from_a_slow_server(audio_job: dict[str, Any], player: Player) -> None:
    """With every segment served 2 s late, as a busy machine may serve it, each forced level still loads and
    plays: no level is forced while the start level's first segments are on their way (hls.js stalls for good
    then, see ``play_every_level``), and no wait gives up while the player is still making progress."""
    with player(audio_job, media_delay_s=2.0) as page:
        renditions = play_every_level(page, audio_job, "audio")
        assert len(renditions) >= 2, "a stereo music master should get more than one AAC rendition"
