"""Match benchmark: top-1 recall per query class and false positives on real music, then the index at scale.

Real game music (``bench/music.py``) is cut into pieces; whole source files (``groups``) are held apart as
out-of-catalog music (about 20 %), the rest is fingerprinted (``fingerprint_samples`` and ``catalog_landmarks``
at 11,025 Hz mono) into the catalog index. Every query is made by ffmpeg from a piece's 44.1 kHz stereo master,
decoded to mono 11,025 Hz as the match service does, and searched with ``find_clip(samples, index, top=1)``. A hit
is the right asset with the clip's start in it (``asset_offset_s - query_offset_s * tf``, ``tf`` the asset seconds
per clip second) within 0.5 s, or a place in the catalog that holds the same music (looped game music repeats
itself: reference fingerprints within ``REPEAT_BER``), counted apart as ``repeat``. Any match for an
out-of-catalog clip (10 s, clean and under 5 dB of pink noise, and 3 s for ``find_short_clip``) is a false
positive. The scale part indexes at least ``--scale-tracks`` tracks (the real catalog plus transposed, coloured
variants of it) and times ``find_clip`` on one core. Results: stdout and ``bench/results/match.json``.

    .venv/bin/python bench/match_bench.py [--tracks N] [--queries-per-class K] [--noisy-queries P]
                                          [--whole-files W] [--scale-tracks M] [--latency-queries L] [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import ctypes
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
import functools
import hashlib
import json
import multiprocessing
import os
from pathlib import Path
import sys
import tempfile
import threading
import time
from typing import Any

from music import MASTER_RATE, Piece, decode, edit, ffmpeg, pieces, pink_rms, variants
import numpy as np
import numpy.typing as npt

from pipelines.match.fingerprint import ITEM_S, FingerprintSink, Items, fingerprint_samples
from pipelines.match.index import FingerprintIndex, Match
from pipelines.match.landmarks import HASH_BITS, Landmarks, catalog_landmarks
from pipelines.match.search import MATCH_RATE, find_clip

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache" / "match"
RESULTS_FILE = BENCH_DIR / "results" / "match.json"
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TOLERANCE_S = 0.5
REPEAT_BER = 0.12
SNR_DB = 5.0
SEMITONE = 2 ** (1 / 12)
GOALS = {"fp_rate": 0.005, "p95_ms": 100.0, "mb_per_hour": 0.5, "fingerprint_x": 300.0}


@dataclass(frozen=True)
class Spec:
    """A query class: clip length (``None``: the whole file) and how ffmpeg makes it from the master."""

    name: str
    goal: float
    length_s: float | None
    tf: float = 1.0
    filters: str | None = None
    codec: str | None = None
    noise: bool = False


def speed(pct: float) -> Spec:  # resampled: pitch and tempo change together
    rate = round(MASTER_RATE * (1 + pct / 100))
    return Spec(f"10 s speed {pct:+g}%", 0.90, 10.0, rate / MASTER_RATE, f"asetrate={rate},aresample={MASTER_RATE}")


def pitch(semitones: int) -> Spec:  # resampled, then the tempo put back
    rate = round(MASTER_RATE * SEMITONE**semitones)
    return Spec(f"10 s pitch {semitones:+d} st", 0.80, 10.0, 1.0,
                f"asetrate={rate},aresample={MASTER_RATE},atempo={MASTER_RATE / rate:.6f}")


SPECS = [Spec("whole mp3 64k", 0.995, None, codec="mp3"), Spec("whole aac 96k", 0.995, None, codec="aac"),
         Spec("whole opus 48k", 0.995, None, codec="opus"), Spec("whole mono 22.05k", 0.995, None, codec="mono22k"),
         Spec("10 s clean", 0.99, 10.0), Spec("10 s mp3 64k", 0.99, 10.0, codec="mp3"),
         Spec("10 s pink 5 dB SNR", 0.99, 10.0, noise=True), Spec("5 s clean", 0.95, 5.0), Spec("3 s clean", 0.80, 3.0),
         speed(2), speed(-2), speed(5), speed(-5), Spec("10 s tempo +5%", 0.80, 10.0, 1.05, "atempo=1.05"),
         Spec("10 s tempo -5%", 0.80, 10.0, 0.95, "atempo=0.95"), pitch(1), pitch(-1)]
OOC = Spec("out-of-catalog 10 s", GOALS["fp_rate"], 10.0)
OOC_PINK = Spec("out-of-catalog 10 s pink 5 dB", GOALS["fp_rate"], 10.0, noise=True)  # the deep passes' worst case
OOC3 = Spec("out-of-catalog 3 s", GOALS["fp_rate"], 3.0)  # what find_short_clip must reject
OUT = (OOC, OOC_PINK, OOC3)
NOISY = "10 s pink 5 dB SNR"
LATENCY_CLASSES = ("10 s clean", "10 s mp3 64k", NOISY)


@dataclass(frozen=True)
class Query:
    spec: Spec
    piece: Piece
    start_s: float


@dataclass(frozen=True)
class Outcome:
    cls: str
    piece: str
    start_s: float
    verdict: str  # hit, repeat, none, wrong-asset, wrong-offset; for out-of-catalog: none or false-positive
    match: dict[str, object] | None
    seconds: float


INDEX: FingerprintIndex | None = None  # the catalog index, inherited by the forked workers
ITEMS: dict[str, Items] = {}
LANDMARKS: dict[str, Landmarks] = {}
_POP = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.float32)


def make_clip(query: Query, noise_rms: float) -> npt.NDArray[np.float32]:
    spec, span = query.spec, None if query.spec.length_s is None else query.spec.length_s * query.spec.tf
    return edit(query.piece.path, query.start_s, span, rate=MATCH_RATE, filters=spec.filters, codec=spec.codec,
                snr_db=SNR_DB if spec.noise else None, noise_rms=noise_rms)


def same_music(query: Query, asset_id: str, start_s: float) -> bool:
    """Whether the catalog holds the clip's music at ``start_s`` in ``asset_id`` too (reference against reference)."""
    if asset_id not in ITEMS:  # a scale variant: transposed, never the same music
        return False
    truth, other = ITEMS[query.piece.name], ITEMS[asset_id]
    i0 = round(query.start_s / ITEM_S)
    ref = truth[i0 : i0 + items_in((query.spec.length_s or query.piece.duration_s) * query.spec.tf)]
    best = 1.0
    for j in range(round(start_s / ITEM_S) - 4, round(start_s / ITEM_S) + 5):
        n = min(len(ref), len(other) - j)
        if j >= 0 and n >= len(ref) // 2 and n > 0:
            xor = ref[:n] ^ other[j : j + n]
            best = min(best, float(np.mean(_POP[xor & 0xFFFF] + _POP[xor >> 16])) / 32)
    return best <= REPEAT_BER


