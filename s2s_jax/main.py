"""Command line: train (or only preprocess its data), evaluate, translate or export.

  python -m s2s_jax.main --config=configs/default.py --workdir=runs/default
  python -m s2s_jax.main --config=configs/tsv.py --config.data.train_path=big.tsv \
      --workdir=runs/big --mode=preprocess
  python -m s2s_jax.main --workdir=runs/default --mode=eval
  echo "march 3rd 1999" | python -m s2s_jax.main --workdir=runs/default --mode=translate
  python -m s2s_jax.main --workdir=runs/default --mode=export --export_dir=exports/dates
  python -m s2s_jax.main --model=exports/dates --mode=eval --src_file=X --ref_file=Y
  python -m s2s_jax.main --workdir=runs/a --ensemble=runs/b,exports/c --mode=eval

Training and preprocessing need ``--config``; the other modes read the config stored
with the model (``--workdir`` or an export's ``--model``), and any field that leaves
the model as it is can be overridden: ``--config.eval.beam_size=5``.
"""

import contextlib
import logging as std_logging
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from s2s_jax import config as config_lib
from s2s_jax import registries
from s2s_jax.data import readers
from s2s_jax.data.readers import CorpusError
from s2s_jax.decoding.translator import Translator
from s2s_jax.evaluation import evaluate
from s2s_jax.evaluation.parameters import NoCheckpointError, open_checkpointer
from s2s_jax.runtime import host_memory, parallel
from s2s_jax.serving import ensemble, export, loading, translate
from s2s_jax.training import model_files

FLAGS = flags.FLAGS
# The modes that start from --config alone (the others read the model's stored config).
_TRAINING_MODES = ("train", "preprocess")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and reports.")
flags.DEFINE_enum(
    "mode",
    "train",
    ["train", "preprocess", "eval", "translate", "export"],
    "What to do; preprocess: only what a first training start prepares "
    "(vocabularies, encoded training pairs).",
)
flags.DEFINE_string("model", None, "eval / translate: an export directory (instead of --workdir).")
flags.DEFINE_string("input", None, "translate: file of source lines (default stdin).")
flags.DEFINE_string("output", None, "translate: file for the translations (default stdout).")
flags.DEFINE_string(
    "src_file",
    None,
    "eval: score these source lines (with --ref_file) instead of config.eval.split.",
)
flags.DEFINE_string("ref_file", None, "eval: the references of --src_file, line by line.")
flags.DEFINE_list(
    "ensemble",
    [],
    "eval / translate: more models (workdirs or exports) decoding with the first as "
    "one ensemble; reports go into <first model>/ensemble/.",
)
flags.DEFINE_string("export_dir", None, "export: the directory to write.")
flags.DEFINE_enum("export_dtype", "float32", list(export.DTYPES), "export: the parameters' dtype.")


def _model_path(argv: list[str]) -> str | None:
    """The directory whose stored config a run without ``--config`` starts from:
    ``--model``, else ``--workdir`` (for modes other than train)."""
    FLAGS(argv, known_only=True)
    path = None if FLAGS.mode in _TRAINING_MODES else FLAGS.model or FLAGS.workdir
    FLAGS.unparse_flags()
    return path


def define_config_flag(argv: list[str]) -> None:
    """``--config=FILE``; without it, eval, translate and export start from the config
    stored with the model, so that ``--config.x=y`` overrides apply to that."""
    named = any(
        arg in ("--config", "-config") or arg.startswith(("--config=", "-config="))
        for arg in argv[1:]
    )
    path = None if named else _model_path(argv)
    if path is None:
        config_flags.DEFINE_config_file(
            "config", None, "Config file, e.g. configs/default.py.", lock_config=True
        )
        return
    try:
        stored = model_files.read_config(path)
    except config_lib.ConfigError as error:
        sys.exit(f"error: {error}")
    config_flags.DEFINE_config_dict(
        "config", stored, "The stored config (override fields with --config.x=y).", lock_config=True
    )


