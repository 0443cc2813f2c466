"""Standard MIDI files written byte by byte, so a test can put any value or length anywhere."""

from __future__ import annotations

import struct

EOT = b"\x00\xff\x2f\x00"


def vlq(value: int) -> bytes:
    """A variable-length quantity (the SMF delta-time encoding)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 1, tracks: int = 1, division: int = 480) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, tracks, division)


def chunk(kind: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return kind + struct.pack(">I", size) + body


def track(*events: bytes, end: bool = True) -> bytes:
    return chunk(b"MTrk", b"".join(events) + (EOT if end else b""))


def meta(kind: int, data: bytes, delta: int = 0, length: int | None = None) -> bytes:
    """A meta event; `length` overrides the declared length (the data stays as given)."""
    return vlq(delta) + bytes((0xFF, kind)) + vlq(len(data) if length is None else length) + data


def tempo(mspq: int, delta: int = 0) -> bytes:
    return meta(0x51, mspq.to_bytes(3, "big"), delta)


def notes(count: int = 8, length: int = 240, pitch: int = 60, channel: int = 0) -> bytes:
    """`count` notes one after the other (note on, note off with velocity 0)."""
    out = []
    for i in range(count):
        key = pitch + i % 24
        out.append(vlq(0) + bytes((0x90 | channel, key, 80)))
        out.append(vlq(length) + bytes((0x90 | channel, key, 0)))
    return b"".join(out)


def running_notes(count: int, length: int = 120, pitch: int = 48) -> bytes:
    """Notes in running status: one status byte, then data bytes only."""
    out = [b"\x00\x90" + bytes((pitch, 80)), vlq(length) + bytes((pitch, 0))]
    for i in range(1, count):
        key = pitch + i % 36
        out.append(vlq(0) + bytes((key, 80)))
        out.append(vlq(length) + bytes((key, 0)))
    return b"".join(out)


def song(*events: bytes, division: int = 480) -> bytes:
    """A format-0 file: one track holding `events` then 8 notes of an eighth each."""
    return header(0, 1, division) + track(*events, notes())
