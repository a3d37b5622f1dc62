"""The quality report of one master: a single self-contained HTML page a person can judge the master from.

:func:`render_report` is pure: the job's typed results (the :class:`~pipelines.media.probe.Probe`, the
document's :class:`~pipelines.document.Quality`, the measured renditions) and the analysis decode's
:class:`~pipelines.audio.spectrogram.Spectrogram` in, the page's text out. The page shows the
verdict and score with the reasons that lowered it, the verdict per delivery profile (each check, the gain to
target), loudness over time against the targets, a spectrogram with the detected cutoff, the audio checks, and
VMAF per segment for every video rung with the wasted ones marked.

Self-contained: charts are inline SVG (:mod:`pipelines.report.charts`), styles inline, no script at all, and
a Content-Security-Policy that forbids the page any request (``data:`` images aside). Every string that comes
from the master or the document is HTML-escaped where it is written; the policy is a second wall, not the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import html
from typing import Any

from pipelines.audio.delivery import PROFILES, Check, DeliveryReport
from pipelines.audio.integrity import BitDepthReport, SpectrumReport
from pipelines.audio.loudness import LoudnessReport
from pipelines.audio.qc import AudioQCReport
from pipelines.audio.spectrogram import Spectrogram
from pipelines.document import Quality, UnmeasuredRendition
from pipelines.media.probe import Probe, Stream
from pipelines.report.charts import (
    RungSeries,
    TargetLine,
    clock,
    loudness_chart,
    spectrogram_chart,
    vmaf_chart,
)
from pipelines.scoring import ScoreReason
from pipelines.video.package import MeasuredRendition, Variant
from pipelines.video.quality import RenditionQuality

REPORT_NAME = "report.html"
REPORT_CONTENT_TYPE = "text/html; charset=utf-8"

_CHECK_TITLES = {
    "integrated_loudness": ("Integrated loudness", "LUFS"), "true_peak": ("True peak", "dBTP"),
    "rms": ("RMS level", "dBFS"), "sample_peak": ("Sample peak", "dBFS"), "noise_floor": ("Noise floor", "dBFS"),
    "head_room_tone": ("Room tone at the head", "s"), "tail_room_tone": ("Room tone at the tail", "s"),
}
# Which score reasons (pipelines.audio.delivery) concern each row of the audio checks: a row is flagged when one
# is there.
_CHECK_REASONS = {
    "clipping": ("clipping", "inter_sample_overs"), "dc": ("dc_offset",),
    "silence": ("head_silence", "tail_silence", "internal_silence"),
    "phase": ("out_of_phase", "partly_out_of_phase", "dual_mono"), "bit_depth": ("padded_bit_depth",),
    "spectrum": ("suspected_lossy", "suspected_upsampled"),
}
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def render_report(*, asset_id: str, job_id: str, probe: Probe, quality: Quality | None,
                  renditions: Sequence[MeasuredRendition], spectrogram: Spectrogram | None) -> str:
    """The report page for one master (UTF-8 HTML text).

    ``quality`` may be ``None`` (nothing measured); ``renditions`` are the ladder's renditions as measured on
    disk. What was not measured (``None``) is shown as not measured, never guessed. Values are shown at the
    precision the job document gives them. A failure to draw raises: the job records it as
    ``quality.report_error`` without failing (see :mod:`pipelines.job`).
    """
    quality = quality or Quality()
    tags = probe.tags
    title = str(tags.get("title") or asset_id)
    qc = quality.audio_qc
    sections = [
        _header(title, asset_id, probe),
        _verdict(quality),
        _profiles(quality.delivery),
        _loudness(quality.loudness, quality.delivery),
        _spectrum(None if qc is None else qc.spectrum, spectrogram),
        _audio_checks(qc, quality.delivery),
        _video(quality.renditions, renditions, probe),
        _tags(tags),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>Quality report: {_e(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f"<body><main>\n{body}\n<footer>mediaworker quality report · asset {_e(asset_id)} · job {_e(job_id)}"
        "</footer>\n</main></body></html>\n"
    )


def verdict_of(score: int | None, primary_passed: bool | None) -> tuple[str, str]:
    """``(css class, headline)``: ready (score ≥ 85, primary profile not failed), review (≥ 60), not ready."""
    if score is None:
        return "unknown", "No audio to judge"
    if score >= 85 and primary_passed is not False:
        return "pass", "Ready to ship"
    if score >= 60:
        return "warn", "Ship after review"
    return "fail", "Not ready to ship"


def _header(title: str, asset_id: str, probe: Probe) -> str:
    facts = [str(probe.kind or "?"), clock(round(probe.duration_s, 3)), str(probe.container or "?")]
    facts += [_stream_summary(stream) for stream in probe.streams]
    artist = probe.tags.get("artist")
    byline = f"<p class=\"artist\">{_e(artist)}</p>" if artist else ""
    return (f"<header id=\"master\"><p class=\"kicker\">Quality report · asset <code>{_e(asset_id)}</code></p>"
            f"<h1 id=\"title\">{_e(title)}</h1>{byline}"
            f"<p class=\"facts\">{' · '.join(_e(f) for f in facts if f)}</p></header>")


def _stream_summary(stream: Stream) -> str:
    if stream.codec_type == "video":
        size = f"{stream.width}x{stream.height}" if stream.width else ""
        rate = f"{stream.frame_rate:.3g} fps" if stream.frame_rate else ""
        return " ".join(p for p in ("video", stream.codec_name or "", size, rate) if p)
    parts = ["audio", stream.codec_name or ""]
    if stream.sample_rate:
        parts.append(f"{stream.sample_rate / 1000:g} kHz")
    if stream.bits_per_sample:
        parts.append(f"{stream.bits_per_sample}-bit")
    if stream.channels:
        parts.append(f"{stream.channels} ch")
    return " ".join(p for p in parts if p)


def _verdict(quality: Quality) -> str:
    delivery, score = quality.delivery, quality.score
    primary = None if delivery is None else delivery.primary
    css, headline = verdict_of(score, None if primary is None else primary.passed)
    reasons = () if delivery is None else delivery.reasons
    items = "".join(
        f"<li><span class=\"penalty\">−{_e(r.penalty)}</span> <b>{_e(_words(r.code))}</b>: "
        f"{_e(r.detail)}</li>" for r in reasons)
    listing = f"<ul id=\"reasons\">{items}</ul>" if items else "<p id=\"reasons\">Nothing lowered the score.</p>"
    rungs = [r for r in quality.renditions if isinstance(r, RenditionQuality) and r.score is not None]
    if score is None and rungs:  # video without audio: the rungs' own scores are all there is to judge
        headline = "Video only: no audio to check"
        listing = "<ul id=\"reasons\">" + "".join(
            f"<li><b>{_e(r.name)}</b> scores {_e(r.score)}"
            + "".join(f"; {_e(x.detail)}" for x in r.reasons)
            + "</li>" for r in rungs) + "</ul>"
    if primary is not None:
        content_class = delivery.content_class if delivery is not None else None
        status = "passes" if primary.passed else "fails"
        why = f" (the profile for {_e(content_class)})" if content_class else ""
        line = f"<p>Primary delivery profile: <b>{_e(primary.title)}</b>{why}: {status}.</p>"
    else:
        line = "<p>No primary delivery profile: the content class is not known.</p>" if delivery else ""
    shown = "–" if score is None else _e(score)
    return (f"<section id=\"verdict\" class=\"card verdict {css}\" data-verdict=\"{css}\">"
            f"<div class=\"score\" id=\"score\">{shown}<small>/100</small></div>"
            f"<div><h2 id=\"headline\">{_e(headline)}</h2>{line}{listing}</div></section>")


def _profiles(delivery: DeliveryReport | None) -> str:
    if delivery is None or not delivery.profiles:
        return ""
    ceilings = {p.name: p.max_true_peak_dbtp if p.max_true_peak_dbtp is not None else p.max_sample_peak_dbfs
                for p in PROFILES}
    cards = []
    for profile in delivery.profiles:
        name, passed = profile.name, profile.passed
        rows = "".join(_check_row(check) for check in profile.checks)
        gain, peak = _rounded(profile.gain_db), _rounded(profile.peak_after_gain_db)
        unit = "dBFS" if name == "acx" else "dBTP"
        if gain is None:
            gain_line = "<p class=\"gain\">Gain to target: not measurable.</p>"
        else:
            after = ""
            if peak is not None:
                ceiling = ceilings.get(name)
                limiter = ceiling is not None and peak > ceiling
                after = (f"; it would then peak at {_db(peak)} {unit}"
                         + (" — <b class=\"bad\">a limiter is needed</b>" if limiter else ""))
            gain_line = f"<p class=\"gain\">Gain to target: <b>{_db(gain, signed=True)} dB</b>{after}.</p>"
        primary = "<span class=\"tag\">primary</span>" if profile.primary else ""
        verdict = "pass" if passed else "fail"
        cards.append(
            f"<article class=\"card profile {verdict}\" id=\"profile-{_e(name)}\" data-verdict=\"{verdict}\">"
            f"<h3>{_e(profile.title)} {primary}<span class=\"badge\">{'Pass' if passed else 'Fail'}</span>"
            f"</h3>{gain_line}<table class=\"checks\">{rows}</table></article>")
    return f"<section id=\"profiles\"><h2>Delivery profiles</h2><div class=\"grid\">{''.join(cards)}</div></section>"


def _check_row(check: Check) -> str:
    title, unit = _CHECK_TITLES.get(check.name, (_words(check.name), ""))
    measured = _rounded(check.measured)
    value = "not measurable" if measured is None else f"{_db(measured)} {unit}"
    mark, css = ("✓", "ok") if check.passed else ("✗", "bad")
    return (f"<tr class=\"{css}\"><td class=\"mark\">{mark}</td><td>{_e(title)}</td><td>{_e(value)}</td>"
            f"<td class=\"required\">{_e(check.required)}</td></tr>")


def _loudness(loudness: LoudnessReport | None, delivery: DeliveryReport | None) -> str:
    if loudness is None:
        return ""
    primary = None if delivery is None or delivery.primary is None else delivery.primary.name
    by_level: dict[float, list[str]] = {}
    for profile in PROFILES:
        if profile.target_lufs is not None:
            by_level.setdefault(profile.target_lufs, []).append(profile.name)
    titles = {p.name: p.title for p in PROFILES}
    targets = [TargetLine(label=f"{level:g} ".replace("-", "−") + "\n".join(titles[n] for n in names), lufs=level,
                          primary=primary in names) for level, names in by_level.items()]
    # the series at the document's precision (0.1 LU): the chart draws what the document says
    momentary = [_rounded(v, 1) for v in loudness.momentary_lufs]
    short_term = [_rounded(v, 1) for v in loudness.short_term_lufs]
    integrated = _rounded(loudness.integrated_lufs)
    chart = ""
    if momentary or short_term:
        svg = loudness_chart(interval_s=loudness.series_interval_s or 1.0, momentary=momentary,
                             short_term=short_term, integrated_lufs=integrated, targets=targets, chart_id="loudness")
        chart = _figure("chart-loudness", svg, "Momentary and short-term loudness over time, with the targets of "
                        "the delivery profiles (the primary one in red).")
    tiles = [("Integrated", integrated, "LUFS"), ("Loudness range", loudness.loudness_range_lu, "LU"),
             ("True peak", loudness.true_peak_dbtp, "dBTP"), ("Sample peak", loudness.sample_peak_dbfs, "dBFS"),
             ("Max momentary", loudness.max_momentary_lufs, "LUFS"),
             ("Max short-term", loudness.max_short_term_lufs, "LUFS")]
    stats = "".join(f"<div class=\"stat\"><span>{_e(label)}</span><b>{_e(_db(v) if v is not None else '–')}</b> "
                    f"<small>{unit}</small></div>" for label, v, unit in ((t, _rounded(v), u) for t, v, u in tiles))
    return f"<section id=\"loudness\"><h2>Loudness</h2><div class=\"stats\">{stats}</div>{chart}</section>"


def _spectrum(spectrum: SpectrumReport | None, spectrogram: Spectrogram | None) -> str:
    if spectrum is None and spectrogram is None:
        return ""
    cutoff = None if spectrum is None or spectrum.cutoff_hz is None else round(spectrum.cutoff_hz)  # whole Hz
    verdict = "not measured" if spectrum is None else spectrum.verdict
    chart = ""
    if spectrogram is not None and spectrogram.levels_db.shape[1]:
        label = f"cutoff {cutoff / 1000:.1f} kHz ({_words(verdict)})" if cutoff is not None else ""
        svg = spectrogram_chart(spectrogram, cutoff_hz=None if cutoff is None else float(cutoff),
                                nyquist_hz=None if spectrum is None else spectrum.nyquist_hz, cutoff_label=label,
                                chart_id="spectrogram")
        chart = _figure("chart-spectrogram", svg, "Spectrogram of the master (mono mix) and its average spectrum; "
                        "the dashed line is the detected cutoff.")
    css = "bad" if verdict in ("suspected_lossy", "suspected_upsampled") else "ok"
    note = None if spectrum is None else spectrum.note
    summary = (f"<p id=\"spectrum-verdict\" class=\"{css}\"><b>{_e(_words(verdict))}</b>"
               f"{': ' + _e(note) if note else ''}</p>")
    return f"<section id=\"spectrum\"><h2>Spectrum</h2>{summary}{chart}</section>"


def _audio_checks(qc: AudioQCReport | None, delivery: DeliveryReport | None) -> str:
    if qc is None:
        return ""
    reasons = () if delivery is None else delivery.reasons
    first_clips = ", ".join(f"{round(t, 3):g} s" for t in qc.clip_times_s[:3])  # to the millisecond
    noise = _rounded(qc.noise_floor_dbfs)
    correlation = _rounded(qc.correlation, 3)
    rows: list[tuple[str, str, str]] = [
        ("clipping", "Clipping", "no clipped samples" if not qc.clipped_samples else
         f"{qc.clipped_samples} samples in {qc.clip_events} runs, first at {first_clips}"),
        ("dc", "DC offset", f"{max((abs(round(v, 6)) for v in qc.dc_offset), default=0.0) * 100:.3f} % of full scale"),
        ("silence", "Silence", f"{round(qc.head_silence_s, 2):g} s at the head, {round(qc.tail_silence_s, 2)} s at "
         f"the tail, {qc.internal_silence_count} long ones inside"),
        ("noise", "Noise floor", "–" if noise is None else f"{_db(noise)} dBFS"),
        ("phase", "Phase", _words(qc.phase) + (f" (correlation {correlation:.2f})" if correlation is not None else "")),
        ("bit_depth", "Bit depth", _bit_depth(qc.bit_depth)),
        ("spectrum", "Spectral cutoff", qc.spectrum.note or "–"),
    ]
    body = []
    for key, title, text in rows:
        found = [r for r in reasons if r.code in _CHECK_REASONS.get(key, ())]
        why = "".join(f"<span class=\"why\">−{_e(r.penalty)}: {_e(r.detail)}</span>" for r in found)
        css, mark = ("bad", "✗") if found else ("ok", "✓")
        body.append(f"<tr class=\"{css}\" id=\"check-{key}\"><td class=\"mark\">{mark}</td><td>{_e(title)}</td>"
                    f"<td>{_e(text)}{why}</td></tr>")
    table = f"<table class=\"checks wide\">{''.join(body)}</table>"
    return f"<section id=\"audio-checks\"><h2>Audio checks</h2>{table}</section>"


def _bit_depth(depth: BitDepthReport) -> str:
    """``16 bits used of 24 declared``; the meter's note where it could not tell."""
    if depth.effective_bits is None:
        return f"not measured: {depth.note}" if depth.note else "not measured"
    declared = f" of {depth.declared_bits} declared" if depth.declared_bits is not None else ""
    return f"{depth.effective_bits} bits used{declared}"


