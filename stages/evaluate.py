"""DVC stage `evaluate@<key>` (`python -m stages.evaluate <key>`):
score model <key>'s samples and the test split (seed 001's metrics)."""

import sys

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("evaluate", key=sys.argv[1] if len(sys.argv) > 1 else None)
