"""Hypothesis strategies for hostile MIDI bytes and ABC text (tests/hostile)."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.hostile import midi_bytes as mb

SEEDS = [
    mb.song(mb.tempo(500_000)),
    mb.header(0, 1) + mb.track(mb.meta(0x58, b"\x03\x02\x18\x08"), mb.running_notes(30)),
    mb.header(1, 2) + mb.track(mb.tempo(400_000), mb.meta(0x59, b"\x01\x00"))
    + mb.track(mb.notes(12, channel=9)),
]  # fmt: skip


@st.composite
def mutated_midi(draw: st.DrawFn) -> bytes:
    """A seed file with a few byte edits: overwrite, insert, delete, truncate, and chunk
    lengths, divisions, meta types and lengths set to edge values."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    ops = ["value"] * 10 + ["set", "set", "insert", "insert", "delete", "truncate", "edge", "edge"]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        op = draw(st.sampled_from(ops))
        if op == "value" and len(data) > 22:  # a byte inside a track, as a data byte
            data[draw(st.integers(22, len(data) - 1))] = draw(st.integers(0, 127))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif data:
            edge = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00",
                                         b"\xff\xff\xff\xff", b"\xff\x51\x00", b"\xff\x58\x00",
                                         b"\xff\x59\x00", b"\xff\x2f\x00"]))  # fmt: skip
            data[at : at + len(edge)] = edge
    return bytes(data)


@st.composite
def generated_midi(draw: st.DrawFn) -> bytes:
    """A structurally plausible file of random events: any division, metas of any length,
    running status, huge delta times."""
    events = []
    kinds = ["note"] * 8 + ["meta", "meta", "running", "sysex", "control"]
    for _ in range(draw(st.integers(0, 40))):
        delta = draw(st.integers(0, 960) | st.integers(0, 0x0FFFFFFF))
        kind = draw(st.sampled_from(kinds))
        if kind == "note":
            on = bytes((0x90 | draw(st.integers(0, 15)), draw(st.integers(0, 127)),
                        draw(st.integers(0, 127))))  # fmt: skip
            length = draw(st.integers(0, 960) | st.integers(0, 0x0FFFFFFF))
            events.append(mb.vlq(delta) + on + mb.vlq(length) + on[:2] + b"\x00")
        elif kind == "running":
            events.append(mb.vlq(delta) + bytes((draw(st.integers(0, 127)), 0)))
        elif kind == "meta":  # mostly of the standard length, sometimes not
            meta = draw(st.sampled_from([0x51, 0x58, 0x59, 0x01, 0x03, 0x2F]))
            size = {0x51: 3, 0x58: 4, 0x59: 2, 0x2F: 0}.get(meta, draw(st.integers(0, 6)))
            body = draw(st.binary(min_size=size, max_size=size))
            length = draw(st.sampled_from([None] * 12 + [0, 1, 2, 3, 4, 8]))
            events.append(mb.meta(meta, body, delta, length))
        elif kind == "sysex":
            events.append(mb.vlq(delta) + b"\xf0" + mb.vlq(len(body := draw(st.binary(
                max_size=4)))) + body)  # fmt: skip
        else:
            events.append(mb.vlq(delta) + bytes((0xB0, draw(st.integers(0, 255)),
                                                 draw(st.integers(0, 255)))))  # fmt: skip
    division = draw(st.sampled_from([480] * 6 + [0, 1, 96, 0x7FFF, 0xE728, 0xFFFF]))
    return mb.header(draw(st.integers(0, 2)), 1, division) + mb.track(
        *events, end=draw(st.booleans())
    )


NOTES = ["C", "D", "E", "F", "G", "A", "B", "c", "d", "e", "f", "g", "a", "b", "c'", "C,", "^F",
         "_B", "=c", "z"]  # fmt: skip
ABC_TOKENS = [*NOTES * 6, "2", "3", "/", "/2", "4", "8", "|", "|", "||", "|:", ":|", "[1",
              "[2", "(3", "[CEG]", "\"Am\"", "~", ">", "<", "-", " ", "\n", "x", "!trill!",
              "{g}", "%", "]", "C99", "^^", "__", "(", ")", "&", "V:2\n", "M:3/4\n", "K:Eb\n",
              "L:1/0\n", "Q:1/4=0\n"]  # fmt: skip
FIELDS = st.fixed_dictionaries({
    "M": st.sampled_from(["4/4"] * 4 + ["6/8", "C", "C|", "0/4", "3/0", "99/64", "none", "2/3"]),
    "L": st.sampled_from(["1/8"] * 4 + ["1/4", "1/16", "1/1", "1/0", "0", "1/1000"]),
    "Q": st.sampled_from(["1/4=120"] * 4 + ["120", "1/4=0", "1/8=1000000", "3/8=60", ""]),
    "K": st.sampled_from(["G"] * 4 + ["Dm", "C", "F#m", "Bb", "Hp", "none", "XYZ", "clef=bass"]),
})  # fmt: skip


@st.composite
def abc_tune(draw: st.DrawFn) -> str:
    fields = draw(FIELDS)
    body = "".join(draw(st.lists(st.sampled_from(ABC_TOKENS), min_size=8, max_size=120)))
    head = "".join(f"{key}:{value}\n" for key, value in fields.items() if key != "K")
    return f"X:1\nT:fuzz\n{head}K:{fields['K']}\n{body}\n"
