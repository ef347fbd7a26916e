"""matplotlib, imported only when a study draws its figure (the ``plot`` extra); one look for every study."""

from __future__ import annotations

from typing import Any

from wplus.errors import ConfigError

__all__ = ["pyplot", "STYLE"]

STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False}  # fmt: skip


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend with the studies' style.

    Raises:
        ConfigError: matplotlib is not installed (one line: how to install it).
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "the study figures need matplotlib: pip install 'wplus[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


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
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
