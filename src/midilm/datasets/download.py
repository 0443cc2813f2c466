"""Resumable, verified downloads of dataset archives, with a local or HTTP mirror.

A file is streamed to `<dest>/<name>.part` (resumed with an HTTP Range request after a cut),
checked against its pinned size and SHA-256, renamed to `<dest>/<name>` and marked done by
`<dest>/<name>.ok` (holding the SHA-256), so a re-run with the marker present touches no network.
`MIDILM_MIRROR` (a folder or a base URL) is tried first: `<mirror>/<name>` for archives and
`<mirror>/<dataset>/` for already-extracted trees (the layout of ../shared/datasets).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from midilm.common.hashing import sha256_file
from midilm.common.io import write_text_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.datasets.errors import FetchError

log = get_logger(__name__)

MIRROR_ENV = "MIDILM_MIRROR"
MANIFEST_NAME = "MANIFEST.sha256"
CHUNK = 1 << 16
USER_AGENT = "midilm-downloader/0.1"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, its local name and (when pinned) its size and SHA-256."""

    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None


class DownloadError(FetchError, RuntimeError):
    """A file could not be fetched (after retries), is not on the server, or is not the file
    pinned (size or SHA-256)."""


class ChecksumError(DownloadError):
    """A file's SHA-256 (or size) differs from the pinned value."""


class SizeMismatchError(ChecksumError):
    """A file's size differs from the pinned value."""


class _NotFound(DownloadError):
    """HTTP 404: the file is not on this server (a mirror miss, or a wrong URL)."""


class _Retryable(Exception):
    """A transient failure: connection error, 5xx, or a short read."""


# ---------------------------------------------------------------- public API


def download(
    remote: RemoteFile,
    dest_dir: Path,
    *,
    mirror: str | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
) -> Path:
    """Fetch `remote` into `dest_dir` (mirror first), verify it and return the final path.
    Every failure is a DownloadError (a FetchError) naming the file and what to do."""
    if remote.filename in ("", ".", "..") or Path(remote.filename).name != remote.filename:
        raise ValueError(f"{remote.url}: filename {remote.filename!r} must be a plain file name")
    try:
        return _download(remote, Path(dest_dir), mirror, retries, backoff_s, timeout_s)
    except DownloadError:
        raise
    except OSError as error:  # the local disk: permissions, space, a folder in the way
        raise DownloadError(
            f"{remote.filename}: writing under {dest_dir} failed ({type(error).__name__}: "
            f"{error}); free space or fix the folder's permissions, then run again to resume"
        ) from error


def _download(
    remote: RemoteFile,
    dest_dir: Path,
    mirror: str | None,
    retries: int,
    backoff_s: float,
    timeout_s: float,
) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.filename
    if is_complete(remote, dest_dir):
        log.debug("%s: already downloaded", final)
        return final
    if _adopt_unmarked(remote, final):
        return final
    mirror = resolve_mirror(mirror)
    if mirror is not None:
        hit = _from_mirror(remote, dest_dir, mirror, retries, backoff_s, timeout_s)
        if hit is not None:
            return hit
    part = _part_path(final)
    _fetch(remote.url, part, remote.size, retries, backoff_s, timeout_s)
    return _finish(remote, part, final, source=remote.url)


def is_complete(remote: RemoteFile, dest_dir: Path) -> bool:
    """True when `<dest>/<name>` and its `.ok` marker exist and agree with the pins (no hashing)."""
    final = Path(dest_dir) / remote.filename
    marker = marker_path(final)
    if not (final.is_file() and marker.is_file()):
        return False
    recorded = marker.read_text(encoding="utf-8").strip()
    if remote.sha256 is not None and recorded != remote.sha256.lower():
        return False
    return remote.size is None or final.stat().st_size == remote.size


def _adopt_unmarked(remote: RemoteFile, final: Path) -> bool:
    """A verified final file whose marker was never written (killed in between): mark it."""
    if remote.sha256 is None or not final.is_file() or marker_path(final).is_file():
        return False
    if sha256_file(final) != remote.sha256.lower():
        return False
    write_text_atomic(marker_path(final), remote.sha256.lower() + "\n")
    return True


def marker_path(final: Path) -> Path:
    return final.with_name(final.name + ".ok")


def resolve_mirror(mirror: str | os.PathLike[str] | None = None) -> str | None:
    """The mirror to use: the argument, else `$MIDILM_MIRROR`, else None."""
    value = os.fspath(mirror) if mirror is not None else os.environ.get(MIRROR_ENV, "")
    return value or None