@functools.cache
def items_in(seconds: float) -> int:
    """How many items Chromaprint gives for ``seconds`` of audio: the reference span a clip's audio covers (10 s
    give 59 items, 7.3 s apart, as each item sums up the 2.7 s of audio after it)."""
    return len(fingerprint_samples(np.zeros(round(seconds * MATCH_RATE), dtype=np.float32), rate=MATCH_RATE))


def judge(query: Query, matches: list[Match]) -> str:
    if query.spec in OUT:
        return "false-positive" if matches else "none"
    if not matches:
        return "none"
    best = matches[0]
    start = best.asset_offset_s - best.query_offset_s * query.spec.tf
    if best.asset_id == query.piece.name and abs(start - query.start_s) <= TOLERANCE_S:
        return "hit"
    if same_music(query, best.asset_id, start):
        return "repeat"
    return "wrong-asset" if best.asset_id != query.piece.name else "wrong-offset"


def run_query(args: tuple[Query, float]) -> Outcome:
    query, noise_rms = args
    assert INDEX is not None
    samples = make_clip(query, noise_rms)
    started = time.perf_counter()
    matches = find_clip(samples, INDEX, top=1)
    seconds = time.perf_counter() - started
    doc = matches[0].to_document() if matches else None
    return Outcome(query.spec.name, query.piece.name, query.start_s, judge(query, matches), doc, seconds)


