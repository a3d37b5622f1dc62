"""The quality report of one master: a single self-contained HTML page a person can judge the master from.

:func:`render_report` is pure: the job document's parts (``probe``, ``quality``, the HLS renditions) and the
analysis decode's :class:`~pipelines.audio.spectrogram.Spectrogram` in, the page's text out. The page shows the
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

from pipelines.audio.delivery import PROFILES
from pipelines.audio.spectrogram import Spectrogram
from pipelines.report.charts import (
    RungSeries,
    TargetLine,
    clock,
    loudness_chart,
    spectrogram_chart,
    vmaf_chart,
)

REPORT_NAME = "report.html"
REPORT_CONTENT_TYPE = "text/html; charset=utf-8"

Document = Mapping[str, Any]

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


def render_report(*, asset_id: str, job_id: str, probe: Document, quality: Document | None,
                  renditions: Sequence[Document], spectrogram: Spectrogram | None) -> str:
    """The report page for one master (UTF-8 HTML text).

    ``probe`` and ``quality`` are those parts of the job document (``quality`` may be ``None``: nothing
    measured); ``renditions`` are the HLS rendition entries. Missing or ``null`` fields are shown as not
    measured, never guessed. A field of the wrong type raises (``TypeError``, ``ValueError``…): the job
    records that as ``quality.report_error`` without failing (see :mod:`pipelines.job`).
    """
    quality = quality or {}
    tags = probe.get("tags") or {}
    title = str(tags.get("title") or asset_id)
    sections = [
        _header(title, asset_id, probe),
        _verdict(quality),
        _profiles(quality.get("delivery")),
        _loudness(quality.get("loudness"), quality.get("delivery")),
        _spectrum(_get(quality, "audio_qc", "spectrum"), spectrogram),
        _audio_checks(quality),
        _video(quality.get("renditions") or [], renditions, probe),
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


def _header(title: str, asset_id: str, probe: Document) -> str:
    tags = probe.get("tags") or {}
    facts = [str(probe.get("kind") or "?"), clock(float(probe.get("duration_s") or 0.0)),
             str(probe.get("container") or "?")]
    for stream in probe.get("streams") or []:
        facts.append(_stream_summary(stream))
    artist = f"<p class=\"artist\">{_e(tags['artist'])}</p>" if tags.get("artist") else ""
    return (f"<header id=\"master\"><p class=\"kicker\">Quality report · asset <code>{_e(asset_id)}</code></p>"
            f"<h1 id=\"title\">{_e(title)}</h1>{artist}"
            f"<p class=\"facts\">{' · '.join(_e(f) for f in facts if f)}</p></header>")


def _stream_summary(stream: Document) -> str:
    if stream.get("codec_type") == "video":
        size = f"{stream.get('width')}x{stream.get('height')}" if stream.get("width") else ""
        rate = f"{float(stream['frame_rate']):.3g} fps" if stream.get("frame_rate") else ""
        return " ".join(p for p in ("video", str(stream.get("codec_name") or ""), size, rate) if p)
    parts = ["audio", str(stream.get("codec_name") or "")]
    if stream.get("sample_rate"):
        parts.append(f"{int(stream['sample_rate']) / 1000:g} kHz")
    if stream.get("bits_per_sample"):
        parts.append(f"{stream['bits_per_sample']}-bit")
    if stream.get("channels"):
        parts.append(f"{stream['channels']} ch")
    return " ".join(p for p in parts if p)


def _verdict(quality: Document) -> str:
    delivery = quality.get("delivery") or {}
    score = quality.get("score")
    primary = next((p for p in delivery.get("profiles") or [] if p.get("primary")), None)
    css, headline = verdict_of(score if isinstance(score, int) else None, None if primary is None else
                               bool(primary.get("passed")))
    reasons = [r for r in quality.get("reasons") or delivery.get("reasons") or [] if isinstance(r, Mapping)]
    items = "".join(
        f"<li><span class=\"penalty\">−{_e(r.get('penalty'))}</span> <b>{_e(_words(r.get('code')))}</b>: "
        f"{_e(r.get('detail'))}</li>" for r in reasons)
    listing = f"<ul id=\"reasons\">{items}</ul>" if items else "<p id=\"reasons\">Nothing lowered the score.</p>"
    rungs = [r for r in quality.get("renditions") or [] if isinstance(r, Mapping) and r.get("score") is not None]
    if score is None and rungs:  # video without audio: the rungs' own scores are all there is to judge
        headline = "Video only: no audio to check"
        listing = "<ul id=\"reasons\">" + "".join(
            f"<li><b>{_e(r.get('name'))}</b> scores {_e(r.get('score'))}"
            + "".join(f"; {_e(x.get('detail'))}" for x in r.get("reasons") or [] if isinstance(x, Mapping))
            + "</li>" for r in rungs) + "</ul>"
    if primary is not None:
        content_class = delivery.get("content_class")
        status = "passes" if primary.get("passed") else "fails"
        why = f" (the profile for {_e(content_class)})" if content_class else ""
        line = f"<p>Primary delivery profile: <b>{_e(primary.get('title'))}</b>{why}: {status}.</p>"
    else:
        line = "<p>No primary delivery profile: the content class is not known.</p>" if delivery else ""
    shown = "–" if score is None else _e(score)
    return (f"<section id=\"verdict\" class=\"card verdict {css}\" data-verdict=\"{css}\">"
            f"<div class=\"score\" id=\"score\">{shown}<small>/100</small></div>"
            f"<div><h2 id=\"headline\">{_e(headline)}</h2>{line}{listing}</div></section>")


def _profiles(delivery: Document | None) -> str:
    if not delivery or not delivery.get("profiles"):
        return ""
    ceilings = {p.name: p.max_true_peak_dbtp if p.max_true_peak_dbtp is not None else p.max_sample_peak_dbfs
                for p in PROFILES}
    cards = []
    for profile in delivery["profiles"]:
        name, passed = str(profile.get("name")), bool(profile.get("passed"))
        rows = "".join(_check_row(check) for check in profile.get("checks") or [])
        gain, peak = profile.get("gain_db"), profile.get("peak_after_gain_db")
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
        primary = "<span class=\"tag\">primary</span>" if profile.get("primary") else ""
        verdict = "pass" if passed else "fail"
        cards.append(
            f"<article class=\"card profile {verdict}\" id=\"profile-{_e(name)}\" data-verdict=\"{verdict}\">"
            f"<h3>{_e(profile.get('title'))} {primary}<span class=\"badge\">{'Pass' if passed else 'Fail'}</span>"
            f"</h3>{gain_line}<table class=\"checks\">{rows}</table></article>")
    return f"<section id=\"profiles\"><h2>Delivery profiles</h2><div class=\"grid\">{''.join(cards)}</div></section>"


def _check_row(check: Document) -> str:
    name = str(check.get("name"))
    title, unit = _CHECK_TITLES.get(name, (_words(name), ""))
    measured = check.get("measured")
    value = "not measurable" if measured is None else f"{_db(measured)} {unit}"
    mark, css = ("✓", "ok") if check.get("passed") else ("✗", "bad")
    return (f"<tr class=\"{css}\"><td class=\"mark\">{mark}</td><td>{_e(title)}</td><td>{_e(value)}</td>"
            f"<td class=\"required\">{_e(check.get('required'))}</td></tr>")


def _loudness(loudness: Document | None, delivery: Document | None) -> str:
    if not loudness:
        return ""
    primary = next((p.get("name") for p in (delivery or {}).get("profiles") or [] if p.get("primary")), None)
    by_level: dict[float, list[str]] = {}
    for profile in PROFILES:
        if profile.target_lufs is not None:
            by_level.setdefault(profile.target_lufs, []).append(profile.name)
    titles = {p.name: p.title for p in PROFILES}
    targets = [TargetLine(label=f"{level:g} ".replace("-", "−") + "\n".join(titles[n] for n in names), lufs=level,
                          primary=primary in names) for level, names in by_level.items()]
    momentary, short_term = loudness.get("momentary_lufs") or [], loudness.get("short_term_lufs") or []
    chart = ""
    if momentary or short_term:
        svg = loudness_chart(interval_s=float(loudness.get("series_interval_s") or 1.0), momentary=momentary,
                             short_term=short_term, integrated_lufs=loudness.get("integrated_lufs"),
                             targets=targets, chart_id="loudness")
        chart = _figure("chart-loudness", svg, "Momentary and short-term loudness over time, with the targets of "
                        "the delivery profiles (the primary one in red).")
    lra = loudness.get("lra_lu", loudness.get("loudness_range_lu"))
    tiles = [("Integrated", loudness.get("integrated_lufs"), "LUFS"), ("Loudness range", lra, "LU"),
             ("True peak", loudness.get("true_peak_dbtp"), "dBTP"),
             ("Sample peak", loudness.get("sample_peak_dbfs"), "dBFS"),
             ("Max momentary", loudness.get("max_momentary_lufs"), "LUFS"),
             ("Max short-term", loudness.get("max_short_term_lufs"), "LUFS")]
    stats = "".join(f"<div class=\"stat\"><span>{_e(label)}</span><b>{_e(_db(v) if v is not None else '–')}</b> "
                    f"<small>{unit}</small></div>" for label, v, unit in tiles)
    return f"<section id=\"loudness\"><h2>Loudness</h2><div class=\"stats\">{stats}</div>{chart}</section>"


def _spectrum(spectrum: Document | None, spectrogram: Spectrogram | None) -> str:
    if spectrum is None and spectrogram is None:
        return ""
    spectrum = spectrum or {}
    cutoff, verdict = spectrum.get("cutoff_hz"), str(spectrum.get("verdict") or "not measured")
    chart = ""
    if spectrogram is not None and spectrogram.levels_db.shape[1]:
        label = f"cutoff {float(cutoff) / 1000:.1f} kHz ({_words(verdict)})" if cutoff is not None else ""
        svg = spectrogram_chart(spectrogram, cutoff_hz=None if cutoff is None else float(cutoff),
                                nyquist_hz=spectrum.get("nyquist_hz"), cutoff_label=label, chart_id="spectrogram")
        chart = _figure("chart-spectrogram", svg, "Spectrogram of the master (mono mix) and its average spectrum; "
                        "the dashed line is the detected cutoff.")
    css = "bad" if verdict in ("suspected_lossy", "suspected_upsampled") else "ok"
    note = spectrum.get("note")
    summary = (f"<p id=\"spectrum-verdict\" class=\"{css}\"><b>{_e(_words(verdict))}</b>"
               f"{': ' + _e(note) if note else ''}</p>")
    return f"<section id=\"spectrum\"><h2>Spectrum</h2>{summary}{chart}</section>"


def _audio_checks(quality: Document) -> str:
    qc = quality.get("audio_qc")
    if not qc:
        return ""
    reasons = [r for r in (quality.get("delivery") or {}).get("reasons") or [] if isinstance(r, Mapping)]
    clipping, silence, phase = qc.get("clipping") or {}, qc.get("silence") or {}, qc.get("phase") or {}
    depth, spectrum = qc.get("bit_depth") or {}, qc.get("spectrum") or {}
    dc = max((abs(float(v)) for v in qc.get("dc_offset") or []), default=0.0)
    rows: list[tuple[str, str, str]] = [
        ("clipping", "Clipping", "no clipped samples" if not clipping.get("samples") else
         f"{clipping['samples']} samples in {clipping.get('events')} runs, first at "
         + ", ".join(f"{t:g} s" for t in (clipping.get("first_at_s") or [])[:3])),
        ("dc", "DC offset", f"{dc * 100:.3f} % of full scale"),
        ("silence", "Silence", "–" if silence.get("head_s") is None else
         f"{silence['head_s']:g} s at the head, {silence.get('tail_s')} s at the tail, "
         f"{silence.get('internal_count')} long ones inside"),
        ("noise", "Noise floor", "–" if qc.get("noise_floor_dbfs") is None else f"{_db(qc['noise_floor_dbfs'])} dBFS"),
        ("phase", "Phase", _words(phase.get("verdict")) + (
            f" (correlation {phase['correlation']:.2f})" if phase.get("correlation") is not None else "")),
        ("bit_depth", "Bit depth", _bit_depth(depth)),
        ("spectrum", "Spectral cutoff", str(spectrum.get("note") or "–")),
    ]
    body = []
    for key, title, text in rows:
        found = [r for r in reasons if r.get("code") in _CHECK_REASONS.get(key, ())]
        why = "".join(f"<span class=\"why\">−{_e(r.get('penalty'))}: {_e(r.get('detail'))}</span>" for r in found)
        css, mark = ("bad", "✗") if found else ("ok", "✓")
        body.append(f"<tr class=\"{css}\" id=\"check-{key}\"><td class=\"mark\">{mark}</td><td>{_e(title)}</td>"
                    f"<td>{_e(text)}{why}</td></tr>")
    table = f"<table class=\"checks wide\">{''.join(body)}</table>"
    return f"<section id=\"audio-checks\"><h2>Audio checks</h2>{table}</section>"


def _bit_depth(depth: Document) -> str:
    """``16 bits used of 24 declared``; the meter's note where it could not tell."""
    effective, declared, note = depth.get("effective_bits"), depth.get("declared_bits"), depth.get("note")
    if effective is None:
        return f"not measured: {note}" if note else "not measured"
    return f"{effective} bits used" + (f" of {declared} declared" if declared is not None else "")