def is_url(mirror: str) -> bool:
    return mirror.startswith(("http://", "https://"))


def mirror_tree(
    mirror_dir: str | os.PathLike[str] | None, name: str, *, verify: bool = True
) -> Path | None:
    """`<mirror>/<name>/` when the mirror is a folder holding it, verified against the mirror's
    MANIFEST.sha256 when there is one; None when there is no such folder (or no mirror)."""
    mirror = resolve_mirror(mirror_dir)
    if mirror is None or is_url(mirror):
        return None
    root = Path(mirror.removeprefix("file://"))
    tree = root / name
    if not tree.is_dir():
        return None
    manifest = root / MANIFEST_NAME
    if verify and manifest.is_file():
        verify_tree(tree, manifest, name)
    elif verify:
        log.warning("%s: no %s beside it, files not verified", tree, MANIFEST_NAME)
    return tree


def verify_tree(tree: Path, manifest: Path, name: str) -> int:
    """Check every file the manifest lists under `<name>/`; return how many were checked."""
    expected = {
        rel: digest for rel, digest in read_manifest(manifest).items() if rel.startswith(f"{name}/")
    }
    if not expected:
        log.warning("%s lists no files under %s/; %s not verified", manifest, name, tree)
    for rel, digest in sorted(expected.items()):
        path = tree / rel[len(name) + 1 :]
        if not path.is_file():
            raise ChecksumError(
                f"{path}: listed in {manifest} but missing; restore the mirror copy of {name}/"
            )
        actual = sha256_file(path)
        if actual != digest:
            raise ChecksumError(
                f"{path}: sha256 mismatch (expected {digest}, got {actual}, per {manifest}); "
                f"the mirror copy of {name}/ is damaged, restore it from the original source"
            )
    log.info("%s: %d files match %s", tree, len(expected), manifest)
    return len(expected)


def read_manifest(manifest: Path) -> dict[str, str]:
    """`sha256sum` output as {relative path: digest}; a leading `./` or `*` is dropped."""
    entries: dict[str, str] = {}
    for lineno, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
        if match is None:
            raise ValueError(f"{manifest}:{lineno}: not a sha256sum line: {line!r}")
        entries[match.group(2).removeprefix("./")] = match.group(1).lower()
    return entries


# ---------------------------------------------------------------- mirror


def _from_mirror(
    remote: RemoteFile,
    dest_dir: Path,
    mirror: str,
    retries: int,
    backoff_s: float,
    timeout_s: float,
) -> Path | None:
    """`<mirror>/<filename>` copied (folder) or fetched (URL) and verified; None on a miss."""
    final = dest_dir / remote.filename
    part = _part_path(final)
    if is_url(mirror):
        url = f"{mirror.rstrip('/')}/{urllib.parse.quote(remote.filename)}"
        try:
            _fetch(url, part, remote.size, retries, backoff_s, timeout_s)
        except _NotFound:
            log.info("mirror %s has no %s; using %s", mirror, remote.filename, remote.url)
            return None
        except DownloadError as exc:
            log.warning("mirror %s failed (%s); using %s", mirror, exc, remote.url)
            return None
        return _finish(remote, part, final, source=url)
    source = Path(mirror.removeprefix("file://")) / remote.filename
    if not source.is_file():
        log.info("mirror %s has no %s; using %s", mirror, remote.filename, remote.url)
        return None
    part.unlink(missing_ok=True)
    try:
        os.link(source, part)
    except OSError:
        shutil.copyfile(source, part)
    return _finish(remote, part, final, source=str(source))


# ---------------------------------------------------------------- HTTP


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def _fetch(
    url: str,
    part: Path,
    size: int | None,
    retries: int,
    backoff_s: float,
    timeout_s: float,
) -> None:
    """Stream `url` into `part`, resuming what is there, retrying transient failures."""
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, size, timeout_s)
            return
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{url}: failed after {retries} retries ({exc}); the partial file "
                    f"{part} is kept, run again to resume"
                ) from exc
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.1fs", url, exc, attempt, retries, delay)
            time.sleep(delay)