def _video(scored: Sequence[RenditionQuality | UnmeasuredRendition], renditions: Sequence[MeasuredRendition],
           probe: Probe) -> str:
    """VMAF per segment of every video rung, and the table of every rendition with its quality."""
    measured = [r for r in scored if isinstance(r, RenditionQuality)]  # the video rungs; audio has no picture
    series = [RungSeries(name=r.name, wasted=r.wasted_bits,
                         starts_s=tuple(round(s.start_s, 3) for s in r.segments),
                         durations_s=tuple(round(s.duration_s, 3) for s in r.segments),
                         vmaf=tuple(_rounded(s.vmaf, 4) for s in r.segments))
              for r in measured if r.segments]
    if any(v is not None for rung in series for v in rung.vmaf):
        chart = _figure("chart-vmaf", vmaf_chart(series, chart_id="vmaf"),
                        "VMAF per segment for every rung; dashed rungs do not rise meaningfully over the rung below.")
    elif probe.kind == "video":
        chart = "<p id=\"vmaf-missing\">VMAF per segment was not measured for this ladder.</p>"
    else:
        chart = "<p id=\"vmaf-missing\">An audio-only master: VMAF does not apply.</p>"
    by_name = {r.name: r for r in renditions}
    quality_by_name = {r.name: r for r in measured}
    names = list(dict.fromkeys([*by_name, *(r.name for r in scored)]))
    has_video = bool(measured) or any(r.kind == "video" for r in renditions)
    headings = _VIDEO_COLUMNS if has_video else _AUDIO_COLUMNS
    rows = "".join(_rendition_row(name, by_name.get(name), quality_by_name.get(name), video=has_video)
                   for name in names)
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    table = (f"<table class=\"renditions\" id=\"renditions\"><thead><tr>{head}</tr></thead>"
             f"<tbody>{rows}</tbody></table>") if rows else ""
    return f"<section id=\"video-quality\"><h2>Renditions</h2>{chart}{table}</section>"