def _video(measured: Sequence[Document], renditions: Sequence[Document], probe: Document) -> str:
    by_name = {str(r.get("name")): r for r in renditions}
    video = [r for r in measured if r.get("kind", by_name.get(str(r.get("name")), {}).get("kind")) == "video"]
    series = [RungSeries(name=str(r.get("name")), wasted=bool(r.get("wasted_bits")),
                         starts_s=tuple(float(s.get("start_s") or 0.0) for s in r["segments"]),
                         durations_s=tuple(float(s.get("duration_s") or 0.0) for s in r["segments"]),
                         vmaf=tuple(s.get("vmaf") for s in r["segments"]))
              for r in video if r.get("segments")]
    if any(v is not None for rung in series for v in rung.vmaf):
        chart = _figure("chart-vmaf", vmaf_chart(series, chart_id="vmaf"),
                        "VMAF per segment for every rung; dashed rungs do not rise meaningfully over the rung below.")
    elif probe.get("kind") == "video":
        chart = "<p id=\"vmaf-missing\">VMAF per segment was not measured for this ladder.</p>"
    else:
        chart = "<p id=\"vmaf-missing\">An audio-only master: VMAF does not apply.</p>"
    quality_by_name = {str(r.get("name")): r for r in measured}
    names = list(dict.fromkeys([*by_name, *quality_by_name]))
    has_video = any((quality_by_name.get(n) or by_name.get(n) or {}).get("kind") == "video" for n in names)
    headings = _VIDEO_COLUMNS if has_video else _AUDIO_COLUMNS
    rows = "".join(_rendition_row(name, by_name.get(name, {}), quality_by_name.get(name, {}), video=has_video)
                   for name in names)
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    table = (f"<table class=\"renditions\" id=\"renditions\"><thead><tr>{head}</tr></thead>"
             f"<tbody>{rows}</tbody></table>") if rows else ""
    return f"<section id=\"video-quality\"><h2>Renditions</h2>{chart}{table}</section>"


