"""Ensembles from the command line and the Python API: eval writes the ensemble's
report beside the first model's, an ensemble of a model with itself translates as the
model, and models with other vocabularies or other modes are refused in one line."""

import json

import pytest
from cli_runs import TINY, run_main

import s2s_jax

SOURCES = ["abc", "", "hello", "zyxwv"]
STEPS = "--config.train.num_steps=10"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two models of the same vocabulary (LSTM, and GRU with another seed) and one of
    another task's vocabulary."""
    root = tmp_path_factory.mktemp("ensemble")
    runs = {
        "a": [*TINY, STEPS],
        "b": [*TINY, STEPS, "--config.seed=1", "--config.model.cell=gru"],
        "dates": ["--config=configs/synthetic.py:dates", *TINY[1:], STEPS],
    }
    for name, flags in runs.items():
        run = run_main(root / name, *flags)
        assert run.returncode == 0, run.stderr[-3000:]
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
    run = run_main(models / "a", "--mode=translate", f"--ensemble={models / 'dates'}", stdin="ab\n")
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "vocabulary differs" in run.stderr and "dates" in run.stderr
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
