"""The released pSp, e4e and ReStyle checkpoints (``*.pt``): read safely, check, and encode images with them.

A file is ``{'state_dict': {'encoder.*', 'decoder.*'}, 'opts': dict, 'latent_avg': [n_styles, 512]}`` (the three
repositories' ``training/coach.py``; e4e training files add optimiser and discriminator state, ignored here).
It is read with ``torch.load(weights_only=True)`` and nothing else allowed: ``opts`` must be a plain dict. From
``opts``: ``encoder_type``, ``input_nc`` (6: ReStyle), the W+ rows from ``output_size`` (pSp, ReStyle) or
``stylegan_size`` (e4e), ``start_from_latent_avg`` and ReStyle's ``n_iters_per_batch``. Every ``encoder.*`` tensor
is checked against the architecture built on the meta device (no memory) before anything is allocated, and loaded
strictly; ``decoder.*`` is a rosinality generator, read by :func:`wplus.formats.rosinality.generator_from_rosinality`.

Encoding follows the originals: images resized to 256 px in [-1, 1]; pSp/e4e add ``latent_avg`` when
``start_from_latent_avg``; ReStyle starts from the average image ``G(latent_avg)`` (constant noise, average-pooled
to 256 px), feeds image || current reconstruction and adds each predicted residual to the current code (to
``latent_avg`` at step 0), ``n_iters_per_batch`` times (5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wplus.errors import CheckpointError, ConfigError, ShapeError
from wplus.formats.rosinality import generator_from_rosinality, torch_load_safe
from wplus.models.psp_encoders import ENCODER_TYPES, EncoderArch, build_encoder, n_styles_for
from wplus.models.stylegan2 import Generator

__all__ = ["ReleasedEncoder", "load_encoder", "encoder_arch_from_opts", "INPUT_SIZE", "RESTYLE_ITERATIONS"]

INPUT_SIZE = 256  # the originals' Resize(256) and face_pool
RESTYLE_ITERATIONS = 5  # n_iters_per_batch's default
_NAMESPACE_HINT = "; pSp, e4e and ReStyle files keep opts as a plain dict (vars(opts))"


@dataclass
class EncodeSteps:
    """ReStyle's steps: ``ws[k]`` [B, n_styles, w_dim] and ``inputs[k]`` [B, input_nc, 256, 256], what step k read."""

    ws: list[torch.Tensor] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)


def _opts_int(opts: dict[str, Any], key: str, default: int | None, path: Path) -> int | None:
    value = opts.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(path, f"opts[{key!r}] is {value!r}, expected an integer")
    return value


def encoder_arch_from_opts(
    opts: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path
) -> tuple[EncoderArch, bool, int]:
    """(architecture, start_from_latent_avg, ReStyle iterations or 0) from ``opts`` and two key shapes (widths)."""
    path = Path(path)
    etype = opts.get("encoder_type")
    if etype not in ENCODER_TYPES:
        known = ", ".join(ENCODER_TYPES)
        raise CheckpointError(path, f"opts['encoder_type'] is {etype!r}, expected a released encoder ({known})")
    size = _opts_int(opts, "output_size", None, path) or _opts_int(opts, "stylegan_size", None, path)
    if size is None or size < 4 or size & (size - 1):
        raise CheckpointError(path, f"opts has output_size/stylegan_size {size!r}, expected a power of two (1024)")
    n_styles = n_styles_for(size)
    if (given := _opts_int(opts, "n_styles", None, path)) is not None and given != n_styles:
        raise CheckpointError(path, f"opts['n_styles'] is {given} but output size {size} has {n_styles} W+ rows")
    input_nc = _opts_int(opts, "input_nc", 3, path)
    stem, linear = state.get("encoder.input_layer.0.weight"), state.get("encoder.styles.0.linear.weight")
    if linear is None:
        linear = state.get("encoder.linear.weight")
    if stem is None or linear is None or stem.ndim != 4 or linear.ndim != 2:
        raise CheckpointError(path, "no encoder.input_layer.0.weight / map2style linear of the expected rank; "
                              "not a pSp, e4e or ReStyle checkpoint")  # fmt: skip
    try:
        arch = EncoderArch(etype, int(input_nc or 3), n_styles, int(stem.shape[0]), int(linear.shape[0]))
    except ConfigError as e:
        raise CheckpointError(path, str(e)) from None
    restyle = arch.input_nc == 6
    iterations = _opts_int(opts, "n_iters_per_batch", RESTYLE_ITERATIONS, path) if restyle else 0
    if restyle and not 1 <= (iterations or 0) <= 100:
        raise CheckpointError(path, f"opts['n_iters_per_batch'] is {iterations}, expected 1 to 100")
    return arch, bool(opts.get("start_from_latent_avg", restyle)), int(iterations or 0)


