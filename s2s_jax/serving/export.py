"""``--mode=export``: a trained workdir -> a directory that is all a user needs.

The export holds the parameters alone (``params/``, no optimizer state: those that
the run's evaluation chose on validation, see ``s2s_jax.serving.loading``), ``config.json``
with the decoding settings chosen with them, the vocabularies, the test report of the
workdir (``metrics.json``, with sacrebleu signatures) and ``model_card.md``. It can be
copied anywhere and used with ``s2s_jax.load`` or ``--model``, with no training data,
workdir or config file. ``--export_dtype=bfloat16`` stores the parameters in bfloat16
(half the size); they are read back as float32.
"""

import json
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from s2s_jax.config import ConfigError
from s2s_jax.evaluation import parameters
from s2s_jax.runtime import checkpointing
from s2s_jax.serving import loading
from s2s_jax.training import model_files

DTYPES = ("float32", "bfloat16")


def export(config, workdir: str, export_dir: str, dtype: str = "float32") -> None:
    """Writes the export of ``workdir`` into ``export_dir``, which must not exist or be
    empty; it appears whole or not at all (written beside it, then renamed)."""
    if dtype not in DTYPES:
        raise ConfigError(f"--export_dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if os.path.exists(export_dir) and (not os.path.isdir(export_dir) or os.listdir(export_dir)):
        raise ConfigError(
            f"--export_dir {export_dir!r} exists and is not an empty "
            "directory; remove it or choose another"
        )
    translator, steps = loading.load_with_steps(workdir, config)
    config = translator.config
    _, report = parameters.read_report(workdir, config.eval.split)
    params = cast_floats(translator.params, dtype)
    count = sum(np.size(p) for p in jax.tree.leaves(params))
    export_dir = os.path.abspath(export_dir)
    temporary = f"{export_dir}.partial-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    model_files.write(
        temporary,
        config,
        translator.src_vocab,
        translator.tgt_vocab,
        export={
            "from_workdir": os.path.abspath(workdir),
            "parameters_of_steps": steps,
            "dtype": dtype,
            "parameters": count,
        },
    )
    checkpointing.save_tree(os.path.join(temporary, loading.PARAMS_DIR), params)
    if jax.process_index() == 0:
        if report:
            with open(os.path.join(temporary, "metrics.json"), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
        with open(os.path.join(temporary, "model_card.md"), "w", encoding="utf-8") as f:
            f.write(model_card(translator, steps, dtype, count, report))
        if os.path.isdir(export_dir):
            os.rmdir(export_dir)  # empty, checked above
        os.replace(temporary, export_dir)
    logging.info(
        "exported the parameters of steps %s (%s, %s parameters) to %s",
        steps,
        dtype,
        f"{count:,}",
        export_dir,
    )


def cast_floats(params: Any, dtype: str) -> Any:
    """``params`` on the host, with floating-point arrays in ``dtype``."""
    return jax.tree.map(
        lambda x: (
            np.asarray(jax.device_get(x)).astype(dtype)
            if jnp.issubdtype(x.dtype, jnp.floating)
            else x
        ),
        params,
    )


def model_card(translator, steps: list[int], dtype: str, count: int, report: dict) -> str:
    """A short human-readable description of the exported model."""
    config = translator.config
    data, model, decoding = config.data, config.model, config.eval
    source = {
        "multi30k": "Multi30k task 1 (Elliott et al. 2016)",
        "tfds": f"TFDS {data.tfds_name}",
        "files": f"files {data.train_path}",
        "synthetic": f"synthetic task {data.task!r}",
    }.get(data.source, data.source)
    lines = [
        "# s2s_jax model"
        + ("" if data.source == "synthetic" else f": {data.src_lang} -> {data.tgt_lang}"),
        "",
        f"- data: {source}; {data.tokenizer} vocabularies of {translator.src_vocab.size} "
        f"(source) and {translator.tgt_vocab.size} (target) entries"
        f"{', joint' if data.joint_vocab else ''}",
        f"- model: {model.cell} encoder {model.encoder_layers} x {model.hidden_size}"
        f"{' bidirectional' if model.bidirectional else ''}, decoder "
        f"{model.decoder_layers} x {model.hidden_size}, attention {model.attention}; "
        f"{count:,} parameters stored in {dtype}",
        f"- parameters: the mean of checkpoints {steps}"
        if len(steps) > 1
        else f"- parameters: checkpoint of step {steps[0] if steps else '?'}",
        f"- decoding: {decoding.decoder}"
        + (
            f", beam {decoding.beam_size}, alpha {decoding.alpha}"
            if decoding.decoder == "beam"
            else ""
        ),
    ]
    if report:
        lines.append(
            f"- {config.eval.split} at step {report.get('step')}: BLEU "
            f"{report['bleu']:.2f} ({report['bleu_signature']}), chrF "
            f"{report['chrf']:.2f} ({report['chrf_signature']})"
        )
        if "bleu_wmt17" in report:
            lines.append(
                f"- BLEU in the WMT17 convention: {report['bleu_wmt17']:.2f} "
                f"({report['bleu_wmt17_signature']})"
            )
    lines += [
        "",
        "```python",
        "import s2s_jax",
        'model = s2s_jax.load("<this directory>")',
        'print(model.translate(["..."]))',
        "```",
        "",
    ]
    return "\n".join(lines)
