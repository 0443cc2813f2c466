"""The wheels the GPU check carries to a device machine that has no network.

    python benchmarks/gpu_wheels.py fetch [--dest .gpu_wheels]     # here: download / build them
    python benchmarks/gpu_wheels.py install --target DIR           # there: install what is missing

`fetch` reads benchmarks/gpu_wheels.txt (priority order) and puts each wheel for CPython 3.12 on
manylinux x86_64 into `--dest`: `binary` ones are PyPI's wheels, `build` ones are built here from
the sdist (they must come out pure Python), `slim` ones (bitsandbytes) are PyPI's wheel without
the GPU libraries of other CUDA versions, with RECORD rewritten. A wheel that would push the
working tree that travels (tracked and untracked files that git does not ignore, plus the wheels)
past 64 MiB is left out, and `manifest.json` says so.

`install` installs every carried wheel whose version the running Python does not already have
into `--target` (one `pip install --no-index --no-deps --target`), to be put first on PYTHONPATH,
and writes what it did to `--report`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WANTED = REPO / "benchmarks" / "gpu_wheels.txt"
IMAGE = REPO / "benchmarks" / "gpu_image_packages.txt"
DEST = REPO / ".gpu_wheels"
TRAVEL_LIMIT = 64 * 2**20  # what travels to the device machine: working tree + carried paths
MARGIN = 2**20  # room for the tree to grow a little between the fetch and the call
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux1_x86_64"]
HOW = ("binary", "build", "slim")
# bitsandbytes: keep the CPU library and those for CUDA 13.x (the image's torch is cu130)
SLIM_KEEP = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")


@dataclass(frozen=True)
class Wanted:
    name: str
    version: str
    how: str
    why: str


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_wanted(path: Path = WANTED) -> list[Wanted]:
    """The carried wheels in priority order; a malformed line is an error naming it."""
    wanted = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or "==" not in parts[0] or parts[1] not in HOW:
            raise ValueError(f"{path}:{number}: expected 'name==version {'|'.join(HOW)} why'")
        name, version = parts[0].split("==", 1)
        wanted.append(Wanted(name, version, parts[1], parts[2]))
    return wanted


def read_image_packages(path: Path = IMAGE) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {normalize(x) for x in lines if x.strip() and not x.startswith("#")}


def wheel_name_version(path: Path) -> tuple[str, str]:
    """(normalized name, version) from a wheel's file name."""
    name, version = path.name.split("-")[:2]
    return normalize(name), version


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the files that travel: tracked, and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return sum(
        (repo / os.fsdecode(p)).stat().st_size
        for p in listed
        if p and (repo / os.fsdecode(p)).is_file()
    )


def fit_in_budget(sizes: Sequence[tuple[str, int]], budget: int) -> tuple[list[str], list[str]]:
    """Names kept in order while their sizes add up to at most `budget`, and those left out (a
    later, smaller one may still fit)."""
    kept, left, used = [], [], 0
    for name, size in sizes:
        if used + size <= budget:
            kept.append(name)
            used += size
        else:
            left.append(name)
    return kept, left


def slim_wheel(path: Path, drop: Callable[[str], bool], out_dir: Path) -> Path:
    """A copy of wheel `path` in `out_dir` without the members `drop` selects, its RECORD
    rewritten with the sha256 and size of every member kept (so pip installs it as any wheel)."""
    out = out_dir / path.name
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as sink:
        record_name = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
        rows = []
        for info in source.infolist():
            if info.filename == record_name or drop(info.filename):
                continue
            data = source.read(info)
            sink.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append([info.filename, f"sha256={digest.decode()}", str(len(data))])
        rows.append([record_name, "", ""])
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        sink.writestr(record_name, text.getvalue())
    return out


def drop_other_gpu_libraries(member: str) -> bool:
    """bitsandbytes' native libraries other than CPU and CUDA 13.x."""
    return "/libbitsandbytes_" in member and member.endswith(".so") and not SLIM_KEEP.search(member)


