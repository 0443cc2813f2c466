"""DVC stage `train`: train the language model named in params on the packed data."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("train")