def catalog_entry(piece: Piece) -> tuple[Items, Landmarks]:
    samples = decode(piece.path, rate=MATCH_RATE)
    return fingerprint_samples(samples, rate=MATCH_RATE), catalog_landmarks(samples)


def make_queries(specs: list[Spec], catalog: list[Piece], held: list[Piece], rng: np.random.Generator, *, k: int,
                 whole: int, ooc: int, noisy: int) -> list[Query]:
    """``k`` queries per excerpt class (``noisy`` for the pink-noise class), ``whole`` per whole-file class (each
    piece once), ``ooc`` per out-of-catalog class; pieces in a shuffled cycle, excerpt starts uniform over the
    piece."""
    queries: list[Query] = []
    for spec in [*specs, *OUT]:
        source = held if spec in OUT else catalog
        count = (ooc if spec in OUT else min(whole, len(catalog)) if spec.length_s is None
                 else noisy if spec.name == NOISY else k)
        order = list(rng.permutation(len(source)))
        for i in range(count):
            piece = source[order[i % len(source)]]
            span = 0.0 if spec.length_s is None else spec.length_s * spec.tf
            start = 0.0 if spec.length_s is None else float(rng.uniform(0, piece.duration_s - span - 0.5))
            queries.append(Query(spec, piece, round(start, 3)))
    return queries


Entry = tuple[str, Items, Landmarks]


def scale_variants(args: tuple[int, list[Piece], int]) -> list[Entry]:
    """Fingerprints and landmarks of ``music.variants`` of catalog piece ``i``, sped up by declaring the samples
    at ``factor`` times their rate (chromaprint's and the landmark sink's own resamplers do the rest)."""
    i, catalog, count = args
    return [(f"scale/{name}", fingerprint_samples(samples, rate=round(MATCH_RATE * factor)),
             catalog_landmarks(samples, rate=round(MATCH_RATE * factor)))
            for name, samples, factor in variants(catalog, i, count, MATCH_RATE)]


def scale_entries(catalog: list[Piece], need: int, pool: Callable[..., list[list[Entry]]]) -> list[Entry]:
    per_piece = -(-need // len(catalog))
    key = hashlib.sha1(json.dumps([[p.name for p in catalog], per_piece, 2]).encode()).hexdigest()[:12]
    path = CACHE_DIR / f"scale-{key}.npz"
    if not path.exists():
        print(f"fingerprinting {per_piece * len(catalog)} scale variants ...", flush=True)
        made = [e for chunk in pool(scale_variants, [(i, catalog, per_piece) for i in range(len(catalog))])
                for e in chunk]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=np.array([e[0] for e in made]), lengths=np.array([len(e[1]) for e in made]),
                 items=np.concatenate([e[1] for e in made]), lm_lengths=np.array([len(e[2]) for e in made]),
                 lm_hashes=np.concatenate([e[2].hashes for e in made]),
                 lm_frames=np.concatenate([e[2].frames for e in made]))
    with np.load(path) as data:  # each data[...] reads the file again: read each array once
        ids, items, bounds = data["ids"][:need], data["items"], np.concatenate([[0], np.cumsum(data["lengths"])])
        hashes, frames = data["lm_hashes"], data["lm_frames"]
        lm_bounds = np.concatenate([[0], np.cumsum(data["lm_lengths"])])
    return [(str(a), items[bounds[n] : bounds[n + 1]],
             Landmarks(hashes[lm_bounds[n] : lm_bounds[n + 1]], frames[lm_bounds[n] : lm_bounds[n + 1]]))
            for n, a in enumerate(ids)]


