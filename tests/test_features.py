"""The audio feature record: known answers on generated signals and on the real fixtures, with stated tolerances."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.audio.content_class import SegmentEvidence, classify
from pipelines.audio.features import FRAME_S, AudioFeatures, FeatureSink, chroma_basis, mel_basis
from pipelines.audio.key import PROFILES, estimate_key

RATE = 44100
FIXTURES = Path(__file__).resolve().parent.parent / "media_fixtures"
SPEECH = FIXTURES / "speech_librivox_16k.flac"
MUSIC = FIXTURES / "music_hyperrogue_20s.ogg"
MUSIC_DESERT = FIXTURES / "music_hyperrogue_desert_30s.ogg"

Pcm = npt.NDArray[np.float32]


def decode(path: Path, *, channels: int = 2) -> Pcm:
    """The fixture as the job decodes it: float32 PCM at 44,100 Hz, ``(frames, channels)``."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", str(channels), "-ar", str(RATE),
           "-f", "f32le", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout
    return np.frombuffer(out, dtype="<f4").reshape(-1, channels)


def analyse(pcm: Pcm, *, block: int = 8192, rhythm_window_s: float = 600.0) -> AudioFeatures:
    samples = pcm if pcm.ndim == 2 else pcm.reshape(-1, 1)
    sink = FeatureSink(rate=RATE, channels=samples.shape[1], rhythm_window_s=rhythm_window_s)
    for start in range(0, len(samples), block):
        sink.feed(np.ascontiguousarray(samples[start : start + block], dtype=np.float32))
    return sink.finish()


def click_track(bpm: float, *, seconds: float = 30.0, accent_every: int = 4, seed: int = 0) -> Pcm:
    """Short decaying noise bursts on every beat, the first of every ``accent_every`` three times as loud."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), dtype=np.float64)
    burst = np.exp(-np.arange(int(0.02 * RATE)) / (0.004 * RATE))
    for beat in range(int(seconds * bpm / 60.0)):
        start = int(round(beat * 60.0 / bpm * RATE))
        piece = out[start : start + len(burst)]
        piece += (0.9 if beat % accent_every == 0 else 0.3) * burst[: len(piece)] * rng.standard_normal(len(piece))
    return out.astype(np.float32)


def harmonic_tone(midi: int, seconds: float) -> npt.NDArray[np.float64]:
    """A tone with five harmonics (amplitude 1/k), like a simple synthesised instrument."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
    return sum((0.2 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)), np.zeros_like(t))


def progression(chords: list[list[int]], *, repeats: int = 3, chord_s: float = 2.0) -> Pcm:
    pieces = []
    for _ in range(repeats):
        for chord in chords:
            piece = sum((harmonic_tone(m, chord_s) for m in chord), np.zeros(int(chord_s * RATE)))
            ramp = int(0.02 * RATE)
            piece[:ramp] *= np.linspace(0.0, 1.0, ramp)
            piece[-ramp:] *= np.linspace(1.0, 0.0, ramp)
            pieces.append(piece)
    return np.concatenate(pieces).astype(np.float32)


C, F, G = [60, 64, 67], [65, 69, 72], [67, 71, 74]
A_MINOR, D_MINOR, E_MAJOR = [57, 60, 64], [62, 65, 69], [64, 68, 71]


@pytest.fixture(scope="module")
def speech() -> AudioFeatures:
    return analyse(decode(SPEECH, channels=1))


@pytest.fixture(scope="module")
def music() -> AudioFeatures:
    return analyse(decode(MUSIC))


@pytest.fixture(scope="module")
def music_desert() -> AudioFeatures:
    return analyse(decode(MUSIC_DESERT))


# --- rhythm ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [120.0, 97.0, 150.0])
def test_click_track_tempo_within_2_percent_or_listed_as_an_octave_alternative(bpm: float) -> None:
    features = analyse(click_track(bpm))
    readings = [features.rhythm.tempo_bpm] + [a.bpm for a in features.rhythm.alternatives]
    assert any(r is not None and abs(r - bpm) <= 0.02 * bpm for r in readings), readings
    assert features.rhythm.tempo_confidence is not None and features.rhythm.tempo_confidence > 0.5


