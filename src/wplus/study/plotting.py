"""The studies' figures: matplotlib comes from :func:`wplus.io.plot.pyplot` (imported only when a study draws its
figure, the ``plot`` extra; one look for every figure wplus draws); the grouped bar chart several studies share."""

from __future__ import annotations

from typing import Any

from wplus.io.plot import STYLE, pyplot

__all__ = ["pyplot", "STYLE", "bar_chart", "FIGURE_PURPOSE"]

FIGURE_PURPOSE = "wplus study's figure.png"


def bar_chart(plt: Any, path: Any, labels: list[str], series: dict[str, list[float]], *, ylabel: str, title: str,
              size: tuple[float, float] = (7.0, 3.6)) -> None:  # fmt: skip
    """Grouped bars: one group per label, one bar per series; saved to ``path`` (PNG)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=size)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for k, (name, ys) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, ys, width, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 3:  # many bars a group: the legend goes under the axes, clear of the bars
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(len(series), 3))
    elif len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
