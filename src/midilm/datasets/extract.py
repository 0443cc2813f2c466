"""Safe, atomic, idempotent extraction of dataset archives (.zip, .tar, .tar.gz/.bz2/.xz).

Every member is checked before anything is written: no absolute paths, no `..`, no member named
`.`, no name twice, no links, no device files or FIFOs; the file count, the declared total size
and the compression ratio are capped (a zip's central directory, a tar's headers in a first
pass that writes nothing), and the bytes actually written are counted again, so a hostile or
corrupt archive stops with an error instead of writing outside `dest` or filling the disk.
Extraction goes to a temporary folder beside `dest`, renamed into place when complete;
`<dest>.extracted` marks it done. Every failure is an `ArchiveError` (a `FetchError`) naming
the archive, what was wrong and what to do.
"""

from __future__ import annotations

import errno
import gzip
import json
import lzma
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from midilm.common.io import atomic_dir, read_json, write_json_atomic
from midilm.common.logging import get_logger
from midilm.datasets.errors import FetchError

log = get_logger(__name__)

MAX_FILES = 200_000
MAX_TOTAL_BYTES = 20 * 2**30
MAX_RATIO = 200  # uncompressed / compressed; deflate's best is ~1032 (a zip bomb)
RATIO_MIN_BYTES = 2**20  # smaller members (or archives) may compress better: harmless
CHUNK = 1 << 20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
DAMAGED = "delete it and download it again (or restore the mirror copy)"
BY_HAND = "extract it yourself with a tool you trust and set the source's `path` to the folder"


class ArchiveError(FetchError, ValueError):
    """An archive could not be extracted safely; the message says why and what to do."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the destination, is a link or special file, or the
    archive exceeds the file-count, size or ratio cap."""


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
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Extract `archive` into `dest` (replacing it) unless the marker says it already is."""
    archive, dest = Path(archive), Path(dest)
    try:
        stamp = {"archive": archive.name, "size": archive.stat().st_size}
    except OSError as error:
        raise ArchiveError(
            f"{archive}: cannot read the archive ({error}); check the path"
        ) from None
    marker = extract_marker(dest)
    if dest.is_dir() and marker.is_file() and _read_stamp(marker) == stamp:
        log.debug("%s: already extracted from %s", dest, archive)
        return dest
    marker.unlink(missing_ok=True)
    budget = _Budget(archive, max_files, max_total_bytes, max_ratio)
    try:
        with atomic_dir(dest) as tmp:
            if _is_zip(archive):
                _extract_zip(archive, tmp, budget)
            elif _is_tar(archive):
                _extract_tar(archive, tmp, budget)
            else:
                raise ArchiveError(
                    f"{archive}: unknown archive type; expected .zip or {TAR_SUFFIXES}. "
                    f"Give a folder or one of these as `path`, or {BY_HAND}"
                )
    except ArchiveError:
        raise
    except Exception as error:
        raise ArchiveError(_explain(archive, dest, error)) from error
    write_json_atomic(marker, {**stamp, "files": budget.files, "bytes": budget.bytes})
    log.info("%s: %d files, %d bytes from %s", dest, budget.files, budget.bytes, archive)
    return dest


def _explain(archive: Path, dest: Path, error: Exception) -> str:
    """The ArchiveError message for a failure of the standard library or the disk."""
    raw = f"{type(error).__name__}: {error}"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"{archive}: the disk is full while extracting ({raw}); free space under {dest}"
    damaged = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
               gzip.BadGzipFile)  # fmt: skip
    if isinstance(error, damaged):
        return f"{archive}: damaged or truncated archive ({raw}); {DAMAGED}"
    if isinstance(error, OSError):
        return f"{archive}: reading it or writing under {dest} failed ({raw}); check both"
    if isinstance(error, NotImplementedError) or "encrypted" in str(error):
        return f"{archive}: a member cannot be read here ({raw}); {BY_HAND}"
    return f"{archive}: extraction failed ({raw}); {DAMAGED}, or {BY_HAND}"


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

    def __init__(self, archive: Path, max_files: int, max_bytes: int, max_ratio: float) -> None:
        self.archive, self.max_files, self.max_bytes = archive, max_files, max_bytes
        self.max_ratio = max_ratio
        self.files = 0
        self.bytes = 0

    def check_ratio(self, member: str, size: int, compressed: int) -> None:
        """`size` uncompressed from `compressed` bytes (one zip member, or a whole tar)."""
        if size > RATIO_MIN_BYTES and size > self.max_ratio * max(compressed, 1):
            raise ArchiveLimitError(
                f"{self.archive}: {member!r} declares {size} bytes from {compressed} compressed "
                f"(ratio {size / max(compressed, 1):.0f} > {self.max_ratio:g}, a zip bomb?); "
                "refusing to extract, raise max_ratio if the archive is trusted"
            )

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
    """The member's relative path (`.` for the archive's root), or UnsafeArchiveError for
    absolute paths and `..`."""
    return PurePosixPath(member_rel(archive, name))


def member_rel(archive: Path, name: str) -> str:
    """The member's relative path as `a/b` text (`.` for the archive's root); the check of
    `safe_member_path` without building a path object (a header pass checks 200,000)."""
    unified = name.replace("\\", "/")
    if not unified or "\x00" in unified:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an empty or invalid name")
    if unified[0] == "/" or (unified[1:2] == ":" and unified[0].isalpha()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing")
    return "/".join(parts) or "."


def _target(root: Path, rel: PurePosixPath, archive: Path, name: str) -> Path:
    """Where a checked member goes under the (resolved) `root`; a last guard against escapes."""
    target = root.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(root):
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves outside {root}; refusing")
    return target


def _copy(src: IO[bytes], target: Path, budget: _Budget, name: str, limit: int) -> None:
    """Copy the member's `limit` declared bytes: a member holding more or fewer is refused (a
    lying header, or a damaged archive)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise UnsafeArchiveError(
                    f"{budget.archive}: member {name!r} holds more than the {limit} bytes it "
                    f"declares; {DAMAGED}"
                )
            budget.add_bytes(name, len(chunk))
            out.write(chunk)
    if written < limit:
        raise UnsafeArchiveError(
            f"{budget.archive}: member {name!r} holds {written} of the {limit} bytes it "
            f"declares; {DAMAGED}"
        )


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
    """Check the whole central directory (count, declared sizes, ratios, names, types) before
    writing; then write each member, never more bytes than it declares."""
    root = root.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        declared, names = 0, _Names(archive)
        for info in infos:  # the central directory: refuse before writing anything
            budget.add_file(info.filename)
            declared += info.file_size
            budget.check_declared(info.filename, declared)
            kind = _zip_kind(info)
            if kind not in ("file", "dir"):
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a {kind}; refusing"
                )
            names.add(info.filename, is_dir=kind == "dir")
            budget.check_ratio(info.filename, info.file_size, info.compress_size)
        for info in infos:
            rel = safe_member_path(archive, info.filename)
            target = _target(root, rel, archive, info.filename)
            if _zip_kind(info) == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                _copy(src, target, budget, info.filename, limit=info.file_size)
    budget.files = sum(1 for i in infos if _zip_kind(i) == "file")