def test_click_track_beats_fall_on_the_clicks() -> None:
    features = analyse(click_track(120.0))
    beats = np.asarray(features.rhythm.beats_s)
    assert len(beats) >= 50
    assert np.median(np.diff(beats)) == pytest.approx(0.5, abs=0.012)
    # Each beat within 25 ms (about one 23 ms frame) of a click at a multiple of 0.5 s, none late or early on average.
    offsets = beats - np.round(beats / 0.5) * 0.5
    assert np.abs(offsets).max() < 0.025, offsets
    assert abs(offsets.mean()) < 0.01


@pytest.mark.parametrize(("accent_every", "expected"), [(4, 4), (3, 3)])
def test_time_signature_follows_the_accents(accent_every: int, expected: int) -> None:
    features = analyse(click_track(120.0, accent_every=accent_every))
    assert features.rhythm.time_signature == expected
    assert features.rhythm.time_signature_confidence is not None and features.rhythm.time_signature_confidence > 0.3


def test_fast_even_clicks_are_read_at_their_own_tempo_not_half() -> None:
    # The autocorrelation's prior around 120 BPM sees 86 and 172 as equally likely; the clicks halfway between
    # the 86 BPM beats are as strong as those on them, so the beat is the 172 BPM one.
    features = analyse(click_track(172.0, accent_every=1))
    assert features.rhythm.tempo_bpm == pytest.approx(172.0, rel=0.02)
    assert any(a.bpm == pytest.approx(86.0, rel=0.02) for a in features.rhythm.alternatives)


def test_weak_offbeats_do_not_double_the_tempo() -> None:
    # 90 BPM beats with clicks 14 dB quieter on the eighths between them, as a hi-hat plays, over a bed of noise
    # 30 dB down: the beat stays at 90. (In silence a quiet click rises as many dB as a loud one: see rhythm.py.)
    beats, eighths = click_track(90.0, accent_every=1), click_track(180.0, accent_every=1, seed=1)
    bed = 0.03 * np.random.default_rng(5).standard_normal(len(beats))
    features = analyse((beats + 0.2 * eighths + bed).astype(np.float32))
    assert features.rhythm.tempo_bpm == pytest.approx(90.0, rel=0.02)


def test_bars_start_on_the_accented_clicks() -> None:
    features = analyse(click_track(120.0, accent_every=4))
    bars = np.asarray(features.rhythm.bars_s)
    assert len(bars) >= 12
    assert np.diff(bars) == pytest.approx(2.0, abs=0.03)  # four beats of 0.5 s
    offsets = bars - np.round(bars / 2.0) * 2.0  # the accented clicks are at multiples of 2 s
    assert np.abs(offsets).max() < 0.025, bars


