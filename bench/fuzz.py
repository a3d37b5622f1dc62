"""Fuzz the parsers this project wrote itself, and probe over mutated real masters, for a set time per target.

    .venv/bin/python bench/fuzz.py --target events --seconds 600
    .venv/bin/python bench/fuzz.py --target media --seconds 600      # real ffprobe, confined by the runner

Targets (coverage-guided with atheris/libFuzzer, except ``media``):

* ``probe`` — ffprobe JSON → ``parse_probe`` → ``validate`` and the probe document; seeds:
  ``tests/data/ffprobe_*.json``.
* ``playlist`` — rendition measurements built from the fuzzer's bytes → ``build_master_playlist``: a playlist
  that :func:`check_master_playlist` (and the ``m3u8`` parser) accepts, or ``PlaylistError``.
* ``events`` — bucket notifications → ``parse_bucket_event`` and ``minimal_event``: the minimal event names no
  identity and announces the same masters; seed: ``tests/data/minio_event_put.json``.
* ``isobmff`` — bytes → ``iter_boxes``, ``track_format``, ``count_samples``; seeds: ``tests/data/init_*.mp4``.
* ``tags`` — JSON → ``normalise_tags`` and ``parse_chapters`` (which promise never to raise).
* ``media`` — the fixture masters with random byte flips, overwrites, splices and truncations → ``probe_file``
  (the real ffprobe, under the project's limits); ``MediaError`` is the expected answer to a broken master.

A target's expected errors (``MediaError``, ``EventError``, ``PlaylistError``, ``Mp4FormatError``) are answers;
any other exception is a finding: atheris stops and writes the input to ``--findings`` (``media`` records each
one there and carries on). The number of executions is printed at the end (libFuzzer's ``Done N runs``).
"""

from __future__ import annotations

import argparse
from collections import Counter
import contextlib
import json
import math
from pathlib import Path
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import atheris  # noqa: E402 - after the path setup, so that the project's modules are found

with atheris.instrument_imports(include=["pipelines"]):
    from pipelines.config import Limits  # noqa: E402
    from pipelines.errors import MediaError  # noqa: E402
    from pipelines.media import isobmff, probe, tags  # noqa: E402
    from pipelines.storage import events  # noqa: E402
    from pipelines.video import package  # noqa: E402

DATA = REPO / "tests" / "data"
FIXTURES = REPO / "media_fixtures"
IDENTITY_KEY = b"fuzz-identity-key"
_IDENTITY_FIELDS = {"principalId", "sourceIPAddress", "userIdentity", "requestParameters", "source", "userAgent"}


# --- targets -----------------------------------------------------------------------------------------------

