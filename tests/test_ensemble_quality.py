"""benchmarks/ensemble_quality.py on trained workdirs: its figures are those of the
reports the members and the ensemble wrote, and an ensemble of a model with itself
scores as the model."""

import json
import subprocess
import sys

from cli_runs import REPO, TINY, run_main


def test_a_model_with_itself_reports_the_models_figures(tmp_path):
    model = tmp_path / "a"
    run = run_main(model, *TINY, "--config.train.num_steps=10")
    assert run.returncode == 0, run.stderr[-3000:]
    sources = tmp_path / "sources.txt"
    sources.write_text("abc\nhello\n\nzyxwv\n", encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.ensemble_quality",
            f"--members={model},{model}",
            f"--source_file={sources}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    single = json.loads((model / "eval" / "test" / "metrics.json").read_text())
    ensemble = json.loads((model / "ensemble" / "eval" / "test" / "metrics.json").read_text())
    assert figures["member_scores"][0]["bleu"] == single["bleu"]
    assert figures["ensemble_scores"]["bleu"] == ensemble["bleu"] == single["bleu"]
    assert figures["ensemble_scores"]["chrf"] == single["chrf"]
    assert figures["timed_lines"] == 4 and figures["seeds"] is None
    assert figures["seconds_one_model"] > 0 and figures["time_ratio"] > 0
