"""Delivery profiles as data, their pass/fail checks and gain to target, and a 0–100 audio quality score.

:func:`delivery_report` is pure: the loudness and QC reports of one master in, a :class:`DeliveryReport` out.
Every profile is checked; the one that follows the master's content class (music → Spotify, speech or
podcast or mixed → Apple Podcasts, audiobook → ACX, broadcast → EBU R128) is marked primary, and its failures lower
the score. Levels in LUFS / dBTP / dBFS, gains in dB.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.audio.loudness import LoudnessReport
from pipelines.audio.qc import AudioQCReport
from pipelines.scoring import ScoreReason


@dataclass(frozen=True, kw_only=True)
class DeliveryProfile:
    """A platform's delivery specification; ``None`` where it sets no such requirement.

    The target is integrated loudness (``target_lufs`` ± ``lufs_tolerance_lu``) or, for ACX, unweighted RMS
    (``target_rms_dbfs``, passing within ``rms_range_dbfs``). Room tone: seconds of (near-)silence, below
    −60 dBFS, required at the head and the tail, as (minimum, maximum).
    """

    name: str
    title: str
    target_lufs: float | None = None
    lufs_tolerance_lu: float = 1.0
    max_true_peak_dbtp: float | None = None
    target_rms_dbfs: float | None = None
    rms_range_dbfs: tuple[float, float] | None = None
    max_sample_peak_dbfs: float | None = None
    max_noise_floor_dbfs: float | None = None
    head_room_tone_s: tuple[float, float] | None = None
    tail_room_tone_s: tuple[float, float] | None = None


SPOTIFY = DeliveryProfile(name="spotify", title="Spotify", target_lufs=-14.0, max_true_peak_dbtp=-1.0)
APPLE_MUSIC = DeliveryProfile(name="apple_music", title="Apple Music", target_lufs=-16.0)
APPLE_PODCASTS = DeliveryProfile(name="apple_podcasts", title="Apple Podcasts", target_lufs=-16.0,
                                 max_true_peak_dbtp=-1.0)
ACX = DeliveryProfile(name="acx", title="ACX audiobooks", target_rms_dbfs=-20.0, rms_range_dbfs=(-23.0, -18.0),
                      max_sample_peak_dbfs=-3.0, max_noise_floor_dbfs=-60.0, head_room_tone_s=(0.5, 1.0),
                      tail_room_tone_s=(1.0, 5.0))
EBU_R128 = DeliveryProfile(name="ebu_r128", title="EBU R128 broadcast", target_lufs=-23.0, lufs_tolerance_lu=0.5,
                           max_true_peak_dbtp=-1.0)
PROFILES: tuple[DeliveryProfile, ...] = (SPOTIFY, APPLE_MUSIC, APPLE_PODCASTS, ACX, EBU_R128)
PRIMARY_BY_CONTENT_CLASS: dict[str, str] = {
    "music": "spotify", "speech": "apple_podcasts", "podcast": "apple_podcasts", "audiobook": "acx",
    "broadcast": "ebu_r128",
    "mixed": "apple_podcasts",  # speech with music (pipelines.audio.content_class): a podcast or a show, most often
}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One requirement: what was measured (``None``: not measurable, which fails) and what was required."""

    name: str
    passed: bool
    measured: float | None
    required: str


@dataclass(frozen=True, kw_only=True)
class ProfileResult:
    """A profile's checks; ``gain_db`` brings the master to its target, after which its peak would be
    ``peak_after_gain_db`` (dBTP, or dBFS sample peak for ACX): above the ceiling, a limiter is needed."""

    name: str
    title: str
    primary: bool
    checks: tuple[Check, ...]
    gain_db: float | None
    peak_after_gain_db: float | None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass(frozen=True, kw_only=True)
