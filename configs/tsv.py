"""Your own parallel corpus: one TSV file (source<TAB>target per line), or two
aligned files <prefix>.<src_lang> and <prefix>.<tgt_lang>.

  python -m s2s_jax.main --config=configs/tsv.py \
      --config.data.train_path=/data/corpus.tsv --workdir=runs/my_corpus

Validation and test sets are held out from the training file (by a seeded hash of
the source sentence) unless validation_path / test_path are given.
"""

from s2s_jax.config import base_config


def get_config():
    config = base_config()
    data = config.data
    data.source = "files"
    data.train_path = ""  # required: set it on the command line
    data.validation_path = ""  # optional; "" = held out from train_path
    data.test_path = ""  # optional; "" = held out from train_path
    data.held_out_fraction = 0.01  # per missing evaluation split
    data.tokenizer = "sentencepiece"  # subwords trained on the training split only
    data.vocab_size = 16_000  # joint source+target vocabulary
    data.buckets = ((16, 16), (32, 32), (48, 48), (64, 64), (96, 96))
    data.tokens_per_batch = 8_192  # padded tokens per batch, any bucket
    config.eval.bleu_tokenize = "13a"

    model = config.model
    model.embed_dim = 512
    model.hidden_size = 512
    model.encoder_layers = 2
    model.decoder_layers = 2
    model.bidirectional = True
    model.residual = True  # between the stacked layers
    model.bridge = "dense"
    model.attention = "general"  # Luong; no input feeding -> whole-target fast path
    model.dropout = 0.2

    train = config.train
    train.num_steps = 100_000
    train.learning_rate = 5e-4
    train.schedule = "rsqrt"
    train.warmup_steps = 4_000
    train.label_smoothing = 0.1
    train.eval_every = 5_000
    train.checkpoint_every = 1_000
    train.best_metric = "bleu"

    config.eval.max_len_a = 1.5
    config.eval.max_len_b = 10
    return config
