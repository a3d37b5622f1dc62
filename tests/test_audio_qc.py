"""Audio QC: loudness against ffmpeg's ebur128 as referee, each defect found, profiles and the score.

Masters are generated with ffmpeg's lavfi sources (a music-like mix: a chord over pink noise, shared between
the channels with some independent noise, slowly swelling, limited), damaged with ffmpeg filters, and decoded
through the job's own decode (:func:`pipelines.media.decode.decode_audio`) into the sinks. Known answers that need
exact control (clip runs across blocks, room tone) feed numpy arrays to the sinks directly.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import re
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.audio.delivery import DeliveryReport, delivery_report
from pipelines.audio.loudness import LoudnessMeter, LoudnessReport, k_weighting
from pipelines.audio.qc import AudioQC, AudioQCReport
from pipelines.config import Limits
from pipelines.media.decode import analysis_format, decode_audio
from pipelines.media.probe import probe_file
from tests.conftest import DATA, FIXTURES, make_media

RATE = 44100
MUSIC_S = 30
_SOURCES = (
    "anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:seed=1:duration={d}",
    "anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:seed=2:duration={d}",
    "anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:seed=3:duration={d}",
    "sine=frequency=220:sample_rate=44100:duration={d}",
    "sine=frequency=330:sample_rate=44100:duration={d}",
    "sine=frequency=554:sample_rate=44100:duration={d}",
)
_MIX = (
    "[3][4][5]amix=inputs=3:normalize=0,volume=0.25[chord];[0][chord]amix=inputs=2:normalize=0,asplit[m1][m2];"
    "[1]volume=0.5[sl];[2]volume=0.5[sr];[m1][sl]amix=inputs=2:normalize=0[l];[m2][sr]amix=inputs=2:normalize=0[r];"
    "[l][r]join=inputs=2:channel_layout=stereo,highpass=f=20,"
    "volume='0.85+0.15*sin(2*PI*t/10)':eval=frame,alimiter=limit=0.25:level=0"
)


# --- parsers of ffmpeg's output (the referee's), tested on captured output ---------------------------------


@dataclass(frozen=True)
class Ebur128Summary:
    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float | None


def parse_ebur128_summary(text: str) -> Ebur128Summary:
    """The summary ``ffmpeg -af ebur128=peak=true`` prints at the end of its log."""
    summary = text[text.rindex("Summary:"):]

    def value(label: str) -> float | None:
        match = re.search(rf"^\s*{label}:\s*(-?[\d.]+|-inf)\s", summary, re.MULTILINE)
        return None if match is None else float(match.group(1))

    integrated, lra = value("I"), value("LRA")
    assert integrated is not None and lra is not None, "no ebur128 summary"
    return Ebur128Summary(integrated_lufs=integrated, loudness_range_lu=lra, true_peak_dbtp=value("Peak"))


def parse_loudnorm_json(text: str) -> dict[str, str]:
    """The JSON object ``loudnorm=print_format=json`` prints last."""
    start = text.rindex("{")
    return dict(json.loads(text[start:text.index("}", start) + 1]))


def test_parse_ebur128_summary() -> None:
    summary = parse_ebur128_summary((DATA / "ebur128_summary.txt").read_text())
    assert summary == Ebur128Summary(integrated_lufs=-14.4, loudness_range_lu=2.3, true_peak_dbtp=0.0)


def test_parse_loudnorm_json() -> None:
    measured = parse_loudnorm_json((DATA / "loudnorm_pass1.txt").read_text())
    assert measured["input_i"] == "-14.58" and measured["input_tp"] == "0.01"
    assert measured["input_lra"] == "2.20" and measured["input_thresh"] == "-24.58"


# --- fixtures ------------------------------------------------------------------------------------------------


def _ffmpeg_log(*args: str) -> str:
    return subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", *args],
                          capture_output=True, text=True, check=True).stderr


def ebur128(path: Path) -> Ebur128Summary:
    return parse_ebur128_summary(_ffmpeg_log("-i", str(path), "-af", "ebur128=peak=true:framelog=verbose",
                                             "-f", "null", "-"))


def loudnorm_linear(source: Path, target: Path, *, lufs: float) -> Path:
    """Two-pass loudnorm in linear mode (a plain gain), to 16-bit PCM at 44.1 kHz."""
    options = f"I={lufs}:TP=-1.5:LRA=20"
    m = parse_loudnorm_json(_ffmpeg_log("-i", str(source), "-af", f"loudnorm={options}:print_format=json",
                                        "-f", "null", "-"))
    measured = (f"measured_I={m['input_i']}:measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}:"
                f"measured_thresh={m['input_thresh']}:offset={m['target_offset']}")
    second = _ffmpeg_log("-y", "-i", str(source), "-af", f"loudnorm={options}:{measured}:linear=true:print_format=json",
                         "-ar", "44100", "-c:a", "pcm_s16le", str(target))
    assert parse_loudnorm_json(second)["normalization_type"] == "linear"
    return target


@pytest.fixture(scope="session")
def qc_masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The clean music master (normalised to −14 LUFS) and its damaged variants."""
    folder = tmp_path_factory.mktemp("qc")
    inputs = [arg for source in _SOURCES for arg in ("-f", "lavfi", "-i", source.format(d=MUSIC_S))]
    raw = make_media(folder / "raw.wav", *inputs, "-filter_complex", _MIX, "-c:a", "pcm_s16le")
    clean = loudnorm_linear(raw, folder / "clean.wav", lufs=-14.0)
    src = ("-i", str(clean))
    mp3 = make_media(folder / "lossy.mp3", *src, "-c:a", "libmp3lame", "-b:a", "128k")
    return {
        "clean": clean,
        "clipped": make_media(folder / "clipped.wav", *src, "-af", "volume=12dB", "-c:a", "pcm_s16le"),
        "dc": make_media(folder / "dc.wav", *src, "-af", "dcshift=shift=0.03", "-c:a", "pcm_s16le"),
        "silent_head": make_media(folder / "head.wav", *src, "-af", "adelay=delays=3000:all=1", "-c:a", "pcm_s16le"),
        "inverted": make_media(folder / "inverted.wav", *src, "-af", "pan=stereo|c0=c0|c1=-1*c1", "-c:a", "pcm_s16le"),
        "dual_mono": make_media(folder / "dual.wav", *src, "-af", "pan=stereo|c0=c0|c1=c0", "-c:a", "pcm_s16le"),
        "mp3_48k": make_media(folder / "mp3_48k.wav", "-i", str(mp3), "-ar", "48000", "-c:a", "pcm_s16le"),
        "from_22k": make_media(folder / "from_22k.wav", *src, "-af", "aresample=22050,aresample=44100",
                               "-c:a", "pcm_s16le"),
        "padded_24": make_media(folder / "padded.wav", *src, "-c:a", "pcm_s24le"),
    }