_VIDEO_COLUMNS = ("Rendition", "Resolution", "Bandwidth", "VMAF mean", "harmonic", "5th pct", "min", "phone", "PSNR",
                  "SSIM", "Score", "Notes")
_AUDIO_COLUMNS = ("Rendition", "Bandwidth", "Codecs", "Channels", "Notes")


def _rendition_row(name: str, hls: Document, quality: Document, *, video: bool) -> str:
    """One row of the renditions table: the HLS entry's figures and the rendition's quality, if measured."""
    bandwidth = hls.get("average_bandwidth") or hls.get("bandwidth")
    rate = "–" if not bandwidth else f"{float(bandwidth) / 1000:.0f} kbit/s"
    if video:
        stats = (quality.get("stats") or {}).get("vmaf") or {}
        kind = quality.get("kind") or hls.get("kind")
        cells = [
            hls.get("resolution") or ("audio" if kind == "audio" else "–"), rate,
            _num(quality.get("vmaf", stats.get("mean")), 1), _num(stats.get("harmonic_mean"), 1),
            _num(stats.get("p5"), 1), _num(stats.get("min"), 1), _num(quality.get("vmaf_phone"), 1),
            _num(quality.get("psnr"), 2), _num(quality.get("ssim"), 4), _num(quality.get("score"), 0),
        ]
    else:
        cells = [rate, str(hls.get("codecs") or "–"), str(hls.get("channels") or "–")]
    notes = [str(r.get("detail") if isinstance(r, Mapping) else r) for r in quality.get("reasons") or []]
    wasted = bool(quality.get("wasted_bits"))
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


def _get(document: Document, *path: str) -> Any:
    """``document[path[0]][path[1]]…``, or ``None`` where a level is missing or not an object."""
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _e(value: object) -> str:
    """``value`` as text safe in HTML content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def _words(code: object) -> str:
    return str(code or "–").replace("_", " ")


def _db(value: float, *, signed: bool = False) -> str:
    """A level with one decimal and a true minus sign (``−14.0``; ``+2.3`` when ``signed``)."""
    text = f"{float(value):+.1f}" if signed else f"{float(value):.1f}"
    return text.replace("-", "−")


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
