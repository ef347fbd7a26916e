"""Every figure wplus draws goes through matplotlib here: the import (only when something is drawn, so the library
works without the ``plot`` extra), the Agg backend, one style, and the one-line error when matplotlib is missing.

:func:`draw_panels` draws line charts side by side (a projection's ``history.png``, the benchmarks' curves); the
studies draw their own figures with the module :func:`pyplot` returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wplus.errors import ConfigError
from wplus.io.atomic import atomic_write

__all__ = ["Panel", "draw_panels", "pyplot", "STYLE", "PLOT_INSTALL"]

STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False}  # fmt: skip
PLOT_INSTALL = "pip install 'wplus[plot]' (or pip install matplotlib)"


def pyplot(purpose: str = "the figures") -> Any:
    """``matplotlib.pyplot`` on the Agg backend with wplus's style.

    Args:
        purpose: what needs it, named in the error (a command's flag, say).

    Raises:
        ConfigError: matplotlib is not installed (one line: what needs it and how to install it).
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(f"got no matplotlib, expected it for {purpose}; {PLOT_INSTALL}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


@dataclass
class Panel:
    """One chart: ``curves`` maps a legend name to (xs, ys); ``log_y`` draws the y axis on a log scale (values that
    are not positive are left out)."""

    title: str
    x_label: str
    y_label: str
    curves: dict[str, tuple[Sequence[float], Sequence[float]]]
    log_y: bool = False


def _finite_points(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> tuple[list[float], list[float]]:
    """The points of a curve that can be drawn; a gap (NaN) where one cannot, so the line breaks there."""
    out_x, out_y = [], []
    for x, y in zip(xs, ys, strict=True):
        x, y = float(x), float(y)
        ok = math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)
        out_x.append(x if ok else math.nan)
        out_y.append(y if ok else math.nan)
    return out_x, out_y


def draw_panels(
    panels: Sequence[Panel], path: str | Path, *, size: tuple[int, int] = (520, 300), purpose: str = "the figures"
) -> Path:
    """Draw ``panels`` side by side, each ``size`` (width, height) pixels, and save the PNG atomically.

    Raises:
        ConfigError: matplotlib is not installed (``purpose`` says what wanted the figure).
    """
    plt = pyplot(purpose)
    dpi = STYLE["figure.dpi"]
    w, h = size
    # A hair over the exact inches: the canvas is the product's integer part, which must not round down.
    fig, axes = plt.subplots(1, len(panels), figsize=((w * len(panels) + 0.01) / dpi, (h + 0.01) / dpi), dpi=dpi,
                             squeeze=False)  # fmt: skip
    try:
        for ax, panel in zip(axes[0], panels, strict=True):
            for name, (xs, ys) in panel.curves.items():
                px, py = _finite_points(xs, ys, panel.log_y)
                if not any(math.isfinite(v) for v in py):
                    continue
                ax.plot(px, py, label=name, linewidth=1.5, marker="o" if len(px) == 1 else None, markersize=3)
            if panel.log_y:
                ax.set_yscale("log")
            ax.set_title(panel.title)
            ax.set_xlabel(panel.x_label)
            ax.set_ylabel(panel.y_label)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.tight_layout()
        return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi))
    finally:
        plt.close(fig)
