"""DVC stage `train@<key>` (`python -m stages.train <key>`):
train model <key> of params `models` on its packed data."""

import sys

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("train", key=sys.argv[1] if len(sys.argv) > 1 else None)
