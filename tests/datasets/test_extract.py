"""Safe extraction of real archives (built from ../shared/datasets) and refusal of hostile ones."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from midilm.datasets import extract
from midilm.datasets.extract import (
    ArchiveLimitError,
    UnsafeArchiveError,
    extract_marker,
    safe_extract,
)

TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, TAR_MODES.get("".join(path.suffixes[-2:]), "w")) as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tar_info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def test_zip_of_groove_extracts_and_is_idempotent(
    shared_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = shared_datasets / "groove" / "drummer1" / "session1"
    archive = tmp_path / "groove.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for midi in sorted(session.glob("*.mid")):
            zf.write(midi, f"groove/drummer1/session1/{midi.name}")
    dest = safe_extract(archive, tmp_path / "out")
    assert tree(dest / "groove/drummer1/session1") == tree(session)
    assert extract_marker(dest).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left

    def boom(*args: object) -> None:
        raise AssertionError("extracted twice")

    monkeypatch.setattr(extract, "_extract_zip", boom)
    assert safe_extract(archive, tmp_path / "out") == dest


def test_tar_gz_of_jsb_chorales(shared_datasets: Path, tmp_path: Path) -> None:
    archive = tmp_path / "jsb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(shared_datasets / "jsb_chorales", "jsb_chorales")
    dest = safe_extract(archive, tmp_path / "out")
    assert tree(dest / "jsb_chorales") == tree(shared_datasets / "jsb_chorales")


@pytest.mark.parametrize("suffix", sorted(TAR_MODES))
def test_every_tar_flavour(shared_datasets: Path, tmp_path: Path, suffix: str) -> None:
    source = shared_datasets / "jsb_chorales" / "README.md"
    archive = make_tar(tmp_path / f"a{suffix}", [(tar_info("jsb/README.md"), source.read_bytes())])
    assert (safe_extract(archive, tmp_path / "out") / "jsb/README.md").read_bytes() == (
        source.read_bytes()
    )


def test_changed_archive_is_extracted_again(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", [("one.txt", b"1")])
    dest = safe_extract(archive, tmp_path / "out")
    make_zip(archive, [("one.txt", b"1"), ("two.txt", b"22")])
    assert sorted(tree(safe_extract(archive, tmp_path / "out"))) == ["one.txt", "two.txt"]
    assert dest == tmp_path / "out"


def zip_cases() -> dict[str, list[tuple[zipfile.ZipInfo | str, bytes]]]:
    return {
        "../evil": [("ok.txt", b"ok"), ("../evil", b"x")],
        "a/../../evil": [("a/../../evil", b"x")],
        "..\\evil": [("..\\evil", b"x")],
        "/tmp/evil": [("/tmp/evil", b"x")],
        "link": [(zip_info("link", 0o120777), b"/etc/passwd")],
        "fifo": [(zip_info("fifo", 0o010644), b"")],
    }


def tar_cases() -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    return {
        "../evil": [(tar_info("ok.txt"), b"ok"), (tar_info("../evil"), b"x")],
        "/tmp/evil": [(tar_info("/tmp/evil"), b"x")],
        "link": [(tar_info("link", tarfile.SYMTYPE, "/etc/passwd"), b"")],
        "hard": [(tar_info("hard", tarfile.LNKTYPE, "/etc/passwd"), b"")],
        "dev": [(tar_info("dev", tarfile.CHRTYPE), b"")],
        "fifo": [(tar_info("fifo", tarfile.FIFOTYPE), b"")],
    }


@pytest.mark.parametrize("member", sorted(zip_cases()))
def test_hostile_zip_is_refused(tmp_path: Path, member: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", zip_cases()[member])
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, tmp_path / "x" / "out")
    assert str(archive) in str(info.value) and repr(member) in str(info.value)
    assert not (tmp_path / "x" / "out").exists() and not (tmp_path / "evil").exists()
    assert list((tmp_path / "x").iterdir()) == []  # the temp folder is gone too


@pytest.mark.parametrize("member", sorted(tar_cases()))
def test_hostile_tar_is_refused(tmp_path: Path, member: str) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", tar_cases()[member])
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, tmp_path / "x" / "out")
    assert str(archive) in str(info.value) and repr(member) in str(info.value)
    assert not (tmp_path / "x" / "out").exists() and not (tmp_path / "evil").exists()
    assert list((tmp_path / "x").iterdir()) == []


def test_zip_with_too_many_files_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", [(f"f{i:03d}", b"") for i in range(50)])
    with pytest.raises(ArchiveLimitError, match="more than 10 files"):
        safe_extract(archive, tmp_path / "out", max_files=10)


def test_zip_bomb_is_refused_from_declared_size(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("zeros", bytes(8 * 2**20))])
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveLimitError, match="declares 8388608 bytes"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=2**20)
    assert not (tmp_path / "out").exists()


def test_tar_bomb_stops_while_streaming(tmp_path: Path) -> None:
    members = [(tar_info(f"zeros{i}"), bytes(2**20)) for i in range(4)]
    archive = make_tar(tmp_path / "bomb.tar.gz", members)
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveLimitError, match="'zeros2'"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=int(2.5 * 2**20))
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="unknown archive type"):
        safe_extract(path, tmp_path / "out")