def _text_file(path: str | None, mode: str, default):
    """``path``, or ``default`` (stdin / stdout), as UTF-8 text where undecodable bytes
    become U+FFFD and only "\\n" ends a line (so line numbers match ``wc -l``); read,
    a leading byte-order mark is dropped."""
    options = {
        "encoding": "utf-8-sig" if mode == "r" else "utf-8",
        "errors": "replace",
        "newline": "\n",
    }
    if path:
        try:
            return open(path, mode, **options)
        except OSError as error:
            flag = "--input" if mode == "r" else "--output"
            raise config_lib.ConfigError(f"{flag} {path!r}: {error.strerror}") from None
    default.reconfigure(**options)
    return contextlib.nullcontext(default)


def _train(config) -> None:
    # Training alone loads TensorFlow (TensorBoard's writer): the other modes start sooner.
    from s2s_jax.training import monitor, train

    try:
        train.train_and_evaluate(config, FLAGS.workdir)
    except monitor.DivergenceError as error:  # a diverged run is no bug
        sys.exit(f"error: {error}")


def _preprocess(config) -> None:
    """Builds (or opens) the vocabularies and the encoded training pairs, once, where
    training finds them (config.data.vocab_dir, config.data.records_dir)."""
    from s2s_jax.data.sources import load_corpus

    corpus = parallel.process_0_first(load_corpus, config, FLAGS.workdir)
    manifest = corpus.train.manifest
    logging.info(
        "%s: %d training pairs (dropped: %d with a blank side, %d too long), "
        "built in %.1f s; vocabularies %d / %d",
        corpus.train.path,
        len(corpus.train),
        manifest["num_dropped_empty"],
        manifest["num_dropped_long"],
        manifest["build_seconds"],
        corpus.src_vocab.size,
        corpus.tgt_vocab.size,
    )


def _eval(config) -> None:
    """Scores config.eval.split, or --src_file against --ref_file, and writes the report
    into <workdir or model>/eval/<split, or the source file's name> (with --ensemble:
    <workdir or model>/ensemble/eval/...)."""
    if bool(FLAGS.src_file) != bool(FLAGS.ref_file):
        raise config_lib.ConfigError("--src_file and --ref_file go together")
    path = FLAGS.model or FLAGS.workdir
    pairs = name = None
    if FLAGS.src_file:
        pairs = readers.read_aligned(FLAGS.src_file, FLAGS.ref_file, drop_empty=False)[0]
        name = os.path.basename(FLAGS.src_file).rsplit(".", 1)[0] or "files"
    if FLAGS.ensemble:
        ensemble.run_eval([path, *FLAGS.ensemble], config, pairs, name)
    elif FLAGS.src_file:
        directory = os.path.join(FLAGS.workdir or path, "eval", name)
        translator, steps = loading.load_with_steps(path, config)
        evaluate.report(translator, pairs, name, directory, steps=steps)
    elif FLAGS.model:
        translator, steps = loading.load_with_steps(path, config)
        split = config.eval.split
        directory = os.path.join(FLAGS.workdir or path, "eval", split)
        pairs = evaluate.split_pairs(config, FLAGS.workdir or path, None, split)
        evaluate.report(translator, pairs, split, directory, wmt17_split=split, steps=steps)
    else:
        checkpointer = open_checkpointer(config, path)  # main checked it is the same model
        translator = Translator.build(config, *model_files.read_vocabs(path))
        evaluate.run(config, path, translator, checkpointer)


def _translate(config) -> None:
    path = FLAGS.model or FLAGS.workdir
    translator = (
        ensemble.load([path, *FLAGS.ensemble], config)
        if FLAGS.ensemble
        else loading.load(path, config)
    )
    with (
        _text_file(FLAGS.input, "r", sys.stdin) as source,
        _text_file(FLAGS.output, "w", sys.stdout) as sink,
    ):
        translate.run(translator, source, sink)


def _export(config) -> None:
    if not FLAGS.export_dir:
        raise config_lib.ConfigError("--mode=export needs --export_dir")
    export.export(config, FLAGS.workdir, FLAGS.export_dir, FLAGS.export_dtype)


MODES = {
    "train": _train,
    "preprocess": _preprocess,
    "eval": _eval,
    "translate": _translate,
    "export": _export,
}


