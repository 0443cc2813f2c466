"""The sbatch templates in infra/slurm/templates and how the launcher fills them in.

A template is a batch script with placeholders: `{{name}}` is replaced by a value (True/False
become 1/0, None the empty string), a line ending in one or more `{{?name}}` guards is kept only
when every guarded value is set (not None, False, 0 or ""), and a line holding nothing but one
placeholder whose value is empty is dropped (that is how optional blocks of lines disappear).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

TEMPLATES_ENV = "MIDILM_SLURM_TEMPLATES"
TEMPLATE_NAMES = ("cpu", "gpu", "array")
REPO_TEMPLATES = Path("infra/slurm/templates")
_SOURCE_TEMPLATES = Path(__file__).resolve().parents[3] / REPO_TEMPLATES

_GUARD = re.compile(r"\s*\{\{\?([a-z_]+)\}\}")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def templates_dir(workdir: Path) -> Path:
    """$MIDILM_SLURM_TEMPLATES, else the repository's infra/slurm/templates (the one in `workdir`,
    else the one beside this package's source checkout)."""
    if os.environ.get(TEMPLATES_ENV):
        return Path(os.environ[TEMPLATES_ENV])
    local = workdir / REPO_TEMPLATES
    return local if local.is_dir() else _SOURCE_TEMPLATES


def template_path(name: str, workdir: Path) -> Path:
    if name not in TEMPLATE_NAMES:
        raise ValueError(
            f"unknown sbatch template {name!r}; use one of {', '.join(TEMPLATE_NAMES)}"
        )
    path = templates_dir(workdir) / f"{name}.sbatch"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: sbatch template missing; set {TEMPLATES_ENV} to a folder holding "
            f"{', '.join(n + '.sbatch' for n in TEMPLATE_NAMES)} (infra/slurm/templates)"
        )
    return path


def render(template: Path, values: Mapping[str, object]) -> str:
    """The template with every placeholder filled in; a KeyError names a value it lacks."""
    out: list[str] = []
    for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), start=1):
        guards = _GUARD.findall(line)
        if guards:
            if not all(_lookup(values, name, template, number) for name in guards):
                continue
            line = _GUARD.sub("", line).rstrip()
        whole = _PLACEHOLDER.fullmatch(line.strip())
        for name in _PLACEHOLDER.findall(line):
            _lookup(values, name, template, number)
        line = _PLACEHOLDER.sub(lambda m: _text(values[m[1]]), line)
        if whole and not line.strip():
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def placeholders(template: Path) -> set[str]:
    """Every name the template asks for."""
    text = template.read_text(encoding="utf-8")
    return set(_PLACEHOLDER.findall(text)) | set(re.findall(r"\{\{\?([a-z_]+)\}\}", text))


def _lookup(values: Mapping[str, object], name: str, template: Path, line: int) -> object:
    if name not in values:
        raise KeyError(f"{template}:{line}: no value for placeholder {name!r}")
    return values[name]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
