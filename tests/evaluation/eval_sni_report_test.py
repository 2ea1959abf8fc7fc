"""Tests for SNI reports on fixed predictions."""
import json

import pytest

from hint_jax.evaluation import sni_report

EXAMPLES = [
    sni_report.ScoredExample("t1", "yes", ("yes",), "Sentiment", "a"),
    sni_report.ScoredExample("t1", "no", ("yes", "no"), "Sentiment", "b"),
    sni_report.ScoredExample("t1", "maybe", ("yes",), "Sentiment", "c"),
    sni_report.ScoredExample("t2", "the cat", ("a cat",), "Title", "d"),
]
SCORERS = {"exact_match": lambda p, refs: float(any(p == r for r in refs)),
           "length": lambda p, refs: min(1.0, len(p) / 10)}


def test_report_averages_over_instances():
  report = sni_report.build_report(EXAMPLES, SCORERS)
  assert report["overall"]["exact_match"] == pytest.approx(50.0)  # 2 of 4 instances
  assert report["overall"]["num_examples"] == 4
  assert report["per_task"]["t1"]["exact_match"] == pytest.approx(200 / 3)
  assert report["per_task"]["t2"]["exact_match"] == 0.0
  assert report["per_category"]["Title"]["length"] == pytest.approx(70.0)
  assert set(report["per_category"]) == {"Sentiment", "Title"}


def test_markdown_and_json(tmp_path):
  report = sni_report.build_report(EXAMPLES, SCORERS)
  sni_report.write_report(report, str(tmp_path / "r.json"), str(tmp_path / "r.md"))
  assert json.loads((tmp_path / "r.json").read_text()) == report
  md = (tmp_path / "r.md").read_text()
  assert "| all | 50.00 | 42.50 | 4 |" in md
  assert "| t1 | 66.67 |" in md and "## Per category" in md


def test_missing_references_named():
  bad = [sni_report.ScoredExample("t9", "x", (), "", "id7")]
  with pytest.raises(ValueError, match="'id7' of task 't9'"):
    sni_report.build_report(bad, SCORERS)
  with pytest.raises(ValueError, match="no examples"):
    sni_report.build_report([], SCORERS)


def test_official_metrics_agree_with_data_module():
  from hint_jax.data import sni_metrics
  examples = [sni_report.ScoredExample("t1", "The Cat!", ("the cat", "a dog"), "C"),
              sni_report.ScoredExample("t1", "running dogs", ("the dog runs",), "C"),
              sni_report.ScoredExample("t2", "no", ("yes",), "D")]
  report = sni_report.build_report(examples)
  official = sni_metrics.compute_metrics([e.prediction for e in examples],
                                         [list(e.references) for e in examples])
  assert report["overall"]["exact_match"] == pytest.approx(official["exact_match"], abs=1e-3)
  assert report["overall"]["rougeL"] == pytest.approx(official["rougeL"], abs=1e-3)
  assert report["overall"]["exact_match"] == pytest.approx(100 / 3)
