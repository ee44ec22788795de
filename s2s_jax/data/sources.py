"""Where (source, target) sentence pairs come from, and their vocabularies.

``load_corpus(config)`` returns a :class:`Corpus`: the split name -> list of string
pairs, and the source and target vocabularies. A registry maps ``config.data.source``
to a loader, so a new source is one function and one line.
"""

import dataclasses
from typing import Callable

from s2s_jax.data.tasks import get_task, make_splits
from s2s_jax.data.vocab import CharVocab, Vocab

Pairs = list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Corpus:
    splits: dict[str, Pairs]
    src_vocab: Vocab
    tgt_vocab: Vocab


def _synthetic(data_config, seed: int) -> Corpus:
    """A generated task: deterministic given the seed; character vocabularies fixed
    by the task's alphabets, so they never depend on what was sampled."""
    task = get_task(data_config.task)
    sizes = {"train": data_config.train_size, "validation": data_config.eval_size,
             "test": data_config.eval_size}
    return Corpus(make_splits(task.name, seed, sizes), CharVocab(task.src_chars),
                  CharVocab(task.tgt_chars))


SOURCES: dict[str, Callable] = {"synthetic": _synthetic}


def load_corpus(config) -> Corpus:
    return SOURCES[config.data.source](config.data, config.seed)
