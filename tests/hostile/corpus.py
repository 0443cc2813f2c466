"""A hostile input folder for the `datasets` stage: real good files beside broken, odd and
dangerous ones (MIDI, ABC, GuitarPro, JAMS, names, links, special files, unreadable paths), each
with the outcome it must get: kept, quarantined with a reason, or skipped with a reason.

`build(root, shared)` writes the folder and returns its cases. Paths are bytes: names need not
be UTF-8. Unreadable cases are made with chmod 000, which denies only a process without
CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: the test runs the stage in such a process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import guitarpro as gp

from tests.hostile import midi_bytes as mb

MiB = 2**20


@dataclass(frozen=True)
class Case:
    group: str
    rel: bytes  # path under the corpus root; what the stage must report as the input
    expect: str  # kept | quarantined | skipped
    reason: str = ""  # the quarantine or skip reason (kept: empty)

    @property
    def good(self) -> bool:
        return self.expect == "kept"


class Corpus:
    """Writes files under `root` and records what each must become."""

    def __init__(self, root: Path, shared: Path) -> None:
        self.root, self.shared = root, shared
        self.cases: list[Case] = []
        self.locked: list[bytes] = []  # chmod 000 once everything is written

    def path(self, rel: bytes) -> bytes:
        full = os.fsencode(self.root) + b"/" + rel
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def add(self, group: str, rel: str | bytes, data: bytes | None, expect: str,
            reason: str = "") -> bytes:  # fmt: skip
        rel = os.fsencode(rel)
        if data is not None:
            with open(self.path(rel), "wb") as handle:
                handle.write(data)
        self.cases.append(Case(group, rel, expect, reason))
        return rel

    def copy(self, group: str, rel: str | bytes, source: Path) -> bytes:
        return self.add(group, rel, source.read_bytes(), "kept")


def build(root: Path, shared: Path, outside: Path, lock: bool = True) -> list[Case]:
    """Write the corpus under `root` (and link targets under `outside`); return its cases.
    Without `lock` the unreadable cases are left out (where no process can be denied)."""
    corpus = Corpus(root, shared)
    for part in (good_files, midi_cases, abc_cases, guitarpro_cases, jams_cases, name_cases,
                 special_cases):  # fmt: skip
        part(corpus)
    link_cases(corpus, outside)
    if lock:
        unreadable_cases(corpus)
    for rel in corpus.locked:
        os.chmod(corpus.path(rel), 0)
    return corpus.cases


# ---------------------------------------------------------------- good files (all kept)


def good_files(c: Corpus) -> None:
    groove = sorted((c.shared / "groove" / "drummer1" / "session1").glob("*.mid"))[:8]
    for path in groove:
        c.copy("good", f"good/groove/{path.name}", path)
    for path in sorted((c.shared / "nottingham" / "MIDI").glob("*.mid"))[:4]:
        c.copy("good", f"good/nottingham/{path.name}", path)
    tests = c.shared / "miditok_test_midis" / "tests"
    for name in ["POP909_008.mid", "6338816_Etude No. 4.mid"]:
        c.copy("good", f"good/one_track/{name}", tests / "MIDIs_one_track" / name)
    for name in ["Funkytown.mid", "What a Fool Believes.mid"]:
        c.copy("good", f"good/multitrack/{name}", tests / "MIDIs_multitrack" / name)
    for name in ["slapbass.gp3"]:
        c.copy("good", f"good/gp/{name}", c.shared / "dadagp_examples" / "examples" / name)
    abc = (c.shared / "nottingham" / "ABC_cleaned" / "jigs.abc").read_text(encoding="utf-8")
    tunes = abc.split("\n\n\n")[:2]  # two tunes of one tune book
    c.add("good", "good/abc/two_jigs.abc", "\n\n\n".join(tunes).encode(), "kept")
    c.add("good", "good/jams/excerpt.jams", jams_file(), "kept")
    c.add("good", "good/running_status.mid",
          mb.header(0, 1) + mb.track(mb.tempo(500_000), mb.running_notes(40)), "kept")  # fmt: skip
    # FF 51 inside a delta time (0x7F 0xFF 0x51 ...) and a sysex: the meta check walks it
    tricky = mb.header(0, 1) + mb.track(
        b"\x00\xf0\x05\xff\x51\x00\x01\xf7", mb.vlq(0x3FD1) + b"\x90\x3c\x50", mb.notes()
    )
    c.add("good", "good/ff51_in_data.mid", tricky, "kept")
    c.add("good", "good/unknown_chunk.mid", mb.header(0, 1) + mb.chunk(b"XFIH", b"\x00" * 20)
          + mb.track(mb.notes()), "kept")  # fmt: skip
    c.add("good", "good/tpq_32767.mid", mb.header(0, 1, 32767) + mb.track(mb.notes(8, 16000)),
          "kept")  # fmt: skip
    c.add("good", "good/velocity0_note_offs.mid", mb.song(mb.tempo(400_000)), "kept")


def jams_file(tempo: object = 90.0, notes: list[dict[str, object]] | None = None,
              namespace: str = "note_midi") -> bytes:  # fmt: skip
    """A JAMS file as GuitarSet writes one: a tempo annotation and one note_midi string."""
    meta = {
        "curator": {"name": "", "email": ""},
        "annotator": {},
        "version": "",
        "corpus": "",
        "annotation_tools": "",
        "annotation_rules": "",
        "validation": "",
        "data_source": "0",
    }
    data = notes or [{"time": 0.5 * i, "duration": 0.5, "value": 60.0 + i, "confidence": None}
                     for i in range(8)]  # fmt: skip
    doc = {
        "annotations": [
            {"annotation_metadata": meta, "namespace": "tempo", "sandbox": {}, "time": 0,
             "duration": None, "data": [{"time": 0.0, "duration": 4.0, "value": tempo,
                                         "confidence": 1.0}]},
            {"annotation_metadata": meta, "namespace": namespace, "data": data, "sandbox": {},
             "time": 0, "duration": None},
        ],
        "file_metadata": {"title": "", "artist": "", "release": "", "duration": 4.0,
                          "identifiers": {}, "jams_version": "0.3.5"},
        "sandbox": {},
    }  # fmt: skip
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- MIDI


def midi_cases(c: Corpus) -> None:
    q: Callable[..., bytes] = lambda rel, data, reason: c.add(  # noqa: E731
        "midi", f"midi/{rel}", data, "quarantined", reason
    )
    q("empty.mid", b"", "parse_error")
    q("13_bytes.mid", b"MThd\x00\x00\x00\x06\x00\x00\x00", "parse_error")
    q("text.mid", b"C D E F G, not a MIDI file\n", "parse_error")
    q("random.mid", bytes((i * 151 + 7) % 256 for i in range(3000)), "parse_error")
    q("header_only.mid", mb.header(1, 0), "empty")
    q("division_0.mid", mb.song(division=0), "malformed")
    q("smpte_division.mid", mb.song(division=0xE728), "parse_error")
    q("tempo_0us.mid", mb.song(mb.tempo(0)), "bad_tempo")
    q("tempo_1us.mid", mb.song(mb.tempo(1)), "bad_tempo")
    q("tempo_max_3.6qpm.mid", mb.song(mb.tempo(0xFFFFFF)), "bad_tempo")
    q("tempo_late_0us.mid", mb.header(0, 1) + mb.track(mb.notes(), mb.tempo(0)), "bad_tempo")
    q("tempo_len0.mid", mb.song(mb.meta(0x51, b"")), "malformed")
    q("tempo_len2.mid", mb.song(mb.meta(0x51, b"\x07\xa1")), "malformed")
    q("tempo_len0_last.mid", mb.header(0, 1) + mb.track(mb.notes(), mb.meta(0x51, b""),
                                                         end=False), "malformed")  # fmt: skip
    q("timesig_len0.mid", mb.song(mb.meta(0x58, b"")), "malformed")
    q("keysig_len0.mid", mb.song(mb.meta(0x59, b"")), "malformed")
    q("keysig_len1.mid", mb.song(mb.meta(0x59, b"\x02")), "malformed")
    for name, event in [
        ("tempo_len4.mid", mb.meta(0x51, b"\x07\xa1\x20\x00")),
        ("timesig_len5.mid", mb.meta(0x58, b"\x03\x02\x18\x08\x00")),
    ]:
        c.add("midi", f"midi/{name}", mb.song(event), "kept")  # longer: read right
    q("timesig_0_4.mid", mb.song(mb.meta(0x58, b"\x00\x02\x18\x08")), "bad_time_signature")
    q("timesig_3_2pow40.mid", mb.song(mb.meta(0x58, b"\x03\x28\x18\x08")),
      "bad_time_signature")  # fmt: skip
    q("keysig_20_sharps.mid", mb.song(mb.meta(0x59, b"\x14\x00")), "bad_key_signature")
    q("keysig_mode_5.mid", mb.song(mb.meta(0x59, b"\x00\x05")), "bad_key_signature")
    q("meta_len_huge.mid", mb.song(mb.meta(0x01, b"abc", length=0x0FFFFFFF)), "parse_error")
    q("sysex_len_huge.mid", mb.song(b"\x00\xf0" + mb.vlq(0x0FFFFFFF) + b"\x01\x02"),
      "parse_error")  # fmt: skip
    good = mb.song()
    q("track_len_past_eof.mid", good[:18] + (10_000).to_bytes(4, "big") + good[22:],
      "parse_error")  # fmt: skip
    q("truncated_half.mid", good[: len(good) // 2], "parse_error")
    zero = b"".join(mb.vlq(0) + bytes((0x90, 60 + i, 80)) + b"\x00" + bytes((0x80, 60 + i, 0))
                    for i in range(8))  # fmt: skip
    q("zero_length_notes.mid", mb.header(0, 1) + mb.track(zero), "too_short")
    q("never_released.mid", mb.header(0, 1) + mb.track(b"\x00\x90\x3c\x50" * 8), "empty")
    q("three_notes.mid", mb.header(0, 1) + mb.track(mb.notes(3)), "too_few_notes")
    q("six_microseconds.mid", mb.song(mb.tempo(3), division=32767), "bad_tempo")
    q("tiny_piece.mid", mb.header(0, 1) + mb.track(mb.notes(8, length=1)), "too_short")
    q("two_hours.mid", mb.header(0, 1, 1) + mb.track(mb.tempo(4_000_000), mb.notes(8, 3000)),
      "too_long")  # fmt: skip
    many = [mb.track(mb.notes(1, pitch=40 + i % 40, channel=i % 16)) for i in range(65)]
    q("65_tracks.mid", mb.header(1, 65) + b"".join(many), "too_many_tracks")
    q("500001_notes.mid", mb.header(0, 1) + mb.track(mb.running_notes(500_001, length=1)),
      "too_many_notes")  # fmt: skip
    q("empty_tracks_x2000.mid", mb.header(1, 2000) + mb.track() * 2000, "empty")
    c.add("midi", "midi/tracks_header_lies.mid", mb.header(1, 65535) + mb.track(mb.notes()),
          "kept")  # 65535 tracks declared, 1 present: read like other readers do  # fmt: skip
    with open(c.path(b"midi/16MiB_plus_1.mid"), "wb") as handle:  # sparse: no disk used
        handle.write(mb.song())
        handle.truncate(16 * MiB + 1)
    c.add("midi", "midi/16MiB_plus_1.mid", None, "quarantined", "too_large")
    q("control_168.mid", (c.shared / "miditok_test_midis" / "tests" / "MIDIs_corrupted"
                          / "ValueError_Control168.mid").read_bytes(), "parse_error")  # fmt: skip
    q("riff_rmid.mid", b"RIFF" + (100).to_bytes(4, "little") + b"RMIDdata" + mb.song(),
      "parse_error")  # fmt: skip


# ---------------------------------------------------------------- ABC


TUNE = "X:{n}\nT:{title}\nM:4/4\nL:1/8\nQ:1/4=120\nK:G\n{body}\n"
BODY = "GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|GABc dedB|dedB dedB|c2ec B2dB|A2F2 G4|]"


def tune(n: object = 1, title: str = "Tune", body: str = BODY, **fields: str) -> str:
    text = TUNE.format(n=n, title=title, body=body)
    for key, value in fields.items():
        text = text.replace(f"\n{key}:", f"\n{key}:{value}\n%{key}:", 1)
    return text


def abc_cases(c: Corpus) -> None:
    def add(rel: str, text: str | bytes, expect: str, reason: str = "") -> None:
        data = text.encode() if isinstance(text, str) else text
        c.add("abc", f"abc/{rel}", data, expect, reason)

    add("good_no_x_line.abc", tune().split("\n", 1)[1], "kept")  # K: line: one tune
    add("no_tune.abc", "T:Only a title\n% and a comment\n", "quarantined", "parse_error")
    add("empty.abc", b"", "quarantined", "empty")
    add("blank.abc", b"  \n\n\t\n", "quarantined", "empty")
    add("binary.abc", bytes(range(256)) * 4, "quarantined", "parse_error")
    add("utf16_bom.abc", tune(title="UTF-16").encode("utf-16"), "kept")
    add("latin1.abc", tune(title="Caf\xe9 \xe0 la cr\xe8me").encode("latin-1"), "kept")
    add("utf16_bad.abc", b"\xff\xfe" + b"\x00\xd8" * 3, "quarantined", "parse_error")
    add("huge_x_number.abc", tune(n="9" * 400), "kept")
    add("garbage_body.abc", tune(body="}}}{{{ ::: |||] [[[ ((( %%% $$$"), "quarantined",
        "parse_error")  # fmt: skip
    add("rests_only.abc", tune(body="z8|z8|z8|z8|]"), "quarantined", "empty")
    add("note_length_huge.abc", tune(body="C99999999|]"), "quarantined", "parse_error")
    add("tempo_0.abc", tune(body=BODY).replace("Q:1/4=120", "Q:1/4=0"), "quarantined",
        "bad_tempo")  # fmt: skip
    add("tempo_100000.abc", tune(body=BODY).replace("Q:1/4=120", "Q:1/4=100000"),
        "quarantined", "bad_tempo")  # fmt: skip
    add("meter_0.abc", tune(body=BODY).replace("M:4/4", "M:0/4"), "quarantined",
        "parse_error")  # fmt: skip
    add("three_tunes_one_bad.abc", tune(1) + "\n" + tune(2, body="z8|]") + "\n" + tune(3),
        "kept")  # fmt: skip
    add("repeated_x.abc", tune(7) + "\n" + tune(7), "kept")
    with open(c.path(b"abc/16MiB_plus_1.abc"), "wb") as handle:
        handle.write(tune().encode())
        handle.truncate(16 * MiB + 1)
    c.add("abc", "abc/16MiB_plus_1.abc", None, "quarantined", "too_large")


# ---------------------------------------------------------------- GuitarPro


def guitarpro_cases(c: Corpus) -> None:
    real = c.shared / "dadagp_examples" / "examples" / "slapbass.gp3"
    data = real.read_bytes()
    q: Callable[..., bytes] = lambda rel, raw, reason: c.add(  # noqa: E731
        "guitarpro", f"gp/{rel}", raw, "quarantined", reason
    )
    q("truncated.gp3", data[:200], "parse_error")
    q("half.gp3", data[: len(data) // 2], "parse_error")
    q("random.gp5", bytes((i * 97 + 3) % 256 for i in range(5000)), "parse_error")
    q("empty.gp4", b"", "parse_error")
    q("text.gtp", b"not a guitar pro file\n" * 20, "parse_error")
    for name, value, reason in [("tempo_0.gp3", 0, "bad_tempo"),
                                ("tempo_100000.gp3", 100_000, "bad_tempo")]:  # fmt: skip
        song = gp.parse(str(real))
        song.tempo = value
        gp.write(song, c.path(f"gp/{name}".encode()).decode())
        c.add("guitarpro", f"gp/{name}", None, "quarantined", reason)


# ---------------------------------------------------------------- JAMS


def jams_cases(c: Corpus) -> None:
    def note(time: object, duration: object, value: object = 60.0) -> dict[str, object]:
        return {"time": time, "duration": duration, "value": value, "confidence": None}

    eight = [note(0.5 * i, 0.5, 60.0 + i) for i in range(8)]
    q: Callable[..., bytes] = lambda rel, raw, reason: c.add(  # noqa: E731
        "jams", f"jams/{rel}", raw, "quarantined", reason
    )
    q("tempo_1e-300.jams", jams_file(tempo=1e-300), "bad_tempo")
    q("tempo_negative.jams", jams_file(tempo=-120.0), "bad_tempo")
    q("tempo_text.jams", jams_file(tempo="fast"), "parse_error")
    q("negative_duration.jams", jams_file(notes=[*eight, note(4.0, -0.25)]), "bad_duration")
    q("zero_duration.jams", jams_file(notes=[*eight, note(4.0, 0.0)]), "bad_duration")
    q("nan_time.jams", jams_file(notes=[*eight, note(float("nan"), 0.5)]), "bad_duration")
    q("inf_duration.jams", jams_file(notes=[*eight, note(1.0, float("inf"))]), "bad_duration")
    q("time_1e15.jams", jams_file(notes=[*eight, note(1e15, 0.5)]), "too_long")
    q("pitch_1e9.jams", jams_file(notes=[note(0.5 * i, 0.5, 1e9) for i in range(8)]), "empty")
    q("no_notes.jams", jams_file(namespace="chord"), "empty")
    q("not_json.jams", b"{ this is not json", "parse_error")
    q("json_list.jams", b"[1, 2, 3]", "parse_error")
    q("empty.jams", b"", "parse_error")


# ---------------------------------------------------------------- names


def name_cases(c: Corpus) -> None:
    song = mb.song(mb.tempo(500_000))
    k = lambda rel: c.add("names", b"names/" + os.fsencode(rel), song, "kept")  # noqa: E731
    k(b"caf\xe9_latin1.mid")  # not UTF-8: undecodable bytes in the name
    k("café_latin1.mid")  # the UTF-8 spelling: the same safe name, another file
    k(b"\xff\xfe\x80.mid")
    k("line\nbreak.mid")
    k("quote'\"$(rm -rf)`;.mid")
    k("back\\slash.mid")
    k("日本.mid")
    k("中文.mid")  # both become `piece`: hashed apart
    k(".hidden.mid")
    k(".mid")
    k("-rf.mid")
    k("UPPER.MID")
    k("Case.mid")
    k("case.mid")  # equal ignoring case: distinct output files on any file system
    k("a b.mid")
    k("a_b.mid")
    k("x" * 251 + ".mid")  # a 255-byte file name
    deep = b"/".join([b"d" * 200] * 3)
    k(deep + b"/" + b"n" * 200 + b".mid")  # a piece name far past 255 bytes
    c.add("names", "names/song.abc", tune(1, "Song").encode(), "kept")  # tune `song_x1`
    k("song_x1.mid")  # the same name as the tune above
    c.add("names", "names/README", b"read me\n", "skipped", "unsupported_suffix")
    c.add("names", "names/notes.txt", b"notes\n", "skipped", "unsupported_suffix")
    c.add("names", b"names/\xe9t\xe9.txt", b"latin-1 text\n", "skipped", "unsupported_suffix")


# ---------------------------------------------------------------- links and special files


def link_cases(c: Corpus, outside: Path) -> None:
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "good.mid").write_bytes(mb.song())

    def link(rel: str, target: str | bytes, expect: str, reason: str = "") -> None:
        full = c.path(f"links/{rel}".encode())
        os.symlink(target, full)
        c.add("links", f"links/{rel}", None, expect, reason)

    link("loop_a.mid", "loop_b.mid", "quarantined", "broken_link")
    link("loop_b.mid", "loop_a.mid", "quarantined", "broken_link")
    link("self.mid", "self.mid", "quarantined", "broken_link")
    link("dangling.mid", "does/not/exist.mid", "quarantined", "broken_link")
    link("dangling.txt", "does/not/exist.txt", "skipped", "broken_link")
    link("dev_null.mid", "/dev/null", "skipped", "link_outside_root")
    link("dev_zero.mid", "/dev/zero", "skipped", "link_outside_root")
    link("outside_good.mid", str(outside / "good.mid"), "skipped", "link_outside_root")
    link("inside_good.mid", "../good/running_status.mid", "kept")
    link("up_loop", "..", "skipped", "already_walked")
    link("root_fs", "/", "skipped", "link_outside_root")
    link("fifo_alias.mid", "../special/pipe.mid", "skipped", "not_regular_file")


def special_cases(c: Corpus) -> None:
    for rel in ("special/pipe.mid", "special/pipe.abc", "special/pipe.jams"):
        os.mkfifo(c.path(rel.encode()))
        c.add("special", rel, None, "skipped", "not_regular_file")
    folder, cwd = os.path.dirname(c.path(b"special/socket.mid")), os.getcwd()
    os.chdir(folder)  # a relative name: socket paths are limited to 108 bytes
    try:
        with socket.socket(socket.AF_UNIX) as sock:  # the socket file stays after close
            sock.bind("socket.mid")
    finally:
        os.chdir(cwd)
    c.add("special", "special/socket.mid", None, "skipped", "not_regular_file")
    try:
        os.mknod(c.path(b"special/null_device.mid"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        c.add("special", "special/null_device.mid", None, "skipped", "not_regular_file")
    except PermissionError:
        pass  # not root: no device node, one case fewer
    c.add("special", "special/folder.mid/inside.mid", mb.song(), "kept")  # a folder named .mid
    shutil.copy(c.root / "good" / "running_status.mid", c.path(b"special/copy_of_good.mid"))
    c.add("special", "special/copy_of_good.mid", None, "kept")


def unreadable_cases(c: Corpus) -> None:
    for name in ("locked.mid", "locked.abc", "locked.gp5", "locked.jams"):
        rel = c.add("unreadable", f"unreadable/{name}", mb.song(), "quarantined", "unreadable")
        c.locked.append(rel)
    for rel in ("unreadable/locked_dir/a.mid", "unreadable/locked_dir/b.abc"):
        c.path(rel.encode())
        with open(c.path(rel.encode()), "wb") as handle:
            handle.write(mb.song())
    c.add("unreadable", "unreadable/locked_dir", None, "quarantined", "unreadable")
    c.locked.append(b"unreadable/locked_dir")
