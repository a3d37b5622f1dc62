"""The audio feature record (``features`` in the job document), from the job's one PCM decode.

:class:`FeatureSink` reads the decoded blocks as they come, downmixes them to mono, resamples them to 22,050 Hz
(soxr's streaming resampler) and analyses them in ~2 s chunks of a 2048-point STFT with a 512-sample hop
(23.2 ms frames). It never holds the audio: what it keeps is bounded by

- per frame, for the whole file: the frame level (float32, for fades and energy);
- per ~2 s segment, for the whole file: the speech/music evidence and a 12-bin chroma sum;
- per frame, for the first ``rhythm_window_s`` (600 s) only: the onset strength (~100 KB);
- one chunk of audio (~2 s) and the resampler's state.

Measured with tracemalloc on six hours of audio: 11.5 MB held before :meth:`FeatureSink.finish`, 58 MB at its
peak (float64 copies of the level curve for the fades). Speed on one core: see ``bench/features_bench.py``
(the whole record of a 5-minute track, decode included, against a bare librosa load and beat track).

The signal processing is librosa's, chunk by chunk: the STFT (``librosa.stft``), the mel and chroma
filterbanks (``librosa.filters``), dB, MFCC, RMS, spectral centroid and flatness (``librosa.feature``), the onset
strength and onset picking (``librosa.onset``) and the beat tracker (``librosa.beat``, in
:mod:`pipelines.audio.rhythm`). What is this project's own: the level calibration (dBFS), the tempo's octave
check, metre and bars (:mod:`~pipelines.audio.rhythm`), the key profiles (:mod:`~pipelines.audio.key`), the
sections (:mod:`~pipelines.audio.sections`), the content class (:mod:`~pipelines.audio.content_class`), fades,
energy and danceability. librosa's numba kernels are compiled or loaded once per process, under a lock on their
on-disk cache (:mod:`pipelines.audio.kernels`: processes that fill it at once corrupt it); :func:`warm_up`
pays that and the other one-off costs at worker start.

How each field is computed and how far to trust it:

======================  =================================================================================
``tempo``               BPM of the strongest beat period in the onset-strength autocorrelation of the
                        first ``rhythm_window_s``, weighted by a log-normal preference around 120 BPM,
                        refined between lags to ~0.5 %, then doubled when the beats' midpoints carry
                        attacks nearly as strong as the beats (:mod:`pipelines.audio.rhythm`). Octave errors
                        (×2, ×½) remain the usual failure: both are listed with their strengths.
                        ``tempo_confidence`` is the normalised autocorrelation at that period (pulse
                        clarity, 0..1); under 0.1 (a drone, most speech) the tempo is null.
``beats``               beat times (s) from librosa's dynamic-programming beat tracker (Ellis's) at that
                        tempo, over the rhythm window only; within ~2 ms of generated attacks.
``time_signature``      3 or 4 only (beats per bar): whether the beats' accents (onset strength plus level)
                        repeat every 3 beats more than every 2 or 4. Null with fewer than 12 beats. Weak
                        on music without accents; Spotify's 5 and 7 are never produced.
``bars``                bar start times (s): every ``time_signature``-th beat, from the most accented phase.
``key``, ``mode``       Krumhansl–Schmuckler on the mean chroma of the music segments
                        (:mod:`pipelines.audio.key`); −1 when there is under 5 s of music, the chroma is flat
                        or no profile fits; ``key_confidence`` 0..1 and ``notes["key"]`` say which.
``loudness``            integrated LUFS: left null here, filled from the loudness meter by the job.
``energy``              heuristic, uncalibrated against Spotify: mean of three 0..1 ramps — level (median
                        frame level −30 → −8 dBFS), onset rate (0 → 6 onsets/s), noisiness (spectral
                        flatness 10^−3 → 10^−1). Ranks loud, busy, noisy tracks above quiet, sparse, tonal
                        ones; the absolute value is not comparable with Spotify's.
``danceability``        heuristic, uncalibrated: pulse clarity (``tempo_confidence``) × beat regularity
                        (1 − 5 × the coefficient of variation of the beat intervals, clipped) × tempo fit
                        (a log-normal bump around 120 BPM, 0.41 an octave away). High for a steady strong
                        beat at a walking-to-running pace; says nothing about style or groove.
``speechiness``         share of non-silent time labelled speech (:mod:`pipelines.audio.content_class`).
``acousticness``,       null: each needs a trained classifier (acoustic vs electronic instruments, singing
``instrumentalness``,   voice, audience presence, musical mood); no model is shipped or downloaded, and a
``liveness``,           heuristic would be a made-up number. ``notes`` says so in the document.
``valence``
``sections``            start, duration (s), loudness (mean dBFS), tempo, key, mode of each part where the
                        timbre, harmony or level change (:mod:`pipelines.audio.sections`): found to about ±2 s on
                        generated changes; no ground truth on real music.
``end_of_fade_in``      end (s) of the opening rise of the 1 s level to the file's median level: where it
                        passes −6 and −2 dB, extrapolated as a fade linear in amplitude. 0 when the audio
                        starts at full level. Within 0.5 s on generated fades of 2–10 s; on music whose
                        opening is quiet by design it marks the end of that quiet opening.
``start_of_fade_out``   the same from the end backwards; the duration when there is no fade-out.
timbre summary          mean and standard deviation of 13 MFCCs (``librosa.feature.mfcc``: 128 Slaney mel
                        bands, orthonormal DCT-II; on power in dB re a full-scale sine with a −100 dB
                        floor, so c0 is offset from a default librosa run by a constant), mean chroma
                        (12, C first, each frame max-normalised), mean spectral centroid (Hz, on
                        magnitudes), over the frames above −60 dBFS of the whole file.
``content_class``       ``music`` / ``speech`` / ``mixed`` with segments (:mod:`pipelines.audio.content_class`).
======================  =================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import librosa
import numpy as np
import numpy.typing as npt
import soxr

from pipelines.audio.content_class import (
    ContentClassification,
    SegmentEvidence,
    classify,
    segment_evidence,
)
from pipelines.audio.kernels import load_kernels
from pipelines.audio.key import KeyEstimate, estimate_key
from pipelines.audio.rhythm import MIN_METRE_BEATS, MIN_PULSE, Rhythm, analyse_rhythm, onset_rate
from pipelines.audio.sections import Section, find_sections
from pipelines.media.decode import Block

FEATURE_RATE = 22050
"""Hz: the rate every feature is computed at (librosa's default)."""
N_FFT = 2048
HOP = 512
FRAME_S = HOP / FEATURE_RATE
"""Seconds between two analysis frames (23.2 ms)."""
SEGMENT_FRAMES = 86
"""Frames in one speech/music segment and analysis chunk (~2.0 s)."""
SEGMENT_S = SEGMENT_FRAMES * FRAME_S
N_MELS = 128
N_MFCC = 13
SILENT_FRAME_DB = -60.0
"""dBFS: frames under this level are left out of the timbre, chroma and spectral summaries."""
CONTEXT_FRAMES = 3 * SEGMENT_FRAMES
"""Frames of onset strength (~6 s, ending with the segment) that a segment's beat periodicity is measured on."""
MIN_KEY_MUSIC_S = 5.0
"""Seconds of music needed before a key is reported."""

Floats = npt.NDArray[np.float64]

NULL_REASONS = {
    "loudness": "integrated loudness (LUFS) comes from the loudness meter, not from this analysis",
    "acousticness": "needs a trained acoustic/electronic instrument classifier; no model is shipped",
    "instrumentalness": "needs a trained singing-voice detector; no model is shipped",
    "liveness": "needs a trained audience/room detector; no model is shipped",
    "valence": "musical mood needs a trained model; no model is shipped",
}


@dataclass(frozen=True)
class TimbreSummary:
    """Means over the non-silent frames of the whole file."""

    mfcc_mean: tuple[float, ...]
    mfcc_std: tuple[float, ...]
    chroma_mean: tuple[float, ...]
    """12 values 0..1, C first."""
    spectral_centroid_hz: float | None


@dataclass(frozen=True)
class AudioFeatures:
    """The feature record of one master's audio; field meanings in the module docstring."""

    duration_s: float
    rhythm: Rhythm
    key: KeyEstimate
    loudness: float | None
    energy: float | None
    danceability: float | None
    content: ContentClassification
    end_of_fade_in: float
    start_of_fade_out: float
    timbre: TimbreSummary
    sections: tuple[Section, ...]
    rhythm_window_s: float
    notes: Mapping[str, str] = field(default_factory=dict)
    """Why each null field (and key −1) is what it is, by field name."""

    def with_loudness(self, integrated_lufs: float) -> AudioFeatures:
        """The same record with ``loudness`` (integrated LUFS) filled in from the loudness meter."""
        notes = {name: why for name, why in self.notes.items() if name != "loudness"}
        return replace(self, loudness=integrated_lufs, notes=notes)

    def to_document(self) -> dict[str, object]:
        rhythm, key = self.rhythm, self.key
        return {
            "duration_s": round(self.duration_s, 3),
            "tempo": _round(rhythm.tempo_bpm, 2),
            "tempo_confidence": _round(rhythm.tempo_confidence, 3),
            "tempo_alternatives": [
                {"bpm": round(alternative.bpm, 2), "strength": round(alternative.strength, 3)}
                for alternative in rhythm.alternatives
            ],
            "beats": [round(t, 3) for t in rhythm.beats_s],
            "bars": [round(t, 3) for t in rhythm.bars_s],
            "time_signature": rhythm.time_signature,
            "time_signature_confidence": _round(rhythm.time_signature_confidence, 3),
            "key": key.key,
            "mode": key.mode,
            "key_confidence": round(key.confidence, 3),
            "loudness": _round(self.loudness, 2),
            "energy": _round(self.energy, 3),
            "danceability": _round(self.danceability, 3),
            "speechiness": _round(self.content.speechiness, 3),
            "acousticness": None,
            "instrumentalness": None,
            "liveness": None,
            "valence": None,
            "end_of_fade_in": round(self.end_of_fade_in, 2),
            "start_of_fade_out": round(self.start_of_fade_out, 2),
            "timbre": {
                "mfcc_mean": [round(v, 3) for v in self.timbre.mfcc_mean],
                "mfcc_std": [round(v, 3) for v in self.timbre.mfcc_std],
                "chroma_mean": [round(v, 4) for v in self.timbre.chroma_mean],
                "spectral_centroid_hz": _round(self.timbre.spectral_centroid_hz, 1),
            },
            "sections": [section.to_document() for section in self.sections],
            "content_class": self.content.content_class,
            "content_segments": [segment.to_document() for segment in self.content.segments],
            "rhythm_window_s": round(self.rhythm_window_s, 1),
            "notes": dict(self.notes),
        }


def mel_basis() -> Floats:
    """The ``(N_MELS, N_FFT // 2 + 1)`` mel filterbank of the analysis: librosa's (Slaney's mel scale, each filter
    of unit area), from 0 Hz to 11,025 Hz."""
    load_kernels()
    return librosa.filters.mel(sr=FEATURE_RATE, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float64)


def chroma_basis() -> Floats:
    """The ``(12, N_FFT // 2 + 1)`` chroma filterbank of the analysis, C first: librosa's at A440 (``tuning=0``:
    no tuning is estimated), each pitch class's row then scaled to the same total weight, so that white noise has
    a flat chroma (librosa's rows differ by ±10 %)."""
    load_kernels()
    basis = librosa.filters.chroma(sr=FEATURE_RATE, n_fft=N_FFT, tuning=0.0, dtype=np.float64)
    balanced: Floats = basis / basis.sum(axis=1, keepdims=True) * basis.sum(axis=1).mean()
    return balanced


DANCE_CENTRE_BPM = 120.0


def danceability(rhythm: Rhythm) -> float | None:
    """Pulse clarity × beat regularity × tempo fit (0..1); ``None`` without a tempo and at least 8 beats.

    The tempo fit is a log-normal bump around ``DANCE_CENTRE_BPM`` (0.41 at half or double that tempo), taken at
    the tempo or its octave alternatives, whichever fits best.
    """
    if rhythm.tempo_bpm is None or rhythm.tempo_confidence is None or len(rhythm.beats_s) < 8:
        return None
    intervals = np.diff(np.asarray(rhythm.beats_s))
    regularity = float(np.clip(1.0 - 5.0 * intervals.std() / intervals.mean(), 0.0, 1.0))
    readings = [rhythm.tempo_bpm] + [alternative.bpm for alternative in rhythm.alternatives]
    fit = max(float(np.exp(-0.5 * (np.log2(bpm / DANCE_CENTRE_BPM) / 0.75) ** 2)) for bpm in readings)
    return float(rhythm.tempo_confidence * regularity * fit)


def energy(level_db: Floats, onset_rate_hz: float, flatness: float | None) -> float | None:
    """Mean of the level, onset-rate and noisiness ramps (see the module docstring); ``None`` for silence."""
    sounding = level_db[level_db > SILENT_FRAME_DB]
    if len(sounding) == 0 or flatness is None:
        return None
    level = _ramp(float(np.median(sounding)), -30.0, -8.0)
    busy = _ramp(onset_rate_hz, 0.0, 6.0)
    noisy = _ramp(float(np.log10(max(flatness, 1e-12))), -3.0, -1.0)
    return (level + busy + noisy) / 3.0


def fades(level_db: Floats, duration_s: float) -> tuple[float, float]:
    """``(end_of_fade_in, start_of_fade_out)`` in seconds, from per-frame levels (dBFS) at ``FRAME_S``.

    On the 1 s level, relative to the median level of the sounding frames: where the opening rises through −6 and
    then −2 dB, extrapolated on to where a fade linear in amplitude would reach full level (exact for such fades,
    ~1 % late for fades linear in dB); the same backwards from the end. 0 and the duration when the audio starts
    and ends at full level.
    """
    if len(level_db) == 0:
        return 0.0, duration_s
    width = max(1, int(round(1.0 / FRAME_S)))
    power = np.power(10.0, level_db / 10.0)
    kernel = np.ones(width)
    smoothed = 10.0 * np.log10(
        np.convolve(power, kernel, mode="same") / np.convolve(np.ones_like(power), kernel, mode="same") + 1e-12
    )
    sounding = smoothed[smoothed > SILENT_FRAME_DB]
    if len(sounding) == 0:
        return 0.0, duration_s
    relative = smoothed - float(np.median(sounding))
    fade_in_end = _fade_frames(relative) * FRAME_S
    fade_out_start = (len(relative) - 1 - _fade_frames(relative[::-1])) * FRAME_S
    return min(fade_in_end, duration_s), float(np.clip(fade_out_start, fade_in_end, duration_s))


def _fade_frames(relative_db: Floats) -> float:
    """Frames from the start to where a rise from quiet to the median level ends; 0 when it starts there."""
    above_6 = np.flatnonzero(relative_db >= -6.0)
    if len(above_6) == 0 or above_6[0] == 0:
        return 0.0
    first_6 = int(above_6[0])
    above_2 = np.flatnonzero(relative_db[first_6:] >= -2.0)
    if len(above_2) == 0:
        return float(first_6)
    first_2 = first_6 + int(above_2[0])
    # A linear-amplitude fade is at −6 dB halfway and at −2 dB 79 % of the way: what is left is 0.7 × that span.
    return float(first_2 + min(0.7 * (first_2 - first_6), 10.0 / FRAME_S))


def _ramp(value: float, zero_at: float, one_at: float) -> float:
    return float(np.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _Framer:
    """Cuts a mono 22,050 Hz stream into the frames ``librosa.stft(center=True)`` would see (zero padding at
    either end, a periodic Hann window) and hands their magnitude spectrograms ``(bins, frames)`` back in whole
    chunks of ``SEGMENT_FRAMES`` frames, so that every chunk is one speech/music segment; :meth:`flush` returns
    the rest.
    """

    def __init__(self) -> None:
        self._pending = np.zeros(N_FFT // 2, dtype=np.float32)  # centre padding, as librosa pads

    def push(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32] | None:
        self._pending = np.concatenate([self._pending, samples])
        available = (len(self._pending) - N_FFT) // HOP + 1 if len(self._pending) >= N_FFT else 0
        frames = available // SEGMENT_FRAMES * SEGMENT_FRAMES
        if frames == 0:
            return None
        magnitude = self._magnitude(self._pending[: (frames - 1) * HOP + N_FFT])
        self._pending = self._pending[frames * HOP :]
        return magnitude

    def flush(self) -> npt.NDArray[np.float32] | None:
        tail = np.concatenate([self._pending, np.zeros(N_FFT // 2, dtype=np.float32)])
        self._pending = np.zeros(0, dtype=np.float32)
        if len(tail) < N_FFT:
            return None
        return self._magnitude(tail[: ((len(tail) - N_FFT) // HOP) * HOP + N_FFT])

    @staticmethod
    def _magnitude(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        stft = librosa.stft(samples, n_fft=N_FFT, hop_length=HOP, window="hann", center=False)
        magnitude: npt.NDArray[np.float32] = np.abs(stft)
        return magnitude


class FeatureSink:
    """A :class:`~pipelines.media.decode.PcmSink` that computes the feature record of everything it is fed.

    ``rate`` (Hz) and ``channels`` describe the blocks; ``rhythm_window_s`` (seconds from the start) bounds what
    tempo, beats and metre are measured on. Memory stays bounded as the module docstring says. Raises
    ``ValueError`` for a non-positive rate, channel count or window.
    """

    def __init__(self, *, rate: int, channels: int, rhythm_window_s: float = 600.0) -> None:
        if rate <= 0 or channels <= 0 or rhythm_window_s <= 0:
            raise ValueError(f"invalid sink: {rate} Hz, {channels} channels, rhythm window {rhythm_window_s} s")
        self._rate = rate
        self._rhythm_window_s = rhythm_window_s
        self._resampler = (
            None if rate == FEATURE_RATE else soxr.ResampleStream(rate, FEATURE_RATE, 1, dtype="float32", quality="HQ")
        )
        load_kernels()
        self._framer = _Framer()
        self._full_scale = np.float32(16.0 / N_FFT**2)  # a full-scale sine's peak bin at 1 (0 dB) under Hann
        # librosa's RMS is that of the windowed frame; × N / Σw² makes it the signal's (+4.26 dB under Hann).
        window = librosa.filters.get_window("hann", N_FFT, fftbins=True)
        self._rms_to_level = float(np.sqrt(N_FFT / np.sum(window**2)))
        self._mel_basis = mel_basis().astype(np.float32)
        self._chroma_basis = chroma_basis().astype(np.float32)
        self._freqs = librosa.fft_frequencies(sr=FEATURE_RATE, n_fft=N_FFT)
        self._window_frames = int(round(rhythm_window_s / FRAME_S))
        self._input_frames = 0
        self._previous_mel_db: npt.NDArray[np.float32] | None = None
        self._levels: list[npt.NDArray[np.float32]] = []
        self._onsets: list[npt.NDArray[np.float32]] = []
        self._onset_frames = 0
        self._onset_context = np.zeros(0, dtype=np.float32)
        self._evidence: list[SegmentEvidence] = []
        self._segment_chroma: list[npt.NDArray[np.float64]] = []
        self._segment_mfcc: list[npt.NDArray[np.float64]] = []
        self._mfcc_sum = np.zeros(N_MFCC)
        self._mfcc_square_sum = np.zeros(N_MFCC)
        self._centroid_sum = 0.0
        self._flatness_sum = 0.0
        self._sounding_frames = 0

    def feed(self, block: Block) -> None:
        """Take the next ``(frames, channels)`` float32 block."""
        mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)
        self._input_frames += len(mono)
        samples = mono if self._resampler is None else self._resampler.resample_chunk(mono)
        magnitude = self._framer.push(np.asarray(samples, dtype=np.float32))
        if magnitude is not None:
            self._analyse(magnitude)

    def finish(self) -> AudioFeatures:
        """The feature record of everything fed so far; the sink must not be fed afterwards."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            magnitude = self._framer.push(np.asarray(tail, dtype=np.float32))
            if magnitude is not None:
                self._analyse(magnitude)
        magnitude = self._framer.flush() if self._input_frames else None
        if magnitude is not None:
            self._analyse(magnitude)
        duration = self._input_frames / self._rate
        levels = np.concatenate(self._levels).astype(np.float64) if self._levels else np.zeros(0)
        onset = np.concatenate(self._onsets).astype(np.float64) if self._onsets else np.zeros(0)
        content = classify(self._evidence, segment_s=SEGMENT_S, duration_s=duration)
        rhythm = analyse_rhythm(onset, levels, sr=FEATURE_RATE, hop_length=HOP)
        key, key_note = self._key(content)
        flatness = self._flatness_sum / self._sounding_frames if self._sounding_frames else None
        loudness_energy = energy(levels, onset_rate(onset, sr=FEATURE_RATE, hop_length=HOP), flatness)
        dance = danceability(rhythm)
        fade_in, fade_out = fades(levels, duration)
        window_s = min(duration, self._rhythm_window_s)
        notes = dict(NULL_REASONS)
        if key_note is not None:
            notes["key"] = key_note
        if rhythm.tempo_bpm is None:
            notes["tempo"] = f"no clear pulse in the first {window_s:g} s (autocorrelation under {MIN_PULSE:g})"
        elif rhythm.time_signature is None:
            notes["time_signature"] = f"fewer than {MIN_METRE_BEATS} beats"
        if dance is None:
            notes["danceability"] = "no tempo or fewer than 8 beats"
        if loudness_energy is None:
            notes["energy"] = "the audio is silent"
        if content.speechiness is None:
            notes["speechiness"] = "the audio is silent"
        return AudioFeatures(
            duration_s=duration,
            rhythm=rhythm,
            key=key,
            loudness=None,
            energy=loudness_energy,
            danceability=dance,
            content=content,
            end_of_fade_in=fade_in,
            start_of_fade_out=fade_out,
            timbre=self._timbre(),
            sections=self._sections(duration, rhythm),
            rhythm_window_s=window_s,
            notes=notes,
        )

    def _analyse(self, magnitude: npt.NDArray[np.float32]) -> None:
        """Fold one chunk of magnitude spectra ``(bins, frames)`` into the running summaries."""
        power = magnitude**2
        rms = librosa.feature.rms(S=magnitude, frame_length=N_FFT)[0]
        level_db = librosa.amplitude_to_db(rms * self._rms_to_level, ref=1.0, amin=1e-6, top_db=None)
        self._levels.append(level_db)
        mel_power = self._mel_basis @ (power * self._full_scale)
        mel_db = librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=None)
        onset = self._onset_strength(mel_db)
        sounding = level_db > SILENT_FRAME_DB
        every_mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
        if sounding.any():
            loud = magnitude[:, sounding]
            mfcc = every_mfcc[:, sounding].astype(np.float64)
            self._mfcc_sum += mfcc.sum(axis=1)
            self._mfcc_square_sum += (mfcc**2).sum(axis=1)
            centroid = librosa.feature.spectral_centroid(S=loud, sr=FEATURE_RATE, n_fft=N_FFT)
            self._centroid_sum += float(centroid.sum(dtype=np.float64))
            flatness = librosa.feature.spectral_flatness(S=loud, n_fft=N_FFT, amin=1e-10, power=2.0)
            self._flatness_sum += float(flatness.sum(dtype=np.float64))
            self._sounding_frames += int(sounding.sum())
        chroma = librosa.util.normalize(self._chroma_basis @ power, norm=np.inf, axis=0)
        chroma[:, ~sounding] = 0.0
        for start in range(0, power.shape[1], SEGMENT_FRAMES):
            part = slice(start, start + SEGMENT_FRAMES)
            self._onset_context = np.concatenate([self._onset_context, onset[part]])[-CONTEXT_FRAMES:]
            self._evidence.append(segment_evidence(power[:, part], self._freqs, level_db[part], self._onset_context))
            self._segment_chroma.append(chroma[:, part].sum(axis=1, dtype=np.float64))
            self._segment_mfcc.append(every_mfcc[:, part].mean(axis=1, dtype=np.float64))

    def _onset_strength(self, mel_db: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """librosa's onset strength (the mean rise of the dB mel spectrum over the frame before), continued across
        chunks: each chunk is measured with the previous chunk's last frame before it (the first with its own
        first frame, so that the file's first value is 0). The rhythm window's values are kept."""
        previous = mel_db[:, :1] if self._previous_mel_db is None else self._previous_mel_db[:, None]
        self._previous_mel_db = mel_db[:, -1]
        spectrum = np.concatenate([previous, mel_db], axis=1)
        flux = librosa.onset.onset_strength(S=spectrum, lag=1, max_size=1, aggregate=np.mean, center=False)[1:]
        room = self._window_frames - self._onset_frames
        if room > 0:
            self._onsets.append(flux[:room])
            self._onset_frames += min(room, len(flux))
        return flux

    def _key(self, content: ContentClassification) -> tuple[KeyEstimate, str | None]:
        """The key of the music segments' chroma, and why there is none when there is none."""
        music = [index for index, kind in enumerate(content.labels) if kind == "music"]
        if self._segment_chroma and len(music) * SEGMENT_S >= MIN_KEY_MUSIC_S:
            estimate = estimate_key(np.sum([self._segment_chroma[index] for index in music], axis=0))
            if estimate.key >= 0:
                return estimate, None
            return estimate, f"no tonal centre in the chroma (best key-profile correlation {estimate.correlation:.2f})"
        total = np.sum(self._segment_chroma, axis=0) if self._segment_chroma else np.zeros(12)
        fallback = estimate_key(total)
        return (
            KeyEstimate(key=-1, mode=fallback.mode, confidence=0.0, correlation=fallback.correlation),
            f"under {MIN_KEY_MUSIC_S:g} s of music; mode is the whole chroma's best fit, not reliable",
        )

    def _sections(self, duration_s: float, rhythm: Rhythm) -> tuple[Section, ...]:
        if not self._evidence:
            return ()
        return find_sections(
            mfcc=np.asarray(self._segment_mfcc), chroma=np.asarray(self._segment_chroma),
            level_db=np.array([e.level_db for e in self._evidence]), segment_s=SEGMENT_S, duration_s=duration_s,
            beats_s=rhythm.beats_s,
        )

    def _timbre(self) -> TimbreSummary:
        frames = self._sounding_frames
        if frames == 0:
            return TimbreSummary(mfcc_mean=(), mfcc_std=(), chroma_mean=(), spectral_centroid_hz=None)
        mean = self._mfcc_sum / frames
        std = np.sqrt(np.maximum(self._mfcc_square_sum / frames - mean**2, 0.0))
        chroma = np.sum(self._segment_chroma, axis=0) / frames
        return TimbreSummary(
            mfcc_mean=tuple(float(v) for v in mean),
            mfcc_std=tuple(float(v) for v in std),
            chroma_mean=tuple(float(v) for v in chroma),
            spectral_centroid_hz=self._centroid_sum / frames,
        )


def warm_up() -> None:
    """Pay the analysis's one-off costs before the first job: librosa's numba kernels, compiled or loaded under
    their cache's lock (:func:`pipelines.audio.kernels.load_kernels`: ~3 s from a filled cache, ~25 s to fill
    an empty one), then the whole analysis on 8 s of generated clicks (the first FFT plans, soxr's and
    scipy's lazily loaded parts; ~0.2 s).

    A Celery worker calls it once in its parent process, before the pool forks, so that pool processes inherit
    the compiled kernels and never open the cache. A process that skips it pays the same costs in its first
    job, under the same lock: slower, never unsafe.
    """
    frames = np.arange(8 * FEATURE_RATE)
    clicks = ((frames % (FEATURE_RATE // 2)) < 200) * np.sin(2 * np.pi * 1000.0 * frames / FEATURE_RATE)
    sink = FeatureSink(rate=FEATURE_RATE, channels=1)
    sink.feed(clicks.astype(np.float32).reshape(-1, 1))
    sink.finish()
