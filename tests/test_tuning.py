"""Beam size and alpha are chosen on the validation split, then used on the test split."""

import dataclasses
import json

import jax

from s2s_jax import decoding, evaluate, tuning
from s2s_jax.config import base_config
from s2s_jax.evaluate import Evaluator
from s2s_jax.experiment import Experiment


def test_the_best_validation_pair_decodes_the_test_split(tmp_path, monkeypatch, request):
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

    traced = []  # beam search's options, once per compilation

    def beam_search(*args, **options):
        traced.append((options["beam_size"], options["alpha"]))
        return decoding.beam_search(*args, **options)

    monkeypatch.setitem(decoding.DECODERS, "beam",
                        decoding.DECODERS["beam"]._replace(decode=beam_search))
    metric_traces = []  # the teacher-forced metrics, once per compilation
    original_eval_step = evaluate.eval_step

    def eval_step(*args):
        metric_traces.append(args[-1]["src"].shape)
        return original_eval_step(*args)

    monkeypatch.setattr(evaluate, "eval_step", eval_step)
    decoding.jitted.cache_clear()  # compilations are shared: start and end afresh
    request.addfinalizer(decoding.jitted.cache_clear)
    metrics = evaluate.run(config, workdir)
    # alpha is traced: one compilation per beam size (one bucket) serves the whole grid
    # and then the test split; the validation and test Evaluators share the metrics'.
    assert [beam_size for beam_size, _ in traced] == [1, 3]
    assert all(isinstance(alpha, jax.core.Tracer) for _, alpha in traced)
    assert metric_traces == [(8, 24)]

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