def fuzz_probe(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        parsed = probe.parse_probe(text, size_bytes=len(data))
    except MediaError:
        return
    json.dumps(parsed.to_document(), allow_nan=False)
    with contextlib.suppress(MediaError):
        probe.validate(parsed, Limits())


def fuzz_events(data: bytes) -> None:
    try:
        masters, _ = events.parse_bucket_event(data, masters_bucket="masters", identity_key=IDENTITY_KEY)
    except events.EventError:
        return
    minimal = events.minimal_event(data, identity_key=IDENTITY_KEY)
    leaked = _identity_keys(json.loads(minimal))
    if leaked:
        raise AssertionError(f"the minimal event keeps identity fields {leaked}")
    again, _ = events.parse_bucket_event(minimal, masters_bucket="masters", identity_key=None)
    if again != masters:
        raise AssertionError(f"the minimal event announces {again}, the notification {masters}")


def fuzz_isobmff(data: bytes) -> None:
    for action in (lambda: list(isobmff.iter_boxes(data)), lambda: isobmff.track_format(data),
                   lambda: isobmff.count_samples(data)):
        with contextlib.suppress(isobmff.Mp4FormatError):
            action()


def fuzz_tags(data: bytes) -> None:
    try:
        document = json.loads(data.decode("utf-8", "replace"))
    except (json.JSONDecodeError, RecursionError):
        return
    if not isinstance(document, dict):
        return
    raw_chapters = document.get("chapters")
    duration = document.get("duration")
    chapters = tags.parse_chapters(raw_chapters if isinstance(raw_chapters, list) else [],
                                   duration_s=duration if isinstance(duration, (int, float)) else None)
    language = document.get("stream_language")
    metadata = tags.normalise_tags(document.get("tags") if isinstance(document.get("tags"), dict) else document,
                                   chapters=chapters, stream_language=language if isinstance(language, str) else None)
    json.dumps(metadata.to_document(), allow_nan=False)


def fuzz_playlist(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    renditions = [_rendition(provider) for _ in range(provider.ConsumeIntInRange(0, 6))]
    try:
        text = package.build_master_playlist(renditions)
    except package.PlaylistError:
        return
    check_master_playlist(text, renditions)


def _rendition(provider: Any) -> package.MeasuredRendition:
    kind = provider.PickValueInList(["video", "audio", "video", "audio", "subtitles"])
    name = provider.PickValueInList(["1080p", "540p", "audio-128k"]) if provider.ConsumeBool() \
        else provider.ConsumeUnicode(12)
    codecs = provider.PickValueInList(["avc1.64001f", "mp4a.40.2"]) if provider.ConsumeBool() \
        else provider.ConsumeUnicode(16)

    def maybe_int(low: int, high: int) -> int | None:
        return provider.ConsumeIntInRange(low, high) if provider.ConsumeBool() else None

    track = isobmff.TrackFormat(codecs, width=maybe_int(-10, 1 << 17), height=maybe_int(-10, 1 << 17),
                                channels=maybe_int(-2, 300), sample_rate=maybe_int(0, 1 << 20))
    frame_rate = provider.PickValueInList([None, 25.0, 0.0, -1.0, math.nan, math.inf, provider.ConsumeRegularFloat()])
    return package.MeasuredRendition(
        name=name, kind=kind, directory=Path("."), format=track,
        duration_s=provider.ConsumeFloat(), peak_bps=provider.ConsumeIntInRange(-5, 1 << 40),
        average_bps=provider.ConsumeIntInRange(-5, 1 << 40), segment_count=provider.ConsumeIntInRange(0, 1000),
        frame_rate=frame_rate, total_bytes=provider.ConsumeIntInRange(0, 1 << 40),
    )


# --- oracles -----------------------------------------------------------------------------------------------

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)(?:,|$)')


def check_master_playlist(text: str, renditions: list[package.MeasuredRendition]) -> None:
    """Raise ``AssertionError`` unless ``text`` is a master playlist RFC 8216 accepts, with one variant per
    video rendition (or per audio rendition when there is no video), each pointing at a relative URI."""
    import m3u8

    lines = text.split("\n")
    assert lines[0] == "#EXTM3U", "the first line is not #EXTM3U"
    assert text.endswith("\n") and not any(ch in text for ch in "\r\0"), "stray control characters"
    variants = 0
    for number, line in enumerate(lines):
        assert line.isprintable(), f"line {number} has control characters: {line!r}"
        if line.startswith(("#EXT-X-STREAM-INF:", "#EXT-X-MEDIA:")):
            attributes = line.split(":", 1)[1]
            parsed = _ATTRIBUTE.findall(attributes)
            assert ",".join(f"{k}={v}" for k, v in parsed) == attributes, f"malformed attribute list: {line!r}"
            values = dict(parsed)
            for name in ("BANDWIDTH", "AVERAGE-BANDWIDTH"):
                if name in values:
                    assert re.fullmatch(r"[0-9]{1,20}", values[name]) and int(values[name]) > 0, f"{name}: {line!r}"
            if "RESOLUTION" in values:
                assert re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", values["RESOLUTION"]), f"RESOLUTION: {line!r}"
            if "FRAME-RATE" in values:
                assert re.fullmatch(r"[0-9]+\.[0-9]+", values["FRAME-RATE"]), f"FRAME-RATE: {line!r}"
        if line.startswith("#EXT-X-STREAM-INF:"):
            variants += 1
            uri = lines[number + 1]
            assert uri and not uri.startswith("#") and "://" not in uri and not uri.startswith("/"), \
                f"variant URI {uri!r}"
            assert ".." not in uri.split("/"), f"variant URI {uri!r} leaves the ladder"
    video = [r for r in renditions if r.kind == "video"]
    expected = len(video) if video else len([r for r in renditions if r.kind == "audio"])
    assert variants == expected > 0, f"{variants} variants for {expected} renditions"
    assert len(m3u8.loads(text).playlists) == variants, "m3u8 reads another number of variants"


def _identity_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {str(k) for k in value if k in _IDENTITY_FIELDS}
        for item in value.values():
            found |= _identity_keys(item)
        return found
    if isinstance(value, list):
        return set().union(*(_identity_keys(item) for item in value)) if value else set()
    return set()


# --- the media mutation mode (real ffprobe, not coverage-guided) ------------------------------------------

def mutate(master: bytes, rng: random.Random) -> bytes:
    """``master`` with 1–8 random edits: byte flips, overwrites with interesting values, chunk duplication,
    deletion, truncation."""
    data = bytearray(master)
    for _ in range(rng.randint(1, 8)):
        if not data:
            break
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.35:
            data[at] ^= 1 << rng.randrange(8)
        elif choice < 0.6:
            value = rng.choice([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x01",
                                b"\x80\x00\x00\x00", rng.randbytes(4)])
            data[at:at + len(value)] = value
        elif choice < 0.75:
            length = rng.randint(1, 4096)
            data[at:at] = data[rng.randrange(len(data)):][:length]
        elif choice < 0.9:
            del data[at:at + rng.randint(1, 4096)]
        else:
            del data[rng.randint(0, len(data)):]
    return bytes(data)


def fuzz_media(seconds: float, findings: Path, seed: int) -> int:
    """Probe mutated fixture masters for ``seconds``; return the number of executions."""
    rng = random.Random(seed)
    masters = [p.read_bytes() for p in sorted(FIXTURES.iterdir()) if p.suffix in {".mp4", ".ogg", ".flac", ".jpg"}]
    limits = Limits(probe_timeout_s=30.0, process_memory_mb=2048)
    outcomes: Counter[str] = Counter()
    runs, deadline = 0, time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="fuzz-media-") as scratch:
        path = Path(scratch) / "master"
        while time.monotonic() < deadline:
            path.write_bytes(mutate(rng.choice(masters), rng))
            runs += 1
            try:
                found = probe.probe_file(path, ffprobe="ffprobe", limits=limits)
                json.dumps(found.to_document(), allow_nan=False)
                outcomes["ok"] += 1
            except MediaError as exc:
                outcomes[exc.code] += 1
            except Exception:  # noqa: BLE001 - a finding: keep the input and go on
                outcomes["FINDING"] += 1
                saved = findings / f"media-{runs}.bin"
                saved.write_bytes(path.read_bytes())
                print(f"finding #{outcomes['FINDING']} saved as {saved}:\n{traceback.format_exc()}", flush=True)
    print(f"Done {runs} runs in {seconds:g} s; outcomes: {dict(outcomes.most_common())}", flush=True)
    return runs


