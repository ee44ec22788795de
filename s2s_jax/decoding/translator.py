"""A model, its vocabularies and (once trained) its parameters: what evaluation and
translation need, and nothing of training (``s2s_jax.load`` returns one, with
``score``: ``s2s_jax.serving.loading.Model``).

    translator.translate(["A man rides a bike."])   # ["Ein Mann fährt Fahrrad."]
    translator.translate(sources, beam_size=5, n_best=3, return_scores=True)

Decoding runs as ``config.eval`` says (an export holds the settings chosen on
validation); keyword arguments change it for one call. Compiled decoders are cached
per decoder settings and batch shape, so a second call with the same settings compiles
nothing.
"""

import copy
import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from s2s_jax import decoding
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.data.vocab import EOS_ID, Vocab, one_line
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq
from s2s_jax.runtime import parallel

Hypotheses = list[tuple[str, float]]  # (translation, score), best first


@dataclasses.dataclass(frozen=True)
class Translation:
    """One source sentence's result when scores or attention are asked for.

    ``hypotheses``: the n best (translation, score), best first; ``attention``:
    float32 ``[output tokens, source tokens]`` of the best one (EOS included on both
    sides), with ``source_pieces`` and ``target_pieces`` naming its rows and columns.
    """

    hypotheses: Hypotheses
    attention: np.ndarray | None = None
    source_pieces: list[str] | None = None
    target_pieces: list[str] | None = None