@dataclass(frozen=True)
class Analysis:
    loudness: LoudnessReport
    qc: AudioQCReport
    delivery: DeliveryReport


def analyse(path: Path, *, declared_bits: int | None = 16, content_class: str | None = "music") -> Analysis:
    """The job's decode of ``path`` into both sinks, then the delivery report."""
    limits = Limits()
    probe = probe_file(path, ffprobe="ffprobe", limits=limits)
    assert probe.audio is not None
    fmt = analysis_format(probe)
    meter = LoudnessMeter(rate=fmt.rate, channels=fmt.channels)
    qc = AudioQC(rate=fmt.rate, channels=fmt.channels, declared_rate=probe.audio.sample_rate,
                 declared_bits=declared_bits)
    decode_audio(path, probe, [meter, qc], ffmpeg="ffmpeg", limits=limits, fmt=fmt)
    loudness, report = meter.finish(), qc.finish()
    return Analysis(loudness, report, delivery_report(loudness, report, content_class=content_class))


def feed(samples: npt.NDArray[np.float32], *sinks: LoudnessMeter | AudioQC, block: int = 4099) -> None:
    """Feed ``(frames, channels)`` samples in blocks of an awkward size, as the decode would."""
    for start in range(0, len(samples), block):
        for sink in sinks:
            sink.feed(samples[start:start + block])