def fingerprint_speed(catalog: list[Piece], seconds: float) -> dict[str, float]:
    """Audio seconds per CPU second: ``FingerprintSink`` fed 44.1 kHz stereo blocks, and 11,025 Hz mono."""
    audio = 0.0
    sink_cpu = mono_cpu = 0.0
    for piece in catalog:
        stereo = decode(piece.path, rate=MASTER_RATE, channels=2)
        mono = decode(piece.path, rate=MATCH_RATE)
        started = time.process_time()
        sink = FingerprintSink(rate=MASTER_RATE, channels=2)
        for at in range(0, len(stereo), 8192):
            sink.feed(stereo[at : at + 8192])
        sink.finish()
        mid = time.process_time()
        fingerprint_samples(mono, rate=MATCH_RATE)
        sink_cpu, mono_cpu = sink_cpu + mid - started, mono_cpu + time.process_time() - mid
        audio += len(stereo) / MASTER_RATE
        if audio >= seconds:
            break
    return {"audio_s": audio, "sink_44k_stereo_x": audio / sink_cpu, "samples_11k_mono_x": audio / mono_cpu}


def percentiles(wall: list[float], cpu: list[float]) -> dict[str, float]:
    w, c = np.array(wall) * 1000, np.array(cpu) * 1000
    return {"n": len(w), "p50_ms": float(np.median(w)), "p95_ms": float(np.percentile(w, 95)),
            "cpu_p50_ms": float(np.median(c)), "cpu_p95_ms": float(np.percentile(c, 95)), "max_ms": float(w.max())}


def split(chosen: list[Piece], rng: np.random.Generator) -> tuple[list[Piece], list[Piece]]:
    """Catalog and held-apart pieces: whole groups are held apart until they make 20 % of the pieces."""
    groups = sorted({p.group for p in chosen})
    held: set[str] = set()
    for g in rng.permutation(groups):
        if sum(p.group in held for p in chosen) >= 0.2 * len(chosen):
            break
        held.add(str(g))
    return [p for p in chosen if p.group not in held], [p for p in chosen if p.group in held]


def summarise(outcomes: list[Outcome]) -> dict[str, dict[str, object]]:
    """Per class: recall (out of catalog: the false-positive rate), goal, verdict counts and the misses."""
    classes: dict[str, dict[str, object]] = {}
    print(f"\n{'class':<22}{'queries':>8}{'hits':>10}{'repeat':>7}{'recall':>9}{'goal':>10}  met?")
    for spec in [*SPECS, *OUT]:
        mine = [o for o in outcomes if o.cls == spec.name]
        count = {v: sum(o.verdict == v for o in mine) for v in sorted({o.verdict for o in mine})}
        bad = [o for o in mine if o.verdict not in ("hit", "repeat") and (o.verdict != "none" or spec not in OUT)]
        rate = (len(bad) if spec in OUT else len(mine) - len(bad)) / max(1, len(mine))
        met = rate <= spec.goal if spec in OUT else rate >= spec.goal
        classes[spec.name] = {"queries": len(mine), "rate": rate, "goal": spec.goal, "met": met, "verdicts": count,
                              "find_clip_p50_ms": 1000 * float(np.median([o.seconds for o in mine] or [0])),
                              "misses": [asdict(o) for o in bad]}
        hits = f"FP {len(bad)}" if spec in OUT else str(len(mine) - len(bad))
        goal = f"{'<=' if spec in OUT else '>='} {spec.goal:.1%}"
        print(f"{spec.name:<22}{len(mine):>8}{hits:>10}{count.get('repeat', 0):>7}{rate:>9.2%}{goal:>10}  "
              f"{'met' if met else 'MISSED'}")
    return classes


