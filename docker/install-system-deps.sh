#!/usr/bin/env bash
# Installs the programs the worker runs: ffmpeg/ffprobe and Chromaprint's fpcalc (Debian packages).
# With --browser, also Debian's Chromium and Node.js/npm for the HLS playback test;
# with --bench, FluidSynth and the TimGM6mb soundfont for bench/features_bench.py.
# Used by the Makefile (the README's two commands), .ci/run and docker/worker.Dockerfile alike.
set -euo pipefail

packages=(ffmpeg libchromaprint-tools)
commands=(ffmpeg ffprobe fpcalc)
if [[ "${1:-}" == "--browser" ]]; then
    packages+=(chromium)
    commands+=(chromium)
    command -v npm >/dev/null || { packages+=(nodejs npm); commands+=(npm); }
fi
if [[ "${1:-}" == "--bench" ]]; then
    # bench/features_bench.py renders its ground-truth MIDI pieces with FluidSynth and a General MIDI soundfont.
    packages+=(fluidsynth timgm6mb-soundfont)
    commands+=(fluidsynth)
    [[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]] || missing_file=1
fi

missing=${missing_file:-0}
for cmd in "${commands[@]}"; do
    command -v "$cmd" >/dev/null || missing=1
done
if [[ $missing == 0 ]]; then
    exit 0
fi

sudo=""
if [[ $(id -u) != 0 ]]; then
    sudo="sudo"
fi
echo "installing Debian packages: ${packages[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
