"""Animations: GIF through Pillow (always available), MP4 through imageio-ffmpeg (the ``video`` extra)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from wplus.errors import ConfigError, WplusError
from wplus.io.atomic import atomic_write

__all__ = ["save_gif", "save_mp4", "mp4_available", "save_animation", "check_fps"]


def check_fps(fps: float) -> None:
    """Refuse a frame rate that is not a finite number > 0 (ConfigError)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a finite number > 0, got {fps}")


def save_gif(frames: list[Image.Image], path: str | Path, *, fps: float = 10, loop: int = 0) -> Path:
    if not frames:
        raise WplusError(f"{path}: no frames to write")
    check_fps(fps)
    duration = max(int(round(1000 / fps)), 20)

    def write(tmp: Path) -> None:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=duration,
            loop=loop,
            optimize=False,
            disposal=1,
        )

    return atomic_write(path, write)


def mp4_available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def save_mp4(frames: list[Image.Image], path: str | Path, *, fps: float = 10) -> Path:
    """H.264 MP4 (needs ``pip install 'wplus[video]'``). Frame sides are padded to even sizes for yuv420p."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise WplusError(f"{path}: MP4 needs imageio-ffmpeg; install it with pip install 'wplus[video]'") from None
    check_fps(fps)
    w, h = frames[0].size
    w2, h2 = w + (w % 2), h + (h % 2)

    def write(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w2, h2), fps=fps, codec="libx264", quality=8, macro_block_size=1, pix_fmt_out="yuv420p"
        )
        writer.send(None)
        for fr in frames:
            arr = np.zeros((h2, w2, 3), dtype=np.uint8)
            arr[:h, :w] = np.asarray(fr.convert("RGB"))
            writer.send(np.ascontiguousarray(arr))
        writer.close()

    return atomic_write(path, write)


def save_animation(frames: list[Image.Image], stem: str | Path, *, fps: float = 10) -> list[Path]:
    """Write ``<stem>.gif`` and, when imageio-ffmpeg is installed, ``<stem>.mp4``. Returns the written paths."""
    stem = Path(stem)
    out = [save_gif(frames, stem.with_suffix(".gif"), fps=fps)]
    if mp4_available():
        out.append(save_mp4(frames, stem.with_suffix(".mp4"), fps=fps))
    return out
