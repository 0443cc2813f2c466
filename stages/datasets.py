"""DVC stage `datasets`: build the selected datasets as MIDI + manifest; quarantine bad files."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("datasets")
