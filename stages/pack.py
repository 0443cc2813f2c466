"""DVC stage `pack@<key>` (`python -m stages.pack <key>`):
pack tokenizer <key>'s sequences into Arrow, binidx and JSONL."""

import sys

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("pack", key=sys.argv[1] if len(sys.argv) > 1 else None)