@dataclasses.dataclass(frozen=True)
class Translator:
    config: ml_collections.ConfigDict
    model: Seq2Seq
    src_vocab: Vocab
    tgt_vocab: Vocab
    mesh: Mesh
    params: Any = None  # replicated on ``mesh``; None before training or restoring

    @classmethod
    def build(cls, config, src_vocab: Vocab, tgt_vocab: Vocab, params: Any = None) -> "Translator":
        """The model ``config.model`` describes over these vocabularies, on all devices."""
        model = ARCHITECTURES[config.model.architecture](
            ModelConfig.create(
                src_vocab_size=src_vocab.size,
                tgt_vocab_size=tgt_vocab.size,
                **config.model.to_dict(),
            )
        )
        return cls(config, model, src_vocab, tgt_vocab, parallel.make_mesh(), params)

    def abstract_params(self) -> Any:
        """The parameters' shapes and dtypes, replicated on the mesh (nothing
        allocated): the target that restores them."""
        src_len, tgt_len = self.config.data.buckets[0]
        src = jnp.zeros((1, src_len), jnp.int32)
        shapes = jax.eval_shape(
            self.model.init,
            jax.random.key(0),
            src,
            jnp.ones_like(src, bool),
            jnp.zeros((1, tgt_len), jnp.int32),
        )
        sharding = parallel.replicated(self.mesh)
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes["params"]
        )

    def with_decoding(self, **settings) -> "Translator":
        """This translator with ``config.eval`` fields changed (None: unchanged)."""
        settings = {key: value for key, value in settings.items() if value is not None}
        if not settings:
            return self
        config = copy.deepcopy(self.config)
        config.eval.update(settings)
        return dataclasses.replace(self, config=config)

    def translate_lines(self, lines: Iterable[str]) -> Iterator[Hypotheses]:
        """Yields the n-best translations of each line, in order, each on one line (a
        line break the model writes becomes a space); an empty or blank line gives
        ``[("", 0.0)]``. A source longer than the largest bucket is cut to it with a
        warning, so no input compiles a new shape."""
        config = self.config
        batch_size = parallel.round_to_devices(config.eval.batch_size, self.mesh)
        max_src_len = max(src_len for src_len, _ in config.data.buckets)
        decode = decoding.compile_decoder(self.model, config.eval)
        numbered = enumerate((line.rstrip("\r\n") for line in lines), start=1)
        while chunk := list(itertools.islice(numbered, batch_size)):
            to_decode = [i for i, (_, line) in enumerate(chunk) if line.strip()]
            outputs: list[Hypotheses] = [[("", 0.0)] for _ in chunk]
            if to_decode:
                sources = [
                    _truncated(encode_source(chunk[i][1], self.src_vocab), max_src_len, chunk[i][0])
                    for i in to_decode
                ]
                batch = pad_source_batch(sources, batch_size, config.data.buckets)
                arrays = parallel.shard_batch(parallel.process_rows(batch), self.mesh)
                decoded = parallel.fetch(decode(self.params, arrays["src"], arrays["src_mask"]))
                for row, i in enumerate(to_decode):
                    nbest = zip(decoded.tokens[row], decoded.scores[row])
                    outputs[i] = [
                        (
                            one_line(self.tgt_vocab.decode(tokens)),
                            float(score),
                        )  # decode stops at EOS
                        for tokens, score in nbest
                        if np.isfinite(score)
                    ]
            yield from outputs

    def translate(
        self,
        sentences: Iterable[str],
        *,
        decoder: str | None = None,
        beam_size: int | None = None,
        alpha: float | None = None,
        n_best: int | None = None,
        return_scores: bool = False,
        return_attention: bool = False,
    ) -> list:
        """Translates ``sentences`` (strings, one sentence each).

        Returns one string per sentence; with ``n_best`` > 1 (beam search), a list of
        that many strings per sentence; with ``return_scores`` or ``return_attention``,
        one ``Translation`` per sentence. Unset options keep ``config.eval``'s.
        """
        if decoder is None and (beam_size is not None or (n_best or 1) > 1):
            decoder = "beam"
        translator = self.with_decoding(
            decoder=decoder, beam_size=beam_size, alpha=alpha, n_best=n_best
        )
        settings = translator.config.eval
        if settings.decoder == "beam" and settings.n_best > settings.beam_size:
            raise ValueError(f"n_best={settings.n_best} exceeds beam_size={settings.beam_size}")
        sentences = list(sentences)
        if any("\n" in s for s in sentences):
            raise ValueError("each sentence must be one line (no '\\n')")
        results = list(translator.translate_lines(sentences))
        if return_scores or return_attention:
            attention = (
                [translator.attention(s, h[0][0]) for s, h in zip(sentences, results)]
                if return_attention
                else [(None, None, None)] * len(results)
            )
            return [Translation(h, *a) for h, a in zip(results, attention)]
        if (n_best or 1) > 1:
            return [[text for text, _ in hypotheses] for hypotheses in results]
        return [hypotheses[0][0] for hypotheses in results]

    def attention(self, source: str, translation: str):
        """(weights ``[len(target) + 1, len(source) + 1]``, source pieces, target
        pieces) of ``translation`` given ``source``; Nones for a model without
        attention or an empty source."""
        if not source.strip():
            return None, None, None
        max_src_len = max(src_len for src_len, _ in self.config.data.buckets)
        src = _truncated(encode_source(source, self.src_vocab), max_src_len, 1)
        batch = pad_source_batch([src], 1, self.config.data.buckets)  # a bucket's shape
        tokens = self.tgt_vocab.encode(translation) + [EOS_ID]
        padded = np.zeros((1, -(-len(tokens) // 8) * 8), np.int32)  # a few shapes only
        padded[0, : len(tokens)] = tokens
        weights = decoding.attention_of(
            self.model, self.params, batch["src"], batch["src_mask"], padded
        )
        if weights is None:
            return None, None, None
        return (
            np.asarray(weights[0, : len(tokens), : len(src)]),
            [self.src_vocab.piece(int(i)) for i in src],
            [self.tgt_vocab.piece(int(i)) for i in tokens],
        )


def _truncated(src: np.ndarray, max_len: int, line_number: int) -> np.ndarray:
    """Source ids (ending in EOS) cut to ``max_len`` ids, EOS kept, with a warning."""
    if len(src) <= max_len:
        return src
    logging.warning(
        "input line %d has %d tokens; translating its first %d",
        line_number,
        len(src) - 1,
        max_len - 1,
    )
    return np.append(src[: max_len - 1], EOS_ID).astype(src.dtype)
