"""Style transfer by crossover (Image2StyleGAN section 4.2; StyleGAN's style mixing).

Rows of the style code replace the content code's rows in a layer range. The paper keeps the first 9 of 18 rows from
the content image and takes the last 9 from the style image (1024 px); the StyleGAN2 projecting toolkit uses 7 / 11.
Named ranges follow StyleGAN's coarse (4–8 px), middle (16–32 px) and fine (64–1024 px) styles, which are rows
0–3, 4–7 and 8–17 of an 18-row code; for other depths the same fractions (4/18, 8/18) of ``num_ws`` are used, each
range keeping at least one row. Z codes are crossed over after mapping (their saved ws).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from wplus.edits.morph import morph
from wplus.edits.render import latent_noise, render
from wplus.errors import ConfigError, ShapeError
from wplus.io.images import captioned_grid
from wplus.io.latents import Latent

__all__ = ["named_layer_ranges", "parse_layers", "mix_styles", "style_mixing_grid", "style_morph"]


def named_layer_ranges(num_ws: int) -> dict[str, list[int]]:
    """``coarse`` / ``middle`` / ``fine`` rows scaled to ``num_ws``, plus ``paper`` (last half) and ``toolkit``.

    Example:
        >>> named_layer_ranges(18)["middle"]
        [4, 5, 6, 7]
    """
    if num_ws < 3:
        raise ConfigError(f"named layer ranges need num_ws >= 3, got {num_ws}")
    b1 = max(1, round(num_ws * 4 / 18))
    b2 = min(max(b1 + 1, round(num_ws * 8 / 18)), num_ws - 1)
    return {
        "coarse": list(range(0, b1)),
        "middle": list(range(b1, b2)),
        "fine": list(range(b2, num_ws)),
        "paper": list(range(num_ws // 2, num_ws)),  # 9-17 of 18: last 9 rows from the style image
        "toolkit": list(range(round(num_ws * 7 / 18), num_ws)),  # 7-17 of 18: first 7 rows kept
        "all": list(range(num_ws)),
    }


def parse_layers(spec: str | Sequence[int], num_ws: int) -> list[int]:
    """'9-17', 'coarse', 'middle,fine', '0-3,fine' or a list of ints -> sorted unique row indices < num_ws.

    Raises:
        ConfigError: unknown name, malformed range, or a row outside [0, num_ws).
    """
    if isinstance(spec, str):
        named = named_layer_ranges(num_ws) if num_ws >= 3 else {"all": list(range(num_ws))}
        rows: list[int] = []
        for part in (p.strip().lower() for p in spec.split(",")):
            if not part:
                continue
            if part in named:
                rows.extend(named[part])
                continue
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
                raise ConfigError(
                    f"layers {spec!r}: expected row ranges such as '9-17' or names {sorted(named)}, got {part!r}"
                )
            rows.extend(range(int(lo), int(hi or lo) + 1))
    else:
        rows = [int(r) for r in spec]
    if not rows:
        raise ConfigError(f"layers {spec!r}: no rows given")
    bad = [r for r in rows if not 0 <= r < num_ws]
    if bad:
        raise ConfigError(f"layers {spec!r}: rows {bad} are outside 0-{num_ws - 1} (this generator has {num_ws})")
    return sorted(set(rows))


def mix_styles(content: torch.Tensor, style: torch.Tensor, layers: str | Sequence[int]) -> torch.Tensor:
    """Crossover: ``content`` with the given rows taken from ``style``.

    Args:
        content: [B, num_ws, w_dim] codes (or [num_ws, w_dim]).
        style: same shape as ``content``, or [1, num_ws, w_dim] broadcast over the batch.
        layers: rows taken from ``style`` (see :func:`parse_layers`).

    Returns:
        A new tensor shaped like ``content``.

    Example:
        >>> mix_styles(torch.zeros(1, 6, 2), torch.ones(1, 6, 2), "3-5")[0, :, 0]
        tensor([0., 0., 0., 1., 1., 1.])
    """
    if content.shape[-2:] != style.shape[-2:]:
        raise ShapeError(f"content code {list(content.shape)} and style code {list(style.shape)} differ in shape")
    rows = parse_layers(layers, content.shape[-2])
    out = content.clone()
    out[..., rows, :] = style.to(content).expand_as(content)[..., rows, :]
    return out


@torch.no_grad()
def style_mixing_grid(
    G: torch.nn.Module,
    contents: Sequence[Latent],
    styles: Sequence[Latent],
    layers: str | Sequence[int],
    *,
    labels: tuple[Sequence[str], Sequence[str]] | None = None,
    scale: int = 1,
) -> tuple[Image.Image, list[list[Image.Image]]]:
    """StyleGAN's style-mixing figure: content rows x style columns, sources along the top row and left column.

    Each cell is rendered with its content's noise (the content image supplies the structure).

    Args:
        G: the generator.
        contents: the row sources; styles: the column sources.
        layers: rows of the code taken from the style (see :func:`parse_layers`).
        labels: (content names, style names) captioned under the source tiles (e.g. file stems); None: no captions.
        scale: integer nearest-neighbour upscale of every tile.

    Returns:
        The sheet and the cells ``[content][style]`` (at the generator's resolution).
    """
    cells = []
    for c in contents:
        ws = torch.cat([mix_styles(c.ws, s.ws, layers) for s in styles])
        cells.append(render(G, ws, latent_noise(c, G)))
    style_imgs = [render(G, s.ws, latent_noise(s, G))[0] for s in styles]
    content_imgs = [render(G, c.ws, latent_noise(c, G))[0] for c in contents]
    blank = Image.new("RGB", style_imgs[0].size, (255, 255, 255))
    tiles = [blank, *style_imgs]
    for img, row in zip(content_imgs, cells, strict=True):
        tiles.extend([img, *row])
    captions = None
    if labels is not None:
        content_names, style_names = labels
        if len(content_names) != len(contents) or len(style_names) != len(styles):
            raise ConfigError(
                f"labels name {len(content_names)} contents and {len(style_names)} styles, expected {len(contents)} "
                f"and {len(styles)}"
            )
        captions = ["", *(f"style: {n}" for n in style_names)]
        for name in content_names:
            captions += [f"content: {name}", *([""] * len(styles))]
    return captioned_grid(tiles, captions, cols=len(styles) + 1, scale=scale), cells


@torch.no_grad()
def style_morph(
    G: torch.nn.Module,
    content: Latent,
    styles: Sequence[Latent],
    layers: str | Sequence[int],
    *,
    frames: int = 60,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A style video: the style code morphs (W+, linearly) through ``styles`` and crosses over into ``content``.

    Returns ws [frames, num_ws, w_dim] and the content's noise (per layer [1, 1, r, r]).
    """
    if len(styles) < 2:
        raise ConfigError(f"a style video needs at least 2 style references, got {len(styles)}")
    path = morph(G, styles, frames=frames, space="w+")
    return mix_styles(content.ws.expand_as(path.ws), path.ws, layers), latent_noise(content, G)
