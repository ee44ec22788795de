"""config.json and vocabulary files: exact round trips, and the model check."""

import pytest

from s2s_jax.config import ConfigError, base_config
from s2s_jax.data.sentencepiece_vocab import train_sentencepiece
from s2s_jax.data.vocab import CharVocab, WordVocab
from s2s_jax.data.vocab_files import load_vocab, save_vocab
from s2s_jax.training import model_files

TEXTS = ["ein Haus am See", "zwei Häuser, ein Boot.", "Ünïcödé ▁ mit\tTab", "日本語の文"] * 20


def test_config_round_trip_keeps_every_field_and_type(tmp_path):
    config = base_config()
    config.data.buckets = ((8, 10), (24, 30))
    config.model.update(cell="gru", dropout=0.4, hidden_size=48)
    config.eval.tune_beam_sizes = (4, 8)
    vocab = CharVocab("abc")
    model_files.write(str(tmp_path), config, vocab, vocab)
    stored = model_files.read_config(str(tmp_path))
    assert stored.to_dict() == config.to_dict()
    assert stored.data.buckets == ((8, 10), (24, 30))
    with pytest.raises(AttributeError):  # locked, as a config file's
        stored.model.hiden_size = 3


def test_a_stored_unknown_field_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"config": {"model": {"colour": 1}}}')
    with pytest.raises(ConfigError, match="unknown field config.model.colour"):
        model_files.read_config(str(tmp_path))
    with pytest.raises(ConfigError, match="no such file"):
        model_files.read_config(str(tmp_path / "elsewhere"))


def test_a_stored_config_of_renamed_fields_reads_into_the_new_ones(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"config": {"eval": {"train_split": "dev"}, "data": {"bleu_tokenize": "13a"}}}'
    )
    stored = model_files.read_config(str(tmp_path))
    assert (stored.eval.validation_split, stored.eval.bleu_tokenize) == ("dev", "13a")


@pytest.mark.parametrize(
    "field, value, refused",
    [
        ("model.hidden_size", 64, True),
        ("model.attention", "dot", True),
        ("data.tokenizer", "word", True),
        ("data.tgt_lang", "fr", True),
        ("model.dtype", "bfloat16", False),
        ("model.unroll", 2, False),
        ("eval.beam_size", 9, False),
        ("data.buckets", ((64, 64),), False),
        ("data.manual_dir", "/elsewhere", False),
        ("train.num_steps", 7, False),
    ],
)
def test_only_model_and_vocabulary_fields_are_refused(field, value, refused):
    stored, given = base_config(), base_config()
    section, key = field.split(".")
    given[section][key] = value
    if refused:
        with pytest.raises(ConfigError, match=f"config.{field}="):
            model_files.check_same_model(stored, given, "W")
    else:
        model_files.check_same_model(stored, given, "W")


def _vocabularies(tmp_path):
    spm = train_sentencepiece(TEXTS, str(tmp_path / "trained.model"), 295, "unigram")
    return {
        "char": CharVocab("".join(TEXTS)),
        "word": WordVocab.build(TEXTS, 10),
        "sentencepiece": spm,
    }


@pytest.mark.parametrize("kind", ["char", "word", "sentencepiece"])
def test_vocabulary_files_round_trip(tmp_path, kind):
    vocab = _vocabularies(tmp_path)[kind]
    path = save_vocab(vocab, str(tmp_path / "source_vocab"))
    loaded = load_vocab(path)
    assert type(loaded) is type(vocab) and loaded.size == vocab.size
    for text in TEXTS[:4] + ["unseen: xyzzy"]:
        assert loaded.encode(text) == vocab.encode(text)
        assert loaded.decode(loaded.encode(text)) == vocab.decode(vocab.encode(text))
    assert [loaded.piece(i) for i in range(vocab.size)] == [
        vocab.piece(i) for i in range(vocab.size)
    ]
