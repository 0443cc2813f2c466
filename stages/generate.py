"""DVC stage `generate`: sample pieces from the trained model and write MIDI."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("generate")