class _Names:
    """Member paths seen so far: a file named like the root or like another member (a file
    would overwrite or collide with it) is refused."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, name: str, is_dir: bool) -> None:
        rel = member_rel(self.archive, name)
        if is_dir:
            if rel in self.files:
                raise UnsafeArchiveError(f"{self.archive}: {name!r} is a file and a folder")
            self.dirs.add(rel)
            return
        if rel == ".":
            raise UnsafeArchiveError(
                f"{self.archive}: member {name!r} is a file with no name (the archive root)"
            )
        if rel in self.files or rel in self.dirs:
            raise UnsafeArchiveError(f"{self.archive}: member {name!r} appears twice; refusing")
        self.files.add(rel)


# ---------------------------------------------------------------- tar


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> None:
    """Two streaming passes: the first reads every header (count, declared sizes, the ratio to
    the archive's size, names, types) and writes nothing; the second writes the members."""
    headers = _Budget(archive, budget.max_files, budget.max_bytes, budget.max_ratio)
    names = _Names(archive)
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            headers.add_file(member.name)
            _check_tar_member(archive, member)
            names.add(member.name, is_dir=member.isdir())
            tf.members.clear()  # the stream needs no list of what it passed (200,000 headers)
            if member.isreg():
                headers.bytes += member.size
                headers.check_declared(member.name, headers.bytes)
    headers.check_ratio("the archive", headers.bytes, archive.stat().st_size)
    root, files = root.resolve(), 0
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
            budget.add_file(member.name)
            _check_tar_member(archive, member)
            tf.members.clear()
            target = _target(root, safe_member_path(archive, member.name), archive, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            budget.check_declared(member.name, budget.bytes + member.size)
            src = tf.extractfile(member)
            if src is None:  # pragma: no cover - regular members always have data
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} has no data")
            _copy(src, target, budget, member.name, limit=member.size)
            files += 1
    budget.files = files


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse a link, device, FIFO or other non-regular member (the path: `_Names.add`)."""
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hardlink"
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a {kind} (to {member.linkname!r}); refusing"
        )
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a device file or FIFO; refusing"
        )
    if not (member.isdir() or member.isreg()):
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} has unsupported type {member.type!r}"
        )
