"""Parameters (a checkpoint or a mean of the latest), beam size and alpha are chosen
on the validation split, then used on the test split."""

import dataclasses
import json
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from setups import build

from s2s_jax import decoding
from s2s_jax.config import base_config
from s2s_jax.evaluation import evaluate, parameters, tuning
from s2s_jax.evaluation.evaluate import Evaluator


def test_the_best_validation_pair_decodes_the_test_split(tmp_path, monkeypatch):
    config = base_config()
    config.data.update(task="reversal", train_size=100, eval_size=24, buckets=((24, 24),))
    config.model.update(embed_dim=16, hidden_size=32, attention_dim=16)
    config.train.update(best_metric="chrf")  # varies with the beam even untrained
    config.eval.update(num_heatmaps=0, batch_size=8, tune_beam_sizes=(1, 3), tune_alphas=(0.0, 2.0))
    workdir = str(tmp_path)
    setup = build(config, workdir)
    setup.checkpointer.save(0, setup.state)
    setup.checkpointer.wait()

    traced = []  # beam search's options, once per compilation

    def beam_search(model, *args, **options):
        traced.append((options["beam_size"], options["alpha"]))
        return decoding.beam_search(model, *args, **options)

    # A spec jits its decoder afresh: compilations start from none.
    monkeypatch.setitem(
        decoding.DECODERS,
        "beam",
        dataclasses.replace(decoding.DECODERS["beam"], decode=beam_search),
    )
    metric_traces = []  # the teacher-forced metrics, once per compilation
    original_eval_step = evaluate.eval_step

    def eval_step(model, params, batch):
        metric_traces.append(batch["src"].shape)
        return original_eval_step(model, params, batch)

    # Jitted afresh as evaluate jits it: compilations start from none.
    monkeypatch.setattr(evaluate, "eval_step", jax.jit(eval_step, static_argnames="model"))
    metrics = evaluate.run(
        config, workdir, setup.translator, setup.checkpointer, setup.corpus.splits
    )
    # alpha is traced: one compilation per beam size (one bucket) serves the whole grid
    # and then the test split; the validation and test Evaluators share the metrics'.
    assert [beam_size for beam_size, _ in traced] == [1, 3]
    assert all(isinstance(alpha, jax.core.Tracer) for _, alpha in traced)
    assert metric_traces == [(8, 24)]

    with open(tmp_path / "eval" / "validation" / "decoding_grid.json") as f:
        grid = json.load(f)

    def chrf(beam_size, alpha, split):
        trial = dataclasses.replace(
            setup.translator, config=tuning._with_beam(config, beam_size, alpha)
        )
        return Evaluator(trial, setup.corpus.splits[split], split)(setup.state.params).metrics[
            "chrf"
        ]

    assert [(r["beam_size"], r["alpha"]) for r in grid["grid"]] == [
        (1, 0.0),
        (1, 2.0),
        (3, 0.0),
        (3, 2.0),
    ]
    for row in grid["grid"]:
        assert row["chrf"] == chrf(row["beam_size"], row["alpha"], "validation")
    assert len({row["chrf"] for row in grid["grid"]}) > 1  # the choice is not a tie
    chosen = grid["chosen"]
    assert chosen["chrf"] == max(row["chrf"] for row in grid["grid"])
    assert metrics["chrf"] == chrf(chosen["beam_size"], chosen["alpha"], "test")


def _setup_with_scaled_checkpoints(tmp_path):
    """Checkpoints 10..40 hold the initial parameters times 1..4; the parameters of
    step 40 are returned. The best by validation chrF are 20 (scale 2), then 10
    (scale 1)."""
    config = base_config()
    config.data.update(task="reversal", train_size=50, eval_size=5)
    config.model.update(embed_dim=4, hidden_size=8, attention_dim=8)
    config.train.update(keep_checkpoints=4, keep_best_checkpoints=2, best_metric="chrf")
    config.eval.update(tune_average_checkpoints=(2, 3, 4), tune_average_best=(2,))
    setup = build(config, tmp_path)
    base = setup.state.params
    for scale, step in enumerate((10, 20, 30, 40), start=1):
        scaled = setup.state.replace(step=step, params=jax.tree.map(lambda p, s=scale: p * s, base))
        setup.checkpointer.save(step, scaled)
        setup.checkpointer.save_best(step, scaled, {10: 5.0, 20: 6.0, 30: 4.0, 40: 3.0}[step])
    setup.checkpointer.wait()
    params = setup.checkpointer.restore_params(setup.abstract, 40)
    return setup, base, params


def _scale(params, base) -> float:
    """The factor between ``params`` and ``base`` (their largest entry)."""
    index = np.argmax(np.abs(base["decoder"]["output"]["kernel"]))
    return float(
        np.ravel(params["decoder"]["output"]["kernel"])[index]
        / np.ravel(base["decoder"]["output"]["kernel"])[index]
    )


@pytest.mark.parametrize(
    "best_scale, steps",
    [(3.0, [20, 30, 40]), (2.5, [10, 20, 30, 40]), (1.5, [10, 20]), (4.2, [40]), (None, [40])],
)
def test_the_parameters_that_score_best_on_validation_are_kept(tmp_path, best_scale, steps):
    setup, base, params = _setup_with_scaled_checkpoints(tmp_path)
    scored = []  # the scale of each candidate, in the order scored

    def evaluator(params):  # best at best_scale; None: a tie everywhere
        scored.append(_scale(params, base))
        chrf = 0.0 if best_scale is None else -abs(scored[-1] - best_scale)
        return SimpleNamespace(metrics={"chrf": chrf})

    chosen, chosen_steps = tuning.choose_parameters(
        setup.translator.config,
        str(tmp_path),
        setup.checkpointer,
        setup.abstract,
        params,
        [40],
        evaluator,
    )
    np.testing.assert_allclose(scored, [4.0, 3.5, 3.0, 2.5, 1.5], rtol=1e-6)
    assert chosen_steps == steps
    np.testing.assert_allclose(_scale(chosen, base), np.mean([s // 10 for s in steps]), rtol=1e-6)
    with open(tmp_path / "eval" / "validation" / "parameters.json") as f:
        report = json.load(f)
    assert [row["steps"] for row in report["candidates"]] == [
        [40],
        [30, 40],
        [20, 30, 40],
        [10, 20, 30, 40],
        [10, 20],
    ]
    assert report["chosen"]["steps"] == steps


def test_evaluation_scores_the_chosen_mean_on_the_test_split(tmp_path):
    setup, _, _ = _setup_with_scaled_checkpoints(tmp_path)
    config = setup.translator.config
    config.eval.update(num_heatmaps=0, checkpoint="40")
    config.train.best_mode = "min"  # untrained: the lowest chrF is a mean's, not step 40's
    metrics = evaluate.run(config, str(tmp_path), setup.translator, setup.checkpointer)
    with open(tmp_path / "eval" / "validation" / "parameters.json") as f:
        chosen = json.load(f)["chosen"]
    assert len(chosen["steps"]) > 1
    with open(tmp_path / "eval" / "test" / "metrics.json") as f:
        assert json.load(f)["parameters_of_steps"] == chosen["steps"]
    params = parameters.restore_steps(setup.checkpointer, setup.abstract, chosen["steps"])
    evaluator = Evaluator(setup.translator, setup.corpus.splits["test"], "test")
    assert metrics["chrf"] == evaluator(params).metrics["chrf"]