class DeliveryReport:
    content_class: str | None
    profiles: tuple[ProfileResult, ...]
    score: int
    reasons: tuple[ScoreReason, ...]

    @property
    def primary(self) -> ProfileResult | None:
        return next((p for p in self.profiles if p.primary), None)

    def profile(self, name: str) -> ProfileResult:
        return next(p for p in self.profiles if p.name == name)

    def to_document(self) -> dict[str, object]:
        return {
            "content_class": self.content_class,
            "primary_profile": None if self.primary is None else self.primary.name,
            "score": self.score,
            "reasons": [{"code": r.code, "penalty": r.penalty, "detail": r.detail} for r in self.reasons],
            "profiles": [
                {"name": p.name, "title": p.title, "primary": p.primary, "passed": p.passed,
                 "gain_db": _round(p.gain_db), "peak_after_gain_db": _round(p.peak_after_gain_db),
                 "checks": [{"name": c.name, "passed": c.passed, "measured": _round(c.measured),
                             "required": c.required} for c in p.checks]}
                for p in self.profiles
            ],
        }


def delivery_report(loudness: LoudnessReport, qc: AudioQCReport, *, content_class: str | None,
                    profiles: tuple[DeliveryProfile, ...] = PROFILES) -> DeliveryReport:
    """Check the master against every profile and score it.

    ``content_class`` (a key of ``PRIMARY_BY_CONTENT_CLASS``: "music", "speech", "mixed", "podcast",
    "audiobook", "broadcast"; anything else or ``None``: unknown, no primary profile) picks the primary one.
    """
    primary = PRIMARY_BY_CONTENT_CLASS.get(content_class or "")
    results = tuple(_check(profile, loudness, qc, primary=profile.name == primary) for profile in profiles)
    reasons = _reasons(loudness, qc, next((r for r in results if r.primary), None))
    score = 0 if any(r.code == "silent" for r in reasons) else max(0, 100 - sum(r.penalty for r in reasons))
    return DeliveryReport(content_class=content_class, profiles=results, score=score, reasons=reasons)


def _check(profile: DeliveryProfile, loudness: LoudnessReport, qc: AudioQCReport, *, primary: bool) -> ProfileResult:
    checks: list[Check] = []
    gain: float | None = None
    peak_after: float | None = None
    integrated, true_peak = loudness.integrated_lufs, loudness.true_peak_dbtp
    if profile.target_lufs is not None:
        tolerance = profile.lufs_tolerance_lu
        ok = integrated is not None and abs(integrated - profile.target_lufs) <= tolerance
        checks.append(Check(name="integrated_loudness", passed=ok, measured=integrated,
                            required=f"{profile.target_lufs:g} ± {tolerance:g} LUFS"))
        gain = None if integrated is None else profile.target_lufs - integrated
        peak_after = None if gain is None or true_peak is None else true_peak + gain
    if profile.max_true_peak_dbtp is not None:
        ok = true_peak is None or true_peak <= profile.max_true_peak_dbtp
        checks.append(Check(name="true_peak", passed=ok, measured=true_peak,
                            required=f"≤ {profile.max_true_peak_dbtp:g} dBTP"))
    if profile.rms_range_dbfs is not None and profile.target_rms_dbfs is not None:
        low, high = profile.rms_range_dbfs
        ok = qc.rms_dbfs is not None and low <= qc.rms_dbfs <= high
        checks.append(Check(name="rms", passed=ok, measured=qc.rms_dbfs, required=f"{low:g} to {high:g} dBFS RMS"))
        gain = None if qc.rms_dbfs is None else profile.target_rms_dbfs - qc.rms_dbfs
        sample_peak = loudness.sample_peak_dbfs
        peak_after = None if gain is None or sample_peak is None else sample_peak + gain
    if profile.max_sample_peak_dbfs is not None:
        peak = loudness.sample_peak_dbfs
        ok = peak is None or peak <= profile.max_sample_peak_dbfs
        checks.append(Check(name="sample_peak", passed=ok, measured=peak,
                            required=f"≤ {profile.max_sample_peak_dbfs:g} dBFS"))
    if profile.max_noise_floor_dbfs is not None:
        floor = qc.noise_floor_dbfs
        ok = floor is not None and floor <= profile.max_noise_floor_dbfs
        checks.append(Check(name="noise_floor", passed=ok, measured=floor,
                            required=f"≤ {profile.max_noise_floor_dbfs:g} dBFS RMS"))
    for name, span, measured in (("head_room_tone", profile.head_room_tone_s, qc.head_silence_s),
                                 ("tail_room_tone", profile.tail_room_tone_s, qc.tail_silence_s)):
        if span is not None:
            checks.append(Check(name=name, passed=span[0] <= measured <= span[1], measured=measured,
                                required=f"{span[0]:g} to {span[1]:g} s"))
    return ProfileResult(name=profile.name, title=profile.title, primary=primary, checks=tuple(checks),
                         gain_db=gain, peak_after_gain_db=peak_after)


