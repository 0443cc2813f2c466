"""Where every stage reads and writes, relative to the repository root (DVC's working dir).

One place for these paths, so stages, the CLI, tests and docs agree on the DAG's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLES_FILE = "samples.json"  # a sample set's listing in outputs/samples/<key>/ (generate)


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    # datasets: canonical MIDI files, manifest and quarantine report
    @property
    def raw_dir(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def raw_manifest(self) -> Path:
        return self.raw_dir / "manifest.parquet"

    @property
    def quarantine_report(self) -> Path:
        return self.raw_dir / "quarantine_report.parquet"

    # split: the manifest with a `split` column
    @property
    def split_dir(self) -> Path:
        return self.root / "data" / "split"

    @property
    def split_manifest(self) -> Path:
        return self.split_dir / "manifest.parquet"

    # augment: augmented train copies + manifest of every piece to tokenize
    @property
    def augment_dir(self) -> Path:
        return self.root / "data" / "augmented"

    @property
    def augment_manifest(self) -> Path:
        return self.augment_dir / "manifest.parquet"

    # tokenize / pack: per tokenizer
    def tokens_dir(self, tokenizer: str) -> Path:
        return self.root / "data" / "tokens" / tokenizer

    def packed_dir(self, tokenizer: str) -> Path:
        return self.root / "data" / "packed" / tokenizer

    # train / generate / evaluate: per model
    def model_dir(self, model: str) -> Path:
        return self.root / "models" / model

    def weights_dir(self, model: str) -> Path:
        """save_pretrained output: model.safetensors + config.json, or a LoRA adapter."""
        return self.model_dir(model) / "weights"

    def samples_dir(self, model: str) -> Path:
        return self.root / "outputs" / "samples" / model

    def audio_dir(self, model: str) -> Path:
        """Rendered samples and the pieces they continued (FLAC, MP3, audio.json)."""
        return self.root / "outputs" / "audio" / model

    @property
    def lofi_dir(self) -> Path:
        return self.root / "outputs" / "lofi"

    @property
    def reference_metrics_dir(self) -> Path:
        """The test split's metrics, computed once (the evaluate stages compare against it)."""
        return self.root / "outputs" / "reference"

    def metrics_dir(self, model: str) -> Path:
        return self.root / "outputs" / "metrics" / model

    def speed_file(self, stage: str, key: str) -> Path:
        """A stage's wall-clock measurement, kept out of its deterministic outputs."""
        return self.root / "outputs" / "speed" / f"{stage}-{key}.json"

    def seqgan_dir(self, task: str) -> Path:
        """SeqGAN's task `oracle` or `music`: curve.csv and metrics.json."""
        return self.root / "outputs" / "seqgan" / task

    @property
    def complexity_file(self) -> Path:
        return self.root / "outputs" / "complexity" / "complexity.json"

    # report
    @property
    def tables_dir(self) -> Path:
        return self.root / "reports" / "tables"

    @property
    def site_dir(self) -> Path:
        return self.root / "reports" / "site"

    @property
    def ratings_file(self) -> Path:
        """The committed listening-test ratings (`midilm listen export`), read by T8."""
        return self.root / "reports" / "listening" / "ratings.csv"


def relpath(path: Path, root: Path = Path(".")) -> str:
    """A path as stored in manifests: POSIX, relative to the repository root."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
