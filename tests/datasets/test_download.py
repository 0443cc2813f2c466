"""Downloads against a real HTTP server on 127.0.0.1; archives are built from shared datasets."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
from http_server import FileServer, closed_port_url

from midilm.datasets.download import (
    ChecksumError,
    DownloadError,
    RemoteFile,
    SizeMismatchError,
    download,
    marker_path,
    mirror_tree,
    read_manifest,
)
from midilm.datasets.hub import HubUnavailableError, hub_snapshot

FAST = {"retries": 3, "backoff_s": 0.01, "timeout_s": 10}


@pytest.fixture(scope="module")
def groove_zip(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real archive: the MIDI files of Groove's drummer1/session1 (about 1.8 MB, stored)."""
    session = shared_datasets / "groove" / "drummer1" / "session1"
    path = tmp_path_factory.mktemp("served") / "groove-session1.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for midi in sorted(session.glob("*.mid")):
            zf.write(midi, f"groove/drummer1/session1/{midi.name}")
    return path


@pytest.fixture()
def server(groove_zip: Path):
    with FileServer(groove_zip.parent) as srv:
        yield srv


def pinned(archive: Path, url: str) -> RemoteFile:
    data = archive.read_bytes()
    return RemoteFile(url, archive.name, len(data), hashlib.sha256(data).hexdigest())


