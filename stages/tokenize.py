"""DVC stage `tokenize@<key>`: encode every piece with tokenizer `<key>` of params.tokenizers
(`python -m stages.tokenize <key>`; without a key, the training tokenizer)."""

import sys

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("tokenize", key=sys.argv[1] if len(sys.argv) > 1 else None)