def scale_part(catalog: list[Piece], scale: list[Entry], timed: dict[str, list[Query]],
               noise_rms: float) -> dict[str, object]:
    """Build the big index, time ``find_clip`` on 10 s queries (this process alone, one thread), measure speed."""
    build = time.perf_counter()
    big = FingerprintIndex([*((p.name, ITEMS[p.name]) for p in catalog), *((a, items) for a, items, _ in scale)],
                           landmarks={**LANDMARKS, **{a: lm for a, _, lm in scale}})
    build_s, hours, mb = time.perf_counter() - build, big.indexed_s / 3600, big.nbytes / 1e6
    ids_mb = (sum(sys.getsizeof(a) for a in big.asset_ids) + sys.getsizeof(big.asset_ids)) / 1e6
    clips = {name: [(q, make_clip(q, noise_rms)) for q in qs] for name, qs in timed.items()}
    find_clip(clips[LATENCY_CLASSES[0]][0][1], big, top=1)  # warm-up
    latency: dict[str, dict[str, float]] = {}
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for name, pairs in clips.items():
        good = 0
        for q, samples in pairs:
            t0, c0 = time.perf_counter(), time.process_time()
            matches = find_clip(samples, big, top=1)
            walls.setdefault(name, []).append(time.perf_counter() - t0)
            cpus.setdefault(name, []).append(time.process_time() - c0)
            good += judge(q, matches) in ("hit", "repeat", "none" if name == OOC.name else "hit")
        latency[name] = {**percentiles(walls[name], cpus[name]), "correct": good / len(pairs)}
    latency["catalog 10 s, all"] = percentiles(*([t for n in LATENCY_CLASSES for t in d[n]] for d in (walls, cpus)))
    speed_x = fingerprint_speed(catalog, 600.0)
    print(f"\nscale: {len(big)} tracks, {hours:.0f} h of audio, index built in {build_s:.1f} s; {mb:.1f} MB = "
          f"{mb / hours:.3f} MB per hour (goal <= {GOALS['mb_per_hour']}: "
          f"{'met' if mb / hours <= GOALS['mb_per_hour'] else 'MISSED'}), plus {ids_mb:.1f} MB of asset id strings")
    print(f"  {'find_clip latency, ms':<30}{'n':>4}{'p50':>8}{'p95':>8}{'cpu p50':>9}{'cpu p95':>9}{'max':>8}")
    for name, row in latency.items():
        goal = f"goal cpu p95 <= {GOALS['p95_ms']:.0f}: {'met' if row['cpu_p95_ms'] <= GOALS['p95_ms'] else 'MISSED'}"
        print(f"  {name:<30}{row['n']:>4.0f}{row['p50_ms']:>8.1f}{row['p95_ms']:>8.1f}{row['cpu_p50_ms']:>9.1f}"
              f"{row['cpu_p95_ms']:>9.1f}{row['max_ms']:>8.1f}  "
              + (f"correct {row['correct']:.0%}" if "correct" in row else goal))
    shared = snapshot_sharing(big, next(iter(clips.values()))[0][1])
    print(f"  snapshot: saved in {shared['save_s']:.1f} s, mapped in {shared['load_ms']:.1f} ms; with "
          f"{shared['processes']:.0f} processes mapping it, each holds {shared['pss_mb']:.0f} MB proportional "
          f"({shared['rss_mb']:.0f} MB resident) against {shared['built_pss_mb']:.0f} MB for a process that built it")
    sink_x, goal_x = speed_x["sink_44k_stereo_x"], GOALS["fingerprint_x"]
    print(f"  fingerprinting {speed_x['audio_s']:.0f} s of audio: FingerprintSink 44.1 kHz stereo {sink_x:.0f}x "
          f"real time (goal >= {goal_x:.0f}x: {'met' if sink_x >= goal_x else 'MISSED'})"
          f"; fingerprint_samples 11,025 Hz mono {speed_x['samples_11k_mono_x']:.0f}x")
    return {"tracks": len(big), "hours": hours, "build_s": build_s, "index_mb": mb, "mb_per_hour": mb / hours,
            "asset_ids_mb": ids_mb, "latency": latency, "fingerprint": speed_x, "snapshot": shared}