def test_a_steady_tone_has_no_tempo_and_says_why() -> None:
    t = np.arange(10 * RATE) / RATE
    features = analyse((0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    assert features.rhythm.tempo_bpm is None and features.rhythm.beats_s == ()
    document = features.to_document()
    assert document["tempo"] is None and "tempo" in features.notes and "danceability" in features.notes


# --- key ------------------------------------------------------------------------------------------------------


def test_c_major_progression_is_c_major() -> None:
    features = analyse(progression([C, F, G, C]))
    assert (features.key.key, features.key.mode) == (0, 1)
    assert features.key.confidence > 0.5


def test_a_minor_progression_is_a_minor() -> None:
    features = analyse(progression([A_MINOR, D_MINOR, E_MAJOR, A_MINOR]))
    assert (features.key.key, features.key.mode) == (9, 0)
    assert features.key.confidence > 0.5


@pytest.mark.parametrize("tonic", range(12))
@pytest.mark.parametrize("mode", [0, 1])
def test_every_profile_rotation_is_recognised(tonic: int, mode: int) -> None:
    major, minor = PROFILES["krumhansl"]
    chroma = np.roll(np.asarray(major if mode == 1 else minor), tonic)
    estimate = estimate_key(chroma)
    assert (estimate.key, estimate.mode) == (tonic, mode)
    assert estimate.correlation == pytest.approx(1.0)


def test_flat_chroma_has_no_key() -> None:
    estimate = estimate_key(np.ones(12) + 0.01 * np.random.default_rng(1).standard_normal(12))
    assert estimate.key == -1 and estimate.confidence == 0.0 and estimate.mode in (0, 1)


def test_noise_click_track_has_no_key() -> None:
    features = analyse(click_track(120.0))
    assert features.key.key == -1
    assert "key" in features.notes


# --- spectrum and timbre ---------------------------------------------------------------------------------------


def test_the_filterbanks_are_librosas_as_configured() -> None:
    # Golden values from librosa 0.11.0's filters.mel(sr=22050, n_fft=2048, n_mels=128) and filters.chroma(...,
    # tuning=0): they fail if the analysis is configured otherwise (HTK mels, another band count, an estimated
    # tuning) or if a librosa release changes its filterbanks under it.
    mel = mel_basis()
    assert mel.shape == (128, 1025)
    assert mel.sum(axis=1)[[0, 10, 64, 127]] == pytest.approx([0.09034588, 0.09104112, 0.09280049, 0.09286924],
                                                               rel=1e-6)
    assert [int(mel[k].argmax()) for k in (0, 10, 64, 127)] == [2, 26, 187, 997]
    assert mel[64].max() == pytest.approx(0.01727883145213127, rel=1e-6)
    chroma = chroma_basis()
    assert chroma.shape == (12, 1025)
    # librosa's row sums, and its weights of FFT bin 40 (431 Hz, between G#4 and A4), C first.
    librosa_sums = np.array([57.19880621, 58.40288926, 59.60086486, 60.73808089, 61.01344428, 53.08321239,
                             49.46339178, 50.7013583, 52.06944161, 53.44079878, 54.70275783, 55.87617949])
    librosa_bin_40 = np.array([1.32911154e-10, 2.50292082e-17, 8.63286295e-26, 2.99628862e-28, 2.43259963e-19,
                               3.61726014e-12, 9.85169436e-07, 4.91432799e-03, 4.48992878e-01, 7.51340568e-01,
                               2.30280049e-02, 1.29270020e-05])
    # The analysis gives every pitch class librosa's mean total weight, scaling each row and nothing else.
    assert chroma.sum(axis=1) == pytest.approx(np.full(12, librosa_sums.mean()), rel=1e-6)
    assert chroma[:, 40] == pytest.approx(librosa_bin_40 / librosa_sums * librosa_sums.mean(), rel=1e-5, abs=1e-12)


def test_pure_1khz_tone_has_its_spectral_centroid_at_1khz() -> None:
    t = np.arange(10 * RATE) / RATE
    features = analyse((0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))
    assert features.timbre.spectral_centroid_hz == pytest.approx(1000.0, rel=0.05)


def test_chroma_of_an_a_peaks_at_a() -> None:
    features = analyse(harmonic_tone(69, 6.0).astype(np.float32))
    assert int(np.argmax(features.timbre.chroma_mean)) == 9
    assert len(features.timbre.mfcc_mean) == 13 and len(features.timbre.mfcc_std) == 13


@pytest.mark.parametrize("shape", ["linear", "decibel"])
def test_fades_are_found_within_three_quarters_of_a_second(shape: str) -> None:
    rng = np.random.default_rng(3)
    seconds, fade_in, fade_out = 40.0, 4.0, 6.0
    n = int(seconds * RATE)
    rise, fall = int(fade_in * RATE), int(fade_out * RATE)
    envelope = np.ones(n)
    if shape == "linear":
        envelope[:rise], envelope[n - fall :] = np.linspace(0.0, 1.0, rise), np.linspace(1.0, 0.0, fall)
    else:  # from and to −60 dB, straight in dB
        envelope[:rise] = 10.0 ** (np.linspace(-60.0, 0.0, rise) / 20.0)
        envelope[n - fall :] = 10.0 ** (np.linspace(0.0, -60.0, fall) / 20.0)
    features = analyse((0.3 * rng.standard_normal(n) * envelope).astype(np.float32))
    assert features.end_of_fade_in == pytest.approx(fade_in, abs=0.75)
    assert features.start_of_fade_out == pytest.approx(seconds - fade_out, abs=0.75)


def test_no_fade_means_zero_and_the_duration() -> None:
    features = analyse(progression([C, F, G, C]))
    assert features.end_of_fade_in == pytest.approx(0.0, abs=0.1)
    assert features.start_of_fade_out == pytest.approx(features.duration_s, abs=0.3)


# --- speech and music on real recordings ------------------------------------------------------------------------


def test_real_speech_is_speech(speech: AudioFeatures) -> None:
    assert speech.content.content_class == "speech"
    assert speech.content.speechiness is not None and speech.content.speechiness > 0.66
    assert speech.key.key == -1 and "key" in speech.notes
    assert speech.duration_s == pytest.approx(15.39, abs=0.05)


@pytest.mark.parametrize("name", ["music", "music_desert"])
def test_real_music_is_music(name: str, request: pytest.FixtureRequest) -> None:
    features: AudioFeatures = request.getfixturevalue(name)
    assert features.content.content_class == "music"
    assert features.content.speechiness is not None and features.content.speechiness < 0.33
    assert 0 <= features.key.key <= 11
    assert features.rhythm.tempo_bpm is not None and 60.0 <= features.rhythm.tempo_bpm <= 200.0
    assert features.energy is not None and 0.0 <= features.energy <= 1.0
    assert features.danceability is not None and 0.0 <= features.danceability <= 1.0


def test_speech_then_music_is_mixed_with_segments_at_the_switch() -> None:
    talk, song = decode(SPEECH), decode(MUSIC)
    features = analyse(np.concatenate([talk, song]))
    switch = len(talk) / RATE
    assert features.content.content_class == "mixed"
    assert features.content.speechiness == pytest.approx(switch / features.duration_s, abs=0.1)
    kinds = [(s.kind, s.start_s, s.end_s) for s in features.content.segments if s.kind != "silence"]
    assert [kind for kind, _, _ in kinds] == ["speech", "music"]
    assert kinds[0][2] == pytest.approx(switch, abs=2.5)
    assert kinds[-1][2] == pytest.approx(features.duration_s)


def test_short_blips_are_absorbed_by_their_neighbours() -> None:
    music = SegmentEvidence(level_db=-20.0, sustain=0.5, level_spread_db=2.0, pause_share=0.0, bass_share=0.3,
                            periodicity=0.6)
    talk = SegmentEvidence(level_db=-20.0, sustain=0.04, level_spread_db=8.0, pause_share=0.1, bass_share=0.0,
                           periodicity=0.1)
    result = classify([music] * 6 + [talk] + [music] * 6, segment_s=2.0, duration_s=26.0)
    assert result.content_class == "music" and result.speechiness == 0.0
    assert [(s.kind, s.start_s, s.end_s) for s in result.segments] == [("music", 0.0, 26.0)]


def test_sections_split_where_key_and_level_change() -> None:
    first = progression([C, F, G, C])  # 24 s of C major
    second = 0.4 * progression([[m + 6 for m in chord] for chord in (C, F, G, C)])  # 24 s of F# major, 8 dB down
    features = analyse(np.concatenate([first, second]))
    sections = features.sections
    assert len(sections) == 2, sections
    assert sections[1].start_s == pytest.approx(24.0, abs=2.1)  # within a ~2 s segment
    assert [(s.key, s.mode) for s in sections] == [(0, 1), (6, 1)]
    assert sections[0].loudness_db - sections[1].loudness_db == pytest.approx(8.0, abs=1.0)
    assert sections[0].start_s == 0.0
    assert sections[1].start_s + sections[1].duration_s == pytest.approx(features.duration_s)


def test_a_short_tail_counts_for_its_length_not_as_a_whole_segment() -> None:
    # A 2.8 s spoken command: 2 s of speech, then 0.8 s of a rumbling room tail that on its own looks like music.
    talk = SegmentEvidence(level_db=-30.0, sustain=0.035, level_spread_db=12.7, pause_share=0.34, bass_share=0.07,
                           periodicity=0.37)
    tail = SegmentEvidence(level_db=-35.0, sustain=0.05, level_spread_db=10.6, pause_share=0.38, bass_share=0.76,
                           periodicity=0.33)
    result = classify([talk, tail], segment_s=2.0, duration_s=2.8)
    assert result.content_class == "speech" and result.speechiness == 1.0


# --- the record as a whole ---------------------------------------------------------------------------------------


def test_document_has_the_interface_fields_and_is_json(music: AudioFeatures) -> None:
    document = music.to_document()
    json.dumps(document)
    assert {"tempo", "key", "mode", "loudness", "speechiness", "content_class"} <= document.keys()
    assert document["content_class"] in ("music", "speech", "mixed")
    assert document["key"] in range(-1, 12) and document["mode"] in (0, 1)
    for name in ("energy", "danceability", "speechiness", "acousticness", "instrumentalness", "liveness", "valence"):
        value = document[name]
        assert value is None or 0.0 <= float(value) <= 1.0  # type: ignore[arg-type]
    notes = document["notes"]
    assert isinstance(notes, dict)
    for name, value in document.items():
        if value is None:
            assert name in notes, f"{name} is null without a reason"


def test_loudness_is_left_for_the_meter_and_can_be_filled(music: AudioFeatures) -> None:
    assert music.loudness is None and "loudness" in music.notes
    filled = music.with_loudness(-14.2)
    assert filled.to_document()["loudness"] == -14.2 and "loudness" not in filled.notes
    assert music.loudness is None  # the record is frozen; with_loudness returns a new one


def test_block_size_does_not_change_the_answer() -> None:
    pcm = decode(MUSIC)[: 12 * RATE]
    reference, small, whole = analyse(pcm), analyse(pcm, block=1000), analyse(pcm, block=len(pcm))
    for other in (small, whole):
        assert other.content.labels == reference.content.labels
        assert (other.key.key, other.key.mode) == (reference.key.key, reference.key.mode)
        assert other.key.confidence == pytest.approx(reference.key.confidence, rel=1e-4)  # float32 sums differ
        assert other.rhythm.tempo_bpm == pytest.approx(reference.rhythm.tempo_bpm, rel=1e-3)
        assert other.timbre.spectral_centroid_hz == pytest.approx(reference.timbre.spectral_centroid_hz, rel=1e-3)


def test_rhythm_is_measured_on_the_window_only() -> None:
    features = analyse(click_track(120.0, seconds=40.0), rhythm_window_s=15.0)
    assert features.rhythm_window_s == 15.0 and features.duration_s == pytest.approx(40.0, abs=0.01)
    assert features.rhythm.beats_s and max(features.rhythm.beats_s) < 15.0 + 2 * FRAME_S
    assert len(features.content.labels) == pytest.approx(40.0 / (86 * FRAME_S), abs=1.0)


def test_silence_gives_nulls_with_reasons_not_numbers() -> None:
    features = analyse(np.zeros(8 * RATE, dtype=np.float32))
    document = features.to_document()
    json.dumps(document)
    assert document["speechiness"] is None and document["energy"] is None and document["tempo"] is None
    assert document["key"] == -1
    assert {"speechiness", "energy", "tempo", "key"} <= set(features.notes)
    assert [s.kind for s in features.content.segments] == ["silence"]


def test_empty_input_finishes() -> None:
    features = FeatureSink(rate=RATE, channels=2).finish()
    assert features.duration_s == 0.0 and features.content.segments == ()
    json.dumps(features.to_document())
