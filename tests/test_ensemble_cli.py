"""Ensembles from the command line, the Python API and benchmarks/ensemble_quality.py:
eval writes the ensemble's report beside the first model's, an ensemble of a model with
itself translates and scores as the model, the benchmark's figures are those of the
reports, and models with other vocabularies or other modes are refused in one line."""

import json
import shutil
import subprocess
import sys

import pytest
from cli_runs import REPO, TINY, run_main

import s2s_jax

SOURCES = ["abc", "", "hello", "zyxwv"]
STEPS = "--config.train.num_steps=10"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two models of the same vocabulary (LSTM, and GRU with another seed) and one of
    another target vocabulary (a's, one token replaced)."""
    root = tmp_path_factory.mktemp("ensemble")
    runs = {
        "a": [*TINY, STEPS],
        "b": [*TINY, STEPS, "--config.seed=1", "--config.model.cell=gru"],
    }
    for name, flags in runs.items():
        run = run_main(root / name, *flags)
        assert run.returncode == 0, run.stderr[-3000:]
    shutil.copytree(root / "a", root / "other_vocab")
    vocab = json.loads((root / "other_vocab" / "target_vocab.json").read_text())
    vocab["tokens"][-1] = "#"
    (root / "other_vocab" / "target_vocab.json").write_text(json.dumps(vocab))
    return root


def _translate(workdir, *flags):
    run = run_main(workdir, "--mode=translate", *flags, stdin="\n".join(SOURCES) + "\n")
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.split("\n")[:-1]


def test_eval_writes_the_ensembles_report_beside_the_first_model(models):
    single = (models / "a" / "eval" / "test" / "metrics.json").read_text()
    run = run_main(models / "a", "--mode=eval", f"--ensemble={models / 'b'}")
    assert run.returncode == 0, run.stderr[-3000:]
    directory = models / "a" / "ensemble"
    members = json.loads((directory / "members.json").read_text())["members"]
    assert members == [str(models / "a"), str(models / "b")]
    assert len((directory / "eval" / "test" / "hypotheses.txt").read_text().splitlines()) == 20
    assert "bleu" in json.loads((directory / "eval" / "test" / "metrics.json").read_text())
    assert (models / "a" / "eval" / "test" / "metrics.json").read_text() == single


@pytest.mark.parametrize("decoding", [[], ["--config.eval.decoder=beam"]])
def test_a_model_with_itself_translates_as_the_model(models, decoding):
    alone = _translate(models / "a", *decoding)
    assert _translate(models / "a", f"--ensemble={models / 'a'}", *decoding) == alone


def test_the_python_api_decodes_as_the_command_line(models):
    command_line = _translate(models / "a", f"--ensemble={models / 'b'}")
    ensemble = s2s_jax.load([str(models / "a"), str(models / "b")])
    assert ensemble.translate(SOURCES) == command_line


def test_another_vocabulary_is_one_error_line(models):
    other = models / "other_vocab"
    run = run_main(models / "a", "--mode=translate", f"--ensemble={other}", stdin="ab\n")
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: {other}: its target vocabulary")
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mode=export", "--export_dir=x"], "--ensemble is for --mode=eval or translate"),
        (["--mode=translate"], "neither an export nor a trained workdir"),
    ],
)
def test_misuse_is_one_error_line(models, flags, message):
    run = run_main(models / "a", *flags, f"--ensemble={models / 'missing'}", stdin="ab\n")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_the_benchmark_reports_the_figures_of_the_reports(models, tmp_path):
    """benchmarks/ensemble_quality.py on trained workdirs, a model with itself."""
    model = tmp_path / "a"
    shutil.copytree(models / "a", model)
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
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
    assert figures["timed_lines"] == len(SOURCES) and figures["seeds"] is None
    assert figures["seconds_one_model"] > 0 and figures["time_ratio"] > 0
