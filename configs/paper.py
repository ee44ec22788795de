"""The seeds' published systems, for accelerators: ``configs/paper.py:<name>``.

  python -m s2s_jax.main --config=configs/paper.py:luong2015 --workdir=runs/luong2015

WMT14 is read through TFDS (``wmt14_translate``, downloaded and prepared once into
``<workdir>/tfds`` or ``--config.data.data_dir``). These configs were not trained
here (a 2-core CPU would need months); each names the published number it targets
and what s2s_jax does differently. All use word vocabularies as the papers did, so
out-of-vocabulary words become UNK (none of the scores below replaces UNKs).

  sutskever2014  Sequence to sequence learning with neural networks. WMT14 en->fr,
                 newstest2014: single reversed 4x1000 LSTM, beam 12: 30.59 BLEU
                 (ensemble of 5: 34.81). Differences: default initialisers instead
                 of U(-0.08, 0.08); the full WMT14 corpus instead of their 12M subset.
  bahdanau2014   RNNsearch-50, Neural machine translation by jointly learning to
                 align and translate. WMT14 en->fr, newstest2014: 26.75 BLEU (all
                 sentences). Differences: tanh readout instead of the maxout layer.
  luong2015      Effective approaches to attention-based NMT. WMT14 en->de,
                 newstest2014: 4x1000 LSTM, reversed source, dropout 0.2, local-p
                 attention (general score) with input feeding: 19.0 BLEU (20.9
                 with UNK replacement, not implemented here).
"""

from s2s_jax.config import base_config
from s2s_jax.config.arguments import parse_arg


def _wmt14(config, pair: str, src: str, tgt: str, vocab_size: int) -> None:
    data = config.data
    data.source = "tfds"
    data.tfds_name = f"wmt14_translate/{pair}"  # validation newstest2013, test newstest2014
    data.src_lang, data.tgt_lang = src, tgt
    data.tokenizer = "word"  # the papers' word vocabularies (the most frequent words)
    data.vocab_size = vocab_size  # per side
    data.buckets = ((10, 10), (20, 20), (30, 30), (40, 40), (50, 50))  # <= 50 tokens
    data.tokens_per_batch = 0
    data.batch_size = 128
    config.eval.bleu_tokenize = "13a"
    config.eval.max_len_a, config.eval.max_len_b = 1.5, 10
    config.train.grad_clip_norm = 5.0
    config.train.best_metric = "bleu"


def _lstm(config, layers: int) -> None:
    model = config.model
    model.cell = "lstm"
    model.embed_dim = model.hidden_size = 1000
    model.encoder_layers = model.decoder_layers = layers
    model.bidirectional = False
    model.bridge = "copy"  # the encoder's final states start the decoder


def sutskever2014(config) -> None:
    _wmt14(config, "fr-en", "en", "fr", 80_000)  # they used 160k source / 80k target
    _lstm(config, 4)
    config.model.reverse_source = True
    config.model.attention = "none"  # the fixed-size context vector
    config.model.dropout = 0.0
    train = config.train
    train.optimizer, train.learning_rate, train.schedule = "sgd", 0.7, "step"
    train.decay_start_epoch, train.decay_every_epochs, train.decay_factor = 5.0, 0.5, 0.5
    train.num_steps = 700_000  # ~7.5 epochs of 12M pairs at 128 per batch
    config.eval.decoder, config.eval.beam_size, config.eval.alpha = "beam", 12, 0.0


def bahdanau2014(config) -> None:
    _wmt14(config, "fr-en", "en", "fr", 30_000)
    model = config.model
    model.cell = "gru"
    model.embed_dim, model.hidden_size, model.attention_dim = 620, 1000, 1000
    model.bidirectional = True
    model.bridge = "dense"  # s_0 = tanh(W h_1), from the encoder's final states
    model.attention = "bahdanau"
    model.dropout = 0.0
    data = config.data
    data.batch_size = 80
    train = config.train
    train.optimizer, train.learning_rate, train.schedule = "adadelta", 1.0, "constant"
    train.grad_clip_norm = 1.0
    train.num_steps = 750_000  # ~5 days on their GPU
    config.eval.decoder, config.eval.beam_size, config.eval.alpha = "beam", 12, 0.0


def luong2015(config) -> None:
    _wmt14(config, "de-en", "en", "de", 50_000)
    _lstm(config, 4)
    model = config.model
    model.reverse_source = True
    model.attention = "local_p"  # window D = 10, general score
    model.attention_dim = 1000
    model.input_feeding = True
    model.bridge = "copy"
    model.dropout = 0.2
    train = config.train
    train.optimizer, train.learning_rate, train.schedule = "sgd", 1.0, "step"
    train.decay_start_epoch, train.decay_every_epochs, train.decay_factor = 8.0, 1.0, 0.5
    train.num_steps = 420_000  # 12 epochs of 4.5M pairs at 128 per batch
    config.eval.decoder, config.eval.beam_size, config.eval.alpha = "beam", 12, 0.0


PAPERS = {"sutskever2014": sutskever2014, "bahdanau2014": bahdanau2014, "luong2015": luong2015}


def get_config(arg: str = "luong2015"):
    name = parse_arg(arg, paper="luong2015").paper
    if name not in PAPERS:
        raise ValueError(f"unknown paper config {name!r}; choose from {sorted(PAPERS)}")
    config = base_config()
    PAPERS[name](config)
    return config
