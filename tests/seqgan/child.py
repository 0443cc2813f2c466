"""Run the `seqgan_oracle` stage in its own process (the resume tests kill it):
`python tests/seqgan/child.py PARAMS_YAML ROOT`."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from midilm.common.paths import Layout
from midilm.seqgan.stage import run_seqgan_oracle

if __name__ == "__main__":
    run_seqgan_oracle(yaml.safe_load(Path(sys.argv[1]).read_text()), Layout(Path(sys.argv[2])))
