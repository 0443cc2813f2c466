"""Safe, atomic, idempotent extraction of dataset archives (.zip, .tar, .tar.gz/.bz2/.xz).

Every member is checked before it is written: no absolute paths, no `..`, no links, no device
files or FIFOs, and the file count and total size are capped (declared sizes up front where the
format allows, actual bytes while writing), so a hostile or corrupt archive stops with an error
instead of writing outside `dest` or filling the disk. Extraction goes to a temporary folder
beside `dest`, renamed into place when complete; `<dest>.extracted` marks it done.
"""

from __future__ import annotations

import json
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from midilm.common.io import atomic_dir, read_json, write_json_atomic
from midilm.common.logging import get_logger

log = get_logger(__name__)

MAX_FILES = 200_000
MAX_TOTAL_BYTES = 20 * 2**30
CHUNK = 1 << 20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class UnsafeArchiveError(ValueError):
    """An archive member would escape the destination, is a link or special file, or the
    archive exceeds the file-count or size cap."""


class ArchiveLimitError(UnsafeArchiveError):
    """The archive holds more files or bytes than allowed (e.g. a zip bomb)."""


def extract_marker(dest: Path) -> Path:
    """`<dest>.extracted`: written after `dest` is complete."""
    return dest.with_name(dest.name + ".extracted")


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Path:
    """Extract `archive` into `dest` (replacing it) unless the marker says it already is."""
    archive, dest = Path(archive), Path(dest)
    stamp = {"archive": archive.name, "size": archive.stat().st_size}
    marker = extract_marker(dest)
    if dest.is_dir() and marker.is_file() and _read_stamp(marker) == stamp:
        log.debug("%s: already extracted from %s", dest, archive)
        return dest
    marker.unlink(missing_ok=True)
    budget = _Budget(archive, max_files, max_total_bytes)
    with atomic_dir(dest) as tmp:
        if _is_zip(archive):
            _extract_zip(archive, tmp, budget)
        elif _is_tar(archive):
            _extract_tar(archive, tmp, budget)
        else:
            raise ValueError(f"{archive}: unknown archive type; expected .zip or {TAR_SUFFIXES}")
    write_json_atomic(marker, {**stamp, "files": budget.files, "bytes": budget.bytes})
    log.info("%s: %d files, %d bytes from %s", dest, budget.files, budget.bytes, archive)
    return dest


def _read_stamp(marker: Path) -> dict[str, object] | None:
    try:
        data = read_json(marker)
    except (OSError, json.JSONDecodeError):
        return None
    return {"archive": data.get("archive"), "size": data.get("size")}


def _is_zip(archive: Path) -> bool:
    if archive.name.lower().endswith(".zip"):
        return True
    return not archive.name.lower().endswith(TAR_SUFFIXES) and zipfile.is_zipfile(archive)


def _is_tar(archive: Path) -> bool:
    return archive.name.lower().endswith(TAR_SUFFIXES) or tarfile.is_tarfile(archive)


class _Budget:
    """Counts files and bytes against the caps; raises ArchiveLimitError when one is passed."""

    def __init__(self, archive: Path, max_files: int, max_bytes: int) -> None:
        self.archive, self.max_files, self.max_bytes = archive, max_files, max_bytes
        self.files = 0
        self.bytes = 0

    def add_file(self, member: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveLimitError(
                f"{self.archive}: more than {self.max_files} files (at member {member!r}); "
                "refusing to extract, raise max_files if the archive is trusted"
            )

    def check_declared(self, member: str, total: int) -> None:
        if total > self.max_bytes:
            raise ArchiveLimitError(
                f"{self.archive}: declares {total} bytes uncompressed (over the {self.max_bytes} "
                f"cap, at member {member!r}); refusing to extract, raise max_total_bytes "
                "if the archive is trusted"
            )

    def add_bytes(self, member: str, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise ArchiveLimitError(
                f"{self.archive}: more than {self.max_bytes} bytes uncompressed (at member "
                f"{member!r}); refusing to extract, raise max_total_bytes if the archive is trusted"
            )


def safe_member_path(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or UnsafeArchiveError for absolute paths and `..`."""
    unified = name.replace("\\", "/")
    if not unified or "\x00" in unified:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an empty or invalid name")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _target(root: Path, rel: PurePosixPath, archive: Path, name: str) -> Path:
    """Where a checked member goes under the (resolved) `root`; a last guard against escapes."""
    target = root.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(root):
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves outside {root}; refusing")
    return target


def _copy(src: IO[bytes], target: Path, budget: _Budget, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            budget.add_bytes(name, len(chunk))
            out.write(chunk)


# ---------------------------------------------------------------- zip


def _zip_kind(info: zipfile.ZipInfo) -> str:
    """ "dir", "file", or the name of a refused type, from the Unix mode bits (if any)."""
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):  # no type bits (e.g. made on Windows)
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "device or FIFO"


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> None:
    root = root.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        declared = 0
        for info in infos:  # the central directory: refuse before writing anything
            budget.add_file(info.filename)
            declared += info.file_size
            budget.check_declared(info.filename, declared)
            _check_zip_member(archive, info)
        for info in infos:
            rel = safe_member_path(archive, info.filename)
            target = _target(root, rel, archive, info.filename)
            if _zip_kind(info) == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                _copy(src, target, budget, info.filename)
    budget.files = sum(1 for i in infos if _zip_kind(i) == "file")


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> None:
    safe_member_path(archive, info.filename)
    kind = _zip_kind(info)
    if kind not in ("file", "dir"):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a {kind}; refusing")


# ---------------------------------------------------------------- tar


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> None:
    """One streaming pass: each header is checked (type, path, declared size) before its data."""
    root, files = root.resolve(), 0
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            budget.add_file(member.name)
            rel = safe_member_path(archive, member.name)
            if member.issym() or member.islnk():
                kind = "symlink" if member.issym() else "hardlink"
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a {kind} (to {member.linkname!r}); "
                    "refusing"
                )
            if member.ischr() or member.isblk() or member.isfifo():
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device file or FIFO; refusing"
                )
            target = _target(root, rel, archive, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isreg():
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} has unsupported type {member.type!r}"
                )
            budget.check_declared(member.name, budget.bytes + member.size)
            src = tf.extractfile(member)
            if src is None:  # pragma: no cover - regular members always have data
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} has no data")
            _copy(src, target, budget, member.name)
            files += 1
    budget.files = files
