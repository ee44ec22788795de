"""benchmarks/bottleneck_study.py --assemble: the recorded runs read back by variant."""

import json

from benchmarks import bottleneck_study


def _section(task: str, slug: str, variant: str, bleu: float) -> str:
    """A section as benchmarks/record.py writes it: its JSON line last."""
    line = {
        "benchmark": "bottleneck_study",
        "results": {task: {variant: {"variant": variant, "bleu": bleu}}},
    }
    return (
        f"<!-- BEGIN bottleneck/{task}/{slug} -->\n## bottleneck/{task}/{slug}\n\n"
        f"```\ntable\n```\n\n```json\n{json.dumps(line)}\n```\n"
        f"<!-- END bottleneck/{task}/{slug} -->\n"
    )


def test_recorded_runs_come_back_in_the_variants_order(tmp_path, monkeypatch):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        _section("long", "context_vector", "context vector", 7.5)
        + _section("copy", "luong", "luong", 99.0)
        + _section("long", "luong", "luong", 33.7),
        encoding="utf-8",
    )
    monkeypatch.setattr(bottleneck_study, "RESULTS", str(results))
    runs = bottleneck_study._recorded("long")
    assert list(runs) == ["luong", "context vector"]  # VARIANTS' order, this task only
    assert runs["luong"]["bleu"] == 33.7 and runs["context vector"]["bleu"] == 7.5
    assert bottleneck_study._recorded("multi30k") == {}
