"""Beam size and alpha are chosen on the validation split, then used on the test split."""

import dataclasses
import json

from s2s_jax import evaluate, tuning
from s2s_jax.config import base_config
from s2s_jax.evaluate import Evaluator
from s2s_jax.experiment import Experiment


def test_the_best_validation_pair_decodes_the_test_split(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=100, eval_size=24, buckets=((24, 24),))
    config.model.update(embed_dim=16, hidden_size=32, attention_dim=16)
    config.train.update(best_metric="chrf")  # varies with the beam even untrained
    config.eval.update(num_heatmaps=0, batch_size=8, tune_beam_sizes=(1, 3),
                       tune_alphas=(0.0, 2.0))
    workdir = str(tmp_path)
    exp = Experiment.create(config, workdir)
    exp.checkpointer.save(0, exp.state)
    exp.checkpointer.wait()

    metrics = evaluate.run(config, workdir)

    with open(tmp_path / "eval" / "validation" / "decoding_grid.json") as f:
        grid = json.load(f)

    def chrf(beam_size, alpha, split):
        trial = dataclasses.replace(exp, config=tuning._with_beam(config, beam_size, alpha))
        return Evaluator(trial, split)(exp.state.params).metrics["chrf"]

    assert [(r["beam_size"], r["alpha"]) for r in grid["grid"]] == [
        (1, 0.0), (1, 2.0), (3, 0.0), (3, 2.0)]
    for row in grid["grid"]:
        assert row["chrf"] == chrf(row["beam_size"], row["alpha"], "validation")
    assert len({row["chrf"] for row in grid["grid"]}) > 1  # the choice is not a tie
    chosen = grid["chosen"]
    assert chosen["chrf"] == max(row["chrf"] for row in grid["grid"])
    assert metrics["chrf"] == chrf(chosen["beam_size"], chosen["alpha"], "test")
