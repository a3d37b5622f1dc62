"""The audio feature record against ground truth, and its speed against a bare librosa run.

```
.venv/bin/python bench/features_bench.py [--pieces N] [--no-real] [--no-speed] [--speed-seconds S]
```

Accuracy (see ``bench/README.md`` for the corpus and the metrics):

* **MIDI corpus** (:mod:`midi_pieces`): pieces with a known tempo, key and metre rendered through FluidSynth
  with a General MIDI soundfont, each analysed exactly as the job does (ffprobe, the one ffmpeg PCM decode,
  :class:`~pipelines.audio.features.FeatureSink`). Tempo Accuracy1 (within 4 % of the reference) and Accuracy2 (within
  4 % of the reference × 1, 2, 3, ½ or ⅓), key accuracy and the MIREX weighted key score (``mir_eval``).
* **Real recordings**: the fixtures, the Debian music packages of :mod:`music` and LibriVox speech from Debian's
  ``pocketsphinx-testdata``: only speech or music is known; the whole-file ``content_class`` is scored (the
  MIDI renders count as music too).

Speed: in a child process pinned to one core (affinity and every numeric library's thread count 1), the whole
feature record of a 5-minute track (probe, decode, :class:`FeatureSink` and the loudness meter that fills
``loudness``), warm, against ``librosa.load`` + ``librosa.beat.beat_track`` on the same file, warm too,
interleaved over ``--repeat`` runs. The warm-up (``features.warm_up()``: librosa's numba kernels compiled into an
empty cache, then loaded from the filled one) is timed apart, each in a fresh pinned process. Figures go to
stdout and ``bench/results/features.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time
from typing import Any
import zipfile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from midi_pieces import DEFAULT_SEED  # noqa: E402

CACHE = BENCH / ".cache" / "features"
RESULTS = BENCH / "results"
FIXTURES = ROOT / "media_fixtures"
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SPEECH_PACKAGE = "pocketsphinx-testdata"
PSPHINX_DIR = "usr/share/pocketsphinx/test/data"
PYANNOTE = "pyannote.audio==4.0.7"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
WARM_UPS = {"empty_cache": "compiling into an empty cache", "filled_cache": "from the filled cache"}
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0)
TEMPO_TOLERANCE = 0.04
GOALS = {"tempo_accuracy1": 0.85, "tempo_accuracy2": 0.95, "key_weighted": 0.80, "speech_music": 1.0,
         "realtime_factor": 40.0}


@dataclass(frozen=True)
class Labelled:
    """A real recording whose only known answer is ``speech`` or ``music``."""

    name: str
    path: Path
    truth: str


def setup() -> None:
    """FluidSynth and the General MIDI soundfont, from the Debian packages, when either is missing."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        subprocess.run(["bash", str(ROOT / "docker" / "install-system-deps.sh"), "--bench"], check=True)


def render(spec: Any) -> Path:
    """The piece as a 44.1 kHz stereo FLAC, rendered once and cached."""
    from midi_pieces import write_midi

    out = CACHE / "midi" / f"{spec.name}.flac"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    mid, wav = out.with_suffix(".mid"), out.with_suffix(".wav")
    write_midi(spec, mid)
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", "44100", "-g", "0.6", str(SOUNDFONT), str(mid)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "flac", str(out)], check=True)
    wav.unlink()
    mid.unlink()
    return out


def analyse(path: Path, *, loudness: bool = False) -> Any:
    """The feature record of ``path`` as the job computes it: probe, one PCM decode, the sinks."""
    from pipelines.audio.features import FeatureSink
    from pipelines.audio.loudness import LoudnessMeter
    from pipelines.config import Limits
    from pipelines.media.decode import analysis_format, decode_audio
    from pipelines.media.probe import probe_file

    limits = Limits()
    probe = probe_file(path, ffprobe="ffprobe", limits=limits)
    fmt = analysis_format(probe)
    sink = FeatureSink(rate=fmt.rate, channels=fmt.channels)
    meter = LoudnessMeter(rate=fmt.rate, channels=fmt.channels) if loudness else None
    decode_audio(path, probe, [sink] if meter is None else [sink, meter], ffmpeg="ffmpeg", limits=limits, fmt=fmt)
    record = sink.finish()
    if meter is not None:
        measured = meter.finish().integrated_lufs
        if measured is not None:
            record = record.with_loudness(measured)
    return record


def tempo_hits(estimate: float | None, reference: float) -> tuple[bool, bool]:
    """(Accuracy1 hit, Accuracy2 hit): within 4 % of the reference, or of it times 2, 3, ½ or ⅓."""
    if estimate is None:
        return False, False
    one = abs(estimate - reference) <= TEMPO_TOLERANCE * reference
    two = any(abs(estimate - reference * f) <= TEMPO_TOLERANCE * reference * f for f in OCTAVE_FACTORS)
    return one, two


