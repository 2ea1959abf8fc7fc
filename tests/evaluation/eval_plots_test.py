"""Tests for the score-versus-FLOPs plot."""
import pytest

from hint_jax.evaluation import plots


def test_writes_png(tmp_path):
  points = [plots.Point("HINT small", 5.9e9, 30.0, "HINT"),
            plots.Point("HINT base", 25e9, 40.0, "HINT"),
            plots.Point("concat small", 16e9, 28.0, "concat")]
  path = tmp_path / "p.png"
  plots.plot_score_vs_flops(points, str(path), title="test")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_no_points_rejected(tmp_path):
  with pytest.raises(ValueError, match="no points"):
    plots.plot_score_vs_flops([], str(tmp_path / "p.png"))
