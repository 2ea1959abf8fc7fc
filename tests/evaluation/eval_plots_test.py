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


def test_narrow_sub_gflop_range_is_labelled_by_its_points(tmp_path, monkeypatch):
  """Two toy models 15% apart: MFLOPs, and one readable tick per point (no log-tick clutter)."""
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  seen = {}
  save = matplotlib.figure.Figure.savefig

  def spy(fig, path, *args, **kwargs):
    fig.canvas.draw()
    ax = fig.axes[0]
    seen["labels"] = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    seen["xlabel"] = ax.get_xlabel()
    return save(fig, path, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
  plots.plot_score_vs_flops([plots.Point("hint", 6.39e6, 8.0, "hint"),
                             plots.Point("concat", 7.44e6, 16.3, "concat")],
                            str(tmp_path / "p.png"))
  assert seen["labels"] == ["6.39", "7.44"]
  assert seen["xlabel"].startswith("MFLOPs per example")


def test_ranges_are_drawn_as_error_bars(tmp_path, monkeypatch):
  """Points with a range (e.g. over seeds) get an error bar from low to high."""
  from matplotlib import axes  # pylint: disable=g-import-not-at-top
  calls = []
  errorbar = axes.Axes.errorbar

  def spy(ax, x, y, *args, **kwargs):
    calls.append((list(x), list(y), [list(v) for v in kwargs["yerr"]]))
    return errorbar(ax, x, y, *args, **kwargs)

  monkeypatch.setattr(axes.Axes, "errorbar", spy)
  plots.plot_score_vs_flops([plots.Point("s", 6e6, 30.0, "hint", low=20.0, high=35.0),
                             plots.Point("m", 9e6, 40.0, "hint"),
                             plots.Point("s", 7e6, 25.0, "concat")], str(tmp_path / "p.png"))
  assert calls == [([6.0], [30.0], [[10.0], [5.0]])]
