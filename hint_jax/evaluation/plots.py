"""Score-versus-FLOPs-per-example plot (as in the HINT paper), written as a PNG with matplotlib Agg."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Point:
  """One model on the plot.

  Attributes:
    label: text next to the marker (e.g. "HINT small").
    flops_per_example: forward FLOPs per example (hypernetwork amortised).
    score: e.g. ROUGE-L x100.
    series: models sharing a series are joined by a line (e.g. "HINT", "concat").
    low, high: optional range of the score (e.g. over seeds), drawn as an error bar.
  """
  label: str
  flops_per_example: float
  score: float
  series: str
  low: float | None = None
  high: float | None = None


def plot_score_vs_flops(points: Sequence[Point], path: str, title: str = "",
                        ylabel: str = "ROUGE-L") -> None:
  """Log-x scatter of score against FLOPs/example, one line per series, saved to `path`.

  The x unit is GFLOPs, or MFLOPs when every point is below 1 GFLOP; when the points span less
  than a decade, the x ticks are the points' own values (log ticks would have no labels there).
  """
  if not points:
    raise ValueError("plot_score_vs_flops: no points")
  import matplotlib  # pylint: disable=g-import-not-at-top  # headless backend before pyplot
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

  unit, scale = ("GFLOPs", 1e9) if max(p.flops_per_example for p in points) >= 1e9 else (
      "MFLOPs", 1e6)
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  all_xs = []
  for series in dict.fromkeys(p.series for p in points):
    pts = sorted((p for p in points if p.series == series), key=lambda p: p.flops_per_example)
    xs = [p.flops_per_example / scale for p in pts]
    all_xs += xs
    line, = ax.plot(xs, [p.score for p in pts], marker="o", label=series)
    ranged = [(x, p) for x, p in zip(xs, pts) if p.low is not None and p.high is not None]
    if ranged:
      ax.errorbar([x for x, _ in ranged], [p.score for _, p in ranged],
                  yerr=[[p.score - p.low for _, p in ranged], [p.high - p.score for _, p in ranged]],
                  fmt="none", ecolor=line.get_color(), capsize=3, alpha=0.7)
    for p, x in zip(pts, xs):
      ax.annotate(p.label, (x, p.score), textcoords="offset points", xytext=(4, 4), fontsize=7)
  ax.set_xscale("log")
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(
      lambda v, _: f"{v:.3g}" if v < 1000 else f"{v:,.0f}"))
  if max(all_xs) < 10 * min(all_xs):
    ax.set_xticks(sorted(set(all_xs)))
  ax.set_xlabel(f"{unit} per example (forward, hypernetwork amortised)")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title, fontsize=9)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