_VIDEO_COLUMNS = ("Rendition", "Resolution", "Bandwidth", "VMAF mean", "harmonic", "5th pct", "min", "phone", "PSNR",
                  "SSIM", "Score", "Notes")
_AUDIO_COLUMNS = ("Rendition", "Bandwidth", "Codecs", "Channels", "Notes")


def _rendition_row(name: str, rendition: MeasuredRendition | None, quality: RenditionQuality | None, *,
                   video: bool) -> str:
    """One row of the renditions table: the rendition's own figures (its audio group not counted) and its
    picture quality, where measured."""
    variant = None if rendition is None else Variant(rendition)
    bandwidth = None if variant is None else variant.average_bandwidth or variant.bandwidth
    rate = "–" if not bandwidth else f"{bandwidth / 1000:.0f} kbit/s"
    if video:
        stats = None if quality is None else quality.stats.get("vmaf")
        kind = "video" if quality is not None else None if rendition is None else rendition.kind
        resolution = None if variant is None else variant.resolution
        cells = [
            resolution or ("audio" if kind == "audio" else "–"), rate,
            _num(None if quality is None else quality.published_mean("vmaf"), 1),
            _num(None if stats is None else _rounded(stats.harmonic_mean, 4), 1),
            _num(None if stats is None else _rounded(stats.p5, 4), 1),
            _num(None if stats is None else _rounded(stats.min, 4), 1),
            _num(None if quality is None else quality.published_mean("vmaf_phone"), 1),
            _num(None if quality is None else quality.published_mean("psnr"), 2),
            _num(None if quality is None else quality.published_mean("ssim"), 4),
            _num(None if quality is None else quality.score, 0),
        ]
    else:
        codecs = None if rendition is None else rendition.format.codecs
        channels = None if rendition is None else rendition.format.channels
        cells = [rate, str(codecs or "–"), str(channels or "–")]
    reasons: tuple[ScoreReason, ...] = () if quality is None else quality.reasons
    notes = [r.detail for r in reasons]
    wasted = quality is not None and quality.wasted_bits
    flag = "<b class=\"bad\">wasted bits</b> " if wasted else ""
    return (f"<tr id=\"rendition-{_e(name)}\" class=\"{'wasted' if wasted else ''}\"><th>{_e(name)}</th>"
            + "".join(f"<td>{_e(c)}</td>" for c in cells)
            + f"<td class=\"notes\">{flag}{_e('; '.join(notes))}</td></tr>")


