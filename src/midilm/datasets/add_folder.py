"""`midilm datasets add-folder`: a dataset file for a folder of the user's own files."""

from __future__ import annotations

from pathlib import Path

import yaml

from midilm.common.compose import CONF_DIR, closest_composition, compose_params
from midilm.common.io import write_text_atomic
from midilm.specs.dataset import source_spec

TEMPLATE = """\
# A folder of your own MIDI, ABC, GuitarPro and JAMS files (`midilm datasets add-folder`).
# Every other key (filters, dedup, workers, ...) comes from conf/dataset/base.yaml; set one
# here to change it for this dataset. Build it: dvc exp run -S dataset={name}
"""


def write_folder_dataset(
    name: str, folder: Path, license: str = "", conf_dir: Path = CONF_DIR, force: bool = False
) -> Path:
    """Write `<conf_dir>/dataset/<name>.yaml` naming only the folder (absolute path) and its
    license; refuse a bad name, a missing folder or (without `force`) an existing file."""
    folder = Path(folder).expanduser().resolve()
    entry = {"path": str(folder), "license": license}
    source_spec(name, entry, f"dataset name {name!r}", "folders")  # the name rules, at once
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; give the folder holding your files")
    target = conf_dir / "dataset" / f"{name}.yaml"
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pick another name or pass --force")
    body = yaml.safe_dump({"name": name, "folders": {name: entry}}, sort_keys=False)
    write_text_atomic(target, TEMPLATE.format(name=name) + body)
    return target


def use_folder_dataset(
    name: str, params: Path = Path("params.yaml"), conf_dir: Path = CONF_DIR
) -> tuple[tuple[str, ...], list[str]]:
    """Recompose `params` with `dataset=<name>` and the other choices it was composed with.
    Returns the overrides used and the keys of `params` (outside `dataset`) that no
    composition gave, which the rewrite replaced."""
    current = yaml.safe_load(params.read_text(encoding="utf-8")) if params.exists() else None
    match = closest_composition(current, conf_dir) if isinstance(current, dict) else None
    kept = match.overrides if match else ()
    overrides = (*(o for o in kept if not o.startswith("dataset=")), f"dataset={name}")
    compose_params(params, conf_dir, overrides)
    lost = [k for k in (match.differences if match else {}) if not k.startswith("dataset.")]
    return overrides, lost
