"""Evaluator: decoding shortest-first changes nothing but speed."""

import numpy as np

from s2s_jax import decoding, parallel
from s2s_jax.config import base_config
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.evaluate import Evaluator
from s2s_jax.experiment import Experiment


def test_hypotheses_come_back_in_the_split_order(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=200, eval_size=37,
                       buckets=((8, 8), (24, 24)))
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.eval.update(batch_size=8, num_heatmaps=3)
    exp = Experiment.create(config, str(tmp_path))
    evaluator = Evaluator(exp, "test")
    assert not np.array_equal(evaluator.order, np.arange(len(evaluator.order)))
    result = evaluator(exp.state.params, num_heatmaps=3)
    decode = decoding.compile_decoder(exp.model, config.eval)
    vocab = exp.corpus.tgt_vocab
    for position, (source, _) in enumerate(exp.corpus.splits["test"]):
        batch = pad_source_batch([encode_source(source, exp.corpus.src_vocab)], 8,
                                 config.data.buckets)
        arrays = parallel.shard_batch(batch, exp.mesh)
        alone = decode(exp.state.params, arrays["src"], arrays["src_mask"]).tokens[0, 0]
        assert result.hypotheses[position] == vocab.decode(decoding.until_eos(np.asarray(alone)))
    # Heatmaps are those of the split's first sentences, in order.
    assert [len(h[1]) for h in result.heatmaps] == [
        len(source) + 1 for source, _ in exp.corpus.splits["test"][:3]]