def test_full_download_is_verified_and_marked(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    remote = pinned(groove_zip, server.url(groove_zip.name))
    path = download(remote, tmp_path, **FAST)
    assert path == tmp_path / groove_zip.name
    assert path.read_bytes() == groove_zip.read_bytes()
    assert marker_path(path).read_text().strip() == remote.sha256
    assert [(r.range, r.status) for r in server.requests] == [(None, 200)]
    assert not (tmp_path / f"{groove_zip.name}.part").exists()


def test_cut_transfer_resumes_with_a_range_request(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    remote = pinned(groove_zip, server.url(groove_zip.name))
    half = remote.size // 2
    server.cut_after = half
    path = download(remote, tmp_path, **FAST)
    assert path.read_bytes() == groove_zip.read_bytes()
    first, second = server.requests
    assert (first.range, first.bytes_sent) == (None, half)
    assert (second.range, second.status) == (f"bytes={half}-", 206)
    assert server.bytes_sent < 2 * remote.size


def test_server_ignoring_range_restarts_cleanly(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    remote = pinned(groove_zip, server.url(groove_zip.name))
    server.cut_after = 1000
    server.ignore_range = True
    path = download(remote, tmp_path, **FAST)
    assert path.read_bytes() == groove_zip.read_bytes()
    assert [(r.range, r.status) for r in server.requests] == [(None, 200), ("bytes=1000-", 200)]


def test_complete_part_answered_416_is_kept(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    remote = pinned(groove_zip, server.url(groove_zip.name))
    shutil.copyfile(groove_zip, tmp_path / f"{groove_zip.name}.part")
    unsized = RemoteFile(remote.url, remote.filename, None, remote.sha256)
    download(unsized, tmp_path, **FAST)
    assert [r.status for r in server.requests] == [416]
    assert marker_path(tmp_path / groove_zip.name).read_text().strip() == remote.sha256


def test_server_error_is_retried(server: FileServer, groove_zip: Path, tmp_path: Path) -> None:
    server.fail_status = 503
    download(pinned(groove_zip, server.url(groove_zip.name)), tmp_path, **FAST)
    assert [r.status for r in server.requests] == [503, 200]


def test_missing_file_and_dead_host_fail_clearly(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        download(RemoteFile(server.url("nope.zip"), "nope.zip"), tmp_path, **FAST)
    with pytest.raises(DownloadError, match="failed after 2 retries"):
        download(RemoteFile(closed_port_url(), "x.zip"), tmp_path, retries=2, backoff_s=0.01)


def test_checksum_mismatch_names_file_and_both_sums(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    good = pinned(groove_zip, server.url(groove_zip.name))
    wrong = RemoteFile(good.url, good.filename, good.size, "0" * 64)
    with pytest.raises(ChecksumError) as info:
        download(wrong, tmp_path, **FAST)
    message = str(info.value)
    assert groove_zip.name in message and "0" * 64 in message and good.sha256 in message
    assert "Run again" in message
    assert not (tmp_path / good.filename).exists()
    assert not marker_path(tmp_path / good.filename).exists()
    assert (tmp_path / f"{good.filename}.bad").exists()  # moved aside, not resumed from
    assert download(good, tmp_path, **FAST).read_bytes() == groove_zip.read_bytes()


def test_size_mismatch_fails(server: FileServer, groove_zip: Path, tmp_path: Path) -> None:
    good = pinned(groove_zip, server.url(groove_zip.name))
    wrong = RemoteFile(good.url, good.filename, good.size + 1, good.sha256)
    with pytest.raises(
        SizeMismatchError, match=rf"expected {good.size + 1} bytes, got {good.size}"
    ):
        download(wrong, tmp_path, **FAST)
    assert not (tmp_path / good.filename).exists()


def test_rerun_with_marker_makes_no_request(
    groove_zip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FileServer(groove_zip.parent) as srv:
        remote = pinned(groove_zip, srv.url(groove_zip.name))
        download(remote, tmp_path, **FAST)
        download(remote, tmp_path, **FAST)
        assert len(srv.requests) == 1
    assert download(remote, tmp_path, **FAST) == tmp_path / groove_zip.name  # server gone


def test_unpinned_download_records_the_computed_sum(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    path = download(RemoteFile(server.url(groove_zip.name), groove_zip.name), tmp_path, **FAST)
    assert marker_path(path).read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_mirror_dir_hit_needs_no_server(
    groove_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = pinned(groove_zip, closed_port_url(groove_zip.name))
    path = download(remote, tmp_path / "a", mirror=str(groove_zip.parent), **FAST)
    assert path.read_bytes() == groove_zip.read_bytes()
    monkeypatch.setenv("MIDILM_MIRROR", str(groove_zip.parent))
    assert download(remote, tmp_path / "b", **FAST).read_bytes() == groove_zip.read_bytes()


def test_mirror_dir_with_bad_copy_fails(groove_zip: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / groove_zip.name).write_bytes(groove_zip.read_bytes()[:-1] + b"!")
    remote = pinned(groove_zip, closed_port_url(groove_zip.name))
    with pytest.raises(ChecksumError, match=str(mirror)):
        download(remote, tmp_path / "dest", mirror=str(mirror), **FAST)
    assert (mirror / groove_zip.name).exists()  # the mirror is never touched


def test_mirror_dir_miss_falls_back_to_url(
    server: FileServer, groove_zip: Path, tmp_path: Path
) -> None:
    remote = pinned(groove_zip, server.url(groove_zip.name))
    download(remote, tmp_path / "dest", mirror=str(tmp_path), **FAST)
    assert len(server.requests) == 1


def test_mirror_url_hit(groove_zip: Path, tmp_path: Path) -> None:
    remote = pinned(groove_zip, closed_port_url(groove_zip.name))
    with FileServer(groove_zip.parent) as mirror:
        path = download(remote, tmp_path, mirror=mirror.base_url + "/", **FAST)
        assert [r.path for r in mirror.requests] == [f"/{groove_zip.name}"]
    assert path.read_bytes() == groove_zip.read_bytes()


def test_mirror_tree_verifies_the_shared_groove_copy(shared_datasets: Path) -> None:
    assert mirror_tree(shared_datasets, "groove") == shared_datasets / "groove"
    assert mirror_tree(shared_datasets, "no_such_dataset") is None
    assert mirror_tree("http://127.0.0.1:1/", "groove") is None
    assert mirror_tree(None, "groove") is None


def test_mirror_tree_detects_a_tampered_copy(shared_datasets: Path, tmp_path: Path) -> None:
    manifest = read_manifest(shared_datasets / "MANIFEST.sha256")
    picked = [
        "groove/info.csv",
        *sorted(k for k in manifest if k.startswith("groove/drummer1/"))[:3],
    ]
    for rel in picked:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_datasets / rel, tmp_path / rel)
    lines = [f"{manifest[rel]}  ./{rel}\n" for rel in picked]
    (tmp_path / "MANIFEST.sha256").write_text("".join(lines))
    assert mirror_tree(tmp_path, "groove") == tmp_path / "groove"

    victim = tmp_path / picked[-1]
    victim.write_bytes(victim.read_bytes() + b"\x00")
    actual = hashlib.sha256(victim.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        mirror_tree(tmp_path, "groove")
    assert str(victim) in str(info.value)
    assert manifest[picked[-1]] in str(info.value) and actual in str(info.value)


def test_hub_offline_without_cache_says_how_to_provide_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(HubUnavailableError) as info:
        hub_snapshot("midilm-tests/no-such-dataset", revision="main")
    message = str(info.value)
    assert "offline mode is on" in message and "'midilm-tests/no-such-dataset'" in message
    assert str(tmp_path / "hf" / "hub") in message and "MIDILM_MIRROR" in message


def test_hub_unreachable_without_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url("").rstrip("/"))
    with pytest.raises(HubUnavailableError, match="Hub is unreachable"):
        hub_snapshot("midilm-tests/no-such-dataset", cache_dir=tmp_path / "cache")


def test_hub_offline_uses_a_pre_downloaded_cache(
    shared_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "datasets--midilm-tests--jsb"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copyfile(shared_datasets / "jsb_chorales" / "README.md", snapshot / "README.md")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = hub_snapshot("midilm-tests/jsb", revision="main", cache_dir=tmp_path / "cache")
    assert path == snapshot and (path / "README.md").is_file()


def test_verified_file_without_marker_is_adopted_without_network(
    groove_zip: Path, tmp_path: Path
) -> None:
    shutil.copyfile(groove_zip, tmp_path / groove_zip.name)  # killed before the marker
    remote = pinned(groove_zip, closed_port_url(groove_zip.name))
    assert download(remote, tmp_path, **FAST) == tmp_path / groove_zip.name
    assert marker_path(tmp_path / groove_zip.name).read_text().strip() == remote.sha256
    with pytest.raises(ValueError, match="plain file name"):
        download(RemoteFile(remote.url, "../x.zip"), tmp_path)
