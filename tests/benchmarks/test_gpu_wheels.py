"""The carried-wheel tool: the wanted list parses, the size budget keeps wheels in priority
order, and a slimmed wheel (bitsandbytes' other CUDA libraries dropped) still installs with pip,
its RECORD matching every file it holds."""

from __future__ import annotations

import base64
import csv
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_wheels  # noqa: E402


def test_the_wanted_list_names_each_package_once_with_a_known_way() -> None:
    wanted = gpu_wheels.read_wanted()
    names = [gpu_wheels.normalize(w.name) for w in wanted]
    assert len(names) == len(set(names))
    assert {"deepspeed", "bitsandbytes", "transformers", "omegaconf", "symusic"} <= set(names)
    image = gpu_wheels.read_image_packages()
    assert "torch" in image and "accelerate" in image and "deepspeed" not in image


def test_the_budget_keeps_wheels_in_order_and_lets_a_later_small_one_fit() -> None:
    kept, left = gpu_wheels.fit_in_budget([("a", 40), ("b", 50), ("c", 10), ("d", 1)], 55)
    assert kept == ["a", "c", "d"] and left == ["b"]


def _real_wheel(tmp_path: Path) -> Path:
    """A wheel built by pip from a package holding one native library per CUDA version."""
    src = tmp_path / "src"
    package = src / "bitsandbytes"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VERSION = '0.0.1'\n")
    for lib in ("cpu", "cuda118", "cuda126", "cuda130", "cuda132", "rocm64"):
        (package / f"libbitsandbytes_{lib}.so").write_bytes(lib.encode() * 1000)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "bitsandbytes"\nversion = "0.0.1"\n'
        '[tool.setuptools.package-data]\nbitsandbytes = ["*.so"]\n'
    )
    out = tmp_path / "built"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


def test_a_slimmed_wheel_keeps_cuda13_and_cpu_and_installs(tmp_path: Path) -> None:
    slim_dir = tmp_path / "slim"
    slim_dir.mkdir()
    slim = gpu_wheels.slim_wheel(
        _real_wheel(tmp_path), gpu_wheels.drop_other_gpu_libraries, slim_dir
    )
    with zipfile.ZipFile(slim) as wheel:
        libs = sorted(n.rsplit("/", 1)[1] for n in wheel.namelist() if n.endswith(".so"))
        record = next(n for n in wheel.namelist() if n.endswith("RECORD"))
        rows = list(csv.reader(wheel.read(record).decode().splitlines()))
        for name, digest, size in rows:
            if name == record:
                continue
            data = wheel.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}" and int(size) == len(data)
    assert libs == [
        "libbitsandbytes_cpu.so",
        "libbitsandbytes_cuda130.so",
        "libbitsandbytes_cuda132.so",
    ]
    assert {r[0] for r in rows} == set(zipfile.ZipFile(slim).namelist())
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
         str(target), str(slim)],
        check=True, capture_output=True,
    )  # fmt: skip
    installed = sorted(p.name for p in (target / "bitsandbytes").glob("*.so"))
    assert installed == libs


def test_install_without_carried_wheels_reports_it(tmp_path: Path) -> None:
    report = gpu_wheels.install(tmp_path / "none", tmp_path / "site")
    assert report["installed"] == [] and "no wheels" in report["note"]
