"""DVC stage `report`: write the thesis tables (Markdown, CSV, LaTeX) to reports/tables."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("report")
