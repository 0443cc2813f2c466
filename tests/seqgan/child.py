"""Run one SeqGAN oracle experiment in its own process (the resume tests kill it):
`python tests/seqgan/child.py PARAMS_YAML OUT_DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from midilm.seqgan.oracle import run_oracle_experiment
from midilm.specs.seqgan import seqgan_spec

if __name__ == "__main__":
    params = yaml.safe_load(Path(sys.argv[1]).read_text())
    run_oracle_experiment(seqgan_spec(params), Path(sys.argv[2]))