# --- driver ------------------------------------------------------------------------------------------------

TARGETS = {"probe": fuzz_probe, "events": fuzz_events, "isobmff": fuzz_isobmff, "tags": fuzz_tags,
           "playlist": fuzz_playlist}
SEEDS = {"probe": ["ffprobe_*.json"], "events": ["minio_event_put.json"], "isobmff": ["init_*.mp4"], "tags": [],
         "playlist": []}


def _seed_corpus(target: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for pattern in SEEDS[target]:
        for seed in DATA.glob(pattern):
            (corpus / seed.name).write_bytes(seed.read_bytes())
    if target == "isobmff":  # media segments too (moof/traf/trun), as the project's encoder writes them
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=10:duration=2",
                 "-f", "lavfi", "-i", "sine=duration=2", "-c:v", "libx264", "-g", "10", "-c:a", "aac", "-f", "hls",
                 "-hls_segment_type", "fmp4", "-hls_time", "1", f"{scratch}/index.m3u8"], check=True)
            for made in Path(scratch).glob("*.m4s"):
                (corpus / f"segment-{made.name}").write_bytes(made.read_bytes())
    if target == "probe":  # what ffprobe says about every fixture master
        for master in sorted(FIXTURES.iterdir()):
            if master.suffix in {".mp4", ".ogg", ".flac", ".jpg"}:
                described = subprocess.run(
                    ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters", "-of", "json",
                     str(master)], capture_output=True, check=True).stdout
                (corpus / f"ffprobe-{master.stem}.json").write_bytes(described)
    if target == "tags":
        (corpus / "tags.json").write_text(json.dumps({
            "tags": {"TITLE": "Song", "ISRC": "US-S1Z-99-00001", "track": "3/12", "date": "2019-05-17",
                     "language": "en", "creation_time": "1970-01-01T00:00:00Z"},
            "chapters": [{"start_time": "0.0", "end_time": "10.5", "tags": {"title": "One"}}],
            "duration": 20.0, "stream_language": "eng"}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, choices=[*TARGETS, "media"])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz (default 600)")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: a new one under bench/.cache/fuzz/)")
    parser.add_argument("--findings", type=Path, default=REPO / "bench" / "results" / "fuzz",
                        help="where crashing inputs are written")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.findings.mkdir(parents=True, exist_ok=True)
    if args.target == "media":
        fuzz_media(args.seconds, args.findings, args.seed)
        return 0
    corpus = args.corpus or REPO / "bench" / ".cache" / "fuzz" / args.target
    _seed_corpus(args.target, corpus)
    libfuzzer_args = [sys.argv[0], f"-max_total_time={int(args.seconds)}", f"-seed={args.seed}",
                      "-rss_limit_mb=2048", "-timeout=20", f"-artifact_prefix={args.findings}/{args.target}-",
                      "-print_final_stats=1", str(corpus)]
    atheris.Setup(libfuzzer_args, TARGETS[args.target])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
