"""Evaluator: decoding shortest-first changes nothing but speed."""

import numpy as np

from s2s_jax import decoding, parallel
from s2s_jax.config import base_config
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.evaluate import Evaluator
from setups import build


def test_hypotheses_come_back_in_the_split_order(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=200, eval_size=37,
                       buckets=((8, 8), (24, 24)))
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.eval.update(batch_size=8, num_heatmaps=3)
    setup = build(config, tmp_path)
    translator, params, corpus = setup.translator, setup.state.params, setup.corpus
    evaluator = Evaluator(translator, corpus.splits["test"], "test")
    assert not np.array_equal(evaluator.order, np.arange(len(evaluator.order)))
    result = evaluator(params, num_heatmaps=3)
    decode = decoding.compile_decoder(translator.model, config.eval)
    vocab = corpus.tgt_vocab
    for position, (source, _) in enumerate(corpus.splits["test"]):
        batch = pad_source_batch([encode_source(source, corpus.src_vocab)], 8,
                                 config.data.buckets)
        arrays = parallel.shard_batch(batch, translator.mesh)
        alone = decode(params, arrays["src"], arrays["src_mask"]).tokens[0, 0]
        assert result.hypotheses[position] == vocab.decode(decoding.until_eos(np.asarray(alone)))
    # Heatmaps are those of the split's first sentences, in order.
    assert [len(h[1]) for h in result.heatmaps] == [
        len(source) + 1 for source, _ in corpus.splits["test"][:3]]
