"""``config.data``: where the pairs come from, their vocabularies and their batches."""

import ml_collections

from s2s_jax.config.checks import check, is_int, non_negative, one_of, positive


def defaults() -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    data.source = "synthetic"  # synthetic | multi30k | tfds | files (s2s_jax/data/sources.py)
    data.task = "dates"  # synthetic: dates | addition | reversal | copy
    data.train_size = 50_000  # synthetic: generated training pairs
    data.eval_size = 1_000  # synthetic: validation and test pairs (disjoint from train)
    data.src_lang = "en"  # multi30k / tfds / files: source language code
    data.tgt_lang = "de"  # ... and target language code
    data.manual_dir = ""  # multi30k: local copy laid out like shared/data/multi30k
    data.join_captions = 1  # multi30k: k > 1 joins 1..k captions per pair (data/joined_captions.py)
    data.tfds_name = ""  # tfds: catalog name, e.g. "wmt14_translate/de-en"
    data.data_dir = ""  # tfds / multi30k: TFDS data_dir ("" = <workdir>/tfds)
    data.train_path = ""  # files: TSV file, or prefix of <prefix>.<src_lang>/<tgt_lang>
    data.validation_path = ""  # files: same; "" = held out from train_path
    data.test_path = ""  # files: same; "" = held out from train_path
    data.held_out_fraction = 0.01  # files: share of train held out per missing split
    data.tokenizer = "char"  # char | word | sentencepiece
    # word / sentencepiece: pieces in the vocabulary, the 4 special tokens included
    data.vocab_size = 8_000
    # sentencepiece: train on a seeded random sample of at most this many training
    # sentences (0: all of them); a corpus no larger is used whole, in order. Unigram
    # training takes ~2.8 KB of memory per sentence of ~120 characters: 500k keeps
    # preprocessing a WMT-sized corpus under 3 GB (benchmarks/corpus_scale.py).
    data.vocab_sample_sentences = 500_000
    data.spm_model_type = "unigram"  # sentencepiece: unigram | bpe
    data.joint_vocab = False  # one vocabulary for source and target
    data.vocab_dir = ""  # where vocabularies are cached ("" = <workdir>/vocab)
    # where the training pairs are kept encoded, keyed by corpus and vocabularies, with
    # the splits held out of a corpus file ("" = <workdir>/records; runs may share one)
    data.records_dir = ""
    data.buckets = ((16, 12), (32, 12))  # fixed (src_len, tgt_len) batch shapes
    data.batch_size = 128  # sentences per global batch (all devices, all hosts)
    data.tokens_per_batch = 0  # > 0: size each bucket's batch to ~this many tokens instead
    # > 0: the first this many steps draw from the shortest pairs first, a growing
    # share of them (Platanios et al. 2019's square-root competence, data/curriculum.py)
    data.curriculum_steps = 0
    data.curriculum_start = 0.01  # ... the share of the pairs at step 0
    data.prefetch = 2  # batches prepared ahead by a background thread
    return data


def validate(config) -> None:
    one_of(config, "data.spm_model_type", ("unigram", "bpe"))
    positive(config, "data.train_size", "data.eval_size", "data.batch_size", "data.vocab_size")
    non_negative(config, "data.tokens_per_batch", "data.vocab_sample_sentences")
    steps = config.data.curriculum_steps
    check(is_int(steps) and steps >= 0, "data.curriculum_steps", "must be an integer >= 0", steps)
    start = config.data.curriculum_start
    check(0 < start <= 1, "data.curriculum_start", "must be in (0, 1]", start)
    join = config.data.join_captions
    check(is_int(join) and join >= 1, "data.join_captions", "must be an integer >= 1", join)
    buckets = config.data.buckets
    check(
        len(buckets) > 0
        and all(
            isinstance(b, (tuple, list)) and len(b) == 2 and all(is_int(n) and n > 0 for n in b)
            for b in buckets
        ),
        "data.buckets",
        "must be (src_len, tgt_len) pairs of positive sizes",
        buckets,
    )
    check(list(buckets) == sorted(buckets), "data.buckets", "must be sorted", buckets)
