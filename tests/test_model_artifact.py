"""A trained model is an artifact of its own: a workdir moved away from its training
data, an export moved again, and the Python API all give the same translations; a
model or vocabulary override is refused before any compute."""

import json
import os
import shutil

import jax
import pytest
from cli_runs import REPO, run_main

import s2s_jax
from s2s_jax.data.tasks import make_splits

# A SentencePiece model over the files source with non-default model fields.
MODEL = [
    "--config=configs/tsv.py",
    "--config.data.vocab_size=300",
    "--config.data.buckets=((16,16),(32,32))",
    "--config.data.tokens_per_batch=0",
    "--config.data.batch_size=32",
    "--config.eval.batch_size=8",
    "--config.model.cell=gru",
    "--config.model.embed_dim=8",
    "--config.model.hidden_size=24",
    "--config.model.encoder_layers=1",
    "--config.model.decoder_layers=1",
    "--config.model.residual=False",
    "--config.model.dropout=0.25",
    "--config.train.num_steps=10",
    "--config.train.log_every=5",
    "--config.train.eval_every=10",
    "--config.train.checkpoint_every=5",
    "--config.train.warmup_steps=2",
]
SOURCES = ["abc", "", "hello world", "zyxw", "q" * 40]


def _write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """Trains in workdir A, moves A to A2 and deletes the training file."""
    root = tmp_path_factory.mktemp("artifact")
    splits = make_splits("reversal", 0, {"train": 400, "validation": 12, "test": 16})
    data = root / "data"
    data.mkdir()
    for split, pairs in splits.items():
        _write_tsv(data / f"{split}.tsv", pairs)
    run = run_main(
        root / "A",
        *MODEL,
        f"--config.data.train_path={data / 'train.tsv'}",
        f"--config.data.validation_path={data / 'validation.tsv'}",
        f"--config.data.test_path={data / 'test.tsv'}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    shutil.move(root / "A", root / "A2")
    (data / "train.tsv").unlink()
    return root, root / "A2", data


def _translate(*flags, stdin="\n".join(SOURCES) + "\n"):
    run = run_main(*flags, "--mode=translate", stdin=stdin)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.split("\n")[:-1]


def test_the_workdir_stores_its_resolved_config(moved):
    _, workdir, _ = moved
    record = json.loads((workdir / "config.json").read_text())
    assert record["config"]["model"]["cell"] == "gru"
    assert record["config"]["model"]["dropout"] == 0.25
    assert record["config"]["data"]["buckets"] == [[16, 16], [32, 32]]
    assert record["s2s_jax_version"] and "git_commit" in record
    assert (workdir / "source_vocab.model").exists() and (workdir / "target_vocab.model").exists()


def test_moved_workdir_evaluates_translates_and_exports_without_its_data(moved):
    root, workdir, _ = moved
    report = workdir / "eval" / "test" / "metrics.json"
    trained = json.loads(report.read_text())
    run = run_main(workdir, "--mode=eval")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(report.read_text()) == trained

    from_workdir = _translate(workdir)
    assert len(from_workdir) == len(SOURCES) and from_workdir[1] == ""

    run = run_main(workdir, "--mode=export", f"--export_dir={root / 'D'}")
    assert run.returncode == 0, run.stderr[-3000:]
    shutil.move(root / "D", root / "D2")
    export = root / "D2"
    assert sorted(os.listdir(export)) == [
        "config.json",
        "metrics.json",
        "model_card.md",
        "params",
        "source_vocab.model",
        "target_vocab.model",
    ]
    assert json.loads((export / "metrics.json").read_text()) == trained
    assert _translate(root / "nowhere", f"--model={export}") == from_workdir
    assert s2s_jax.load(str(export)).translate(SOURCES) == from_workdir
    assert s2s_jax.load(str(workdir)).translate(SOURCES) == from_workdir


def test_eval_on_files_scores_as_the_built_in_split(moved):
    root, workdir, data = moved
    splits = make_splits("reversal", 0, {"train": 400, "validation": 12, "test": 16})
    (data / "mine.src").write_text("".join(s + "\n" for s, _ in splits["test"]))
    (data / "mine.ref").write_text("".join(t + "\n" for _, t in splits["test"]))
    run = run_main(
        workdir, "--mode=eval", f"--src_file={data / 'mine.src'}", f"--ref_file={data / 'mine.ref'}"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    files = json.loads((workdir / "eval" / "mine" / "metrics.json").read_text())
    split = json.loads((workdir / "eval" / "test" / "metrics.json").read_text())
    for key in ("bleu", "chrf", "exact_match", "loss", "bleu_signature"):
        assert files[key] == split[key], key
    assert (workdir / "eval" / "mine" / "hypotheses.txt").read_text() == (
        workdir / "eval" / "test" / "hypotheses.txt"
    ).read_text()

    run = run_main(workdir, "--mode=export", f"--export_dir={root / 'D3'}")
    assert run.returncode == 0, run.stderr[-3000:]
    run = run_main(
        root / "reports",
        "--mode=eval",
        f"--model={root / 'D3'}",
        f"--src_file={data / 'mine.src'}",
        f"--ref_file={data / 'mine.ref'}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    exported = json.loads((root / "reports" / "eval" / "mine" / "metrics.json").read_text())
    for key in ("bleu", "chrf", "exact_match", "loss", "step", "decoding"):
        assert exported[key] == split[key], key


def test_bfloat16_export_is_smaller_and_translates(moved):
    root, workdir, _ = moved
    run = run_main(
        workdir, "--mode=export", f"--export_dir={root / 'D16'}", "--export_dtype=bfloat16"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    model = s2s_jax.load(str(root / "D16"))
    assert {str(p.dtype) for p in jax.tree.leaves(model.params)} == {"float32"}
    assert len(model.translate(SOURCES)) == len(SOURCES)
    record = json.loads((root / "D16" / "config.json").read_text())
    assert record["export"]["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    "flags, field",
    [
        (
            ["--config.model.hidden_size=64"],
            "config.model.hidden_size=64 differs from the trained model's 24",
        ),
        (
            ["--config.data.vocab_size=500"],
            "config.data.vocab_size=500 differs from the trained model's 300",
        ),
        (
            ["--config=configs/tsv.py"],
            "config.model.cell='lstm' differs from the trained model's 'gru'",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["eval", "translate", "export"])
def test_a_model_override_is_refused_naming_the_field(moved, flags, field, mode):
    root, workdir, _ = moved
    # Refused before any compute: with no JAX backend to start, touching one would fail.
    no_backend = dict(os.environ, JAX_PLATFORMS="no_such_backend")
    run = run_main(
        workdir, f"--mode={mode}", f"--export_dir={root / 'never'}", *flags, env=no_backend
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {field} ({os.path.relpath(workdir / 'config.json', REPO)}); a trained "
        "model's architecture and vocabulary cannot change: drop the override, or train a "
        "new workdir"
    ]
    assert not (root / "never").exists()


def test_decoding_overrides_are_allowed(moved):
    _, workdir, _ = moved
    lines = _translate(
        workdir,
        "--config.eval.decoder=beam",
        "--config.eval.beam_size=3",
        "--config.eval.n_best=2",
        "--config.eval.batch_size=4",
    )
    assert [line.split(" ||| ")[0] for line in lines][:2] == ["0", "0"]


def test_python_api_options_and_compile_cache(moved):
    root, workdir, _ = moved
    model = s2s_jax.load(str(workdir))
    assert model.params is not None
    first = model.translate(SOURCES, beam_size=3, n_best=2)
    assert all(len(n) <= 2 for n in first) and first[1] == [""]
    results = model.translate(["abc"], return_scores=True, return_attention=True)
    translation = results[0]
    assert translation.hypotheses[0][0] == model.translate(["abc"])[0]
    assert translation.attention.shape == (
        len(translation.target_pieces),
        len(translation.source_pieces),
    )
    scores = model.score(["abc", "zyxw"], ["cba", "wxyz"])
    assert 0 <= scores["bleu"] <= 100 and "bleu_signature" in scores

    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _, **kwargs: (
            compiled.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    assert model.translate(SOURCES, beam_size=3, n_best=2) == first  # compiled above
    model.translate(["abc"])
    assert compiled == []
