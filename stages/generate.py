"""DVC stage `generate@<key>` (`python -m stages.generate <key>`):
sample pieces from trained model <key> to MIDI."""

import sys

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("generate", key=sys.argv[1] if len(sys.argv) > 1 else None)
