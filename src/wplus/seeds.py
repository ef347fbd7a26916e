"""Seeds as the field shares them: the z a seed means, and the ws a seeded sample gets.

People name faces by seed ("seed 6600 of FFHQ"). NVIDIA's ``generate.py`` (stylegan2-ada-pytorch, stylegan3), the
TF StyleGAN ``pretrained_example.py`` and the projecting toolkit all draw ``z`` as
``np.random.RandomState(seed).randn(1, z_dim)`` (float64, cast to float32 by the mapping network), so wplus does the
same: the same seed and the same model give the same face in every tool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wplus.errors import ConfigError

__all__ = ["SEED_LIMIT", "z_from_seed", "z_from_seeds", "ws_from_seed"]

SEED_LIMIT = 2**32  # np.random.RandomState takes seeds 0 .. 2**32 - 1


def z_from_seed(seed: int, z_dim: int, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """The latent z a seed means: ``np.random.RandomState(seed).randn(1, z_dim)`` as a float32 tensor.

    Args:
        seed: 0 <= seed < 2**32.
        z_dim: Width of z (``G.z_dim``).
        device: Where the tensor goes.

    Returns:
        z, shape [1, z_dim], float32.

    Raises:
        ConfigError: ``seed`` is out of RandomState's range, or ``z_dim`` < 1.

    Example:
        >>> z = z_from_seed(5, 512)
        >>> np.array_equal(z.numpy(), np.random.RandomState(5).randn(1, 512).astype(np.float32))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"got seed {seed!r}, expected an integer from 0 to {SEED_LIMIT - 1} (2**32 - 1)")
    if z_dim < 1:
        raise ConfigError(f"got z_dim {z_dim}, expected at least 1")
    z = np.random.RandomState(int(seed)).randn(1, z_dim)  # [1, z_dim] float64, NVIDIA's convention
    return torch.from_numpy(z).to(device=device, dtype=torch.float32)


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """:func:`z_from_seed` for many seeds at once, [N, z_dim] float32 on the CPU.

    One ``RandomState`` is re-seeded for each seed, which gives the same numbers as a fresh one and is some 30x
    faster than building one per seed (what makes 100 000 seeds take seconds, not a minute).

    Example:
        >>> torch.equal(z_from_seeds([3, 7], 8)[1:], z_from_seed(7, 8))
        True
    """
    if z_dim < 1:
        raise ConfigError(f"got z_dim {z_dim}, expected at least 1")
    rs = np.random.RandomState(0)
    out = np.empty((len(seeds), z_dim), dtype=np.float32)
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < SEED_LIMIT:
            raise ConfigError(f"got seed {seed!r}, expected an integer from 0 to {SEED_LIMIT - 1} (2**32 - 1)")
        rs.seed(int(seed))
        out[i] = rs.randn(z_dim)  # float64 draws, cast as the mapping network casts them
    return torch.from_numpy(out)


def ws_from_seed(
    G: torch.nn.Module,
    seed: int,
    *,
    c: torch.Tensor | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, ws)`` of a seeded sample, truncated the way the model's own sampler truncates.

    Args:
        G: A wplus generator (StyleGAN2 or StyleGAN v1).
        seed: See :func:`z_from_seed`.
        c: One-hot class label [1, c_dim] for conditional models.
        truncation_psi: ``w_avg + psi * (w - w_avg)``; 1 keeps w as mapped.
        truncation_cutoff: Truncate only the first N ws. None means the model's default: StyleGAN v1 truncates the
            first ``config.truncation_cutoff`` (8, as TF's ``Gs.run``), StyleGAN2 every layer (NVIDIA's default).

    Returns:
        z [1, z_dim] and ws [1, num_ws, w_dim], on ``G``'s device.
    """
    if truncation_cutoff is None:
        truncation_cutoff = getattr(G.config, "truncation_cutoff", None)
    z = z_from_seed(seed, G.z_dim, device=next(G.parameters()).device)  # type: ignore[arg-type]
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    return z, ws
