"""Evaluation: teacher-forced loss, greedy decoding, exact match, BLEU, chrF, heatmaps.

:class:`Evaluator` scores parameters on one split (used periodically while training);
:func:`run` is ``--mode=eval``: restore a checkpoint, score the configured split and
write ``hypotheses.txt``, ``metrics.json`` and ``attention_*.png`` into
``workdir/eval/<split>/``.
"""

import dataclasses
import json
import os
from typing import Any, Optional

import jax
import numpy as np
import sacrebleu
from absl import logging

from s2s_jax import decoding, losses, parallel, plots, tuning, wmt17
from s2s_jax.data.batching import encode_pairs, eval_batches, sort_by_source_length
from s2s_jax.experiment import Experiment
from s2s_jax.models.seq2seq import Seq2Seq


def eval_step(model: Seq2Seq, params: Any, batch: dict) -> dict:
    """Teacher-forced metric sums on one batch; filler rows (``valid`` False) excluded."""
    logits, _ = model.apply({"params": params}, batch["src"], batch["src_mask"],
                            batch["tgt_in"])
    mask = batch["tgt_mask"] & batch["valid"][:, None]
    return losses.sequence_metrics(logits, batch["tgt_out"], mask)


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]
    hypotheses: list[str]
    heatmaps: list[tuple[np.ndarray, list[str], list[str]]]  # (weights, src, tgt tokens)
    bleu_by_length: list[dict]  # one row per source-length bucket


# Source-length buckets (in source tokens) of the bottleneck study: BLEU by length.
LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, None))


def bleu_by_length(lengths: list[int], hypotheses: list[str], references: list[str],
                   tokenize: str) -> list[dict]:
    """Corpus BLEU of the sentences in each source-length bucket (None where empty)."""
    rows = []
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, n in enumerate(lengths) if low <= n and (high is None or n <= high)]
        bleu = None
        if chosen:
            bleu = sacrebleu.metrics.BLEU(tokenize=tokenize).corpus_score(
                [hypotheses[i] for i in chosen], [[references[i] for i in chosen]]).score
        rows.append({"bucket": f"{low}-{high}" if high else f"{low}+",
                     "sentences": len(chosen), "bleu": bleu})
    return rows


class Evaluator:
    """Scores parameters on one split of the experiment's corpus."""

    def __init__(self, experiment: Experiment, split: str):
        config = experiment.config
        self.experiment = experiment
        pairs = experiment.corpus.splits[split]
        self.split = split
        self.references = [target for _, target in pairs]
        # (tokenized references, their origin) for the WMT17 convention, when asked.
        self.wmt17 = (wmt17.references(config, split, self.references)
                      if config.eval.wmt17_bleu else None)
        self.empty_sources = [not source.strip() for source, _ in pairs]
        self.examples = encode_pairs(pairs, experiment.corpus.src_vocab,
                                     experiment.corpus.tgt_vocab)
        # Decoded shortest source first: a batch's sentences end at about the same step
        # and fit the smallest bucket. Results are put back in the split's order.
        self.order, self._by_length = sort_by_source_length(self.examples)
        self.batch_size = parallel.round_to_devices(config.eval.batch_size, experiment.mesh)
        model = experiment.model
        self._metrics = decoding.jitted(eval_step, model)
        self._decode = decoding.compile_decoder(model, config.eval)
        self._attention = decoding.jitted(decoding.attention_of, model)

    def __call__(self, params: Any, num_heatmaps: int = 0,
                 eval_config: Optional[Any] = None) -> EvalResult:
        """Scores ``params``, decoding as ``eval_config`` says (default ``config.eval``:
        the tuning grid passes each of its points)."""
        exp = self.experiment
        decode = (self._decode if eval_config is None
                  else decoding.compile_decoder(exp.model, eval_config))
        src_vocab, tgt_vocab = exp.corpus.src_vocab, exp.corpus.tgt_vocab
        sums, hypotheses, heatmaps = {}, [None] * len(self.order), {}
        decoded_rows = 0  # self.order[k] is the split position of the k-th decoded row
        for batch in eval_batches(self._by_length, self.batch_size, exp.config.data.buckets):
            arrays = parallel.shard_batch(parallel.process_rows(batch), exp.mesh)
            sums = losses.add(sums, self._metrics(params, arrays))
            decoded = decode(params, arrays["src"], arrays["src_mask"])
            rows = np.flatnonzero(batch["valid"])
            positions = self.order[decoded_rows:decoded_rows + len(rows)]
            decoded_rows += len(rows)
            attention = None  # [B, L, S], for a batch that holds a heatmap's sentence
            if np.any(positions < num_heatmaps):
                attention = parallel.fetch(self._attention(
                    params, arrays["src"], arrays["src_mask"], decoded.tokens[:, 0]))
            decoded = parallel.fetch(decoded)
            for row, position in zip(rows, positions):
                tokens = decoding.until_eos(decoded.tokens[row, 0])  # the best hypothesis
                empty = self.empty_sources[position]  # empty in, empty out
                hypotheses[position] = "" if empty else tgt_vocab.decode(tokens)
                if position < num_heatmaps and attention is not None:
                    src = batch["src"][row][batch["src_mask"][row]]
                    heatmaps[position] = (attention[row][:len(tokens), :len(src)],
                                          [src_vocab.piece(i) for i in src],
                                          [tgt_vocab.piece(i) for i in tokens])
        heatmaps = [heatmaps[position] for position in sorted(heatmaps)]
        metrics = losses.summarize(parallel.fetch(sums))
        tokenize = exp.config.data.bleu_tokenize
        metrics.update(score(hypotheses, self.references, tokenize))
        if self.wmt17:
            tokenized, origin = self.wmt17
            metrics.update(wmt17.score(hypotheses, tokenized, exp.config.data.tgt_lang, origin))
        lengths = [len(src) - 1 for src in self.examples.src]  # without EOS
        return EvalResult(metrics, hypotheses, heatmaps,
                          bleu_by_length(lengths, hypotheses, self.references, tokenize))


