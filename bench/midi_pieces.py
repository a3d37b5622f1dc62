"""Ground-truth music for the feature benchmark: short pieces written as MIDI with a known tempo, key and metre.

Every piece is a cadential chord progression (one chord a bar) with a bass line and a melody drawn from the
key's scale, so that its key is what a musician would name without hesitation: it opens and closes on the
tonic chord, its dominant is major (the raised leading tone in minor) and the melody leans on chord tones.
What varies across the corpus: the tonic (all 12) and mode (major, harmonic minor), the tempo (60–180 BPM),
the metre (4/4, 3/4, 2/4, 6/8), the instrument family (piano, strings, guitar, organ: General MIDI programs),
the accompaniment style (block chords, broken chords, held chords, strummed chords, waltz) and drums or none.

The reference tempo is the notated beat: the quarter note in 4/4, 3/4 and 2/4, the dotted quarter in 6/8
(whose MIDI tempo is therefore 1.5 times the reference). :func:`corpus` is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

TICKS = 480
"""MIDI ticks per quarter note."""
PIECE_S = 30.0
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: the raised seventh makes the dominant major
MAJOR_PROGRESSIONS = (
    ((0, 4, 7), (5, 9, 12), (7, 11, 14, 17), (0, 4, 7)),      # I IV V7 I
    ((0, 4, 7), (9, 12, 16), (2, 5, 9), (7, 11, 14, 17)),     # I vi ii V7
    ((0, 4, 7), (5, 9, 12), (0, 4, 7), (7, 11, 14)),          # I IV I V
)
MINOR_PROGRESSIONS = (
    ((0, 3, 7), (5, 8, 12), (7, 11, 14, 17), (0, 3, 7)),      # i iv V7 i
    ((0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 11, 14)),        # i VI iv V
    ((0, 3, 7), (2, 5, 8), (7, 11, 14, 17), (0, 3, 7)),       # i ii° V7 i
)

INSTRUMENTS = {
    # family: (melody program, chord program, bass program), General MIDI numbering from 0
    "piano": (0, 0, 0),
    "strings": (40, 48, 42),   # violin, string ensemble, cello
    "guitar": (25, 24, 32),    # steel guitar, nylon guitar, acoustic bass
    "organ": (19, 16, 16),     # church organ, drawbar organ, drawbar organ
}
STYLES = {"piano": ("block", "broken"), "strings": ("held", "broken"), "guitar": ("strum", "broken"),
          "organ": ("held", "block")}
METRES = ((4, 4), (3, 4), (4, 4), (6, 8), (2, 4), (4, 4))

KICK, SNARE, HAT = 36, 38, 42

Note = Callable[..., None]
"""``note(track, start_tick, length_ticks, pitch, velocity, channel=None)``."""


@dataclass(frozen=True)
class PieceSpec:
    """One piece of the corpus and its ground truth."""

    name: str
    tempo_bpm: float
    """The reference tempo: beats per minute of the notated beat (a dotted quarter in 6/8)."""
    tonic: int
    """0 = C … 11 = B."""
    mode: str
    """``"major"`` or ``"minor"``."""
    metre: tuple[int, int]
    instrument: str
    style: str
    drums: bool
    seed: int

    @property
    def key_name(self) -> str:
        """The key as mir_eval writes it, e.g. ``"F# minor"``."""
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"

    @property
    def compound(self) -> bool:
        return self.metre == (6, 8)

    @property
    def beats_per_bar(self) -> int:
        return 2 if self.compound else self.metre[0]


DEFAULT_SEED = 7


def corpus(count: int = 48, *, seed: int = DEFAULT_SEED) -> list[PieceSpec]:
    """``count`` pieces: every key twice (for 48), tempos spread evenly over 60–180 BPM in a shuffled order.

    Another ``seed`` gives another corpus (other tempos for each key, instruments and styles, other melodies):
    a held-out set for checking figures that were tuned on the default one.
    """
    rng = np.random.default_rng(seed)
    shift = 0 if seed == DEFAULT_SEED else seed
    prefix = "" if seed == DEFAULT_SEED else f"s{seed}-"
    tempos = rng.permutation(np.round(np.linspace(60.0, 180.0, count)))
    specs = []
    for i in range(count):
        key_index = i % 24
        tonic, mode = key_index % 12, "major" if key_index < 12 else "minor"
        instrument = tuple(INSTRUMENTS)[(i + i // 24 + shift) % 4]
        metre = METRES[(i + shift) % len(METRES)]
        tempo = float(tempos[i])
        if metre == (6, 8) and tempo > 120.0:
            tempo = round(tempo / 1.5)  # a dotted-quarter beat over 120 would be eighths faster than 360/min
        style = STYLES[instrument][(i // 4 + shift) % 2]
        if metre == (3, 4) and style == "block":
            style = "waltz"
        drums = (i // 2 + shift) % 2 == 0
        key = f"{PITCH_CLASSES[tonic].replace('#', 's')}{mode[:3]}"
        name = f"{prefix}{i:02d}-{key}-{int(tempo)}bpm-{metre[0]}{metre[1]}-{instrument}-{style}" \
               f"{'-drums' if drums else ''}"
        specs.append(PieceSpec(name=name, tempo_bpm=tempo, tonic=tonic, mode=mode, metre=metre,
                               instrument=instrument, style=style, drums=drums, seed=i + 1000 * shift))
    return specs


def write_midi(spec: PieceSpec, path: Path) -> None:
    """Compose ``spec`` and write it as a type-1 MIDI file."""
    beat_ticks = TICKS * 3 // 2 if spec.compound else TICKS * 4 // spec.metre[1]
    bar_ticks = beat_ticks * spec.beats_per_bar
    bar_s = spec.beats_per_bar * 60.0 / spec.tempo_bpm
    progression_pool = MAJOR_PROGRESSIONS if spec.mode == "major" else MINOR_PROGRESSIONS
    progression = progression_pool[spec.seed % len(progression_pool)]
    bars = max(len(progression), int(np.ceil(PIECE_S / bar_s)))
    chords = [progression[bar % len(progression)] for bar in range(bars - 1)] + [progression[0]]
    rng = np.random.default_rng(spec.seed)

    melody_program, chord_program, bass_program = INSTRUMENTS[spec.instrument]
    tracks: list[list[tuple[int, mido.Message]]] = [[], [], [], []]
    quarter_bpm = spec.tempo_bpm * (1.5 if spec.compound else 1.0)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(quarter_bpm), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=spec.metre[0], denominator=spec.metre[1], time=0))
    for channel, program in enumerate((melody_program, chord_program, bass_program)):
        tracks[channel].append((0, mido.Message("program_change", channel=channel, program=program, time=0)))

    def note(track: int, start: int, length: int, pitch: int, velocity: int, channel: int | None = None) -> None:
        ch = track if channel is None else channel
        tracks[track].append((start, mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)))
        tracks[track].append((start + max(1, length - 10), mido.Message("note_off", channel=ch, note=pitch)))

    scale = MAJOR_SCALE if spec.mode == "major" else MINOR_SCALE
    previous = 72 + spec.tonic if spec.tonic < 7 else 60 + spec.tonic
    for bar, chord in enumerate(chords):
        start = bar * bar_ticks
        voicing = _voicing(spec.tonic, chord)
        _accompany(note, spec, voicing, start, beat_ticks, bar_ticks)
        root = 36 + (spec.tonic + chord[0]) % 12
        walking = spec.style in ("broken", "strum")
        for beat in range(0, spec.beats_per_bar, 1 if walking else 2):
            length = beat_ticks if walking else min(2 * beat_ticks, bar_ticks - beat * beat_ticks)
            note(2, start + beat * beat_ticks, length, root, 95 if beat == 0 else 80)
        previous = _melody(note, spec, scale, chord, start, beat_ticks, previous, rng, last=bar == bars - 1)
        if spec.drums:
            _drums(note, spec, start, beat_ticks)

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS)
    midi.tracks.append(meta)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


def _voicing(tonic: int, chord: tuple[int, ...]) -> list[int]:
    """The chord's pitch classes as MIDI notes in the octave from G3 (55) up, in close position."""
    return sorted(55 + (tonic + interval - 55) % 12 for interval in chord)


