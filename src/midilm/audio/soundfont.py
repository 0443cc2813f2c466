"""General MIDI soundfonts from Debian's packages, found by name or path."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from midilm.common.hashing import sha256_file


class AudioToolMissing(RuntimeError):
    """A program or data file the audio code needs is not installed; the message names it."""


@dataclass(frozen=True)
class KnownSoundfont:
    """A soundfont Debian packages: where the package installs it, its size and licence."""

    package: str
    paths: tuple[str, ...]
    note: str


# Verified pitch-correct with FluidSynth 2.3 (notes 36..96 transcribed back by basic-pitch).
KNOWN_SOUNDFONTS: dict[str, KnownSoundfont] = {
    "timgm6mb": KnownSoundfont(
        "timgm6mb-soundfont",
        ("/usr/share/sounds/sf2/TimGM6mb.sf2",),
        "5.4 MB, GPL-2; loads in ~0.2 s",
    ),
    "musescore-general-small": KnownSoundfont(
        "musescore-general-soundfont-small",
        ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",),
        "34 MB (Ogg-compressed sf3), MIT; ~7 s to load per render",
    ),
    "fluidr3-gm": KnownSoundfont(
        "fluid-soundfont-gm",
        ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/FluidR3_GM.sf3"),
        "120 MB, MIT",
    ),
}


@dataclass(frozen=True)
class Soundfont:
    name: str
    path: Path

    def sha256(self) -> str:
        return sha256_file(self.path)

    def describe(self) -> dict[str, str]:
        """The soundfont as audio.json records it."""
        return {"name": self.name, "path": self.path.as_posix(), "sha256": self.sha256()}


def resolve_soundfont(name_or_path: str | Path) -> Soundfont:
    """A known name (`timgm6mb`, `musescore-general-small`, `fluidr3-gm`) or a .sf2/.sf3 file."""
    key = str(name_or_path).strip()
    known = KNOWN_SOUNDFONTS.get(key.lower())
    if known is not None:
        for candidate in known.paths:
            if Path(candidate).is_file():
                return Soundfont(key.lower(), Path(candidate))
        raise AudioToolMissing(
            f"soundfont {key!r} is not installed (looked for {', '.join(known.paths)}); install "
            f"the Debian package: `apt-get install {known.package}` ({known.note}), or set "
            f"audio.soundfont to another name ({', '.join(KNOWN_SOUNDFONTS)}) or a .sf2/.sf3 path"
        )
    path = Path(key).expanduser()
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise AudioToolMissing(
            f"soundfont {key!r}: neither a known name ({', '.join(KNOWN_SOUNDFONTS)}) nor a "
            ".sf2/.sf3 file path; fix audio.soundfont in conf/audio/default.yaml"
        )
    if not path.is_file():
        raise AudioToolMissing(
            f"soundfont file {path} does not exist; point audio.soundfont at an existing "
            f".sf2/.sf3 file or use a packaged one ({', '.join(KNOWN_SOUNDFONTS)})"
        )
    return Soundfont(path.stem, path.resolve())


def fluidsynth_binary() -> str:
    """The FluidSynth CLI, or an error naming the Debian package."""
    found = shutil.which("fluidsynth")
    if found is None:
        raise AudioToolMissing(
            "the FluidSynth command-line synthesizer is not installed: "
            "`apt-get install fluidsynth` (scripts/setup.sh does it when run as root)"
        )
    return found
