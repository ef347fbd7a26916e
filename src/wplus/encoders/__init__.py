"""Encoders as a start for projection: which encoder belongs to a generator, and reading one from a file.

:func:`load_encoder` reads an encoder file: ours (``.safetensors``, written by ``wplus encoder train``) or a
released pSp / e4e / ReStyle checkpoint (``.pt``, read by :mod:`wplus.formats.psp` without running its pickle).
:func:`encoder_for` finds the encoder a projection with ``init='encoder'`` starts from: the one given, else the
one shipped for the shipped model, and checks that it was trained for this generator (its W+ shape, and the
generator file's SHA-256 when both are known).
"""

from __future__ import annotations

from pathlib import Path

import torch

from wplus.errors import CheckpointError, ConfigError
from wplus.models.encoder import Encoder, WEncoder, load_encoder_file

__all__ = ["Encoder", "EncoderLike", "WEncoder", "load_encoder", "shipped_encoder_path", "encoder_for", "encode_for"]

EncoderLike = str | Path | Encoder


def shipped_encoder_path(model: str) -> Path | None:
    """The encoder shipped for ``model`` (``cartoon-faces-64``), or None when it has none."""
    from wplus import shipped

    return shipped.shipped_encoder_path() if model == shipped.SHIPPED_MODEL else None


def load_encoder(path: str | Path, *, device: str | torch.device = "cpu") -> Encoder:
    """An encoder file in eval mode, frozen: ``wplus encoder train``'s ``encoder.safetensors`` (a
    :class:`WEncoder`), or a released pSp / e4e / ReStyle ``.pt`` (a :class:`wplus.formats.psp.ReleasedEncoder`,
    which also carries its decoder as ``.G``).

    Raises:
        CheckpointError: a missing or unreadable file, or one that is not an encoder (the message names it).
    """
    if Path(path).suffix.lower() in (".pt", ".pth", ".ckpt"):
        from wplus.formats.psp import load_encoder as load_released

        return load_released(path, device=device)
    return load_encoder_file(path, device=device)


def encoder_for(
    G: torch.nn.Module, encoder: EncoderLike | None = None, *, device: str | torch.device | None = None
) -> Encoder:
    """The encoder to start a projection into ``G`` from: ``encoder`` (a file or a module), else G's shipped one.

    Raises:
        ConfigError: ``G`` has no shipped encoder and none was given.
        CheckpointError: the file is missing or unreadable, or was trained for another generator (names the file).
    """
    from wplus.loading import generator_file

    device = device if device is not None else G.mapping.w_avg.device
    found = generator_file(G)
    path: Path | None = None
    if encoder is None:
        path = shipped_encoder_path(found.model_id) if found is not None else None
        if path is None:
            name = found.model_id if found is not None else "this generator"
            raise ConfigError(
                f"{name} has no shipped encoder; pass one (encoder=FILE, --encoder FILE) or train one with "
                "`wplus encoder train`"
            )
    elif isinstance(encoder, str | Path):
        path = Path(encoder)
    if path is not None:
        encoder = load_encoder(path, device=device)
    if not isinstance(encoder, Encoder):
        raise ConfigError(f"encoder must be a file or a module with encode(images), got {type(encoder).__name__}")
    where = path if path is not None else Path(type(encoder).__name__)
    if (encoder.num_ws, encoder.w_dim) != (G.num_ws, G.w_dim):
        raise CheckpointError(
            where,
            f"an encoder for W+ [{encoder.num_ws}, {encoder.w_dim}], the generator's is [{G.num_ws}, {G.w_dim}]; "
            "train one for this model with `wplus encoder train`",
        )
    config = getattr(encoder, "config", None)
    trained_for = getattr(config, "model_sha256", "")
    if trained_for and found is not None and found.sha256 and trained_for != found.sha256:
        model_id = getattr(config, "model_id", "") or trained_for[:12]
        raise CheckpointError(
            where,
            f"an encoder for {model_id}, not for {found.model_id}; pass the encoder trained for this model",
        )
    return encoder


def encode_for(G: torch.nn.Module, images: torch.Tensor, encoder: EncoderLike | None = None) -> torch.Tensor:
    """W+ codes ``[B, num_ws, w_dim]`` of ``images`` ``[B, 3, R, R]`` in [-1, 1] from G's encoder (see
    :func:`encoder_for`), on the images' device."""
    enc = encoder_for(G, encoder, device=images.device)
    return enc.encode(images).to(images.device)