def _accompany(play: Note, spec: PieceSpec, voicing: list[int], start: int, beat: int, bar: int) -> None:
    beats = spec.beats_per_bar
    if spec.style == "held":
        for pitch in voicing:
            play(1, start, bar, pitch, 70)
    elif spec.style == "block":
        for b in range(beats):
            for pitch in voicing:
                play(1, start + b * beat, beat, pitch, 85 if b == 0 else 65)
    elif spec.style == "waltz":
        for b in range(1, beats):
            for pitch in voicing:
                play(1, start + b * beat, beat, pitch, 62)
    elif spec.style == "strum":
        for b in range(beats):
            for k, pitch in enumerate(voicing):
                play(1, start + b * beat + 8 * k, beat - 8 * k, pitch, 88 if b == 0 else 70)
    else:  # broken: the chord's notes one after another, an eighth note (compound: a third of the beat) each
        step = beat // 3 if spec.compound else beat // 2
        pattern = voicing + [voicing[1]]
        for k in range(bar // step):
            play(1, start + k * step, step, pattern[k % len(pattern)], 72 if k % 2 == 0 else 58)


def _melody(play: Note, spec: PieceSpec, scale: tuple[int, ...], chord: tuple[int, ...], start: int, beat: int,
            previous: int, rng: np.random.Generator, *, last: bool) -> int:
    """One bar of melody: on each beat a chord tone near the last note, sometimes with a passing scale tone."""
    chord_pcs = {(spec.tonic + c) % 12 for c in chord}
    scale_pcs = {(spec.tonic + s) % 12 for s in scale}
    for b in range(spec.beats_per_bar):
        candidates = [p for p in range(65, 86) if p % 12 in chord_pcs]
        if last:
            candidates = [p for p in candidates if p % 12 == spec.tonic]
        target = min(candidates, key=lambda p: abs(p - previous) + 3 * rng.random())
        onset = start + b * beat
        velocity = 96 if b == 0 else 84
        if last and b > 0:
            break
        if not last and rng.random() < 0.4:
            passing = [p for p in range(min(target, previous), max(target, previous) + 1) if p % 12 in scale_pcs]
            first = passing[len(passing) // 2] if passing else target
            split = beat * 2 // 3 if spec.compound else beat // 2
            play(0, onset, split, first, velocity)
            play(0, onset + split, beat - split, target, velocity - 14)
        else:
            play(0, onset, beat * (spec.beats_per_bar if last else 1), target, velocity)
        previous = target
    return previous


def _drums(play: Note, spec: PieceSpec, start: int, beat: int) -> None:
    """Kick on the downbeat (and the middle of a 4/4 bar), snare on the other beats' backbeat, hi-hat subdivisions."""
    beats = spec.beats_per_bar
    for b in range(beats):
        t = start + b * beat
        if b == 0 or (beats == 4 and b == 2):
            play(3, t, beat // 2, KICK, 110, 9)
        elif beats != 3 or b == 2:
            play(3, t, beat // 2, SNARE, 95, 9)
        subdivisions = 3 if spec.compound else (1 if spec.tempo_bpm >= 140 else 2)
        for k in range(subdivisions):
            play(3, t + k * beat // subdivisions, beat // subdivisions, HAT, 70 if k == 0 else 50, 9)
