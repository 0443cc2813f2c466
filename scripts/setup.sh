#!/usr/bin/env bash
# Create or refresh .venv with the pinned dependencies (pyproject.toml + constraints.txt).
# Idempotent: does nothing when the environment already matches. Debian + Python 3.11.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "midilm: Python 3.11 or 3.12 is required (apt-get install python3 python3-venv)" >&2
  return 1
}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "midilm: installing Debian packages: $*" >&2
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "midilm: please install the Debian packages: $*" >&2
    return 1
  fi
}

command -v git >/dev/null 2>&1 || apt_install git
PY=$(pick_python)
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_install python3-venv
fi

# Debian packages the pipeline and its tests run: the FluidSynth CLI and the default General MIDI
# soundfont (TimGM6mb, 5.4 MB; audio.soundfont selects musescore-general-soundfont-small or
# fluid-soundfont-gm instead) for rendering, Chromium for the site and listening-test browser
# tests. Without them the venv is still built; what needs them fails naming the package.
want_apt=()
command -v fluidsynth >/dev/null 2>&1 || want_apt+=(fluidsynth)
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || want_apt+=(timgm6mb-soundfont)
command -v chromium >/dev/null 2>&1 || want_apt+=(chromium)
if [ ${#want_apt[@]} -gt 0 ]; then
  apt_install "${want_apt[@]}" || echo "midilm: rendering and browser tests need them" >&2
fi

stamp=.venv/.midilm-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
echo "midilm: setting up .venv (first run downloads the pinned dependencies)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
# basic-pitch (audio -> MIDI) runs on the ONNX model inside its wheel; its metadata would pull
# TensorFlow, so it goes in without dependencies (they are pinned in pyproject.toml).
.venv/bin/python -m pip install -q --no-deps -c constraints.txt basic-pitch
echo "$want" > "$stamp"
