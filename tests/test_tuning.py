"""Beam size and alpha are chosen on the validation split, then used on the test split."""

import dataclasses
import json

from s2s_jax import evaluate, tuning
from s2s_jax.config import base_config
from s2s_jax.evaluate import Evaluator
from s2s_jax.experiment import Experiment
from s2s_jax.train import train_and_evaluate


def test_the_best_validation_pair_decodes_the_test_split(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=300, eval_size=24, batch_size=16,
                       buckets=((24, 24),))
    config.model.update(embed_dim=16, hidden_size=32, attention_dim=16)
    config.train.update(num_steps=60, eval_every=60, log_every=30, best_metric="bleu")
    config.eval.update(num_heatmaps=0, batch_size=8)
    workdir = str(tmp_path)
    train_and_evaluate(config, workdir)

    config.eval.update(tune_beam_sizes=(1, 3), tune_alphas=(0.0, 2.0))
    metrics = evaluate.run(config, workdir)

    with open(tmp_path / "eval" / "validation" / "decoding_grid.json") as f:
        grid = json.load(f)
    exp = Experiment.create(config, workdir)
    exp.restore("best")

    def bleu(beam_size, alpha, split):
        trial = dataclasses.replace(exp, config=tuning._with_beam(config, beam_size, alpha))
        return Evaluator(trial, split)(exp.state.params).metrics["bleu"]

    assert [(r["beam_size"], r["alpha"]) for r in grid["grid"]] == [
        (1, 0.0), (1, 2.0), (3, 0.0), (3, 2.0)]
    for row in grid["grid"]:
        assert row["bleu"] == bleu(row["beam_size"], row["alpha"], "validation")
    chosen = grid["chosen"]
    assert chosen["bleu"] == max(row["bleu"] for row in grid["grid"])
    assert metrics["bleu"] == bleu(chosen["beam_size"], chosen["alpha"], "test")