def _memory_mb() -> tuple[float, float]:
    """This process's proportional and resident set sizes: shared pages count in PSS divided by their sharers."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Pss"].split()[0]) / 1024, int(fields["Rss"].split()[0]) / 1024


def _touch_and_measure(index: FingerprintIndex, clip: npt.NDArray[np.float32], barrier: Any) -> tuple[float, float]:
    find_clip(clip, index, top=1)
    for array in (index.items, index.keys, index.postings, index.starts, index.lm_directory, index.lm_postings):
        int(np.asarray(array).sum(dtype=np.uint64))  # every page in memory
    barrier.wait()  # all the processes hold the index at once
    measured = _memory_mb()
    barrier.wait()
    return measured


def snapshot_sharing(big: FingerprintIndex, clip: npt.NDArray[np.float32], processes: int = 2) -> dict[str, float]:
    """What ``CatalogIndex``'s snapshots save: the large index saved once and mapped by ``processes`` processes
    (as a worker's pool does), each one's proportional memory (PSS) against that of a process that built its own."""
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited from this one's index
    with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
        folder = Path(tmp) / "index"
        started = time.perf_counter()
        big.save(folder)
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        FingerprintIndex.load(folder)
        load_ms = (time.perf_counter() - started) * 1000
        with ctx.Manager() as manager:
            barrier = manager.Barrier(processes)
            with ctx.Pool(processes) as pool:
                mapped = pool.starmap(_mapped_child, [(folder, clip, barrier)] * processes)
            with ctx.Pool(1) as pool:
                built = pool.apply(_built_child, (folder, clip))
    return {"processes": processes, "save_s": save_s, "load_ms": load_ms,
            "pss_mb": float(np.mean([m[0] for m in mapped])), "rss_mb": float(np.mean([m[1] for m in mapped])),
            "built_pss_mb": built[0]}


def _mapped_child(folder: Path, clip: npt.NDArray[np.float32], barrier: Any) -> tuple[float, float]:
    return _touch_and_measure(FingerprintIndex.load(folder), clip, barrier)


def _built_child(folder: Path, clip: npt.NDArray[np.float32]) -> tuple[float, float]:
    """A process with its own copy, as before snapshots: the same arrays read into private memory."""
    loaded = FingerprintIndex.load(folder)
    ids = loaded.asset_ids
    starts = np.asarray(loaded.starts)
    items = np.array(loaded.items)
    directory, lm_starts = np.asarray(loaded.lm_directory), np.asarray(loaded.lm_starts)
    anchors = np.array(loaded.lm_postings).astype(np.int64)
    hashes = np.repeat(np.arange(1 << HASH_BITS, dtype=np.uint32), np.diff(directory))
    assets = np.searchsorted(lm_starts, anchors, side="right") - 1
    order = np.argsort(assets * (1 << 32) + anchors, kind="stable")  # each asset's landmarks, in time order
    cuts = np.searchsorted(assets[order], np.arange(len(ids) + 1))
    landmarks = {ids[n]: Landmarks(hashes[order[cuts[n] : cuts[n + 1]]],
                                   (anchors[order[cuts[n] : cuts[n + 1]]] - lm_starts[n]).astype(np.uint32))
                 for n in range(len(ids))}
    own = FingerprintIndex(((ids[n], items[starts[n] : starts[n + 1]]) for n in range(len(ids))), landmarks=landmarks)
    del loaded, items, anchors, hashes, landmarks  # the index holds its own concatenated copy
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the rebuild's freed scratch back, as a long-lived worker's would be
    return _touch_and_measure(own, clip, threading.Barrier(1))


def main() -> int:
    if any(os.environ.get(k) != v for k, v in SINGLE_THREAD.items()):  # before numpy starts any thread pool
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **SINGLE_THREAD})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, help="pieces to use, catalog and held apart (default: all)")
    parser.add_argument("--queries-per-class", type=int, default=100, help="excerpt queries per class (default 100)")
    parser.add_argument("--noisy-queries", type=int, default=400,
                        help="queries of the 10 s pink-noise class (default 400: a 99 %% goal needs more than 100)")
    parser.add_argument("--whole-files", type=int, default=30, help="queries per whole-file class (default 30)")
    parser.add_argument("--scale-tracks", type=int, default=10_000, help="tracks in the scale index (default 10000)")
    parser.add_argument("--latency-queries", type=int, default=50, help="timed queries per class at scale (default 50)")
    parser.add_argument("--quick", action="store_true",
                        help="12 pieces, 6 queries per class (4 whole files), 1,000 tracks at scale")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="worker processes")
    opts = parser.parse_args()
    if opts.quick:
        vars(opts).update(tracks=12, queries_per_class=6, noisy_queries=6, whole_files=4, scale_tracks=1000,
                          latency_queries=6)
    global INDEX, ITEMS, LANDMARKS
    started, rng, load = time.perf_counter(), np.random.default_rng(opts.seed), [os.getloadavg()[0]]
    every = pieces(BENCH_DIR / ".cache" / "music")
    catalog, held = split([every[i] for i in rng.permutation(len(every))[: opts.tracks]], rng)
    catalog.sort(key=lambda p: p.name)
    ctx = multiprocessing.get_context("fork")  # workers inherit INDEX and ITEMS
    with ctx.Pool(opts.jobs) as pool:
        entries = dict(zip([p.name for p in catalog], pool.map(catalog_entry, catalog), strict=True))
    ITEMS = {name: items for name, (items, _) in entries.items()}
    LANDMARKS = {name: landmarks for name, (_, landmarks) in entries.items()}
    INDEX = FingerprintIndex(ITEMS.items(), landmarks=LANDMARKS)
    print(f"catalog {len(catalog)} pieces ({INDEX.indexed_s / 3600:.2f} h), held apart {len(held)} "
          f"({sum(p.duration_s for p in held) / 3600:.2f} h); {opts.jobs} jobs", flush=True)
    noise_rms, outcomes = pink_rms(MATCH_RATE), []
    k = opts.queries_per_class
    queries = make_queries(SPECS, catalog, held, rng, k=k, whole=opts.whole_files, ooc=2 * k,
                           noisy=opts.noisy_queries)
    with ctx.Pool(opts.jobs) as pool:
        for outcome in pool.imap(run_query, [(q, noise_rms) for q in queries], chunksize=2):
            outcomes.append(outcome)
            if len(outcomes) % 200 == 0:
                print(f"  {len(outcomes)}/{len(queries)} queries, {time.perf_counter() - started:.0f} s", flush=True)
        scale = scale_entries(catalog, max(0, opts.scale_tracks - len(catalog)), pool.map)
    classes = summarise(outcomes)
    timed = {n: [q for q in queries if q.spec.name == n][: opts.latency_queries] for n in [*LATENCY_CLASSES, OOC.name]}
    doc = scale_part(catalog, scale, timed, noise_rms)
    load.append(os.getloadavg()[0])
    print(f"load average (1 min) {load[0]:.2f} -> {load[1]:.2f} on {os.cpu_count()} cores")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(), "jobs": opts.jobs,
        "load_avg_1m": load, "ffmpeg": ffmpeg("-version", stdout=True).decode().splitlines()[0], "seed": opts.seed,
        "wall_s": time.perf_counter() - started, "tolerance_s": TOLERANCE_S, "repeat_ber": REPEAT_BER,
        "snr_db": SNR_DB, "catalog": [p.name for p in catalog], "held_apart": [p.name for p in held],
        "specs": [asdict(s) for s in [*SPECS, *OUT]], "classes": classes, "scale": doc, "goals": GOALS,
    }, indent=1) + "\n")
    print(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
