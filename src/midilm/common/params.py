"""Read the committed params.yaml (composed from conf/ by Hydra) as an OmegaConf config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = PARAMS_FILE) -> DictConfig:
    """Load params.yaml; fail with the fix when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: params file not found. Run from the repository root, or regenerate it "
            "with `midilm params compose`."
        )
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return cfg


def to_plain(cfg: DictConfig) -> dict:
    """A plain dict (for JSON, wandb, hashing)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
