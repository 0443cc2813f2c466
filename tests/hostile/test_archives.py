"""Hostile archives and downloads: each is extracted safely or refused with one FetchError that
names the file, before anything is written; a download stops at its pinned size."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import tarfile
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from midilm.datasets.download import DownloadError, RemoteFile, SizeMismatchError, download
from midilm.datasets.errors import FetchError
from midilm.datasets.extract import ArchiveLimitError, safe_extract
from tests.datasets.http_server import FileServer
from tests.hostile import midi_bytes as mb

MiB = 2**20
SONG = mb.song()


def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # a duplicate name is the point of one case
        for info, data in members:
            zf.writestr(info, data)
    return path


def zip_entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def patch_zip(path: Path, **fields: int) -> Path:
    """Rewrite fields of the first member in the central directory (and the local header):
    `size` (uncompressed), `method` (compression)."""
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    if "size" in fields:
        struct.pack_into("<I", data, central + 24, fields["size"])
        struct.pack_into("<I", data, 22, fields["size"])
    if "method" in fields:
        struct.pack_into("<H", data, central + 10, fields["method"])
        struct.pack_into("<H", data, 8, fields["method"])
    path.write_bytes(bytes(data))
    return path


def write_tar(path: Path, members: list[tuple[str, bytes | None, bytes]], mode: str = "w:gz",
              linkname: str = "") -> Path:  # fmt: skip
    """Members (name, data or None, tar type)."""
    with tarfile.open(path, mode) as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            info.size = len(data) if data is not None else 0
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def many_members_tar(path: Path, count: int) -> Path:
    """An uncompressed tar of `count` empty files, written header by header (tarfile.addfile
    takes ~20 s for 200,001)."""
    block = bytearray(tarfile.TarInfo("f/0000000").tobuf(format=tarfile.USTAR_FORMAT))
    block[148:156] = b" " * 8
    base = sum(block) - sum(b"0000000")
    with open(path, "wb") as out:
        for i in range(count):
            digits = b"%07d" % i
            block[2:9] = digits
            block[148:156] = b"%06o\x00 " % (base + sum(digits))
            out.write(block)
        out.write(bytes(1024))
    return path


def cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


REG, DIR = tarfile.REGTYPE, tarfile.DIRTYPE
Build = Callable[[Path], Path]
# name -> (build the archive under a folder, "extracted" or a regex the refusal matches,
#          safe_extract keyword arguments)
CASES: dict[str, tuple[Build, str, dict[str, int]]] = {
    "zip_good": (lambda d: write_zip(d / "a.zip", [("a/x.mid", SONG), ("a/b/", b"")]),
                 "extracted", {}),
    "zip_ratio_bomb": (lambda d: write_zip(d / "a.zip", [("zeros.mid", bytes(64 * MiB))]),
                       "ratio", {}),
    "zip_declares_2GiB": (lambda d: patch_zip(write_zip(d / "a.zip", [("x.mid", SONG)]),
                                              size=2**31), "ratio", {}),
    "zip_declares_less": (lambda d: patch_zip(write_zip(d / "a.zip", [("x.mid", SONG * 50)]),
                                              size=10), "damaged|more than", {}),
    "zip_declares_more": (lambda d: patch_zip(write_zip(d / "a.zip", [("x.mid", SONG)]),
                                              size=100_000), "holds 98 of the 100000", {}),
    "zip_truncated_half": (lambda d: cut(write_zip(d / "a.zip", [("x.mid", SONG * 20)]), 0.5),
                           "damaged", {}),
    "zip_truncated_tail": (lambda d: cut(write_zip(d / "a.zip", [("x.mid", SONG)]), 0.97),
                           "damaged", {}),
    "zip_member_dot": (lambda d: write_zip(d / "a.zip", [(".", SONG)]), "no name", {}),
    "zip_member_dot_slash": (lambda d: write_zip(d / "a.zip", [("./", b""), ("./x.mid", SONG)]),
                             "extracted", {}),
    "zip_dotdot": (lambda d: write_zip(d / "a.zip", [("../evil.mid", SONG)]), r"'\.\.'", {}),
    "zip_inner_dotdot": (lambda d: write_zip(d / "a.zip", [("a/../../evil.mid", SONG)]),
                         r"'\.\.'", {}),
    "zip_backslash_dotdot": (lambda d: write_zip(d / "a.zip", [("..\\evil.mid", SONG)]),
                             r"'\.\.'", {}),
    "zip_absolute": (lambda d: write_zip(d / "a.zip", [("/tmp/evil.mid", SONG)]), "absolute",
                     {}),
    "zip_drive": (lambda d: write_zip(d / "a.zip", [("C:/evil.mid", SONG)]), "absolute", {}),
    "zip_twice": (lambda d: write_zip(d / "a.zip", [("x.mid", SONG), ("x.mid", SONG)]),
                  "twice", {}),
    "zip_file_and_folder": (lambda d: write_zip(d / "a.zip", [("x", SONG), ("x/", b"")]),
                            "file and a folder", {}),
    "zip_symlink": (lambda d: write_zip(d / "a.zip", [(zip_entry("l.mid", 0o120777),
                                                       b"/etc/passwd")]), "symlink", {}),
    "zip_fifo": (lambda d: write_zip(d / "a.zip", [(zip_entry("p.mid", 0o010644), b"")]),
                 "FIFO", {}),
    "zip_method_97": (lambda d: patch_zip(write_zip(d / "a.zip", [("x.mid", SONG)]),
                                          method=97), "cannot be read", {}),
    "zip_not_a_zip": (lambda d: _write(d / "a.zip", b"not a zip\n" * 10), "damaged", {}),
    "zip_empty_file": (lambda d: _write(d / "a.zip", b""), "damaged", {}),
    "zip_1001_members": (lambda d: write_zip(d / "a.zip", [(f"{i}.mid", b"") for i in
                                                            range(1001)]),
                         "more than 1000 files", {"max_files": 1000}),
    "zip_over_total": (lambda d: write_zip(d / "a.zip", [(f"{i}.mid", SONG * 1000) for i in
                                                          range(20)]),
                       "declares", {"max_total_bytes": MiB}),
    "tar_good": (lambda d: write_tar(d / "a.tar.gz", [("a/", None, DIR), ("a/x.mid", SONG, REG)]),
                 "extracted", {}),
    "tar_dot_folder": (lambda d: write_tar(d / "a.tar", [(".", None, DIR),
                                                         ("./x.mid", SONG, REG)], "w"),
                       "extracted", {}),
    "tar_member_dot": (lambda d: write_tar(d / "a.tar", [(".", SONG, REG)], "w"), "no name",
                       {}),
    "tar_dotdot": (lambda d: write_tar(d / "a.tar.gz", [("../evil.mid", SONG, REG)]),
                   r"'\.\.'", {}),
    "tar_absolute": (lambda d: write_tar(d / "a.tar.gz", [("/tmp/evil.mid", SONG, REG)]),
                     "absolute", {}),
    "tar_symlink": (lambda d: write_tar(d / "a.tar.gz", [("l.mid", None, tarfile.SYMTYPE)],
                                        linkname="/etc/passwd"), "symlink", {}),
    "tar_symlink_then_write": (lambda d: write_tar(d / "a.tar.gz", [
        ("d", None, tarfile.SYMTYPE), ("d/evil.mid", SONG, REG)], linkname="/tmp"), "symlink",
                               {}),
    "tar_hardlink": (lambda d: write_tar(d / "a.tar.gz", [("h.mid", None, tarfile.LNKTYPE)],
                                         linkname="/etc/passwd"), "hardlink", {}),
    "tar_char_device": (lambda d: write_tar(d / "a.tar.gz", [("c.mid", None, tarfile.CHRTYPE)]),
                        "device", {}),
    "tar_block_device": (lambda d: write_tar(d / "a.tar.gz", [("b", None, tarfile.BLKTYPE)]),
                         "device", {}),
    "tar_fifo": (lambda d: write_tar(d / "a.tar.gz", [("p.mid", None, tarfile.FIFOTYPE)]),
                 "FIFO", {}),
    "tar_volume_header": (lambda d: write_tar(d / "a.tar", [("v.mid", SONG, b"V")], "w"),
                          "unsupported type", {}),
    "tar_twice": (lambda d: write_tar(d / "a.tar.gz", [("x.mid", SONG, REG),
                                                       ("x.mid", SONG, REG)]), "twice", {}),
    "tar_truncated": (lambda d: cut(write_tar(d / "a.tar", [("x.mid", SONG * 100, REG)], "w"),
                                    0.5), "damaged", {}),
    "tar_gz_truncated": (lambda d: cut(write_tar(d / "a.tar.gz", [
        ("x.mid", os.urandom(200_000), REG)]), 0.5), "damaged", {}),
    "tar_gz_garbage": (lambda d: _write(d / "a.tar.gz", b"\x1f\x8b" + os.urandom(5000)),
                       "damaged", {}),
    "tar_gz_ratio_bomb": (lambda d: write_tar(d / "a.tar.gz", [
        ("z1.mid", bytes(32 * MiB), REG), ("z2.mid", bytes(32 * MiB), REG)]), "ratio", {}),
    "tar_1001_members": (lambda d: many_members_tar(d / "a.tar", 1001), "more than 1000 files",
                         {"max_files": 1000}),
    "tar_over_total": (lambda d: write_tar(d / "a.tar.gz", [(f"{i}.mid", SONG * 1000, REG)
                                                            for i in range(20)]),
                       "declares", {"max_total_bytes": MiB}),
    "unknown_type": (lambda d: _write(d / "a.rar", b"Rar!\x1a\x07\x00" + bytes(100)),
                     "unknown archive type", {}),
}  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def attempt(case: str, folder: Path) -> tuple[str, str]:
    """("extracted", ""), ("refused", message) or ("crash", the non-FetchError raised)."""
    build, _, limits = CASES[case]
    folder.mkdir(parents=True)
    archive = build(folder)
    dest = folder / "out" / "dest"
    try:
        safe_extract(archive, dest, **limits)
    except FetchError as error:
        assert str(archive) in str(error), error  # names the archive
        left = [p for p in (folder / "out").rglob("*")] if (folder / "out").exists() else []
        assert left == [], f"{case}: refused, but wrote {left}"
        return "refused", str(error)
    except Exception as error:
        return "crash", f"{type(error).__name__}: {error}"
    return "extracted", ""


def test_hostile_archives_are_refused_before_writing(tmp_path: Path) -> None:
    outcomes = {case: attempt(case, tmp_path / case) for case in CASES}
    counts = Counter(status for status, _ in outcomes.values())
    table = (f"archives: cases {len(CASES)}, extracted {counts['extracted']}, refused "
             f"{counts['refused']}, crashes {counts['crash']}")  # fmt: skip
    (tmp_path / "archive_summary.txt").write_text(table + "\n")
    print(f"\n{table}")
    assert counts["crash"] == 0, {c: o for c, o in outcomes.items() if o[0] == "crash"}
    for case, (status, message) in outcomes.items():
        expected = CASES[case][1]
        if expected == "extracted":
            assert status == "extracted", (case, message)
        else:
            assert status == "refused", (case, status)
            assert re.search(expected, message), (case, message)
    good = tmp_path / "zip_good" / "out" / "dest"
    assert (good / "a" / "x.mid").read_bytes() == SONG and (good / "a" / "b").is_dir()
    assert (tmp_path / "tar_dot_folder" / "out" / "dest" / "x.mid").read_bytes() == SONG


@pytest.mark.slow
def test_a_200001_member_tar_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """The default cap (200,000 files) applies in the header pass: nothing is written."""
    archive = many_members_tar(tmp_path / "many.tar", 200_001)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ArchiveLimitError, match=r"more than 200000 files .*'f/0200000'"):
        safe_extract(archive, dest)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_download_stops_at_its_pinned_size(tmp_path: Path) -> None:
    """8 MiB served for a file pinned at 1,000 bytes: refused from the announced length before
    any byte is kept; without a length, stopped after the first chunk past the pin."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.zip").write_bytes(os.urandom(8 * MiB))
    with FileServer(served) as server:
        pinned = RemoteFile(server.url("big.zip"), "big.zip", size=1000)
        with pytest.raises(SizeMismatchError, match="announces 8388608 bytes"):
            download(pinned, tmp_path / "a", retries=0)
        assert list((tmp_path / "a").iterdir()) == []
        server.omit_length = True
        started = time.monotonic()
        with pytest.raises(SizeMismatchError, match="more than the pinned 1000 bytes") as info:
            download(pinned, tmp_path / "b", retries=0)
        assert time.monotonic() - started < 20
        assert "big.zip" in str(info.value) and isinstance(info.value, FetchError)
        bad = tmp_path / "b" / "big.zip.bad"
        assert bad.stat().st_size <= 1000 and not (tmp_path / "b" / "big.zip").exists()
    blocked = tmp_path / "file_not_folder"
    blocked.write_bytes(b"")
    with pytest.raises(DownloadError, match="writing under"):
        download(RemoteFile("http://127.0.0.1:9/x.zip", "x.zip"), blocked / "sub", retries=0)
    shutil.rmtree(served)
