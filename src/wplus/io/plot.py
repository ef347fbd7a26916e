"""Small line charts drawn with Pillow (no plotting library needed): a projection's ``history.png``.

Each panel has its own y axis with round tick values, a shared kind of x axis, a title and a legend; curves are
polylines. Enough to read a run's PSNR and loss against time, which is what the file is for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from wplus.io.atomic import atomic_write

__all__ = ["Panel", "draw_panels", "nice_ticks"]

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]


@dataclass
class Panel:
    """One chart: ``curves`` maps a legend name to (xs, ys); ``log_y`` plots log10 of positive values."""

    title: str
    x_label: str
    y_label: str
    curves: dict[str, tuple[Sequence[float], Sequence[float]]]
    log_y: bool = False


LEGEND_CHARS = 40  # legend names are cut to this many characters


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi].

    Example:
        >>> nice_ticks(0.0, 9.3)
        [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _draw_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], panel: Panel, font) -> None:
    left, top, right, bottom = box
    x0, y0, x1, y1 = left + 60, top + 22, right - 10, bottom - 34  # plot area inside the panel
    curves = {k: (list(map(float, xs)), list(map(float, ys))) for k, (xs, ys) in panel.curves.items() if len(xs)}
    if panel.log_y:
        curves = {k: (xs, [math.log10(y) if y > 0 else math.nan for y in ys]) for k, (xs, ys) in curves.items()}
    xs_all = [x for xs, _ in curves.values() for x in xs if math.isfinite(x)] or [0.0, 1.0]
    ys_all = [y for _, ys in curves.values() for y in ys if math.isfinite(y)] or [0.0, 1.0]
    xt, yt = nice_ticks(min(xs_all), max(xs_all)), nice_ticks(min(ys_all), max(ys_all))

    def px(x: float) -> float:
        return x0 + (x - xt[0]) / (xt[-1] - xt[0]) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - (y - yt[0]) / (yt[-1] - yt[0]) * (y1 - y0)

    draw.text((left + 4, top + 4), panel.title, fill=(0, 0, 0), font=font)
    for t in yt:
        draw.line([(x0, py(t)), (x1, py(t))], fill=(228, 228, 228))
        label = f"{10**t:.3g}" if panel.log_y else f"{t:g}"
        draw.text((left + 4, py(t) - 5), label, fill=(60, 60, 60), font=font)
    for t in xt:
        draw.line([(px(t), y1), (px(t), y1 + 4)], fill=(0, 0, 0))
        draw.text((px(t) - 8, y1 + 6), f"{t:g}", fill=(60, 60, 60), font=font)
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 20, bottom - 14), panel.x_label, fill=(0, 0, 0), font=font)
    draw.text((x0 + 4, y0 + 2), panel.y_label, fill=(90, 90, 90), font=font)
    names = [name[:LEGEND_CHARS] for name in curves]
    text_w = max((int(draw.textlength(n, font=font)) for n in names), default=0)
    lx = x1 - text_w - 8  # the legend's text starts here, right-aligned in the frame; its line swatch before it
    for i, (xs, ys) in enumerate(curves.values()):
        color = COLORS[i % len(COLORS)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
        draw.line([(lx - 20, y0 + 12 + 12 * i), (lx - 5, y0 + 12 + 12 * i)], fill=color, width=2)
        draw.text((lx, y0 + 6 + 12 * i), names[i], fill=(0, 0, 0), font=font)


def draw_panels(panels: Sequence[Panel], path: str | Path, *, size: tuple[int, int] = (520, 300)) -> Path:
    """Draw ``panels`` side by side and save the PNG atomically."""
    w, h = size
    img = Image.new("RGB", (w * len(panels), h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, panel in enumerate(panels):
        _draw_panel(draw, (i * w, 0, (i + 1) * w, h), panel, font)
    return atomic_write(path, lambda p: img.save(p))