def reason_codes(analysis: Analysis) -> set[str]:
    return {r.code for r in analysis.delivery.reasons}


# --- loudness: known answers and the referee ----------------------------------------------------------------


def test_k_weighting_matches_the_standard_48k_table() -> None:
    """BS.1770-4 Table 1 and 2: our design from the analogue prototype reproduces the published 48 kHz filter."""
    expected = [[1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
                [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]]
    assert np.allclose(k_weighting(48000), expected, atol=1e-8)


def test_sine_loudness_and_true_peak_known_answers() -> None:
    """A 997 Hz sine at −6.02 dBFS in one channel reads −9.03 LUFS (BS.1770: 0 dBFS reads −3.01); a sine at a
    quarter of the rate sampled 45° off its crest has a true peak 3 dB above its sample peak."""
    t = np.arange(20 * RATE) / RATE
    sine = (0.5 * np.sin(2 * np.pi * 997 * t)).astype(np.float32)[:, None]
    meter = LoudnessMeter(rate=RATE, channels=1)
    feed(sine, meter)
    report = meter.finish()
    assert report.integrated_lufs == pytest.approx(-9.03, abs=0.05)
    assert report.loudness_range_lu == pytest.approx(0.0, abs=0.1)
    assert report.short_term_lufs[5] == pytest.approx(-9.03, abs=0.05)
    assert len(report.momentary_lufs) == 20 and report.series_interval_s == pytest.approx(1.0)

    n = np.arange(4 * RATE)
    quarter = 0.5 * np.sin(np.pi / 2 * n + np.pi / 4) * np.hanning(len(n))  # a fade: no edge overshoot
    meter = LoudnessMeter(rate=RATE, channels=1)
    feed(quarter.astype(np.float32)[:, None], meter)
    report = meter.finish()
    assert report.sample_peak_dbfs == pytest.approx(-9.03, abs=0.01)
    assert report.true_peak_dbtp == pytest.approx(-6.02, abs=0.1)


def test_normalised_master_measures_minus_14_and_agrees_with_ebur128(qc_masters: dict[str, Path]) -> None:
    ours = analyse(qc_masters["clean"]).loudness
    referee = ebur128(qc_masters["clean"])
    assert ours.integrated_lufs == pytest.approx(-14.0, abs=0.3)
    assert ours.integrated_lufs == pytest.approx(referee.integrated_lufs, abs=0.3)
    assert ours.loudness_range_lu == pytest.approx(referee.loudness_range_lu, abs=1.0)
    assert referee.loudness_range_lu > 1.5  # the swell gives the range something to measure
    assert referee.true_peak_dbtp is not None and ours.true_peak_dbtp is not None
    assert ours.true_peak_dbtp == pytest.approx(referee.true_peak_dbtp, abs=0.5)


@pytest.mark.parametrize("name", ["music_hyperrogue_20s.ogg", "music_hyperrogue_desert_30s.ogg",
                                  "speech_librivox_16k.flac"])
def test_real_masters_agree_with_ebur128(name: str) -> None:
    ours = analyse(FIXTURES / name, declared_bits=None).loudness
    referee = ebur128(FIXTURES / name)
    assert ours.integrated_lufs == pytest.approx(referee.integrated_lufs, abs=0.3)
    assert ours.loudness_range_lu == pytest.approx(referee.loudness_range_lu, abs=1.0)
    assert referee.true_peak_dbtp is not None and ours.true_peak_dbtp is not None
    assert ours.true_peak_dbtp == pytest.approx(referee.true_peak_dbtp, abs=0.5)


def test_silence_has_no_loudness_and_scores_zero() -> None:
    meter, qc = LoudnessMeter(rate=RATE, channels=2), AudioQC(rate=RATE, channels=2)
    feed(np.zeros((5 * RATE, 2), dtype=np.float32), meter, qc)
    loudness, report = meter.finish(), qc.finish()
    analysis = Analysis(loudness, report, delivery_report(loudness, report, content_class=None))
    assert analysis.loudness.integrated_lufs is None and analysis.loudness.true_peak_dbtp is None
    assert analysis.qc.head_silence_s == pytest.approx(5.0) and analysis.qc.phase == "silent"
    assert analysis.delivery.score == 0 and reason_codes(analysis) == {"silent"}
    json.dumps(analysis.delivery.to_document(), allow_nan=False)


# --- the clean master and each defect ---------------------------------------------------------------------


def test_clean_master_passes_its_profile(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["clean"], content_class="music")
    primary = analysis.delivery.primary
    assert primary is not None and primary.name == "spotify" and primary.passed
    assert primary.gain_db == pytest.approx(0.0, abs=0.3)
    assert analysis.delivery.score == 100, analysis.delivery.reasons
    qc = analysis.qc
    assert qc.clip_events == 0 and qc.max_dc_offset < 0.005 and qc.head_silence_s < 0.1
    assert qc.phase == "stereo" and 0.3 < (qc.correlation or 0) < 0.95
    assert qc.bit_depth.verdict == "as_declared" and qc.bit_depth.effective_bits == 16
    assert qc.spectrum.verdict == "full_band"
    ebu = analysis.delivery.profile("ebu_r128")
    assert not ebu.passed and ebu.gain_db == pytest.approx(-23.0 - (analysis.loudness.integrated_lufs or 0))
    for document in (analysis.loudness.to_document(), qc.to_document(), analysis.delivery.to_document()):
        json.dumps(document, allow_nan=False)


def test_clipping_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["clipped"])
    assert analysis.qc.clip_events >= 10 and analysis.qc.clipped_samples >= 3 * analysis.qc.clip_events
    assert "clipping" in reason_codes(analysis) and analysis.delivery.score <= 80
    assert not analysis.delivery.profile("spotify").passed