def _reasons(loudness: LoudnessReport, qc: AudioQCReport, primary: ProfileResult | None) -> tuple[ScoreReason, ...]:
    """What lowers the score, with its penalty (points out of 100). The table is the policy: tune it here."""
    if loudness.integrated_lufs is None or qc.head_silence_s >= qc.duration_s:
        return (ScoreReason(code="silent", penalty=100, detail="the master has no audible content"),)
    reasons: list[ScoreReason] = []

    def lower(code: str, penalty: int, detail: str) -> None:
        reasons.append(ScoreReason(code=code, penalty=penalty, detail=detail))

    if qc.clip_events:
        penalty = 10 if qc.clip_events < 10 else 20 if qc.clip_events < 100 else 30
        first = ", ".join(f"{t:.2f}" for t in qc.clip_times_s[:3])
        detail = f"{qc.clipped_samples} clipped samples in {qc.clip_events} runs (first at {first} s)"
        lower("clipping", penalty, detail)
    elif loudness.true_peak_dbtp is not None and loudness.true_peak_dbtp > 0.0:
        lower("inter_sample_overs", 5, f"true peak {loudness.true_peak_dbtp:+.1f} dBTP: decoders will clip")
    dc = qc.max_dc_offset
    if dc >= 0.005:  # −46 dBFS: well above what program material averages to (< 0.1 % on our fixtures)
        lower("dc_offset", 10 if dc >= 0.02 else 5, f"DC offset of {dc * 100:.2f} % of full scale")
    if qc.head_silence_s > 2.0:
        lower("head_silence", 5, f"{qc.head_silence_s:.1f} s of silence at the head")
    if qc.tail_silence_s > 5.0:
        lower("tail_silence", 5, f"{qc.tail_silence_s:.1f} s of silence at the tail")
    if qc.internal_silence_count:
        lower("internal_silence", min(15, 5 * qc.internal_silence_count),
              f"{qc.internal_silence_count} silences longer than {qc.settings.internal_silence_s:g} s inside")
    phase_penalty = {"out_of_phase": 30, "partly_out_of_phase": 10, "dual_mono": 5}.get(qc.phase)
    if phase_penalty is not None:
        detail = {"out_of_phase": "one channel is inverted: the mono downmix cancels",
                  "partly_out_of_phase": f"{(qc.anti_phase_fraction or 0) * 100:.0f} % of the time out of phase",
                  "dual_mono": "both channels carry the same signal"}[qc.phase]
        lower(qc.phase, phase_penalty, detail)
    depth = qc.bit_depth
    if depth.verdict == "fewer_bits_than_declared" and depth.effective_bits is not None:
        lower("padded_bit_depth", 15 if depth.effective_bits < 16 else 10, depth.note)
    if qc.spectrum.suspect:
        lower(qc.spectrum.verdict, 25 if qc.spectrum.verdict == "suspected_lossy" else 20, qc.spectrum.note)
    if primary is not None:
        failed = [c for c in primary.checks if not c.passed]
        if failed:
            names = ", ".join(c.name for c in failed)
            lower("profile_failed", min(15, 5 * len(failed)), f"{primary.title}: {names} out of specification")
    return tuple(reasons)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
