"""Evaluator: decoding shortest-first changes nothing but speed; one report line per
source line."""

import dataclasses

import numpy as np
from setups import build

from s2s_jax import decoding
from s2s_jax.config import base_config
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.evaluation.evaluate import Evaluator, write_report
from s2s_jax.runtime import parallel


def test_hypotheses_come_back_in_the_split_order(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=200, eval_size=37, buckets=((8, 8), (24, 24)))
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
        batch = pad_source_batch([encode_source(source, corpus.src_vocab)], 8, config.data.buckets)
        arrays = parallel.shard_batch(batch, translator.mesh)
        alone = decode(params, arrays["src"], arrays["src_mask"]).tokens[0, 0]
        assert result.hypotheses[position] == vocab.decode(decoding.until_eos(np.asarray(alone)))
    # Heatmaps are those of the split's first sentences, in order.
    assert [len(h[1]) for h in result.heatmaps] == [
        len(source) + 1 for source, _ in corpus.splits["test"][:3]
    ]


class _LineBreakingVocab:
    """A target vocabulary whose every decoded text holds line breaks."""

    def __init__(self, vocab):
        self._vocab = vocab
        self.size, self.encode, self.piece = vocab.size, vocab.encode, vocab.piece

    def decode(self, ids):
        return "a\rb\x0cc\x1dd\u2028" + self._vocab.decode(ids)


def test_the_report_has_one_line_per_source_line(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=200, eval_size=9, buckets=((24, 24),))
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.eval.update(batch_size=8, num_heatmaps=0)
    setup = build(config, tmp_path)
    translator = dataclasses.replace(
        setup.translator, tgt_vocab=_LineBreakingVocab(setup.translator.tgt_vocab)
    )
    pairs = setup.corpus.splits["test"]
    result = Evaluator(translator, pairs, "test")(setup.state.params)
    write_report(result, str(tmp_path / "report"))
    text = (tmp_path / "report" / "hypotheses.txt").read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(text.split("\n")) - 1 == len(pairs)
    assert all(h.startswith("a b c d") for h in result.hypotheses)