def _pip(python: str, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [python, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def obtain(wanted: Wanted, work: Path, python: str) -> Path:
    """The wheel of `wanted` for CPython 3.12 manylinux x86_64, in `work`."""
    folder = work / normalize(wanted.name)
    folder.mkdir(parents=True)
    spec = f"{wanted.name}=={wanted.version}"
    if wanted.how == "build":  # pure Python from the sdist (built with this Python)
        env = dict(os.environ, DS_BUILD_OPS="0")  # deepspeed: no compiled op
        _pip(python, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), spec,
             env=env)  # fmt: skip
    else:
        platforms = [a for p in PLATFORMS for a in ("--platform", p)]
        _pip(python, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
             "3.12", "--implementation", "cp", *platforms, "-d", str(folder), spec)  # fmt: skip
    (wheel,) = folder.glob("*.whl")
    if wanted.how == "build" and not wheel.name.endswith("-py3-none-any.whl"):
        raise RuntimeError(f"{wheel.name}: built for this machine, not pure Python")
    if wanted.how == "slim":
        slim = folder / "slim"
        slim.mkdir()
        wheel = slim_wheel(wheel, drop_other_gpu_libraries, slim)
    return wheel


def fetch(dest: Path = DEST, python: str = sys.executable) -> dict[str, Any]:
    """Fill `dest` with the wanted wheels that fit; writes and returns dest/manifest.json."""
    wanted = read_wanted()
    tree = tree_bytes()
    budget = TRAVEL_LIMIT - MARGIN - tree
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        obtained, failed = [], []
        for w in wanted:
            try:
                obtained.append((w, obtain(w, work, python)))
            except Exception as exc:
                failed.append({**asdict(w), "reason": f"could not be obtained: {exc}"})
        sizes = [(w.name, wheel.stat().st_size) for w, wheel in obtained]
        kept, _ = fit_in_budget(sizes, budget)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        carried, skipped = [], list(failed)
        for w, wheel in obtained:
            size = wheel.stat().st_size
            if w.name in kept:
                shutil.copy2(wheel, dest / wheel.name)
                carried.append({**asdict(w), "file": wheel.name, "bytes": size})
            else:
                reason = f"does not fit: {size} B over what is left of {budget} B"
                skipped.append({**asdict(w), "bytes": size, "reason": reason})
    manifest = {
        "travel_limit_bytes": TRAVEL_LIMIT,
        "tree_bytes": tree,
        "margin_bytes": MARGIN,
        "wheel_budget_bytes": budget,
        "wheel_bytes": sum(c["bytes"] for c in carried),
        "carried": carried,
        "not_carried": skipped,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install(wheels: Path, target: Path, python: str = sys.executable) -> dict[str, Any]:
    """Install the carried wheels this Python lacks at their version into `target`."""
    manifest_path = wheels / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    report: dict[str, Any] = {
        "wheels_dir": str(wheels),
        "installed": [],
        "image_has": [],
        "not_carried": (manifest or {}).get("not_carried"),
        "wheel_bytes": (manifest or {}).get("wheel_bytes"),
    }
    files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not files:
        report["note"] = f"no wheels in {wheels}: only the image's packages are there"
        return report
    todo = []
    for wheel in files:
        name, version = wheel_name_version(wheel)
        have = installed_version(name)
        entry = {"name": name, "version": version, "image_version": have}
        if have == version:
            report["image_has"].append(entry)
        else:
            report["installed"].append(entry)
            todo.append(str(wheel))
    if todo:
        target.mkdir(parents=True, exist_ok=True)
        _pip(python, "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--no-cache-dir", "--upgrade", "--target", str(target), *todo)  # fmt: skip
    report["target"] = str(target)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download / build the wheels into --dest")
    get.add_argument("--dest", type=Path, default=DEST)
    put = sub.add_parser("install", help="install the carried wheels the image lacks")
    put.add_argument("--wheels", type=Path, default=DEST)
    put.add_argument("--target", type=Path, required=True)
    put.add_argument("--report", type=Path, required=True, help="JSON of what was installed")
    args = parser.parse_args()
    if args.command == "fetch":
        manifest = fetch(args.dest)
        for entry in manifest["carried"]:
            print(f"carried  {entry['file']:<72} {entry['bytes'] / 2**20:6.2f} MiB")
        for entry in manifest["not_carried"]:
            print(f"left out {entry['name']}=={entry['version']}: {entry['reason']}")
        print(
            f"wheels {manifest['wheel_bytes'] / 2**20:.2f} MiB + tree "
            f"{manifest['tree_bytes'] / 2**20:.2f} MiB of {TRAVEL_LIMIT / 2**20:.0f} MiB"
        )
        return
    try:
        report = install(args.wheels, args.target)
    except Exception as exc:  # the check still runs, on the image's packages
        report = {"error": str(exc)}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
