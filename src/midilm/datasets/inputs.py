"""Input files as they are found on disk: walked without trusting names, types or permissions,
read without blocking or reading too much, and named safely for the outputs.

A file name is bytes on Linux; Python hands undecodable bytes over as lone surrogates, which no
writer (Parquet, JSON, UTF-8 text) accepts. `display_text` turns any such name into text that
survives every encoding (undecodable bytes as `\\xNN`), and piece names are plain ASCII, hashed
when a name is too long or taken.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_NAME_CHARS = 120  # a piece name; `<name>.mid` stays far below the 255-byte file-name limit
HASH_CHARS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InputError(Exception):
    """An input that cannot be used as it is; `reason` is its quarantine (or skip) code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def display_text(text: str | os.PathLike[str]) -> str:
    """`text` (a path or a message that may quote one) as valid Unicode: bytes that were not
    UTF-8 in the name become `\\xNN`, other lone surrogates `\\udNNN`."""
    value = os.fspath(text)
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def name_bytes(text: str) -> bytes:
    """`text` as the bytes it came from (file names), for hashing; never fails."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def short_hash(text: str) -> str:
    return hashlib.sha256(name_bytes(text)).hexdigest()[:HASH_CHARS]


def safe_name(text: str) -> str:
    """A piece name usable in ids and file names: runs of other characters become `_`; a name
    over MAX_NAME_CHARS keeps its start and gets a hash of the whole text."""
    name = _UNSAFE.sub("_", text).strip("_") or "piece"
    if len(name) > MAX_NAME_CHARS:
        name = f"{name[: MAX_NAME_CHARS - HASH_CHARS - 1]}_{short_hash(text)}"
    return name


def disambiguate(name: str, key: str, taken: set[str]) -> str:
    """`name` if no name in `taken` equals it ignoring case, else `name_<hash of key>` (rehashed
    until free). Case is ignored so the output files are distinct on any file system."""
    candidate, attempt = name, 0
    while candidate.casefold() in taken:
        attempt += 1
        suffix = short_hash(f"{key}#{attempt}" if attempt > 1 else key)
        candidate = f"{name[: MAX_NAME_CHARS - HASH_CHARS - 1]}_{suffix}"
    taken.add(candidate.casefold())
    return candidate


# ---------------------------------------------------------------- walking


@dataclass(frozen=True)
class Found:
    """A path under a walked folder: a regular file to read (`reason` empty), or one that gives
    no piece, with its reason and whether it is skipped (not an input) or quarantined (bad)."""

    path: str
    rel: str  # relative to the walked root, `/`-separated
    reason: str = ""
    detail: str = ""
    quarantined: bool = False


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A glob pattern (`**/`, `*`, `?`, `[...]`) as a regex over `/`-separated relative paths,
    with Path.glob's meaning: `*` stays inside one folder, `**/` spans any number of them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 1)) > i:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def walk(root: Path, suffixes: tuple[str, ...], links: str, pattern: str = "**/*") -> list[Found]:
    """Every path under `root`, sorted by relative path: each regular file with one of
    `suffixes` matching `pattern`, and every other path with the reason it gives no piece.

    Nothing is opened: types come from stat, so a FIFO or device named `x.mid` never blocks.
    Folders are walked once each (a link back up is `already_walked`, so loops end), links
    follow `links` (none | inside_root | all), an unlistable folder is quarantined
    `unreadable`. Only the folder named by the pattern's literal start is walked.
    """
    matcher = pattern_regex(pattern)
    fixed = []
    for part in pattern.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    start = "".join(f"{part}/" for part in fixed)
    rest = pattern[len(start) :]
    recursive = "/" in rest  # `*.mid` lists one folder, `**/*.mid` or `a/*/b.mid` descend
    real_root = os.path.realpath(root)
    found: list[Found] = []
    seen: set[tuple[int, int]] = set()
    stack = [(os.path.join(root, *fixed), start)]
    while stack:
        folder, prefix = stack.pop()
        try:
            info = os.stat(folder)
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as error:
            found.append(_unreadable(folder, prefix.rstrip("/") or ".", error))
            continue
        subdirs = []
        for entry in listed:
            rel = prefix + entry.name
            wanted = entry.name.lower().endswith(suffixes)
            result = _classify(entry, rel, wanted, real_root, links, seen)
            if result is None:
                if recursive:
                    subdirs.append((entry.path, rel + "/"))
            elif result.reason or matcher.fullmatch(rel):
                found.append(result)
            else:
                found.append(Found(entry.path, rel, "not_matched", f"not matched by {pattern!r}"))
        stack.extend(reversed(subdirs))
    return sorted(found, key=lambda f: f.rel)


def _classify(
    entry: os.DirEntry[str],
    rel: str,
    wanted: bool,
    real_root: str,
    links: str,
    seen: set[tuple[int, int]],
) -> Found | None:
    """None for a folder to walk, else what the entry is: a file to read (no reason) or one
    that gives no piece. `wanted`: the name has one of the suffixes read."""
    path = entry.path
    try:
        is_link = entry.is_symlink()
        info = os.stat(path)  # follows links
    except OSError as error:
        if not os.path.islink(path):
            return _unreadable(path, rel, error)
        kind = "a symbolic link loop" if error.errno == errno.ELOOP else "a dangling link"
        return Found(path, rel, "broken_link", f"{kind}: {_strerror(error)}", quarantined=wanted)
    is_dir = stat.S_ISDIR(info.st_mode)
    if not is_dir and not wanted:
        return Found(path, rel, "unsupported_suffix", _suffix_detail(rel))
    if is_link and links != "all":
        target = os.path.realpath(path)
        inside = target == real_root or target.startswith(real_root.rstrip("/") + "/")
        if links == "none":
            return Found(path, rel, "link_not_followed", "a symbolic link; dataset.links: none")
        if not inside:
            detail = f"a link to {display_text(target)}, outside the folder (dataset.links)"
            return Found(path, rel, "link_outside_root", detail)
    if is_dir:
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return Found(path, rel, "already_walked", "a link to a folder walked already")
        seen.add(key)
        return None
    if not stat.S_ISREG(info.st_mode):
        return Found(path, rel, "not_regular_file", f"a {_file_type(info.st_mode)}")
    return Found(path, rel)


def _unreadable(path: str, rel: str, error: OSError) -> Found:
    return Found(path, rel, "unreadable", _strerror(error), True)


def _strerror(error: OSError) -> str:
    return f"{type(error).__name__}: {error.strerror or error}"


def _suffix_detail(rel: str) -> str:
    suffix = Path(rel).suffix
    return f"suffix {display_text(suffix)!r} is not read" if suffix else "no suffix"


def _file_type(mode: int) -> str:
    kinds = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
             stat.S_IFBLK: "block device"}  # fmt: skip
    return kinds.get(stat.S_IFMT(mode), f"special file (mode {oct(stat.S_IFMT(mode))})")


# ---------------------------------------------------------------- reading


def read_input(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; InputError otherwise.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO or device
    swapped in after the listing is refused without blocking, and the size bound holds before
    anything is read (and again while reading, for a file that grows).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        reason = "broken_link" if error.errno in (errno.ELOOP, errno.ENOENT) else "unreadable"
        raise InputError(reason, _strerror(error)) from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError("not_regular_file", f"a {_file_type(info.st_mode)}, not a file")
        if info.st_size > max_bytes:
            raise InputError("too_large", _size_detail(info.st_size, max_bytes))
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise InputError("too_large", _size_detail(total, max_bytes) + " (it grew)")
        return b"".join(chunks)
    except OSError as error:
        raise InputError("unreadable", _strerror(error)) from error
    finally:
        os.close(fd)


def _size_detail(size: int, max_bytes: int) -> str:
    return f"{size} bytes > dataset.filters.max_file_bytes={max_bytes}"


def decode_text(data: bytes) -> str:
    """Text of an ABC file: UTF-8 or UTF-16 by BOM, else UTF-8, else Latin-1 (old tune books);
    InputError for binary content (NUL bytes) or an empty file."""
    if not data.strip():
        raise InputError("empty", f"{len(data)} bytes, no text")
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
                       (b"\xfe\xff", "utf-16")):  # fmt: skip
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as error:
                raise InputError("parse_error", f"{codec} text with bad bytes: {error}") from error
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if "\x00" in text:
        raise InputError("parse_error", "binary content (NUL bytes), not text")
    return text