def test_clip_runs_are_counted_across_blocks() -> None:
    """Runs of 2 (too short), 3 and 5 (negative, split across two blocks) samples at full scale."""
    samples = np.zeros((RATE, 1), dtype=np.float32)
    samples[1000:1002] = 1.0
    samples[2000:2003] = 1.0
    samples[4097:4102] = -1.0  # crosses the 4099-frame block boundary
    qc = AudioQC(rate=RATE, channels=1)
    feed(samples, qc)
    report = qc.finish()
    assert (report.clip_events, report.clipped_samples) == (2, 8)
    assert report.clip_times_s == pytest.approx((2000 / RATE, 4097 / RATE))


def test_dc_offset_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["dc"])
    assert analysis.qc.dc_offset == pytest.approx((0.03, 0.03), abs=0.004)
    assert "dc_offset" in reason_codes(analysis)


def test_silent_head_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["silent_head"])
    assert analysis.qc.head_silence_s == pytest.approx(3.0, abs=0.06)
    assert analysis.qc.tail_silence_s < 0.1 and analysis.qc.internal_silence_count == 0
    assert "head_silence" in reason_codes(analysis)


def test_internal_and_tail_silences_are_found() -> None:
    t = np.arange(12 * RATE) / RATE
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    samples[4 * RATE:int(6.5 * RATE)] = 0.0  # 2.5 s inside
    samples[7 * RATE:int(8.5 * RATE)] *= 1e-4  # 1.5 s at −90 dBFS: silent, but shorter than 2 s
    samples[11 * RATE:] = 0.0  # 1 s at the tail
    qc = AudioQC(rate=RATE, channels=1)
    feed(samples[:, None], qc)
    report = qc.finish()
    assert report.internal_silence_count == 1
    assert report.internal_silences[0].start_s == pytest.approx(4.0, abs=0.05)
    assert report.internal_silences[0].duration_s == pytest.approx(2.5, abs=0.1)
    assert report.tail_silence_s == pytest.approx(1.0, abs=0.05) and report.head_silence_s == 0.0
    assert report.digital_silence_s == pytest.approx(3.5, abs=0.1)


def test_inverted_channel_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["inverted"])
    qc = analysis.qc
    assert qc.phase == "out_of_phase"
    assert (qc.correlation or 0) < -0.3 and (qc.anti_phase_fraction or 0) > 0.5
    assert (qc.mono_downmix_loss_db or 0) < -6.0
    assert "out_of_phase" in reason_codes(analysis)