def _fetch_once(url: str, part: Path, size: int | None, timeout_s: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s is larger than the pinned size %d; starting over", part, size)
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return  # complete from an earlier run; _finish verifies it
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        _handle_http_error(exc, url, part, offset)
        return
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(f"connection failed: {exc}") from exc
    with response:
        mode, total = _open_mode(response, url, part, offset)
        if mode == "wb":
            offset = 0
        if size is not None and total is not None and total > size:
            part.unlink(missing_ok=True)
            raise SizeMismatchError(
                f"{url}: the server announces {total} bytes, the pinned size is {size}; nothing "
                "was kept. If the source changed, check it and update the pinned size and sha256"
            )
        _stream(response, part, mode, offset, total, size)
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retryable(f"short read: {got} of {total} bytes")


def _open_mode(
    response: http.client.HTTPResponse, url: str, part: Path, offset: int
) -> tuple[str, int | None]:
    """("ab" or "wb", total size or None) for a 200 or 206 answer."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = re.fullmatch(
            r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "")
        )
        if match is None or int(match.group(1)) != offset:
            part.unlink(missing_ok=True)
            raise _Retryable(f"bad Content-Range {response.headers.get('Content-Range')!r}")
        total = match.group(3)
        return "ab", int(total) if total != "*" else None
    if offset:
        log.info("%s: server ignored the Range request; restarting from byte 0", url)
    return "wb", int(length) if length is not None else None


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    size: int | None,
) -> None:
    """Append the body to `part`; stop as soon as it passes the pinned `size` (the bad copy is
    set aside, so a server streaming without end costs at most one chunk past the pin)."""
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.removesuffix(".part"),
        disable=progress_disabled(),
    )
    with bar, open(part, mode) as handle:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(f"connection lost after {handle.tell()} bytes: {exc}") from exc
            if not chunk:
                return
            if size is not None and handle.tell() + len(chunk) > size:
                handle.close()
                bad = _set_aside(part)
                raise SizeMismatchError(
                    f"{part.name.removesuffix('.part')}: the server sent more than the pinned "
                    f"{size} bytes; stopped, the partial copy is in {bad}. If the source changed, "
                    "check it and update the pinned size and sha256"
                )
            handle.write(chunk)
            bar.update(len(chunk))


def _handle_http_error(exc: urllib.error.HTTPError, url: str, part: Path, offset: int) -> None:
    """416: the part is complete (or garbage: restart); 5xx/429: retry; other 4xx: fail."""
    exc.close()
    if exc.code == 416:
        match = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") or "")
        if match is not None and int(match.group(1)) == offset:
            return  # we already hold every byte
        part.unlink(missing_ok=True)
        raise _Retryable("range not satisfiable; restarting from byte 0")
    if exc.code >= 500 or exc.code == 429:
        raise _Retryable(f"HTTP {exc.code}")
    if exc.code == 404:
        raise _NotFound(f"{url}: HTTP 404 not found; check the URL or use a mirror ({MIRROR_ENV})")
    raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}")


# ---------------------------------------------------------------- verification


def _finish(remote: RemoteFile, part: Path, final: Path, *, source: str) -> Path:
    """Check size and SHA-256 of `part`, rename it to `final` and write the `.ok` marker."""
    actual_size = part.stat().st_size
    if remote.size is not None and actual_size != remote.size:
        bad = _set_aside(part)
        raise SizeMismatchError(
            f"{remote.filename}: size mismatch (expected {remote.size} bytes, got {actual_size}) "
            f"from {source}; the bad copy was moved to {bad}. Run again to retry; if the source "
            "changed, check it and update the pinned size and sha256"
        )
    actual = sha256_file(part)
    if remote.sha256 is not None and actual != remote.sha256.lower():
        bad = _set_aside(part)
        raise ChecksumError(
            f"{remote.filename}: sha256 mismatch (expected {remote.sha256.lower()}, got {actual}) "
            f"from {source}; the bad copy was moved to {bad}. Run again to retry; if the source "
            "changed, check it and update the pinned sha256"
        )
    if remote.sha256 is None:
        log.info(
            "%s: sha256 %s (%d bytes); pin it in the registry", remote.filename, actual, actual_size
        )
    os.replace(part, final)
    write_text_atomic(marker_path(final), actual + "\n")
    log.info("%s: verified (%d bytes) from %s", final, actual_size, source)
    return final


def _set_aside(part: Path) -> Path:
    """Move a failed download out of the way so the next run starts fresh."""
    bad = part.with_name(part.name.removesuffix(".part") + ".bad")
    os.replace(part, bad)
    return bad