def _check_paths() -> None:
    """The directories a mode needs, before any compute."""
    if FLAGS.mode in (*_TRAINING_MODES, "export") or not FLAGS.model:
        if not FLAGS.workdir:
            raise config_lib.ConfigError(
                f"--mode={FLAGS.mode} needs --workdir"
                + ("" if FLAGS.mode in (*_TRAINING_MODES, "export") else " or --model")
            )
    if FLAGS.mode in ("translate", "eval") and FLAGS.model and not loading.is_export(FLAGS.model):
        raise config_lib.ConfigError(
            f"--model {FLAGS.model!r} is not an export directory "
            f"(no {loading.PARAMS_DIR}/); for a workdir use --workdir"
        )
    if FLAGS.ensemble and FLAGS.mode not in ("translate", "eval"):
        raise config_lib.ConfigError(
            f"--ensemble is for --mode=eval or translate, not {FLAGS.mode}"
        )
    for member in FLAGS.ensemble:
        if not (loading.is_export(member) or model_files.has_config(member)):
            raise config_lib.ConfigError(
                f"--ensemble {member!r} is neither an export nor a trained workdir"
            )
    if FLAGS.config is None:
        raise config_lib.ConfigError(f"--mode={FLAGS.mode} needs --config")


def _quiet_libraries() -> None:
    """Keeps library chatter off stderr unless --verbosity=1 or more asks for it: JAX's
    report of its search for a TPU, and TensorFlow's oneDNN notice, which its C++ prints
    on import before any log level applies (so training and eval, which import it through
    TFDS and clu, import it first with stderr's descriptor pointed at /dev/null)."""
    if FLAGS.verbosity >= 1:
        return
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
    if FLAGS.mode in (*_TRAINING_MODES, "eval") and "tensorflow" not in sys.modules:
        saved_stderr = os.dup(2)
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        try:
            import tensorflow  # noqa: F401, PLC0415 - imported for its side effect
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _quiet_libraries()
    try:
        _check_paths()
        registries.validate(FLAGS.config)
        if FLAGS.mode in _TRAINING_MODES:  # made only once the command can run
            config_lib.check_workdir(FLAGS.workdir)
        path = FLAGS.model or FLAGS.workdir
        if model_files.has_config(path):  # resuming or using a model: the same model
            stored = model_files.read_config(path)
            model_files.check_same_model(stored, FLAGS.config, path)
            if FLAGS.mode in _TRAINING_MODES:  # ... and the same training state
                model_files.check_same_training_state(stored, FLAGS.config, path)
        parallel.initialize_distributed(FLAGS.config)
        host_memory.configure(FLAGS.config)
        parallel.cache_compilations(FLAGS.config.compilation_cache_dir)
        logging.info("config:\n%s", FLAGS.config)
        if FLAGS.mode not in _TRAINING_MODES and not FLAGS.model:
            loading.store_model_files(FLAGS.workdir, FLAGS.config)
        MODES[FLAGS.mode](FLAGS.config)
    except (config_lib.ConfigError, CorpusError, NoCheckpointError) as error:  # the
        sys.exit(f"error: {error}")  # user's input, not a bug


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, where a misspelt ``--config.x.y`` ends in one error line
    naming the flag (ml_collections raises it as a KeyError or AttributeError)."""
    for arg in argv[1:]:
        old = arg.split("=")[0].removeprefix("--config.")
        if arg.startswith("--config.") and old in config_lib.RENAMED:
            sys.exit(f"error: --config.{old} was renamed --config.{config_lib.RENAMED[old]}")
    try:
        return app.parse_flags_with_usage(argv)
    except (KeyError, AttributeError) as error:
        message = str(error).strip("'\"").replace("\\'", "'").replace("\\n", " ")
        key = re.match(r"'(\w+)'", message)
        named = [
            arg.split("=")[0]
            for arg in argv[1:]
            if key and arg.startswith("--config.") and f".{key[1]}" in arg.split("=")[0]
        ]
        hint = message[key.end() :].replace(" Did you", "; did you") if key else f": {message}"
        sys.exit(
            f"error: {named[0] if named else 'a --config override'}: no such config field{hint}"
        )


def run() -> None:
    define_config_flag(sys.argv)
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