def _tags(tags: Mapping[str, Any]) -> str:
    if not tags:
        return ""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in sorted(tags.items()))
    return (f"<section id=\"tags\"><details><summary>Tags of the master ({len(tags)})</summary>"
            f"<table class=\"tags\">{rows}</table></details></section>")


def _figure(figure_id: str, svg: str, caption: str) -> str:
    return f"<figure id=\"{figure_id}\" class=\"chart\">{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _e(value: object) -> str:
    """``value`` as text safe in HTML content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def _words(code: object) -> str:
    return str(code or "–").replace("_", " ")


def _db(value: float, *, signed: bool = False) -> str:
    """A level with one decimal and a true minus sign (``−14.0``; ``+2.3`` when ``signed``)."""
    text = f"{float(value):+.1f}" if signed else f"{float(value):.1f}"
    return text.replace("-", "−")


def _rounded(value: float | None, digits: int = 2) -> float | None:
    """``value`` at the precision the job document gives it (levels to 0.01 dB), before it is formatted."""
    return None if value is None else round(value, digits)


def _num(value: object, digits: int) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{digits}f}"


_STYLE = """
:root{--ink:#1f2933;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--ok:#15803d;--okbg:#dcfce7;--warn:#b45309;
--bad:#b91c1c;--badbg:#fee2e2}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1100px;margin:0 auto;padding:28px 20px 40px}
h1{font-size:28px;margin:2px 0 0;overflow-wrap:anywhere}h2{font-size:19px;margin:30px 0 12px}
h3{font-size:16px;margin:0 0 6px;display:flex;gap:8px;align-items:center}
.kicker,.facts,.artist,footer,figcaption,.required{color:var(--muted)}.kicker{margin:0;font-size:13px}
.artist{margin:0;font-size:17px}.facts{font-size:13px;margin:6px 0 0}
.card{background:#fff;border:1px solid var(--line);border-radius:12px;padding:16px 18px}
.verdict{display:flex;gap:26px;align-items:center;margin-top:22px;border-left:8px solid var(--muted)}
.verdict h2{margin:0 0 4px;font-size:24px}.verdict ul{margin:8px 0 0;padding-left:18px}
.verdict.pass{border-left-color:var(--ok)}.verdict.warn{border-left-color:#f59e0b}
.verdict.fail{border-left-color:var(--bad)}
.score{font-size:64px;font-weight:700;line-height:1;min-width:150px;text-align:center}
.score small{font-size:20px;color:var(--muted);font-weight:400}
.pass .score{color:var(--ok)}.warn .score{color:var(--warn)}.fail .score{color:var(--bad)}
.penalty{display:inline-block;min-width:34px;color:var(--bad);font-weight:700}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.badge{margin-left:auto;font-size:12px;font-weight:700;padding:2px 10px;border-radius:99px;text-transform:uppercase}
.profile.pass .badge{background:var(--okbg);color:var(--ok)}
.profile.fail .badge{background:var(--badbg);color:var(--bad)}
.profile.fail{border-top:4px solid var(--bad)}.profile.pass{border-top:4px solid var(--ok)}
.tag{font-size:11px;font-weight:600;background:#e0e7ff;color:#3730a3;padding:1px 8px;border-radius:99px}
.gain{margin:4px 0 8px;font-size:14px}
table{border-collapse:collapse;width:100%;font-size:13.5px}td,th{padding:5px 8px;text-align:left;
border-bottom:1px solid var(--line);vertical-align:top}
.checks .mark{width:22px;font-weight:700}tr.ok .mark,.ok{color:var(--ok)}tr.bad .mark,.bad{color:var(--bad)}
tr.ok td:not(.mark),tr.bad td:not(.mark){color:var(--ink)}
.wide{background:#fff;border:1px solid var(--line);border-radius:12px}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-bottom:12px}
.stat{background:#fff;border:1px solid var(--line);border-radius:10px;padding:8px 12px}
.stat span{display:block;font-size:12px;color:var(--muted)}.stat b{font-size:20px}
figure.chart{margin:0;background:#fff;border:1px solid var(--line);border-radius:12px;padding:10px}
figure.chart svg{width:100%;height:auto;display:block}figcaption{font-size:12.5px;padding:4px 6px 0}
.renditions{background:#fff;border:1px solid var(--line);border-radius:12px;margin-top:12px}
.renditions td,.renditions th{white-space:nowrap}.renditions .notes{white-space:normal;min-width:200px}
tr.wasted{background:#fff7ed}.why{display:block;color:var(--bad);font-size:12.5px}
.profile td:nth-child(n+3){white-space:nowrap}
#tags{margin-top:26px}#tags td{overflow-wrap:anywhere}summary{cursor:pointer;font-weight:600}
code{font-size:12.5px}footer{margin-top:34px;font-size:12px}
"""