def score(hypotheses: list[str], references: list[str], tokenize: str) -> dict[str, float]:
    """Exact match (%), sacrebleu BLEU and chrF with their signatures' settings."""
    exact = np.mean([h == r for h, r in zip(hypotheses, references)]) if references else 0.0
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
    chrf = sacrebleu.metrics.CHRF()
    return {
        "exact_match": 100.0 * float(exact),
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def write_report(result: EvalResult, directory: str, step: Optional[int] = None,
                 parameters_of_steps: Optional[list[int]] = None) -> None:
    """hypotheses.txt (one line per source line), metrics.json (with BLEU by source
    length and the checkpoint steps whose mean parameters were scored, if given),
    bleu_by_length.png and attention_<i>.png."""
    if jax.process_index() != 0:
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "hypotheses.txt"), "w", encoding="utf-8") as f:
        f.writelines(h + "\n" for h in result.hypotheses)
    with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"step": step, "parameters_of_steps": parameters_of_steps,
                   **result.metrics, "bleu_by_length": result.bleu_by_length}, f, indent=2)
    rows = [row for row in result.bleu_by_length if row["sentences"]]
    plots.bleu_by_length([f"{r['bucket']} ({r['sentences']})" for r in rows],
                         {"model": [r["bleu"] for r in rows]},
                         os.path.join(directory, "bleu_by_length.png"))
    for i, (weights, src, tgt) in enumerate(result.heatmaps):
        plots.attention_heatmap(weights, src, tgt, os.path.join(directory, f"attention_{i}.png"),
                                title=f"attention, example {i}")


def run(config, workdir: str, experiment: Optional[Experiment] = None) -> dict[str, float]:
    """``--mode=eval``: restore ``config.eval.checkpoint`` and score ``config.eval.split``."""
    experiment = experiment or Experiment.create(config, workdir)
    which = config.eval.checkpoint
    if config.eval.average_checkpoints > 1:
        steps = experiment.restore_average(config.eval.average_checkpoints)
    elif experiment.restore(which) or experiment.restore("latest"):
        steps = [int(experiment.state.step)]
    else:
        raise FileNotFoundError(f"no checkpoint to evaluate in {workdir!r}")
    step = int(experiment.state.step)
    averages = config.eval.tune_average_checkpoints + config.eval.tune_average_best
    if averages or config.eval.tune_beam_sizes:
        validation = Evaluator(experiment, config.eval.train_split)
    if averages:
        experiment, steps = tuning.choose_parameters(experiment, validation)
    if config.eval.tune_beam_sizes:
        config = tuning.choose_decoding(experiment, validation)
        experiment = dataclasses.replace(experiment, config=config)
    result = Evaluator(experiment, config.eval.split)(experiment.state.params,
                                                     config.eval.num_heatmaps)
    directory = os.path.join(workdir, "eval", config.eval.split)
    write_report(result, directory, step, parameters_of_steps=steps)
    logging.info("%s at step %d: %s", config.eval.split, step,
                 {k: v for k, v in result.metrics.items() if not k.endswith("signature")})
    logging.info("wrote %s", directory)
    return result.metrics
