"""DVC stage `tokenize`: encode every piece with the tokenizer named in params."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("tokenize")