def key_label(key: int, mode: int) -> str:
    from midi_pieces import PITCH_CLASSES

    return "X" if key < 0 else f"{PITCH_CLASSES[key]} {'major' if mode == 1 else 'minor'}"


def midi_accuracy(count: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    from midi_pieces import corpus
    import mir_eval

    rows = []
    for spec in corpus(count, seed=seed):
        path = render(spec)
        record = analyse(path)
        tempo = record.rhythm.tempo_bpm
        one, two = tempo_hits(tempo, spec.tempo_bpm)
        estimated_key = key_label(record.key.key, record.key.mode)
        rows.append({
            "name": spec.name, "tempo_ref": spec.tempo_bpm, "tempo": None if tempo is None else round(tempo, 2),
            "accuracy1": one, "accuracy2": two, "key_ref": spec.key_name, "key": estimated_key,
            "key_weighted": float(mir_eval.key.weighted_score(spec.key_name, estimated_key)),
            "metre_ref": spec.beats_per_bar if not spec.compound else 2, "time_signature": record.rhythm.time_signature,
            "content_class": record.content.content_class, "truth": "music",
        })
        print(f"  {spec.name:<44} tempo {rows[-1]['tempo']!s:>7} (ref {spec.tempo_bpm:g})"
              f" {'A1' if one else ('A2' if two else '--')}  key {estimated_key:<9} (ref {spec.key_name})"
              f"  {record.content.content_class}", flush=True)
    n = len(rows)
    summary = {
        "pieces": n,
        "tempo_accuracy1": sum(r["accuracy1"] for r in rows) / n,
        "tempo_accuracy2": sum(r["accuracy2"] for r in rows) / n,
        "key_accuracy": sum(r["key"] == r["key_ref"] for r in rows) / n,
        "key_weighted": sum(r["key_weighted"] for r in rows) / n,
        "midi_music": sum(r["content_class"] == "music" for r in rows) / n,
    }
    metred = [r for r in rows if r["metre_ref"] in (3, 4)]  # the record's time_signature is 3 or 4 only
    right_metre = sum(r["time_signature"] == r["metre_ref"] for r in metred)
    summary["time_signature_accuracy"] = right_metre / max(1, len(metred))
    return rows, summary


def speech_files() -> list[Path]:
    """Real speech: LibriVox excerpts and CMU command recordings from Debian's ``pocketsphinx-testdata`` (fetched,
    not installed), the LibriVox excerpts joined into one file, and pyannote.audio's 30 s two-speaker dialogue
    (``sample.wav`` of its wheel, MIT)."""
    root = CACHE / "speech"
    data = root / PSPHINX_DIR
    if not data.exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-q", SPEECH_PACKAGE], cwd=root, check=True, capture_output=True)
        deb = next(root.glob(f"{SPEECH_PACKAGE}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        deb.unlink()
    excerpts = sorted((data / "librivox").glob("*.wav"))
    joined = root / "librivox-joined.flac"
    if not joined.exists():
        listing = root / "joined.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in excerpts))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c:a", "flac", str(joined)], check=True)
    commands = []
    for raw in sorted(data.glob("*.raw")):  # 16 kHz 16-bit mono without a header
        out = root / f"cmu-{raw.stem}.flac"
        if not out.exists():
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", "16000", "-ac", "1",
                            "-i", str(raw), "-c:a", "flac", str(out)], check=True)
        commands.append(out)
    dialogue = root / "pyannote-sample.wav"
    if not dialogue.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(root), PYANNOTE],
                       check=True, capture_output=True)
        wheel = next(root.glob("pyannote_audio-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            dialogue.write_bytes(archive.read("pyannote/audio/sample/sample.wav"))
        wheel.unlink()
    return [*excerpts, joined, *commands, dialogue]


def real_recordings(music_count: int) -> list[Labelled]:
    """The fixtures, the LibriVox speech and ``music_count`` pieces of the Debian music (one per source file,
    evenly spread over the sorted list; 0: all of them)."""
    import music

    items = [Labelled(p.stem, p, "music") for p in sorted(FIXTURES.glob("music_*.ogg"))]
    items.append(Labelled("speech_librivox_16k", FIXTURES / "speech_librivox_16k.flac", "speech"))
    items += [Labelled(p.stem, p, "speech") for p in speech_files()]
    one_per_file = {piece.group: piece for piece in reversed(music.pieces(BENCH / ".cache" / "music"))}
    pieces = sorted(one_per_file.values(), key=lambda piece: piece.name)
    if 0 < music_count < len(pieces):
        pieces = [pieces[int(i * len(pieces) / music_count)] for i in range(music_count)]
    items += [Labelled(piece.name, piece.path, "music") for piece in pieces]
    return items


def real_accuracy(music_count: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    rows = []
    for item in real_recordings(music_count):
        record = analyse(item.path)
        got = record.content.content_class
        rows.append({"name": item.name, "truth": item.truth, "content_class": got,
                     "speechiness": record.content.speechiness, "duration_s": round(record.duration_s, 1),
                     "tempo": record.rhythm.tempo_bpm, "key": key_label(record.key.key, record.key.mode)})
        mark = "ok" if got == item.truth else "WRONG"
        print(f"  {item.name:<44} {item.truth:<7} -> {got:<7} speechiness {record.content.speechiness}  {mark}",
              flush=True)
    speech = [r for r in rows if r["truth"] == "speech"]
    music_rows = [r for r in rows if r["truth"] == "music"]
    summary = {
        "recordings": len(rows),
        "speech_files": len(speech),
        "music_files": len(music_rows),
        "speech_correct": sum(r["content_class"] == "speech" for r in speech) / max(1, len(speech)),
        "music_correct": sum(r["content_class"] == "music" for r in music_rows) / max(1, len(music_rows)),
    }
    return rows, summary


def five_minute_track(seconds: float) -> Path:
    """The first ``seconds`` of Planet Blupi's ``music001`` (a 29-minute OGG Vorbis track of the Debian package),
    as a 44.1 kHz stereo FLAC, cut once."""
    import music

    out = CACHE / f"track-{int(seconds)}s.flac"
    if not out.exists():
        source = music.fetch(BENCH / ".cache" / "music") / "usr/share/planetblupi/music/music001.ogg"
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-t", f"{seconds}",
                        "-ac", "2", "-ar", "44100", "-c:a", "flac", str(out)], check=True)
    return out


def warm_up_child() -> dict[str, float]:
    """Run in a pinned child: ``features.warm_up()`` in a fresh process, wall and CPU seconds."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    from pipelines.audio.features import warm_up

    warm_up()
    return {"wall_s": time.perf_counter() - started_wall, "cpu_s": time.process_time() - started_cpu}


def speed_child(path: Path, repeat: int) -> dict[str, Any]:
    """Run in the pinned child: warm both, then time them interleaved. Wall and CPU (self + ffmpeg) seconds."""
    import librosa
    import numpy as np

    from pipelines.audio.features import warm_up

    def project() -> None:
        analyse(path, loudness=True)

    def baseline() -> None:
        y, sr = librosa.load(str(path), sr=22050, mono=True)
        librosa.beat.beat_track(y=y, sr=sr)

    def cpu() -> float:
        me, kids = os.times(), os.times()
        return me.user + me.system + kids.children_user + kids.children_system

    warm_up()
    y = np.zeros(5 * 22050, dtype=np.float32)
    y[:: 22050 // 2] = 1.0
    librosa.beat.beat_track(y=y, sr=22050)  # librosa's own numba kernels
    times: dict[str, list[tuple[float, float]]] = {"project": [], "baseline": []}
    for run in range(repeat):
        order = ("project", "baseline") if run % 2 == 0 else ("baseline", "project")
        for name in order:
            start_wall, start_cpu = time.perf_counter(), cpu()
            (project if name == "project" else baseline)()
            times[name].append((time.perf_counter() - start_wall, cpu() - start_cpu))
    return {name: {"wall_s": sorted(t[0] for t in runs), "cpu_s": sorted(t[1] for t in runs)}
            for name, runs in times.items()}


def speed(seconds: float, repeat: int) -> dict[str, Any]:
    path = five_minute_track(seconds)
    env = dict(os.environ, **{name: "1" for name in THREAD_VARS})
    # The kernels (the record's and the baseline's librosa) compile into a cache of this bench's own, emptied
    # first so that the first warm-up measures their compilation and the second their loading.
    numba_cache = CACHE / "numba"
    shutil.rmtree(numba_cache, ignore_errors=True)
    env["NUMBA_CACHE_DIR"] = str(numba_cache)

    def child(*args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, __file__, *args], env=env, check=True, capture_output=True, text=True)
        figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return figures

    warm_ups = {name: child("--warm-up-child") for name in WARM_UPS}  # in this order: the first fills the cache
    measured = child("--speed-child", str(path), "--repeat", str(repeat))
    result: dict[str, Any] = {"track_s": seconds, "cpu_core": measured.pop("cpu_core")}
    result["warm_up"] = {name: {key: round(value, 2) for key, value in figures.items() if key != "cpu_core"}
                         for name, figures in warm_ups.items()}
    for name, figures in measured.items():
        median_wall = figures["wall_s"][len(figures["wall_s"]) // 2]
        median_cpu = figures["cpu_s"][len(figures["cpu_s"]) // 2]
        result[name] = {"median_wall_s": round(median_wall, 3), "median_cpu_s": round(median_cpu, 3),
                        "realtime_wall": round(seconds / median_wall, 1),
                        "realtime_cpu": round(seconds / median_cpu, 1)}
    project, baseline = result["project"], result["baseline"]
    result["project_vs_baseline_wall"] = round(baseline["median_wall_s"] / project["median_wall_s"], 2)
    result["project_vs_baseline_cpu"] = round(baseline["median_cpu_s"] / project["median_cpu_s"], 2)
    return result


def report(summary: dict[str, Any]) -> None:
    def line(label: str, value: float | None, goal: str | None, fmt: str = "{:.3f}") -> None:
        shown = "n/a" if value is None else fmt.format(value)
        verdict = ""
        if goal is not None and value is not None:
            verdict = "ok" if value >= GOALS[goal] else "MISSED"
            verdict = f"(goal ≥ {GOALS[goal]:g}) {verdict}"
        print(f"  {label:<44} {shown:>8}  {verdict}")

    print("\nsummary")
    midi = summary.get("midi")
    if midi:
        print(f"  MIDI corpus: {midi['pieces']} pieces")
        line("tempo Accuracy1 (±4 %)", midi["tempo_accuracy1"], "tempo_accuracy1")
        line("tempo Accuracy2 (×2, ×3, ×½, ×⅓ allowed)", midi["tempo_accuracy2"], "tempo_accuracy2")
        line("key accuracy (exact)", midi["key_accuracy"], None)
        line("key MIREX weighted score", midi["key_weighted"], "key_weighted")
        line("time signature (3/4 and 4/4 pieces)", midi["time_signature_accuracy"], None)
        line("MIDI renders classed music", midi["midi_music"], None)
    real = summary.get("real")
    if real:
        print(f"  real recordings: {real['speech_files']} speech, {real['music_files']} music")
        line("speech files classed speech", real["speech_correct"], "speech_music")
        line("music files classed music", real["music_correct"], "speech_music")
    fast = summary.get("speed")
    if fast:
        print(f"  speed, one core (cpu {fast['cpu_core']}), {fast['track_s']:g} s track:")
        for name in ("project", "baseline"):
            f = fast[name]
            print(f"    {name:<9} wall {f['median_wall_s']:7.2f} s = {f['realtime_wall']:6.1f}× real time;"
                  f"  cpu {f['median_cpu_s']:7.2f} s = {f['realtime_cpu']:6.1f}×")
        for name, label in WARM_UPS.items():
            w = fast["warm_up"][name]
            print(f"    warm-up, {label:<29} wall {w['wall_s']:6.2f} s, cpu {w['cpu_s']:6.2f} s  (not in the timings)")
        line("feature record, × real time (wall)", fast["project"]["realtime_wall"], "realtime_factor", "{:.1f}")
        line("baseline wall / feature record wall", fast["project_vs_baseline_wall"], None, "{:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=48, help="MIDI pieces (48: every key twice)")
    parser.add_argument("--corpus-seed", type=int, default=DEFAULT_SEED,
                        help="another seed: a held-out corpus (other tempos, instruments, melodies)")
    parser.add_argument("--no-midi", action="store_true")
    parser.add_argument("--no-real", action="store_true", help="skip the real recordings")
    parser.add_argument("--music", type=int, default=24, help="Debian music pieces to class (0: all, ~2.5 h)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-seconds", type=float, default=300.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speed-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm-up-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_up_child:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        print(json.dumps({**warm_up_child(), "cpu_core": core}))
        return
    if args.speed_child is not None:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        result = speed_child(args.speed_child, args.repeat)
        print(json.dumps({**result, "cpu_core": core}))
        return
    setup()
    summary: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    if not args.no_midi:
        print("MIDI corpus")
        rows["midi"], summary["midi"] = midi_accuracy(args.pieces, args.corpus_seed)
    if not args.no_real:
        print("real recordings")
        rows["real"], summary["real"] = real_accuracy(args.music)
    if not args.no_speed:
        print("speed ...", flush=True)
        summary["speed"] = speed(args.speed_seconds, args.repeat)
    report(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "features.json").write_text(json.dumps({"summary": summary, "rows": rows,
                                                       "load_average": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