def _check_encoder_state(net: nn.Module, state: dict[str, torch.Tensor], arch: EncoderArch, path: Path) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    what = f"{arch.encoder_type} (input_nc {arch.input_nc}, {arch.n_styles} styles)"
    if missing:
        names = ", ".join(f"encoder.{k}" for k in missing[:4])
        raise CheckpointError(path, f"{len(missing)} encoder tensors missing for {what}: {names}")
    if extra:
        names = ", ".join(f"encoder.{k}" for k in extra[:4])
        raise CheckpointError(path, f"{len(extra)} unexpected encoder tensors for {what}: {names}")
    for k, want in expected.items():
        got = state[k]
        if not isinstance(got, torch.Tensor):
            raise CheckpointError(path, f"encoder.{k} is {type(got).__name__}, expected a tensor")
        if tuple(got.shape) != tuple(want.shape):
            shapes = f"{list(got.shape)}, expected {list(want.shape)}"
            raise CheckpointError(path, f"encoder.{k} has shape {shapes} for {what}")
        if want.is_floating_point() and not got.is_floating_point():
            raise CheckpointError(path, f"encoder.{k} has dtype {got.dtype}, expected floating point")


class ReleasedEncoder(nn.Module):
    """A released pSp / e4e / ReStyle encoder with its decoder: :meth:`encode` images to W+ codes.

    Attributes:
        net: the encoder (:mod:`wplus.models.psp_encoders`). G: the decoder as our :class:`Generator`.
        arch: its :class:`EncoderArch`. latent_avg: [n_styles, w_dim]. iterations: ReStyle's default steps (0:
        a single-pass encoder). path, opts: the file and its options.
    """

    def __init__(
        self,
        net: nn.Module,
        G: Generator,
        arch: EncoderArch,
        latent_avg: torch.Tensor,
        *,
        start_from_latent_avg: bool,
        iterations: int = 0,
        path: str | Path | None = None,
        opts: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.net, self.G, self.arch = net, G, arch
        self.register_buffer("latent_avg", latent_avg.float())
        self.start_from_latent_avg, self.iterations = start_from_latent_avg, iterations
        self.path, self.opts = (None if path is None else Path(path)), dict(opts or {})

    @property
    def n_styles(self) -> int:
        return self.arch.n_styles

    @property
    def num_ws(self) -> int:  # the wplus.models.encoder.Encoder interface
        return self.arch.n_styles

    @property
    def w_dim(self) -> int:
        return self.arch.style_dim

    @property
    def kind(self) -> str:
        """'psp', 'e4e', 'psp-w' (the W encoder), 'restyle-psp' or 'restyle-e4e'."""
        cls = ENCODER_TYPES[self.arch.encoder_type].__name__
        base = {"Encoder4Editing": "e4e", "ProgressiveBackboneEncoder": "e4e"}.get(cls, "psp")
        if self.arch.w_only:
            base = "psp-w"
        return f"restyle-{base}" if self.iterations else base

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, 3, 256, 256] (bilinear with antialiasing, as PIL's Resize)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"images have shape {list(images.shape)}, expected [B, 3, H, W] in [-1, 1]")
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                   align_corners=False)  # fmt: skip
        return images

    def render(self, ws: torch.Tensor) -> torch.Tensor:
        """The decoder's image of ``ws`` with its constant noise, at the generator's resolution."""
        return self.G.synthesis(ws, noise_mode="const")

    @staticmethod
    def pool(images: torch.Tensor) -> torch.Tensor:
        """The originals' ``face_pool``: AdaptiveAvgPool2d(256)."""
        return F.adaptive_avg_pool2d(images, (INPUT_SIZE, INPUT_SIZE))

    def average_image(self) -> torch.Tensor:
        """ReStyle's step-0 reconstruction: ``face_pool(G(latent_avg))`` [1, 3, 256, 256]."""
        return self.pool(self.render(self.latent_avg[None]))

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if out.ndim == 2:  # the W encoder: one w for every row
            out = out[:, None].expand(-1, self.n_styles, -1)
        return out

    @torch.no_grad()
    def steps(self, images: torch.Tensor, iterations: int | None = None) -> EncodeSteps:
        """Every step's code and input (one step for pSp / e4e); see :meth:`encode`."""
        x = self.preprocess(images.to(self.latent_avg.device, torch.float32))
        out = EncodeSteps()
        if not self.iterations:
            if iterations not in (None, 1):
                raise ConfigError(f"iterations={iterations}: this {self.kind} encoder is single-pass (ReStyle only)")
            ws = self._codes(x)
            if self.start_from_latent_avg:
                ws = ws + self.latent_avg
            out.ws.append(ws)
            out.inputs.append(x)
            return out
        n = self.iterations if iterations is None else iterations
        if not 1 <= n <= 100:
            raise ConfigError(f"iterations={n}, expected 1 to 100")
        recon = self.average_image().expand(x.shape[0], -1, -1, -1)
        ws = self.latent_avg.expand(x.shape[0], -1, -1)
        for _ in range(n):
            inp = torch.cat([x, recon], dim=1)
            ws = ws + self._codes(inp)
            recon = self.pool(self.render(ws))
            out.ws.append(ws)
            out.inputs.append(inp)
        return out

    def encode(self, images: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        """W+ codes [B, n_styles, w_dim] of ``images`` [B, 3, H, W] in [-1, 1] (resized to 256 px).

        ``iterations``: ReStyle's refinement steps (default ``opts['n_iters_per_batch']``, 5); single-pass encoders
        take None or 1.
        """
        return self.steps(images, iterations).ws[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(images)


def load_encoder(path: str | Path, *, device: str | torch.device = "cpu") -> ReleasedEncoder:
    """Read a released pSp / e4e / ReStyle checkpoint (``*.pt``) with its decoder.

    Raises:
        CheckpointError: one line naming the file: unreadable, a pickled object (``opts`` must be a plain dict),
            an unknown ``encoder_type``, a missing, extra or misshapen tensor, or a decoder that does not fit.

    Example:
        >>> enc = wplus.load_encoder("e4e_ffhq_encode.pt")          # doctest: +SKIP
        >>> ws = enc.encode(images)                                 # [B, 18, 512]   # doctest: +SKIP
    """
    path = Path(path)
    ckpt = torch_load_safe(path, namespace=False, mmap=True, hint=_NAMESPACE_HINT)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        keys = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(path, f"got {keys}, expected a dict with 'state_dict' and 'opts' (pSp, e4e, ReStyle)")
    opts = ckpt.get("opts")
    if not isinstance(opts, dict):
        raise CheckpointError(path, f"opts is {type(opts).__name__}, expected a plain dict (vars(opts))")
    sd = ckpt["state_dict"]
    enc_state = {k[len("encoder.") :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("encoder.")}
    dec_state = {k[len("decoder.") :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("decoder.")}
    other = [k for k in sd if not (isinstance(k, str) and k.startswith(("encoder.", "decoder.")))]
    if other:
        raise CheckpointError(path, f"{len(other)} state_dict entries outside encoder./decoder.: {other[:4]}")
    arch, from_avg, iterations = encoder_arch_from_opts(opts, sd, path)
    net = build_encoder(arch, device="meta")
    _check_encoder_state(net, enc_state, arch, path)
    if not dec_state:
        raise CheckpointError(path, "no decoder.* tensors; the released files carry their StyleGAN2 generator")
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1] != arch.style_dim or latent_avg.ndim > 2:
            shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            raise CheckpointError(path, f"latent_avg is {shape}, expected [{arch.n_styles}, {arch.style_dim}]")
        latent_avg = latent_avg.float().reshape(-1, arch.style_dim)
        if latent_avg.shape[0] not in (1, arch.n_styles):
            raise CheckpointError(path, f"latent_avg has {latent_avg.shape[0]} rows, expected 1 or {arch.n_styles}")
    elif from_avg or iterations:
        raise CheckpointError(path, "no latent_avg, but the encoder's codes are relative to it")
    G = generator_from_rosinality(dec_state, latent_avg, path=path, device="cpu")
    if G.num_ws != arch.n_styles or G.w_dim != arch.style_dim:
        raise CheckpointError(path, f"the decoder takes [{G.num_ws}, {G.w_dim}] codes, the encoder writes "
                              f"[{arch.n_styles}, {arch.style_dim}]")  # fmt: skip
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in enc_state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    net = net.eval().requires_grad_(False)
    if latent_avg is None:
        latent_avg = G.w_avg[None]
    enc = ReleasedEncoder(
        net,
        G,
        arch,
        latent_avg.expand(arch.n_styles, -1).clone(),
        start_from_latent_avg=from_avg,
        iterations=iterations,
        path=path,
        opts=opts,
    )
    return enc.to(device).eval()
