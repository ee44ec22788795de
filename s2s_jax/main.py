"""Command line: train, evaluate or translate with one config file.

  python -m s2s_jax.main --config=configs/default.py --workdir=runs/default
  python -m s2s_jax.main --config=configs/default.py --workdir=runs/default --mode=eval
  echo "march 3rd 1999" | python -m s2s_jax.main --config=configs/default.py \
      --workdir=runs/default --mode=translate

Any config field can be overridden: ``--config.model.hidden_size=256``.
"""

import contextlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from s2s_jax import config as config_lib
from s2s_jax import evaluate, host_memory, parallel, train, translate
from s2s_jax.data.readers import CorpusError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and reports.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "translate"], "What to do.")
flags.DEFINE_string("input", None, "translate: file of source lines (default stdin).")
flags.DEFINE_string("output", None, "translate: file for the translations (default stdout).")
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/default.py.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def _text_file(path: str | None, mode: str, default):
    """``path``, or ``default`` (stdin / stdout), as UTF-8 text where undecodable bytes
    become U+FFFD and only "\\n" ends a line (so line numbers match ``wc -l``)."""
    options = {"encoding": "utf-8", "errors": "replace", "newline": "\n"}
    if path:
        return open(path, mode, **options)
    default.reconfigure(**options)
    return contextlib.nullcontext(default)


def _translate(config, workdir: str) -> None:
    with (_text_file(FLAGS.input, "r", sys.stdin) as source,
          _text_file(FLAGS.output, "w", sys.stdout) as sink):
        translate.run(config, workdir, source, sink)


MODES = {
    "train": train.train_and_evaluate,
    "eval": evaluate.run,
    "translate": _translate,
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config_lib.validate(FLAGS.config)
        config_lib.check_workdir(FLAGS.workdir)
        parallel.initialize_distributed(FLAGS.config)
        host_memory.configure(FLAGS.config)
        logging.info("config:\n%s", FLAGS.config)
        MODES[FLAGS.mode](FLAGS.config, FLAGS.workdir)
    except (config_lib.ConfigError, CorpusError,  # the user's input, not a bug
            train.DivergenceError) as error:  # nor is a diverged run
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
