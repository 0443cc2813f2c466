"""Run the `datasets` stage in this process: `python run_stage.py PARAMS_JSON ROOT`.

The hostile-corpus test starts it as a process that cannot bypass file permissions (a root
process without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so chmod 000 denies it as it denies
any user; its exit status says whether one input stopped the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from midilm.common.paths import Layout
from midilm.datasets.stage import run_datasets

if __name__ == "__main__":
    params = OmegaConf.create(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    run_datasets(params, Layout(root=Path(sys.argv[2])))
