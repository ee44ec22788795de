"""The command line: the three modes end to end, resume, and bad input."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from cli_runs import REPO, TINY, main_command, run_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli")
    run = run_main(workdir, *TINY, "--config.train.num_steps=10")
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, run


def test_train_writes_checkpoints_metrics_and_heatmaps(trained):
    workdir, run = trained
    assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "5"]
    report = workdir / "eval" / "test"
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["step"] == 10 and 0 <= metrics["exact_match"] <= 100
    assert len((report / "hypotheses.txt").read_text().splitlines()) == 20
    assert (report / "attention_0.png").stat().st_size > 1000
    assert (report / "bleu_by_length.png").stat().st_size > 1000
    assert sum(row["sentences"] for row in metrics["bleu_by_length"]) == 20
    assert "train step batch shapes, each compiled once: 2 (buckets: 2)" in run.stderr
    assert "oneDNN" not in run.stderr and "absl::InitializeLog" not in run.stderr
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))


def test_eval_mode_reproduces_training_report(trained):
    workdir, _ = trained
    report = workdir / "eval" / "test" / "metrics.json"
    before = json.loads(report.read_text())
    run = run_main(workdir, *TINY, "--mode=eval")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(report.read_text()) == before


def test_a_workdir_without_config_json_gains_it_from_its_config(trained):
    """A workdir trained before config.json existed: its --config, once."""
    workdir, _ = trained
    stored = {
        name: (workdir / name).read_bytes()
        for name in ("config.json", "source_vocab.json", "target_vocab.json")
    }
    for name in stored:
        (workdir / name).unlink()
    run = run_main(workdir, "--mode=translate", stdin="abc\n")
    assert run.returncode != 0 and "needs its --config once" in run.stderr
    report = workdir / "eval" / "test" / "metrics.json"
    before = json.loads(report.read_text())
    run = run_main(workdir, *TINY, "--config.train.num_steps=10", "--mode=eval")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(report.read_text()) == before
    for name in ("source_vocab.json", "target_vocab.json"):
        assert (workdir / name).read_bytes() == stored[name]
    assert (
        json.loads((workdir / "config.json").read_text())["config"]
        == json.loads(stored["config.json"])["config"]
    )


def test_translate_mode_maps_lines_to_lines(trained):
    workdir, _ = trained
    lines = ["abc", "", "zyxw", "   ", "q" * 40]
    run = run_main(workdir, *TINY, "--mode=translate", stdin="\n".join(lines) + "\n")
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = run.stdout.split("\n")[:-1]
    assert len(outputs) == len(lines)
    assert outputs[1] == "" and outputs[3] == ""
    assert "input line 5 has 40 tokens; translating its first 23" in run.stderr


def test_translate_drops_a_byte_order_mark(trained, tmp_path):
    workdir, _ = trained
    plain = run_main(workdir, "--mode=translate", stdin="abc\nzyx\n")
    (tmp_path / "bom.txt").write_bytes("\ufeffabc\nzyx\n".encode())
    for flags, stdin in (([f"--input={tmp_path / 'bom.txt'}"], None), ([], "\ufeffabc\nzyx\n")):
        run = run_main(workdir, "--mode=translate", *flags, stdin=stdin)
        assert run.returncode == 0 and run.stdout == plain.stdout, run.stderr[-2000:]


def test_translate_files_and_n_best(trained, tmp_path):
    workdir, _ = trained
    (tmp_path / "in.txt").write_text("abc\n\nzyx\n")
    run = run_main(
        workdir,
        *TINY,
        "--mode=translate",
        f"--input={tmp_path / 'in.txt'}",
        f"--output={tmp_path / 'out.txt'}",
        "--config.eval.decoder=beam",
        "--config.eval.beam_size=3",
        "--config.eval.n_best=2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "2", "2"]
    scores = [float(line.split(" ||| ")[2]) for line in lines]
    assert scores[0] >= scores[1] and scores[3] >= scores[4]


def test_translate_names_a_bad_input_output_or_workdir(trained, tmp_path):
    workdir, _ = trained
    empty = tmp_path / "empty"
    shutil.copytree(workdir, empty, ignore=shutil.ignore_patterns("checkpoints", "best"))
    for flags, message in [
        (
            [f"--input={tmp_path / 'missing.txt'}"],
            f"--input '{tmp_path / 'missing.txt'}': No such file or directory",
        ),
        ([f"--input={tmp_path}"], f"--input '{tmp_path}': Is a directory"),
        (
            [f"--output={tmp_path / 'no' / 'out.txt'}"],
            f"--output '{tmp_path / 'no' / 'out.txt'}': No such file or directory",
        ),
    ]:
        run = run_main(workdir, "--mode=translate", *flags, stdin="abc\n")
        assert run.returncode != 0 and "Traceback" not in run.stderr
        assert f"error: {message}" in run.stderr
    run = run_main(empty, "--mode=translate", stdin="abc\n")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "error: no checkpoint in" in run.stderr
    assert not (empty / "checkpoints").exists() and not (empty / "best").exists()


def test_a_damaged_best_checkpoint_falls_back_to_the_latest(trained, tmp_path):
    workdir, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    for root, _, names in os.walk(copy / "best" / "10" / "default"):  # the arrays
        for name in names:
            os.truncate(os.path.join(root, name), os.path.getsize(os.path.join(root, name)) // 2)
    expected = run_main(workdir, "--mode=translate", stdin="abc\nzyx\n")
    run = run_main(copy, "--mode=translate", stdin="abc\nzyx\n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == expected.stdout  # step 10 is the latest checkpoint too
    assert "cannot read the best checkpoint of step 10" in run.stderr
    assert "restored the parameters of the latest checkpoint, step 10" in run.stderr


def test_a_workdir_of_garbled_checkpoints_ends_in_one_error_line(trained, tmp_path):
    """One flipped byte in every checkpoint: caught by the checksums, each passed over
    with a warning, then one error line; no traceback, no asyncio or Orbax noise."""
    workdir, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    for kind in ("checkpoints", "best"):
        for step in os.listdir(copy / kind):
            data = [
                os.path.join(root, name)
                for root, _, names in os.walk(copy / kind / step / "default")
                for name in names
            ]
            with open(max(data, key=os.path.getsize), "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 1]))
    for mode in ("eval", "translate"):
        run = run_main(copy, f"--mode={mode}", stdin="abc\n")
        assert run.returncode == 1, run.stderr[-3000:]
        assert run.stderr.rstrip().splitlines()[-1].startswith("error: no checkpoint in")
        for noise in ("Traceback", "Task exception", "Event loop is closed"):
            assert noise not in run.stderr, run.stderr[-3000:]
        assert run.stderr.count("does not match its checksum") >= 2


def test_translate_survives_any_input(trained):
    """Random bytes (invalid UTF-8, NUL, CR, control characters), 10,000- and
    60,000-character lines, empty and blank lines, no final newline: one output line
    per input line, and exit 0."""
    workdir, _ = trained
    rng = np.random.default_rng(0)
    lines = [rng.bytes(n).replace(b"\n", b"") for n in rng.integers(0, 300, 60)]
    lines += [
        b"",
        b"   ",
        b"\t\r",
        b"\x00\x0b\x0c\x1c\x85",
        b"\xff\xfe\xc3",
        "\u2028中文".encode(),
        b"q" * 10_000,
        b"ab " * 20_000,
        b"\r",
    ]
    order = rng.permutation(len(lines))
    lines = [lines[i] for i in order]
    strict_utf8 = dict(os.environ, PYTHONIOENCODING="utf-8")  # as in most UTF-8 locales
    run = subprocess.run(
        main_command(workdir, *TINY, "--mode=translate"),
        cwd=REPO,
        input=b"\n".join(lines),
        env=strict_utf8,
        capture_output=True,
        timeout=600,
    )
    stderr = run.stderr.decode(errors="replace")
    assert run.returncode == 0, stderr[-3000:]
    outputs = run.stdout.decode().split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines)
    for line, output in zip(lines, outputs):
        if not line.strip():
            assert output == ""
    long_line = 1 + int(np.flatnonzero(order == len(lines) - 2)[0])
    assert f"input line {long_line} has 60000 characters; reading its first 10000" in stderr


def test_training_resumes_from_latest_checkpoint(trained, tmp_path):
    workdir, _ = trained
    run = run_main(workdir, *TINY, "--config.train.num_steps=15")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resuming at step 10" in run.stderr
    assert "step 15/15" in run.stderr and "step 5/15" not in run.stderr


def test_resuming_with_other_training_data_is_refused(trained):
    workdir, _ = trained
    run = run_main(workdir, *TINY, "--config.train.num_steps=20", "--config.data.task=dates")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert (
        "error: the source vocabulary built from config.data differs from "
        f"{os.path.relpath(workdir, REPO)}/source_vocab.json"
    ) in run.stderr
    assert sorted(os.listdir(workdir / "checkpoints"))[-1] != "20"


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--config.model.hiden_size=3",
            "error: --config.model.hiden_size: no such config field; "
            'did you mean "hidden_size" instead of "hiden_size"?',
        ),
        (
            "--config.trainn.num_steps=3",
            "error: --config.trainn.num_steps: no such config field; "
            'did you mean "train" instead of "trainn"?',
        ),
        ("--config.eval.max_len_a=-1", "config.eval.max_len_a must be >= 0"),
        ("--config.eval.max_len_b=-2", "config.eval.max_len_b must be >= 0"),
        ("--config.data.train_size=20", "config.data.batch_size=32 is too large for the training"),
        ("--config.model.hidden_size=-3", "config.model.hidden_size must be > 0"),
        ("--config.model.attention=luong", "config.model.attention must be one of"),
        ("--config.model.cell=lstn", "config.model.cell must be one of"),
        ("--config.data.tokenizer=bytes", "config.data.tokenizer must be one of"),
        (
            "--config.eval.train_split=test",
            "error: --config.eval.train_split was renamed --config.eval.validation_split",
        ),
        (
            "--config.data.bleu_tokenize=13a",
            "error: --config.data.bleu_tokenize was renamed --config.eval.bleu_tokenize",
        ),
        ("--config.train.time_budget_minutes=-1", "config.train.time_budget_minutes must be >= 0"),
        ("--config.eval.tune_alphas=(0.6,-1.0)", "config.eval.tune_alphas must hold alphas >= 0"),
        (
            "--config.eval.tune_average_checkpoints=(2,9)",
            "config.eval.tune_average_checkpoints each must be in [2, train.keep_checkpoints=3]",
        ),
        (
            "--config.distributed.coordinator_address=localhost",
            "config.distributed.coordinator_address must be host:port, 'auto' or empty",
        ),
        (
            "--config.distributed.coordinator_address=auto",
            "config.distributed.coordinator_address='auto' found no cluster to join",
        ),
    ],
)
def test_bad_config_stops_before_compute_naming_the_key(tmp_path, flag, message):
    run = run_main(tmp_path / "run", *TINY, flag)
    assert run.returncode != 0
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_command_refused_up_front_creates_no_workdir(tmp_path):
    for flags in (["--config.model.hiden_size=3"], ["--config.eval.max_len_a=-1"]):
        run = run_main(tmp_path / "run", *TINY, *flags)
        assert run.returncode == 1 and "Traceback" not in run.stderr
        assert not (tmp_path / "run").exists()


def test_unwritable_workdir_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = run_main(blocker / "run", *TINY)
    assert run.returncode != 0
    assert f"workdir '{os.path.relpath(blocker / 'run', REPO)}' is not writable" in run.stderr