def test_dual_mono_is_found(qc_masters: dict[str, Path]) -> None:
    qc = analyse(qc_masters["dual_mono"]).qc
    assert qc.phase == "dual_mono" and qc.correlation == pytest.approx(1.0, abs=1e-6)
    assert qc.mono_downmix_loss_db == pytest.approx(0.0, abs=0.01)


def test_mp3_upsampled_to_48k_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["mp3_48k"])
    spectrum = analysis.qc.spectrum
    assert spectrum.suspect and spectrum.verdict == "suspected_lossy"
    assert spectrum.cutoff_hz is not None and 15000 <= spectrum.cutoff_hz <= 17500
    assert spectrum.cliff_db is not None and spectrum.cliff_db >= 25
    assert analysis.qc.bit_depth.verdict == "not_measurable"  # decoded at 44.1 kHz: its grid is gone
    assert "suspected_lossy" in reason_codes(analysis)


def test_upsampled_from_22k_is_found(qc_masters: dict[str, Path]) -> None:
    spectrum = analyse(qc_masters["from_22k"]).qc.spectrum
    assert spectrum.verdict == "suspected_upsampled"
    assert spectrum.cutoff_hz is not None and 9900 <= spectrum.cutoff_hz <= 11100


def test_16_bit_master_in_24_bit_container_is_found(qc_masters: dict[str, Path]) -> None:
    analysis = analyse(qc_masters["padded_24"], declared_bits=24)
    depth = analysis.qc.bit_depth
    assert depth.verdict == "fewer_bits_than_declared" and depth.effective_bits == 16
    assert "padded_bit_depth" in reason_codes(analysis)


def test_real_lossy_and_16k_sources() -> None:
    """The desert fixture is Vorbis with a 16–17 kHz low-pass; the speech is a 16 kHz recording, whole."""
    assert analyse(FIXTURES / "music_hyperrogue_desert_30s.ogg", declared_bits=None).qc.spectrum.suspect
    speech = analyse(FIXTURES / "speech_librivox_16k.flac", content_class="speech")
    assert speech.qc.spectrum.verdict == "full_band" and speech.qc.spectrum.nyquist_hz == 8000
    assert speech.qc.phase == "mono" and speech.delivery.primary is not None
    assert speech.delivery.primary.name == "apple_podcasts"


# --- ACX: RMS, peak, noise floor, room tone ---------------------------------------------------------------


def _audiobook(noise_floor_dbfs: float) -> npt.NDArray[np.float32]:
    """0.7 s of room tone, 10 s of syllable-like bursts at about −20 dBFS RMS, 2 s of room tone."""
    rng = np.random.default_rng(7)
    tone = rng.standard_normal(int(12.7 * RATE)) * 10 ** (noise_floor_dbfs / 20)
    t = np.arange(10 * RATE) / RATE
    bursts = np.sin(2 * np.pi * 180 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * 0.32
    tone[int(0.7 * RATE):int(10.7 * RATE)] += bursts
    return tone.astype(np.float32)[:, None]


def test_acx_audiobook_passes_with_quiet_room_tone_and_fails_with_noise() -> None:
    for floor, passes in ((-70.0, True), (-50.0, False)):
        meter, qc = LoudnessMeter(rate=RATE, channels=1), AudioQC(rate=RATE, channels=1)
        feed(_audiobook(floor), meter, qc)
        loudness, report = meter.finish(), qc.finish()
        acx = delivery_report(loudness, report, content_class="audiobook").primary
        assert acx is not None and acx.name == "acx"
        checks = {c.name: c for c in acx.checks}
        assert report.noise_floor_dbfs == pytest.approx(floor, abs=1.0)
        assert checks["noise_floor"].passed is passes
        assert checks["rms"].passed and checks["sample_peak"].passed
        if passes:
            assert report.head_silence_s == pytest.approx(0.7, abs=0.06)
            assert report.tail_silence_s == pytest.approx(2.0 + 1 / 6, abs=0.06)  # the last lobe is a silent half
            assert acx.passed and acx.gain_db == pytest.approx(-20.0 - (report.rms_dbfs or 0))
        else:
            assert report.head_silence_s == 0.0 and not checks["head_room_tone"].passed
